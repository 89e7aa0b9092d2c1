"""Domain events -> messages to the people and chats that should hear of them (via the outbox)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from handlers.messages import Outgoing
from handlers.ports import CaseCard, ChatStore, chats_of
from handlers.render import Renderer
from handlers.units import (
    REPLY_CHANNELS,
    HolderUnit,
    card_buttons,
    holder_unit,
    instruct_line,
    rating_buttons,
    unit_targets,
)
from workflow.bus import MessageBus
from workflow.channels import ShownMessage
from workflow.events import (
    CaseAccepted,
    CaseAssigned,
    CaseClosed,
    CaseClosedUnrated,
    CaseEscalated,
    CaseEvent,
    CaseMarkedDuplicate,
    CasePassedUp,
    CaseRated,
    CaseReclassified,
    CaseRejected,
    CaseReopened,
    CaseReported,
    CaseResolved,
    CaseReturned,
    CaseRouted,
    CaseSupervised,
    CaseTakenByTownship,
    CaseValidated,
    Event,
    ProgressNoted,
)
from workflow.model import Action, Role, State
from workflow.ports import OutgoingMessage, UnitOfWork
from workflow.table import TRANSITIONS, offered_actions

# Who may rate a result (the table's rate rows): anyone else who reported is told it only.
RATERS = frozenset(r for t in TRANSITIONS if t.action is Action.RATE for r in t.roles)


@dataclass
class Telling:
    """What every notify handler is given: the unit of work, and the case cards read so far.

    One Telling lives for one batch of events; they were all fired before the batch is told,
    so a card read for the first event is the card for the others too.
    """

    uow: UnitOfWork
    default_locale: str
    cards: dict[str, CaseCard] = field(default_factory=dict)

    @property
    def chats(self) -> ChatStore:
        return chats_of(self.uow)

    async def card(self, number: str) -> CaseCard:
        if number not in self.cards:
            self.cards[number] = await self.chats.case_card(number)
        return self.cards[number]


Told = list[tuple[str, Outgoing]]  # (channel, message) pairs, in the order they go out
# Any: each handler takes its own event class (CaseRouted, ...), so no one type fits them all.
NoticeHandler = Callable[[Any, Telling], Awaitable[Told]]


def news_to_reporter(template: str) -> NoticeHandler:
    """The reporter hears the news the template tells (no buttons)."""

    async def tell(event: CaseEvent, telling: Telling) -> Told:
        card = await telling.card(event.case_number)
        return await _to_reporter(telling.chats, card, template, event)

    tell.__name__ = tell.__qualname__ = f"news_to_reporter({template!r})"
    return tell


async def ask_for_rating(event: CaseResolved, telling: Telling) -> Told:
    """The reporter sees the result, its photos, and the three rating buttons; a reporter the
    table does not let rate (staff who took a report by phone) the result alone, to pass on."""
    card = await telling.card(event.case_number)
    rates = card.reporter_role is None or Role(card.reporter_role) in RATERS
    if not rates:
        return await _to_reporter(
            telling.chats, card, "news_resolved", event, photos=card.result_photos
        )
    return await _to_reporter(telling.chats, card, "news_resolved", event, rating=True)


async def card_to_holder(event: CaseEvent, telling: Telling) -> Told:
    """The unit that must act now gets the case card with its buttons."""
    card = await telling.card(event.case_number)
    unit = holder_unit(event.to_state.value, card)
    if unit is None:
        return []
    return await _to_unit(telling, card, event, *unit)


async def page_emergency(event: CaseRouted, telling: Telling) -> Told:
    """Emergencies page the township and the county center at intake, whoever holds them."""
    card = await telling.card(event.case_number)
    if card.deadline_class != "emergency":
        return []
    holder = holder_unit(event.to_state.value, card)
    units = [
        HolderUnit("township", Role.TOWNSHIP_OPERATOR, card.township_id, None),
        HolderUnit("county", Role.COUNTY_DISPATCHER, None, None),
    ]
    out: Told = []
    for unit in units:
        if holder is not None and unit.purpose == holder.purpose:
            continue  # the holder gets the card with its buttons anyway
        for channel, chat_id, locale in await unit_targets(
            telling.chats, *unit, telling.default_locale
        ):
            r = Renderer(locale)
            text = r.macro("chat.html.j2", "emergency_page", card=card, event=event)
            message = Outgoing(
                chat_id=chat_id, text=text, photos=card.report_photos,
                case_number=card.number, purpose="page",
            )  # fmt: skip
            out.append((channel, message))
    return out


async def instruction_to_holder(event: CaseSupervised, telling: Telling) -> Told:
    """A supervisor's instruction (督办意见) goes on to whoever holds the case now."""
    card = await telling.card(event.case_number)
    unit = holder_unit(card.state, card)
    if unit is None:
        return []
    out: Told = []
    for channel, chat_id, locale in await unit_targets(
        telling.chats, *unit, telling.default_locale
    ):
        text = Renderer(locale).macro(
            "chat.html.j2", "instruction", card=card, event=event,
            by_reply=channel in REPLY_CHANNELS,
        )  # fmt: skip
        message = Outgoing(
            chat_id=chat_id, text=text, case_number=card.number, purpose="instruction"
        )
        out.append((channel, message))
    return out


