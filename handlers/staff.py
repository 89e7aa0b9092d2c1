"""Grid leaders, townships, the county center and departments acting on case cards in chat."""

from __future__ import annotations

from handlers.conversation import Turn
from handlers.messages import Button
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AddProgressNote,
    AssignCase,
    CaseCommand,
    HandleLocally,
    MarkDuplicate,
    PassUp,
    RateCase,
    ReclassifyCase,
    RejectCase,
    ResolveCase,
    ReturnCase,
    SuperviseCase,
    ValidateCase,
)
from workflow.errors import IllegalTransition, NotFound, NotPermitted
from workflow.model import Action, Case, Rating, Role
from workflow.table import available_actions, transitions_for

# Button code -> the workflow action it fires.
ACTIONS = {
    "sv": Action.SCREEN_VALID,
    "si": Action.SCREEN_INVALID,
    "dp": Action.MARK_DUPLICATE,
    "rc": Action.RECLASSIFY,
    "hl": Action.HANDLE_LOCALLY,
    "pu": Action.PASS_UP,
    "ac": Action.ACCEPT,
    "rt": Action.RETURN,
    "rs": Action.RESOLVE,
}
# Actions that need words (or a choice) first, and the prompt that asks for them.
NEEDS_INPUT = {"si": "ask_reason", "rt": "ask_reason", "dp": "ask_duplicate", "rs": "ask_result"}
RATINGS = {"s": Rating.SATISFIED, "b": Rating.BASICALLY_SATISFIED, "d": Rating.DISSATISFIED}


async def _visible(turn: Turn, number: str) -> Case:
    """The case, if it is this person's business; else the unknown-number refusal, word for
    word, so a stranger learns nothing about a case (not even that it exists)."""
    if turn.person is None:
        raise NotFound("unknown_case", f"no case numbered {number}", case=number)
    roles = [grant.role for grant in turn.person.roles]
    return await turn.workflow.case_for(turn.uow, number, turn.person.id, roles)


async def _role_for(turn: Turn, number: str, action: Action) -> Role:
    """Which of the person's roles may fire this action on the case as it is now."""
    case = await _visible(turn, number)
    for grant in turn.person.roles if turn.person else ():
        if action in available_actions(case.state, grant.role):
            return grant.role
    raise NotPermitted(
        "role_not_allowed",
        f"no role of this person may {action.value} now",
        action=action.value,
        role=turn.person.roles[0].role.value if turn.person and turn.person.roles else "",
        state=case.state.value,
    )


async def _still_open_to(turn: Turn, number: str, action: Action) -> Case:
    """The case, if `action` can still be done on it as it is now: an outdated button (a rating
    on a case closed since) is refused before anything is asked for."""
    case = await _visible(turn, number)
    if not transitions_for(action, case.state):
        raise IllegalTransition(
            message=f"cannot {action.value} a case that is {case.state.value}",
            action=action.value,
            state=case.state.value,
        )
    return case


async def _fire(turn: Turn, cmd: CaseCommand) -> None:
    await turn.workflow.handle_in(turn.uow, cmd)
    turn.reply("done", action=cmd.action.value, number=cmd.case_number)


async def route_card_buttons(turn: Turn) -> bool:
    """a:<act>:<number>, as:<department>:<number> and the rating buttons rt:<number>:<s|b|d>."""
    data = turn.msg.callback_data or ""
    parts = data.split(":")
    if parts[0] not in ("a", "as", "rt", "rc") or len(parts) != 3:
        return False
    if turn.person is None:
        turn.reply("not_enrolled_staff")
        return True
    kind, first, number = parts
    if kind == "rt":
        number, value = first, number
        if value not in RATINGS:
            turn.reply("stale_button")
            return True
        await _still_open_to(turn, number, Action.RATE)
        turn.conv.step = "rate_comment"
        turn.conv.draft = {"number": number, "rating": value}
        turn.reply("ask_rating_comment", rating=RATINGS[value].value,
                   buttons=[[turn.button("btn_skip", f"rk:{number}")]])  # fmt: skip
        return True
    if kind == "as":
        role = await _role_for(turn, number, Action.ASSIGN)
        actor = ActorRef(turn.person.id, role)
        await _fire(turn, AssignCase(case_number=number, actor=actor, department_code=first))
        return True
    if kind == "rc":
        role = await _role_for(turn, number, Action.RECLASSIFY)
        actor = ActorRef(turn.person.id, role)
        await _fire(turn, ReclassifyCase(case_number=number, actor=actor, category_code=first))
        return True
    action = ACTIONS.get(first)
    if action is None:
        turn.reply("stale_button")
        return True
    role = await _role_for(turn, number, action)
    actor = ActorRef(turn.person.id, role)
    if first == "rc":
        categories = await turn.uow.org.categories()
        key = "name_en" if turn.r.locale == "en" else "name_zh"
        buttons = [[Button(c[key], f"rc:{c['code']}:{number}")] for c in categories]
        turn.reply("ask_category", buttons=buttons)
        return True
    if first in NEEDS_INPUT:
        turn.conv.step = f"input_{first}"
        turn.conv.draft = {"number": number, "role": role.value, "photo_ids": []}
        turn.reply(NEEDS_INPUT[first], number=number, force_reply=True)
        return True
    simple = {"sv": ValidateCase, "hl": HandleLocally, "pu": PassUp, "ac": AcceptCase}[first]
    await _fire(turn, simple(case_number=number, actor=actor))
    return True


