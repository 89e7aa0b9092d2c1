"""Grid leaders, townships, the county center, departments and supervisors acting on case cards.

What a card offers, what each button asks first and which action it fires are declared in
workflow/table.py (`SCREENS`); here is only how each kind of question is asked and answered.
"""

from __future__ import annotations

from handlers.callbacks import (
    AssignTo,
    CaseAction,
    ConfirmResult,
    LegacyRateAs,
    RateAs,
    RatingButton,
    ReclassifyTo,
    SkipComment,
)
from handlers.conversation import Turn
from handlers.messages import Button
from handlers.units import RATING_CODES
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AddProgressNote,
    AssignCase,
    CaseCommand,
    CloseCase,
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
from workflow.errors import IllegalTransition, NotFound, NotPermitted, WorkflowError
from workflow.machine import rows_open_to
from workflow.model import Action, Case, Role
from workflow.table import ACTION_OF_CODE, SCREENS, Ask, available_actions, transitions_for

# Actions one press fires: nothing to ask (their screens ask Ask.NOTHING).
SIMPLE: dict[Action, type[CaseCommand]] = {
    Action.SCREEN_VALID: ValidateCase,
    Action.HANDLE_LOCALLY: HandleLocally,
    Action.PASS_UP: PassUp,
    Action.ACCEPT: AcceptCase,
}
# The prompt for each kind of question a screen asks in words.
PROMPTS: dict[Ask, str] = {
    Ask.REASON: "ask_reason",
    Ask.TEXT: "ask_instruction",
    Ask.TEXT_OR_PHOTOS: "ask_note",
    Ask.RESULT: "ask_result",
    Ask.DUPLICATE: "ask_duplicate",
}
_CARD_PREFIXES = frozenset(
    c.prefix for c in (CaseAction, AssignTo, ReclassifyTo, RateAs, LegacyRateAs)
)


async def _visible(turn: Turn, number: str) -> Case:
    """The case, if it is this person's business; else the unknown-number refusal, word for
    word, so a stranger learns nothing about a case (not even that it exists)."""
    if turn.person is None:
        raise NotFound("unknown_case", f"no case numbered {number}", case=number)
    roles = [grant.role for grant in turn.person.roles]
    return await turn.workflow.case_for(turn.uow, number, turn.person.id, roles)


async def _role_for(turn: Turn, number: str, action: Action) -> Role:
    """Which of the person's roles may fire this action on the case as it is now, checked at
    the press, before anything is asked: the state and role, and that the case is held by the
    presser's unit (a department's old card for a case another department holds now is refused
    here, not after its reason was typed). workflow/machine.py `rows_open_to` decides."""
    case = await _visible(turn, number)
    refusal: WorkflowError | None = None
    for grant in turn.person.roles if turn.person else ():
        if action not in available_actions(case.state, grant.role):
            continue
        actor = await turn.uow.org.actor(turn.enrolled_person.id, grant.role)
        try:
            rows_open_to(case, action, actor)
        except WorkflowError as exc:
            refusal = refusal or exc
            continue
        return grant.role
    if refusal is not None:
        raise refusal
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
    """The buttons of case cards (handlers/callbacks.py): an action, a department or category
    choice, a rating. Old or forged data gets the expired-button answer, never a traceback."""
    data = turn.msg.callback_data or ""
    if data.split(":", 1)[0] not in _CARD_PREFIXES:
        return False
    if turn.person is None:
        turn.reply("not_enrolled_staff")
        return True
    try:
        if (rated := RatingButton.read(data)) is not None:
            return await _rate(turn, rated.number, rated.value)
        if AssignTo.matches(data):
            chosen = AssignTo.unpack(data)
            return await _assign(turn, chosen.number, chosen.department)
        if ReclassifyTo.matches(data):
            picked = ReclassifyTo.unpack(data)
            role = await _role_for(turn, picked.number, Action.RECLASSIFY)
            actor = ActorRef(turn.enrolled_person.id, role)
            await _fire(turn, ReclassifyCase(case_number=picked.number, actor=actor,
                                             category_code=picked.category))  # fmt: skip
            return True
        pressed = CaseAction.unpack(data)
    except ValueError:
        turn.reply("stale_button")
        return True
    action = pressed.action
    if action is None or action is Action.RATE:  # ratings have their own buttons
        turn.reply("stale_button")
        return True
    return await _ask_or_fire(turn, action, pressed.number)