async def note_to_reporter(event: ProgressNoted, telling: Telling) -> Told:
    """The reporter reads the holder's progress note, with its photo."""
    card = await telling.card(event.case_number)
    if card.reporter_id is not None and event.entry.actor_id == card.reporter_id:
        return []  # nobody is told of their own words
    return await _to_reporter(telling.chats, card, "news_progress", event,
                              photos=card.last_photos)  # fmt: skip


# How the reporter hears of each step workflow/table.py's REPORTER_NEWS says they are told of
# (tests/test_events.py checks the keys are exactly that set); a resolution asks for the rating
# (ask_for_rating).
SHOWN_TO_REPORTER: dict[type[Event], NoticeHandler] = {
    CaseValidated: news_to_reporter("news_validated"),
    CaseRejected: news_to_reporter("news_rejected"),
    CaseMarkedDuplicate: news_to_reporter("news_duplicate"),
    CaseTakenByTownship: news_to_reporter("news_accepted"),
    CasePassedUp: news_to_reporter("news_passed_up"),
    CaseAssigned: news_to_reporter("news_assigned"),
    CaseAccepted: news_to_reporter("news_accepted"),
    ProgressNoted: note_to_reporter,
    CaseResolved: ask_for_rating,
    CaseReopened: news_to_reporter("news_reopened"),
    CaseClosed: news_to_reporter("news_closed"),
}

# Who else hears of what. A case that stays with the same holder (taken by the township, a
# note, a resolve) sends that holder no new card: its card is edited in place (keep_cards_true),
# e.g. a township's card then offers note, resolve and pass up.
TO_UNITS: dict[type[Event], list[NoticeHandler]] = {
    CaseRouted: [page_emergency, card_to_holder],
    CaseValidated: [card_to_holder],
    CaseReclassified: [card_to_holder],  # new category, new limits: a fresh card
    CasePassedUp: [card_to_holder],
    CaseAssigned: [card_to_holder],
    CaseAccepted: [card_to_holder],
    CaseReturned: [card_to_holder],
    CaseReopened: [card_to_holder],
    CaseEscalated: [card_to_holder],
    CaseSupervised: [instruction_to_holder],
}

# Each event's handlers in the order the messages go out: the reporter's news first.
HANDLERS: dict[type[Event], list[NoticeHandler]] = {
    event: ([SHOWN_TO_REPORTER[event]] if event in SHOWN_TO_REPORTER else [])
    + TO_UNITS.get(event, [])
    for event in [*SHOWN_TO_REPORTER, *TO_UNITS]
}

# Events nobody is told of: the intake itself is followed at once by CaseRouted; a satisfied
# rating or an unrated close ends the case quietly.
UNTOLD: frozenset[type[Event]] = frozenset({CaseReported, CaseRated, CaseClosedUnrated})