async def route_staff_input(turn: Turn) -> bool:
    """The words a card button asked for: a reason, a case number, a result with photos."""
    step = turn.conv.step
    if not step.startswith("input_") and step not in ("rate_comment", "resolve_photos"):
        return False
    draft = turn.conv.draft
    number = draft.get("number", "")
    text = (turn.msg.text or "").strip()
    if step == "rate_comment":
        skipped = turn.msg.callback_data == f"rk:{number}"
        if not skipped and not text:
            turn.reply("ask_rating_comment_again")
            return True
        actor = await _reporter_role(turn)
        rating = RateCase(case_number=number, actor=actor, rating=RATINGS[draft["rating"]],
                          comment=None if skipped else text[:500])  # fmt: skip
        turn.clear()
        await turn.workflow.handle_in(turn.uow, rating)
        turn.reply("thanks_for_rating", number=number)
        return True
    person = turn.enrolled_person
    actor = ActorRef(person.id, Role(draft["role"]))
    code = step.removeprefix("input_")
    if code == "rs" or step == "resolve_photos":
        return await _resolve_dialogue(turn, actor, number, text)
    if not text or text.startswith("/"):
        turn.reply(NEEDS_INPUT[code], number=number, force_reply=True)
        return True
    cmd: CaseCommand
    if code == "si":
        cmd = RejectCase(case_number=number, actor=actor, reason=text[:500])
    elif code == "rt":
        cmd = ReturnCase(case_number=number, actor=actor, reason=text[:500])
    else:
        cmd = MarkDuplicate(case_number=number, actor=actor, duplicate_of=text.split()[0])
    turn.clear()
    await _fire(turn, cmd)
    return True


async def _resolve_dialogue(turn: Turn, actor: ActorRef, number: str, text: str) -> bool:
    """Result text, then photos, then a summary to confirm: 办结 is never one slip of a finger."""
    draft = turn.conv.draft
    if turn.msg.photos:
        ref = max(turn.msg.photos, key=lambda p: p.size or 0)
        draft.setdefault("photo_ids", []).append(
            await turn.photos.save(turn.uow, turn.msg.channel, ref)
        )
        if turn.msg.text:
            draft["text"] = text
    elif turn.msg.callback_data == f"rz:{number}:ok" and draft.get("text"):
        cmd = ResolveCase(case_number=number, actor=actor, text=draft["text"],
                          attachment_ids=tuple(draft.get("photo_ids", [])))  # fmt: skip
        turn.clear()
        await _fire(turn, cmd)
        return True
    elif text and not text.startswith("/"):
        draft["text"] = text[:2000]
    elif not turn.msg.callback_data:
        turn.reply("ask_result", number=number, force_reply=True)
        return True
    turn.conv.step = "resolve_photos"
    if draft.get("text"):
        turn.reply("confirm_result", number=number, text=draft["text"],
                   photo_count=len(draft.get("photo_ids", [])),
                   buttons=[[turn.button("btn_resolve", f"rz:{number}:ok")]])  # fmt: skip
    else:
        turn.reply("ask_result", number=number, force_reply=True)
    return True


async def _reporter_role(turn: Turn) -> ActorRef:
    person = turn.enrolled_person
    role = Role.RESIDENT if person.has(Role.RESIDENT) else Role.GRID_WORKER
    return ActorRef(person.id, role)


async def route_reply_note(turn: Turn) -> bool:
    """A reply to a case card with text and/or photos is a progress note on that case."""
    msg = turn.msg
    if msg.reply_to_message_id is None or turn.conv.step or turn.person is None:
        return False
    link = await turn.uow.channels.case_for_message(
        msg.channel, msg.chat_id, msg.reply_to_message_id
    )
    if link is None:
        return False
    number, purpose = link
    if turn.person.has(Role.SUPERVISOR) and (
        purpose == "supervision" or not _may_note(turn, await turn.uow.cases.get(number))
    ):
        return await _instruct(turn, number)
    photo_ids = []
    for ref in msg.photos[-1:]:
        photo_ids.append(await turn.photos.save(turn.uow, msg.channel, ref))
    role = await _role_for(turn, number, Action.NOTE)
    actor = ActorRef(turn.person.id, role)
    text = (msg.text or "").strip()
    cmd = AddProgressNote(
        case_number=number, actor=actor, text=text, attachment_ids=tuple(photo_ids)
    )
    await _fire(turn, cmd)
    return True


def _may_note(turn: Turn, case: Case) -> bool:
    return any(
        Action.NOTE in available_actions(case.state, grant.role)
        for grant in (turn.person.roles if turn.person else ())
    )


async def _instruct(turn: Turn, number: str) -> bool:
    """A supervisor's reply to a card is an instruction (督办意见): recorded and forwarded."""
    person = turn.enrolled_person
    text = (turn.msg.text or "").strip()
    if not text:
        turn.reply("ask_instruction_text", number=number)
        return True
    cmd = SuperviseCase(
        case_number=number, actor=ActorRef(person.id, Role.SUPERVISOR), instruction=text
    )
    await turn.workflow.handle_in(turn.uow, cmd)
    turn.reply("instruction_recorded", number=number)
    return True


async def route_bind(turn: Turn) -> bool:
    """/bind CODE in a group: the group now serves the grid, township or department of the code."""
    command = turn.msg.command
    if command is None or command[0] != "/bind":
        return False
    if turn.msg.is_private:
        turn.reply("bind_in_group")
        return True
    use = await turn.uow.channels.redeem_invite(
        command[1], turn.msg.channel, turn.msg.user_id, turn.msg.user_name, turn.msg.chat_id,
        turn.uow.clock.now(), purpose="bind_chat",
    )  # fmt: skip
    turn.reply("bound", purpose=use.purpose)
    return True


STAFF_ROUTES = [route_bind, route_card_buttons, route_staff_input, route_reply_note]
