"""Enrolment: /start with a grid QR code or an invite, or township -> village -> grid buttons."""

from __future__ import annotations

from handlers.conversation import Turn
from handlers.messages import Button
from handlers.resident_keys import REPORT_STEPS, button_rows, main_menu, parse_callback, place_name
from workflow.model import Role


async def route_start(turn: Turn) -> bool:
    """/start, /start GRIDCODE (QR code in the community) or /start INVITE."""
    command = turn.msg.command
    if not turn.msg.is_private or command is None or command[0] != "/start":
        return False
    payload = command[1]
    if turn.conv.step in REPORT_STEPS:
        # A second /start halfway through a report keeps the draft and says how to go on.
        turn.reply("report_in_progress", step=turn.conv.step)
        return True
    if payload:
        grid = await turn.uow.channels.place_by_code(payload)
        if grid is not None and grid.kind == "grid":
            await _enrol(turn, grid.id)
            return True
        use = await turn.uow.channels.redeem_invite(
            payload, turn.msg.channel, turn.msg.user_id, turn.msg.user_name, turn.msg.chat_id,
            turn.uow.clock.now(), purpose="enrol",
        )  # fmt: skip
        turn.person = await turn.uow.channels.person_for(turn.msg.channel, turn.msg.user_id)
        turn.reply("enrolled", role=use.role.value if use.role else "", keyboard=main_menu(turn))
        return True
    if turn.person is not None and turn.person.has(Role.RESIDENT):
        turn.reply("welcome_back", name=turn.person.name, keyboard=main_menu(turn))
        return True
    if turn.person is not None:
        turn.reply("welcome_staff", name=turn.person.name)
        return True
    await ask_township(turn)
    return True


async def ask_township(turn: Turn) -> None:
    townships = await turn.uow.channels.places("township")
    turn.new_draft("pick_township")
    # Two messages: the location key lives on a reply keyboard, the townships are inline.
    turn.reply("share_location_to_find_grid", request_location=True,
               keyboard=[[turn.text("btn_share_location")]])  # fmt: skip
    names = [Button(place_name(turn, p), f"tw:{turn.draft_id}:{p.id}") for p in townships]
    turn.reply("pick_township", buttons=button_rows(names))


async def route_pick_grid(turn: Turn) -> bool:
    """township -> village -> grid buttons, or a shared location, for a resident without a QR."""
    if turn.msg.location is not None and turn.conv.step.startswith("pick_"):
        grid = await turn.uow.channels.nearest_grid(
            turn.msg.location.latitude, turn.msg.location.longitude
        )
        if grid is None:
            turn.reply("no_grid_near")
        else:
            await _enrol(turn, grid.id)
        return True
    for prefix, kind, nxt in (("tw", "village", "pick_village"), ("vl", "grid", "pick_grid")):
        parts = parse_callback(turn.msg.callback_data, prefix)
        if parts is None:
            continue
        if len(parts) != 2 or parts[0] != turn.draft_id or not parts[1].isdigit():
            turn.reply("stale_button")
            return True
        places = await turn.uow.channels.places(kind, parent_id=int(parts[1]))
        turn.conv.step = nxt
        code = "vl" if kind == "village" else "gd"
        buttons = [Button(place_name(turn, p), f"{code}:{turn.draft_id}:{p.id}") for p in places]
        turn.reply(nxt, buttons=button_rows(buttons))
        return True
    parts = parse_callback(turn.msg.callback_data, "gd")
    if parts is None:
        return False
    if len(parts) != 2 or parts[0] != turn.draft_id or not parts[1].isdigit():
        turn.reply("stale_button")
        return True
    await _enrol(turn, int(parts[1]))
    return True


async def _enrol(turn: Turn, grid_id: int) -> None:
    grid = await turn.uow.channels.place(grid_id)
    if grid is None or grid.kind != "grid":
        turn.reply("stale_button")
        return
    turn.person = await turn.uow.channels.enrol_resident(
        turn.msg.channel, turn.msg.user_id, turn.msg.user_name or "-", turn.r.locale, grid.id,
        turn.uow.clock.now(),
    )  # fmt: skip
    turn.clear()
    turn.reply("resident_bound", grid=place_name(turn, grid), keyboard=main_menu(turn))