class Notifier:
    """The workflow's event hook: writes outbox rows inside the same unit of work."""

    def __init__(self, default_locale: str = "zh_CN") -> None:
        self.default_locale = default_locale
        self.bus: MessageBus[Telling, tuple[str, Outgoing]] = MessageBus(HANDLERS)

    async def __call__(self, uow: UnitOfWork, events: list[CaseEvent]) -> None:
        telling = Telling(uow, self.default_locale)
        # The cards already out are corrected first, so the chat that acted sees its card
        # change before any new message arrives.
        told = [(m.case_number, c, m) for c, m in await keep_cards_true(telling, events)]
        for event in events:
            told += [(event.case_number, c, m) for c, m in await self.bus.handle(event, telling)]
        for number, channel, message in told:
            await uow.outbox.add(
                OutgoingMessage(
                    channel=channel,
                    chat_id=message.chat_id,
                    payload=message.payload(),
                    case_number=number,
                )
            )


# Messages that show a case and are edited in place when it moves on; only the newest of them
# (a case that sat overdue collects a reminder card a day), older ones stay as they were sent.
# A supervision card (handlers/reminders.py) follows its case too: its instruct button works
# while the case is open, the buttons of the state it was sent in do not.
SHOWN_PURPOSES = frozenset({"case_card", "rating", "supervision"})
EDIT_LIMIT = 20
# Channels that can change a message they sent. A WeChat message is final (a customer-service
# or template message cannot be edited), so its cards are not edited; its buttons are checked
# when pressed, like every outdated button. WeCom updates its template cards in place.
EDITABLE_CHANNELS = frozenset({"telegram", "web", "wecom"})


def _moves_on(event: CaseEvent) -> bool:
    """Whether what a card shows changes: a new state, or a new category (and limits)."""
    return event.from_state is not event.to_state or isinstance(event, CaseReclassified)


async def keep_cards_true(telling: Telling, events: list[CaseEvent]) -> Told:
    """An edit for every message already showing a case that moved on: the card as it is now,
    with only the buttons that still work in that chat (those of the unit holding the case,
    in the holder's chats; none elsewhere), and the rating buttons only while it can be rated.
    A card still waiting in the outbox is rewritten the same way instead (any channel)."""
    out: Told = []
    # A case reported in this batch is shown nowhere yet: its first cards come after this.
    new = {event.case_number for event in events if isinstance(event, CaseReported)}
    last = {
        event.case_number: event
        for event in events
        if _moves_on(event) and event.case_number not in new
    }
    for number, event in last.items():
        shown = [
            message
            for message in await telling.chats.messages_showing(number, SHOWN_PURPOSES, EDIT_LIMIT)
            if message.channel in EDITABLE_CHANNELS or message.pending_row is not None
        ]
        if not shown:
            continue
        card = await telling.card(number)
        holder = holder_unit(card.state, card)
        locales: dict[tuple[str, str], str] = {}
        if holder is not None:
            for channel, chat_id, locale in await unit_targets(
                telling.chats, *holder, telling.default_locale
            ):
                locales[(channel, chat_id)] = locale
        held_by = set(locales)
        supervising = await _supervisor_chats(telling, shown, locales)
        if card.reporter_id is not None and any(m.purpose == "rating" for m in shown):
            for channel, chat_id, locale in await telling.chats.private_chats_of(card.reporter_id):
                locales.setdefault((channel, chat_id), locale)
        for message in shown:
            key = (message.channel, message.chat_id)
            # The holder's chats as they are told; any other chat in its own person's language.
            r = Renderer(locales.get(key) or message.locale or telling.default_locale)
            edit = Outgoing(
                chat_id=message.chat_id, text="", edit_message_id=message.message_id,
                edit_caption=message.caption, case_number=number, purpose=message.purpose,
            )  # fmt: skip
            if message.purpose == "rating":  # the result stays; its buttons go once rated
                edit.buttons = rating_buttons(r, number) if card.state == "resolved" else []
            elif message.purpose == "supervision":
                role = holder.role if holder is not None and key in held_by else None
                role = role or (Role.SUPERVISOR if key in supervising else None)
                edit.buttons = card_buttons(r, card, role) if role is not None else []
                edit.text = _supervision_text(r, card, event, holder, message.channel, role)
            else:
                edit.text = r.macro("chat.html.j2", "case_card", card=card, event=event)
                if holder is not None and key in held_by:
                    edit.buttons = card_buttons(r, card, holder.role)
            if message.pending_row is not None:
                # Not sent yet: it goes out as the case is now, and needs no edit.
                changes = {"buttons": edit.payload()["buttons"]}
                if edit.text:
                    changes["text"] = edit.text
                await telling.uow.outbox.rewrite(message.pending_row, changes)
                continue
            out.append((message.channel, edit))
    return out


