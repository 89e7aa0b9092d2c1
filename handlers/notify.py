"""Domain events -> messages to the people and chats that should hear of them (via the outbox)."""

from __future__ import annotations

from typing import Any

from handlers.messages import Button, Outgoing
from handlers.render import Renderer
from workflow.events import CaseEvent
from workflow.model import Role
from workflow.ports import OutgoingMessage

# Which events the reporter hears of, with the template that tells them.
REPORTER_NEWS = {
    "CaseValidated": "news_validated",
    "CaseAssigned": "news_assigned",
    "CaseAccepted": "news_accepted",
    "CaseTakenByTownship": "news_accepted",
    "CaseRejected": "news_rejected",
    "CaseMarkedDuplicate": "news_duplicate",
    "CaseReopened": "news_reopened",
    "CaseClosed": "news_closed",
}


class Notifier:
    """The workflow's event hook: writes outbox rows inside the same unit of work."""

    def __init__(self, default_locale: str = "zh_CN") -> None:
        self.default_locale = default_locale

    async def __call__(self, uow: Any, events: list[CaseEvent]) -> None:
        for event in events:
            for channel, message in await self.messages(uow, event):
                await uow.outbox.add(
                    OutgoingMessage(
                        channel=channel,
                        chat_id=message.chat_id,
                        payload=message.payload(),
                        case_number=event.case_number,
                    )
                )

    async def messages(self, uow: Any, event: CaseEvent) -> list[tuple[str, Outgoing]]:
        news = REPORTER_NEWS.get(event.name)
        if event.name == "CaseSupervised":
            return await self._instruction(uow, event)
        if news is None and event.name != "CaseResolved" and not _moves_holder(event):
            return []  # notes and the like: no card to build, no query to run
        card = await uow.channels.case_card(event.case_number)
        out: list[tuple[str, Outgoing]] = []
        if event.name == "CaseRouted" and card["deadline_class"] == "emergency":
            out += await self._page(uow, card, event)
        if event.name == "CaseResolved":
            out += await self._to_reporter(uow, card, "news_resolved", event, rating=True)
        elif news:
            out += await self._to_reporter(uow, card, news, event)
        holder = _holder_target(event, card)
        if holder is not None:
            purpose, role, area_id, department_id = holder
            out += await self._to_unit(uow, card, event, purpose, role, area_id, department_id)
        return out

    async def _instruction(self, uow: Any, event: CaseEvent) -> list[tuple[str, Outgoing]]:
        """A supervisor's instruction (督办意见) goes on to whoever holds the case now."""
        card = await uow.channels.case_card(event.case_number)
        unit = holder_unit(card["state"], card)
        if unit is None:
            return []
        out = []
        for channel, chat_id, locale in await unit_targets(uow, *unit, self.default_locale):
            text = Renderer(locale).macro("chat.html.j2", "instruction", card=card, event=event)
            message = Outgoing(
                chat_id=chat_id, text=text, case_number=card["number"], purpose="instruction"
            )
            out.append((channel, message))
        return out

    async def _page(
        self, uow: Any, card: dict[str, Any], event: CaseEvent
    ) -> list[tuple[str, Outgoing]]:
        """Emergencies page the township and the county center at intake, whoever holds them."""
        units = [
            ("township", Role.TOWNSHIP_OPERATOR, card["township_id"], None),
            ("county", Role.COUNTY_DISPATCHER, None, None),
        ]
        holder = _holder_target(event, card)
        out = []
        for unit in units:
            if holder is not None and unit[0] == holder[0]:
                continue  # the holder gets the card with its buttons anyway
            for channel, chat_id, locale in await unit_targets(uow, *unit, self.default_locale):
                r = Renderer(locale)
                text = r.macro("chat.html.j2", "emergency_page", card=card, event=event)
                message = Outgoing(
                    chat_id=chat_id, text=text, photos=card["report_photos"],
                    case_number=card["number"], purpose="page",
                )  # fmt: skip
                out.append((channel, message))
        return out

    async def _to_reporter(
        self, uow: Any, card: dict[str, Any], template: str, event: CaseEvent, rating: bool = False
    ) -> list[tuple[str, Outgoing]]:
        if card["reporter_id"] is None:
            return []
        out = []
        for channel, chat_id, locale in await uow.channels.private_chats_of(card["reporter_id"]):
            r = Renderer(locale)
            buttons = []
            if rating:
                n = card["number"]
                buttons = [[Button(r.macro("chat.html.j2", f"rate_{v}"), f"rt:{n}:{v}")
                            for v in ("s", "b", "d")]]  # fmt: skip
            text = r.macro("chat.html.j2", template, card=card, event=event)
            out.append((channel, Outgoing(chat_id=chat_id, text=text, buttons=buttons,
                                          photos=card["result_photos"] if rating else [],
                                          case_number=card["number"],
                                          purpose="rating" if rating else "news")))  # fmt: skip
        return out

    async def _to_unit(
        self, uow: Any, card: dict[str, Any], event: CaseEvent, purpose: str, role: Role,
        area_id: int | None, department_id: int | None,
    ) -> list[tuple[str, Outgoing]]:  # fmt: skip
        """The case card with its buttons, to the unit's group chats, else its people directly."""
        targets = await unit_targets(
            uow, purpose, role, area_id, department_id, self.default_locale
        )
        out = []
        for channel, chat_id, locale in targets:
            r = Renderer(locale)
            out.append((channel, Outgoing(
                chat_id=chat_id,
                text=r.macro("chat.html.j2", "case_card", card=card, event=event),
                photos=card["report_photos"],
                buttons=card_buttons(r, card, role),
                case_number=card["number"],
                purpose="case_card",
            )))  # fmt: skip
        return out


