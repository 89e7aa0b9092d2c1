"""Who acts on a case and what their cards offer: the unit holding it (and the one above it),
the chats that reach a unit, and a card's buttons for a role, all from the state and transition
tables. Shared by the event notices (handlers/notify.py) and the sweep's reminders."""

from __future__ import annotations

from typing import NamedTuple

from handlers.callbacks import AssignTo, CaseAction, RateAs
from handlers.messages import Button
from handlers.ports import CaseCard, ChatStore
from handlers.render import Renderer
from workflow.channels import ALL_CHANNELS
from workflow.model import Holder, Rating, Role, State
from workflow.states import holder_of, superior_of
from workflow.table import SCREENS, Ask, offered_actions

# The rating buttons' codes, in the order they are shown.
RATING_CODES: dict[str, Rating] = {
    "s": Rating.SATISFIED,
    "b": Rating.BASICALLY_SATISFIED,
    "d": Rating.DISSATISFIED,
}


class HolderUnit(NamedTuple):
    """A unit that acts on cases: who its chats are for, the role, and which area or department."""

    purpose: str  # the chat purpose: grid | township | county | department | supervisors | leaders
    role: Role
    area_id: int | None
    department_id: int | None


# Channels where a message is answered by replying to it (a reply names the message, and so
# the case: a supervisor's instruction, a progress note). WeChat and WeCom have no replies:
# there the texts point at the card's button instead (one template, told which to say).
REPLY_CHANNELS = frozenset({"telegram", "web"})


def instruct_line(channel: str, role: Role | None) -> str | None:
    """How a supervision card tells its reader to give an instruction: by replying where the
    channel has replies, else with the card's instruction button. Only supervisors give
    instructions; a superior unit's reply to the card would be a progress note, so its card
    says nothing of it."""
    if role is not Role.SUPERVISOR:
        return None
    return "reply" if channel in REPLY_CHANNELS else "button"


# Channels whose group chats take no button presses (a WeCom app group chat shows text only):
# such a chat gets the unit's messages, and its people still get their cards privately.
NOTICE_ONLY_GROUPS = frozenset({"wecom"})


def rating_buttons(r: Renderer, number: str) -> list[list[Button]]:
    """满意 / 基本满意 / 不满意, as one row: the rate screen's choices (Ask.RATING)."""
    return [[Button(r.macro("chat.html.j2", f"rate_{v}"), RateAs(number, v).pack())
             for v in RATING_CODES]]  # fmt: skip


async def unit_targets(
    chats: ChatStore, purpose: str, role: Role, area_id: int | None, department_id: int | None,
    default_locale: str, enabled: frozenset[str] = ALL_CHANNELS,
) -> list[tuple[str, str, str]]:  # fmt: skip
    """(channel, chat, locale) of a unit: its bound group chats, else its people's own chats
    (also when its only group chats take no presses: NOTICE_ONLY_GROUPS).

    A unit with group chats also reaches the staff web workspaces of its people who have no
    other chat account at all (a clerk at a desk): no group can put the card in front of them.
    Only chats on the `enabled` channels count (those this deployment delivers): a group or
    account on another channel is as if it were not there, so the same fallbacks apply.
    """
    ids = {"area_id": area_id, "department_id": department_id}
    groups = [b for b in await chats.chats_for(purpose, **ids) if b.channel in enabled]
    targets = [(b.channel, b.chat_id, default_locale) for b in groups]
    if all(b.channel in NOTICE_ONLY_GROUPS for b in groups):
        people = await chats.private_chats_with_role(role, **ids, channels=enabled)
    else:
        people = await chats.desk_chats_with_role(role, **ids, channels=enabled)
    return targets + list(people)


async def private_chats(
    chats: ChatStore, person_id: int, enabled: frozenset[str]
) -> list[tuple[str, str, str]]:
    """(channel, chat, locale) of a person's own chats on the `enabled` channels."""
    return [c for c in await chats.private_chats_of(person_id) if c[0] in enabled]


def unit_of(holder: Holder, card: CaseCard) -> HolderUnit | None:
    """The chats and people behind a kind of holder, for this case (None: no unit)."""
    if holder is Holder.GRID_LEADER:
        return HolderUnit("grid", Role.GRID_LEADER, card.grid_id, None)
    if holder is Holder.TOWNSHIP:
        return HolderUnit("township", Role.TOWNSHIP_OPERATOR, card.township_id, None)
    if holder is Holder.COUNTY:
        return HolderUnit("county", Role.COUNTY_DISPATCHER, None, None)
    if holder is Holder.DEPARTMENT:
        return HolderUnit("department", Role.DEPARTMENT_HANDLER, None, card.department_id)
    if holder is Holder.SUPERVISOR:
        return HolderUnit("supervisors", Role.SUPERVISOR, None, None)
    return None  # the reporter is told in their own chats; nobody holds a closed case


def holder_unit(state: str | State, card: CaseCard) -> HolderUnit | None:
    """The unit holding a case in `state` (workflow/states.py decides who that is)."""
    return unit_of(holder_of(State(state), card.handled_by_township), card)


def superior_unit(card: CaseCard) -> HolderUnit:
    """Second supervision level: the unit above whoever holds the case (workflow/states.py
    SUPERIOR); above the county center, the leaders' chat, else the supervisors themselves."""
    above = superior_of(State(card.state), card.handled_by_township)
    unit = unit_of(above, card) if above is not None else None
    return unit or HolderUnit("leaders", Role.SUPERVISOR, None, None)


def card_buttons(r: Renderer, card: CaseCard, role: Role) -> list[list[Button]]:
    """The buttons of a case card for a role: exactly the actions the table offers it in the
    card's state (workflow/table.py `offered_actions`), each as its screen declares it.

    Choices that need no more words sit on the card itself: one row per department of the
    category (assign), the three ratings in one row. Other buttons go two to a row.
    """
    n = card.number
    rows: list[list[Button]] = []
    singles: list[Button] = []
    for action in offered_actions(State(card.state), role):
        screen = SCREENS[action]
        if screen.asks is Ask.DEPARTMENT and card.proposed_departments:
            for d in card.proposed_departments:
                name = d.name_en if r.locale == "en" else d.name
                rows.append([Button(name, AssignTo(d.code, n).pack())])
        elif screen.asks is Ask.RATING:
            rows += rating_buttons(r, n)
        else:
            label = r.macro("chat.html.j2", screen.label)
            singles.append(Button(label, CaseAction(screen.code, n).pack()))
    return rows + [singles[i : i + 2] for i in range(0, len(singles), 2)]