def _supervision_text(
    r: Renderer, card: CaseCard, event: CaseEvent, holder: HolderUnit | None, channel: str,
    role: Role | None,
) -> str:  # fmt: skip
    """A supervision card as its case is now. Like the card first sent (handlers/reminders.py),
    it says how to give an instruction (a reply where the channel has replies, else the
    supervisor's button), but only while the table still takes one."""
    instruct_by = None
    if Action.SUPERVISE in offered_actions(State(card.state), Role.SUPERVISOR):
        instruct_by = instruct_line(channel, role)
    return r.macro(
        "chat.html.j2", "supervision_card_now", card=card, event=event,
        holder=holder.purpose if holder else "none", instruct_by=instruct_by,
    )  # fmt: skip


async def _supervisor_chats(
    telling: Telling, shown: list[ShownMessage], locales: dict[tuple[str, str], str]
) -> set[tuple[str, str]]:
    """The chats among `shown` where supervisors read supervision cards: the supervisors' and
    the leaders' (the second level above the county center). A superior unit's card elsewhere
    (a township's, the county center's) offers only what its unit may do as holder, if it is.
    Their locales join `locales`, like the holder's chats."""
    if not any(m.purpose == "supervision" for m in shown):
        return set()
    found: set[tuple[str, str]] = set()
    for purpose in ("supervisors", "leaders"):
        for channel, chat_id, locale in await unit_targets(
            telling.chats, purpose, Role.SUPERVISOR, None, None, telling.default_locale
        ):
            locales.setdefault((channel, chat_id), locale)
            found.add((channel, chat_id))
    return found


async def _to_reporter(
    chats: ChatStore, card: CaseCard, template: str, event: CaseEvent, rating: bool = False,
    photos: list[str] | None = None,
) -> Told:  # fmt: skip
    if card.reporter_id is None:
        return []
    out: Told = []
    for channel, chat_id, locale in await chats.private_chats_of(card.reporter_id):
        r = Renderer(locale)
        buttons = rating_buttons(r, card.number) if rating else []
        extra = {"rating": False} if template == "news_resolved" and not rating else {}
        text = r.macro("chat.html.j2", template, card=card, event=event, **extra)
        out.append((channel, Outgoing(chat_id=chat_id, text=text, buttons=buttons,
                                      photos=card.result_photos if rating else photos or [],
                                      case_number=card.number,
                                      purpose="rating" if rating else "news")))  # fmt: skip
    return out


async def _to_unit(
    telling: Telling, card: CaseCard, event: CaseEvent, purpose: str, role: Role,
    area_id: int | None, department_id: int | None,
) -> Told:  # fmt: skip
    """The case card with its buttons, to the unit's group chats, else its people directly."""
    targets = await unit_targets(
        telling.chats, purpose, role, area_id, department_id, telling.default_locale
    )
    out: Told = []
    for channel, chat_id, locale in targets:
        r = Renderer(locale)
        out.append((channel, Outgoing(
            chat_id=chat_id,
            text=r.macro("chat.html.j2", "case_card", card=card, event=event),
            photos=card.report_photos,
            buttons=card_buttons(r, card, role),
            case_number=card.number,
            purpose="case_card",
        )))  # fmt: skip
    return out
