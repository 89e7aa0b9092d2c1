"""Reporting on someone's behalf: the county center and the township centers take reports by
phone and at the counter, and enter them in their own private chat. The table lets them
submit (workflow/table.py); this is their way in: they first pick where it happened (a county
dispatcher: township, village, grid; a township operator: the villages of their township),
then the resident's report dialogue follows (handlers/resident_report.py), asking for the
caller's phone instead of sharing their own.

The case's reporter is the staff member: its news reaches them, to pass on. They cannot rate
it (the table lets only residents and grid workers rate), so they are told the result without
rating buttons, and an unrated case closes unrated after `close_unrated_after_days`.
"""

from __future__ import annotations

from handlers.conversation import Turn
from handlers.messages import Button
from handlers.resident_keys import button_rows, parse_callback, place_name
from workflow.channels import Person, Place
from workflow.model import Action, Role
from workflow.table import TRANSITIONS

# Who may report (the table's submit row) but has no report dialogue of their own: residents
# report from their private chat, grid workers from their grid's group.
_OWN_DIALOGUE = frozenset({Role.RESIDENT, Role.GRID_WORKER})
STAFF_REPORTERS: tuple[Role, ...] = tuple(
    sorted({r for t in TRANSITIONS if t.action is Action.SUBMIT for r in t.roles} - _OWN_DIALOGUE)
)
# The level below each kind of place, down to the grid a case is filed in.
_BELOW = {"township": "village", "street": "village", "village": "grid", "community": "grid"}
PLACE_STEP = "report_place"


def staff_reporter_role(person: Person | None) -> Role | None:
    """The role a staff member reports in (None: not one who reports on others' behalf)."""
    if person is None or person.has(Role.RESIDENT):
        return None  # a resident reports their own problems, with their own grid
    return next((role for role in STAFF_REPORTERS if person.has(role)), None)


async def start_staff_report(turn: Turn, role: Role) -> None:
    turn.new_draft(PLACE_STEP, photos=[], photo_ids=[], reporter_role=role.value)
    grant = turn.enrolled_person.grant(role)
    if role is Role.TOWNSHIP_OPERATOR and grant is not None:
        places = [
            village
            for township in sorted(grant.area_ids)
            for village in await turn.uow.channels.places("village", parent_id=township)
        ]
    else:
        places = await turn.uow.channels.places("township")
    _ask_place(turn, places)


def _ask_place(turn: Turn, places: list[Place]) -> None:
    d = turn.draft_id
    buttons = [Button(place_name(turn, p), f"rp:{d}:{p.id}") for p in places]
    turn.reply("ask_report_place", buttons=button_rows(buttons))


async def on_place(turn: Turn) -> str | None:
    """A place pressed: the level below it is offered, until a grid is chosen; returns the
    grid's code then (the dialogue goes on with the category), else None."""
    parts = parse_callback(turn.msg.callback_data, "rp")
    if parts is None:
        turn.reply("use_buttons")
        return None
    if len(parts) != 2 or parts[0] != turn.draft_id or not parts[1].isdigit():
        turn.reply("stale_button")
        return None
    place = await turn.uow.channels.place(int(parts[1]))
    if place is None or not await _within_reach(turn, place):
        turn.reply("stale_button")  # gone from the org file, or a forged button
        return None
    if place.kind == "grid":
        turn.conv.draft["grid_code"] = place.code
        turn.conv.draft["grid_name"] = place_name(turn, place)
        return place.code
    below = _BELOW.get(place.kind)
    children = await turn.uow.channels.places(below, parent_id=place.id) if below else []
    if not children:
        turn.reply("stale_button")
        return None
    _ask_place(turn, children)
    return None


async def _within_reach(turn: Turn, place: Place) -> bool:
    """A township operator files reports in their own township only (the table's scope)."""
    grant = turn.enrolled_person.grant(Role(turn.conv.draft.get("reporter_role", "")))
    if grant is None or grant.role is not Role.TOWNSHIP_OPERATOR:
        return grant is not None
    area: Place | None = place
    while area is not None and area.kind not in ("township", "street"):
        area = await turn.uow.channels.place(area.parent_id) if area.parent_id else None
    return area is not None and area.id in grant.area_ids


def caller_phone(text: str) -> str | None:
    """A phone number as staff type it (the caller's): digits, with +, spaces or dashes."""
    digits = "".join(c for c in text if c.isdigit())
    plain = all(c.isdigit() or c in "+- " for c in text)
    return text.strip() if plain and 5 <= len(digits) <= 15 else None