async def unit_targets(
    uow: Any, purpose: str, role: Role, area_id: int | None, department_id: int | None,
    default_locale: str,
) -> list[tuple[str, str, str]]:  # fmt: skip
    """(channel, chat, locale) of a unit: its bound group chats, else its people's own chats."""
    targets = [
        (b.channel, b.chat_id, default_locale)
        for b in await uow.channels.chats_for(purpose, area_id=area_id, department_id=department_id)
    ]
    if not targets:
        targets = await uow.channels.private_chats_with_role(
            role, area_id=area_id, department_id=department_id
        )
    return list(targets)


def _moves_holder(event: CaseEvent) -> bool:
    """A new holder (or a reclassified card) gets the case card; staying put sends nothing."""
    return event.from_state != event.to_state or event.name == "CaseReclassified"


def _holder_target(
    event: CaseEvent, card: dict[str, Any]
) -> tuple[str, Role, int | None, int | None] | None:
    """Who must act after this event: (chat purpose, role, area, department)."""
    if not _moves_holder(event):
        return None
    state = event.to_state.value
    if state == "in_progress" and event.name not in ("CaseAccepted", "CaseReopened"):
        return None  # a note or a resolve sent back: the holder knows already
    return holder_unit(state, card)


def holder_unit(
    state: str, card: dict[str, Any]
) -> tuple[str, Role, int | None, int | None] | None:
    """The unit holding a case in `state`: (chat purpose, role, area, department)."""
    if state == "screening":
        return ("grid", Role.GRID_LEADER, card["grid_id"], None)
    if state == "township":
        return ("township", Role.TOWNSHIP_OPERATOR, card["township_id"], None)
    if state in ("county", "returned"):
        return ("county", Role.COUNTY_DISPATCHER, None, None)
    if state in ("assigned", "in_progress"):
        if card["handled_by_township"]:
            return ("township", Role.TOWNSHIP_OPERATOR, card["township_id"], None)
        return ("department", Role.DEPARTMENT_HANDLER, None, card["department_id"])
    if state == "supervision":
        return ("supervisors", Role.SUPERVISOR, None, None)
    return None


def card_buttons(r: Renderer, card: dict[str, Any], role: Role) -> list[list[Button]]:
    """Short callback data: 'a:<action>:<case number>' fits Telegram's 64 bytes."""
    n = card["number"]

    def b(label: str, action: str) -> Button:
        return Button(r.macro("chat.html.j2", label), f"a:{action}:{n}")

    state = card["state"]
    if state == "screening":
        return [[b("btn_valid", "sv"), b("btn_invalid", "si")], [b("btn_duplicate", "dp"),
                b("btn_reclassify", "rc")]]  # fmt: skip
    if state == "township":
        return [[b("btn_handle_here", "hl"), b("btn_pass_up", "pu")], [b("btn_invalid", "si")]]
    if state in ("county", "returned", "supervision"):
        return [[Button(d["name"], f"as:{d['code']}:{n}")] for d in card["proposed_departments"]]
    if state == "assigned":
        return [[b("btn_accept", "ac"), b("btn_return", "rt")]]
    if state == "in_progress":
        return [[b("btn_resolve", "rs")]] + (
            [[b("btn_return", "rt")]]
            if role is Role.DEPARTMENT_HANDLER
            else [[b("btn_pass_up", "pu")]]
        )
    return []
