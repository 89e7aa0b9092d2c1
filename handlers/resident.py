"""Residents in a private chat: enrol by grid, report with photos, follow cases, one-key help.

Enrolment is in resident_enrol.py and the report dialogue in resident_report.py; here are /my,
/cancel, one-key help, the answers when nothing else fits, and the order the routes are tried.
"""

from __future__ import annotations

from handlers.conversation import Turn
from handlers.messages import Button
from handlers.render import shown_to_reporter
from handlers.resident_enrol import ask_township, route_pick_grid, route_start
from handlers.resident_keys import main_menu, parse_callback
from handlers.resident_report import grid_code_of, route_report
from workflow.commands import ActorRef, SubmitCase
from workflow.model import Role


async def route_cancel(turn: Turn) -> bool:
    command = turn.msg.command
    is_cancel = command is not None and command[0] == "/cancel"
    pressed = parse_callback(turn.msg.callback_data, "cf")
    if pressed and pressed[-1] == "cancel":
        is_cancel = True
    if not is_cancel:
        return False
    if turn.conv.idle:
        turn.reply("nothing_to_cancel")
    else:
        turn.clear()
        turn.reply("cancelled", keyboard=main_menu(turn) if turn.msg.is_private else [])
    return True


async def route_my(turn: Turn) -> bool:
    """/my: the resident's cases with their state; a tap shows the timeline."""
    msg = turn.msg
    shown = parse_callback(msg.callback_data, "my")
    if not msg.is_private:
        return False
    wants_list = (msg.text or "").strip() in ("/my", turn.text("menu_my"))
    if not wants_list and shown is None:
        return False
    if turn.person is None:
        turn.reply("not_enrolled")
        return True
    if shown is not None:
        view = await turn.uow.channels.case_summary(shown[0], turn.person.id)
        if view is None:
            turn.reply("stale_button")
        else:
            turn.reply("case_timeline", view=view)
        return True
    cases = await turn.uow.channels.cases_of_reporter(turn.person.id, limit=10)
    if not cases:
        turn.reply("no_cases")
        return True
    states = turn.r.labels.states
    buttons = [[Button(f"{c['number']} {states[shown_to_reporter(c['state'])]}",
                       f"my:{c['number']}")] for c in cases]  # fmt: skip
    turn.reply("my_cases", buttons=buttons, count=len(cases))
    return True


async def route_fallback(turn: Turn) -> bool:
    """Whatever no flow took: say clearly what is possible, lose nothing."""
    msg = turn.msg
    if msg.unsupported:
        turn.reply("unsupported", kind=msg.unsupported, step=turn.conv.step)
    elif msg.callback_data:
        turn.reply("stale_button")
    elif msg.command is not None:
        turn.reply("unknown_command", command=msg.command[0])
    elif msg.is_private:
        turn.reply("help", step=turn.conv.step, keyboard=main_menu(turn) if turn.person else [])
    else:
        return False
    return True


async def route_unsupported(turn: Turn) -> bool:
    """Stickers, voice, video, files: a clear answer at any step, and the draft stays."""
    if not turn.msg.unsupported:
        return False
    if turn.msg.is_private or turn.conv.step:
        turn.reply("unsupported", kind=turn.msg.unsupported, step=turn.conv.step)
        return True
    return False


async def route_sos(turn: Turn) -> bool:
    """One-key help (一键呼叫): an emergency case from the resident's grid, confirmed once."""
    msg = turn.msg
    if not msg.is_private:
        return False
    pressed = parse_callback(msg.callback_data, "sos")
    if (msg.text or "").strip() in (turn.text("menu_sos"), "/sos"):
        if turn.person is None or not turn.person.has(Role.RESIDENT):
            await ask_township(turn)
            return True
        turn.new_draft("sos_confirm")
        d = turn.draft_id
        turn.reply("sos_confirm", buttons=[[turn.button("btn_sos_yes", f"sos:{d}:ok"),
                                            turn.button("btn_cancel", f"sos:{d}:no")]])  # fmt: skip
        return True
    if pressed is None:
        return False
    if turn.conv.step != "sos_confirm" or len(pressed) != 2 or pressed[0] != turn.draft_id:
        turn.reply("stale_button")
        return True
    turn.clear()
    if pressed[1] != "ok":
        turn.reply("cancelled", keyboard=main_menu(turn))
        return True
    person = turn.enrolled_person
    categories = await turn.uow.org.categories()
    emergency = next(c for c in categories if c.get("deadline_class") == "emergency")
    grant = person.grant(Role.RESIDENT)
    number = await turn.workflow.submit_in(
        turn.uow,
        SubmitCase(
            actor=ActorRef(person.id, Role.RESIDENT),
            grid_code=await grid_code_of(turn, grant.area_ids if grant else frozenset()),
            category_code=emergency["code"],
            description=turn.text("sos_description", name=person.name),
        ),
    )
    case = await turn.uow.cases.get(number)
    turn.reply("sos_sent", number=number, due=case.due_at, keyboard=main_menu(turn))
    return True


# Order matters: the first route that takes a message handles it.
RESIDENT_ROUTES = [
    route_unsupported,
    route_start,
    route_cancel,
    route_pick_grid,
    route_my,
    route_sos,
    route_report,
    route_fallback,
]