async def _ask_or_fire(turn: Turn, action: Action, number: str) -> bool:
    """Fire an action at once, or ask what its screen says must be asked first."""
    role = await _role_for(turn, number, action)
    actor = ActorRef(turn.enrolled_person.id, role)
    screen = SCREENS[action]
    if screen.asks is Ask.NOTHING:
        await _fire(turn, SIMPLE[action](case_number=number, actor=actor))
    elif screen.asks is Ask.CATEGORY:
        categories = await turn.uow.org.categories()
        key = "name_en" if turn.r.locale == "en" else "name_zh"
        buttons = [[Button(c[key], ReclassifyTo(c["code"], number).pack())] for c in categories]
        turn.reply("ask_category", buttons=buttons)
    elif screen.asks is Ask.DEPARTMENT:
        card = await turn.uow.channels.case_card(number)
        en = turn.r.locale == "en"
        buttons = [[Button(d.name_en if en else d.name, AssignTo(d.code, number).pack())]
                   for d in card.proposed_departments]  # fmt: skip
        turn.reply("ask_department" if buttons else "no_department", buttons=buttons)
    else:
        turn.conv.step = f"input_{screen.code}"
        turn.conv.draft = {"number": number, "role": role.value, "photo_ids": []}
        turn.reply(PROMPTS[screen.asks], number=number, force_reply=True)
    return True


async def _assign(turn: Turn, number: str, department: str) -> bool:
    role = await _role_for(turn, number, Action.ASSIGN)
    actor = ActorRef(turn.enrolled_person.id, role)
    await _fire(turn, AssignCase(case_number=number, actor=actor, department_code=department))
    return True


async def _rate(turn: Turn, number: str, value: str) -> bool:
    """A rating button: ask for an optional comment, then rate (route_staff_input)."""
    if value not in RATING_CODES:
        turn.reply("stale_button")
        return True
    await _still_open_to(turn, number, Action.RATE)
    turn.conv.step = "rate_comment"
    turn.conv.draft = {"number": number, "rating": value}
    turn.reply("ask_rating_comment", rating=RATING_CODES[value].value,
               buttons=[[turn.button("btn_skip", SkipComment(number).pack())]])  # fmt: skip
    return True


async def route_staff_input(turn: Turn) -> bool:
    """What a card button asked for: a reason, an instruction, a note, a case number, a result
    with photos, a rating's comment."""
    step = turn.conv.step
    if not step.startswith("input_") and step not in ("rate_comment", "resolve_photos"):
        return False
    draft = turn.conv.draft
    number = draft.get("number", "")
    text = (turn.msg.text or "").strip()
    if step == "rate_comment":
        return await _rating_comment(turn, number, text)
    person = turn.enrolled_person
    actor = ActorRef(person.id, Role(draft["role"]))
    action = Action.RESOLVE if step == "resolve_photos" else ACTION_OF_CODE.get(step[6:])
    if action is None or action not in SCREENS:  # a step left by an older version
        turn.clear()
        turn.reply("stale_button")
        return True
    asks = SCREENS[action].asks
    if asks is Ask.RESULT:
        return await _resolve_dialogue(turn, actor, number, text)
    photo_ids: tuple[int, ...] = ()
    if asks is Ask.TEXT_OR_PHOTOS and turn.msg.photos:
        ref = max(turn.msg.photos, key=lambda p: p.size or 0)
        photo_ids = (await turn.photos.save(turn.uow, turn.msg.channel, ref),)
    if (not text or text.startswith("/")) and not photo_ids:
        turn.reply(PROMPTS[asks], number=number, force_reply=True)
        return True
    turn.clear()
    if action is Action.SUPERVISE:
        cmd = SuperviseCase(case_number=number, actor=actor, instruction=text[:500])
        await turn.workflow.handle_in(turn.uow, cmd)
        turn.reply("instruction_recorded", number=number)
        return True
    await _fire(turn, _worded(action, number, actor, text, photo_ids))
    return True


def _worded(
    action: Action, number: str, actor: ActorRef, text: str, photo_ids: tuple[int, ...]
) -> CaseCommand:
    """The command of an action whose screen asked for words (or a note's photo)."""
    if action is Action.SCREEN_INVALID:
        return RejectCase(case_number=number, actor=actor, reason=text[:500])
    if action is Action.RETURN:
        return ReturnCase(case_number=number, actor=actor, reason=text[:500])
    if action is Action.CLOSE:
        return CloseCase(case_number=number, actor=actor, reason=text[:500])
    if action is Action.NOTE:
        return AddProgressNote(case_number=number, actor=actor, text=text[:2000],
                               attachment_ids=photo_ids)  # fmt: skip
    return MarkDuplicate(case_number=number, actor=actor, duplicate_of=text.split()[0])


async def _rating_comment(turn: Turn, number: str, text: str) -> bool:
    skipped = turn.msg.callback_data == SkipComment(number).pack()
    if not skipped and not text:
        turn.reply("ask_rating_comment_again")
        return True
    actor = await _reporter_role(turn)
    rating = RateCase(case_number=number, actor=actor,
                      rating=RATING_CODES[turn.conv.draft["rating"]],
                      comment=None if skipped else text[:500])  # fmt: skip
    turn.clear()
    await turn.workflow.handle_in(turn.uow, rating)
    turn.reply("thanks_for_rating", number=number)
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
    elif turn.msg.callback_data == ConfirmResult(number).pack() and draft.get("text"):
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
        confirm = turn.button("btn_resolve", ConfirmResult(number).pack())
        turn.reply("confirm_result", number=number, text=draft["text"],
                   photo_count=len(draft.get("photo_ids", [])), buttons=[[confirm]])  # fmt: skip
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
