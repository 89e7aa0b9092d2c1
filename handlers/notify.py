"""Domain events -> messages to the people and chats that should hear of them (via the outbox)."""

from __future__ import annotations

from handlers.card_edits import keep_cards_true
from handlers.messages import Outgoing
from handlers.ports import CaseCard
from handlers.render import Renderer
from handlers.telling import NoticeHandler, Telling, Told
from handlers.units import (
    REPLY_CHANNELS,
    HolderUnit,
    card_buttons,
    holder_unit,
    private_chats,
    rating_buttons,
    unit_targets,
)
from workflow.bus import MessageBus
from workflow.channels import ALL_CHANNELS
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
from workflow.model import Action, Role
from workflow.ports import OutgoingMessage, UnitOfWork
from workflow.table import TRANSITIONS

# Who may rate a result (the table's rate rows): anyone else who reported is told it only.
RATERS = frozenset(r for t in TRANSITIONS if t.action is Action.RATE for r in t.roles)


def news_to_reporter(template: str) -> NoticeHandler:
    """The reporter hears the news the template tells (no buttons)."""

    async def tell(event: CaseEvent, telling: Telling) -> Told:
        card = await telling.card(event.case_number)
        return await _to_reporter(telling, card, template, event)

    tell.__name__ = tell.__qualname__ = f"news_to_reporter({template!r})"
    return tell


async def ask_for_rating(event: CaseResolved, telling: Telling) -> Told:
    """The reporter sees the result, its photos, and the three rating buttons; a reporter the
    table does not let rate (staff who took a report by phone) the result alone, to pass on."""
    card = await telling.card(event.case_number)
    rates = card.reporter_role is None or Role(card.reporter_role) in RATERS
    if not rates:
        return await _to_reporter(telling, card, "news_resolved", event, photos=card.result_photos)
    return await _to_reporter(telling, card, "news_resolved", event, rating=True)


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
            telling.chats, *unit, telling.default_locale, telling.enabled
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
        telling.chats, *unit, telling.default_locale, telling.enabled
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
    return await _to_reporter(telling, card, "news_progress", event,
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

    def __init__(
        self, default_locale: str = "zh_CN", enabled: frozenset[str] = ALL_CHANNELS
    ) -> None:
        self.default_locale = default_locale
        self.enabled = enabled  # the channels delivered (bot/app.py): nothing goes to others
        self.bus: MessageBus[Telling, tuple[str, Outgoing]] = MessageBus(HANDLERS)

    async def __call__(self, uow: UnitOfWork, events: list[CaseEvent]) -> None:
        telling = Telling(uow, self.default_locale, enabled=self.enabled)
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


async def _to_reporter(
    telling: Telling, card: CaseCard, template: str, event: CaseEvent, rating: bool = False,
    photos: list[str] | None = None,
) -> Told:  # fmt: skip
    chats, enabled = telling.chats, telling.enabled
    if card.reporter_id is None:
        return []
    out: Told = []
    for channel, chat_id, locale in await private_chats(chats, card.reporter_id, enabled):
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
        telling.chats,
        purpose,
        role,
        area_id,
        department_id,
        telling.default_locale,
        telling.enabled,
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
