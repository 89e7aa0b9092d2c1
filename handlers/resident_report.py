"""The report dialogue: category, description, photos, location, contact, confirm."""

from __future__ import annotations

from handlers.conversation import Turn
from handlers.messages import Button
from handlers.resident_enrol import ask_township
from handlers.resident_keys import REPORT_STEPS, button_rows, main_menu, parse_callback
from handlers.staff_report import (
    PLACE_STEP,
    caller_phone,
    on_place,
    staff_reporter_role,
    start_staff_report,
)
from workflow.commands import ActorRef, SubmitCase
from workflow.model import Role

MAX_PHOTOS = 9


async def route_report(turn: Turn) -> bool:
    """The report dialogue: category, description, photos, location, contact, confirm."""
    msg = turn.msg
    command = msg.command
    if not msg.is_private:
        # Grid workers report from their group: /report, or a photo captioned /report ...
        if command is not None and command[0] == "/report":
            return await _start_group_report(turn, command[1])
        if turn.conv.step not in REPORT_STEPS:
            return False
    elif (msg.text or "").strip() in (turn.text("menu_report"), "/report"):
        if (staff := staff_reporter_role(turn.person)) is not None:
            await start_staff_report(turn, staff)  # a report taken by phone or at the counter
            return True
        if turn.person is None or not turn.person.has(Role.RESIDENT):
            await ask_township(turn)
            return True
        await _ask_category(turn)
        return True
    step = turn.conv.step
    if step == PLACE_STEP and msg.is_private:
        if await on_place(turn) is not None:
            await _ask_category(turn, keep=True)
        return True
    if step not in REPORT_STEPS:
        return False
    handler = {
        "category": _on_category,
        "description": _on_description,
        "photos": _on_photos,
        "location": _on_location,
        "contact": _on_contact,
        "confirm": _on_confirm,
    }[step]
    await handler(turn)
    return True


async def _start_group_report(turn: Turn, rest: str) -> bool:
    if turn.person is None or not turn.person.has(Role.GRID_WORKER):
        turn.reply("not_grid_worker")
        return True
    await _ask_category(turn)
    if rest:
        turn.conv.draft["description"] = rest[:2000]
    if turn.msg.photos:
        ref = max(turn.msg.photos, key=lambda p: p.size or 0)
        turn.conv.draft["photo_ids"].append(await turn.photos.save(turn.uow, turn.msg.channel, ref))
    return True


def _reporter(turn: Turn) -> Role:
    """Residents report from private chats; grid workers from their grid's group; staff on
    someone's behalf from their private chat (handlers/staff_report.py)."""
    if on_behalf := turn.conv.draft.get("reporter_role"):
        return Role(on_behalf)
    return Role.RESIDENT if turn.msg.is_private else Role.GRID_WORKER


async def _ask_category(turn: Turn, keep: bool = False) -> None:
    if not keep:
        turn.new_draft("category", photos=[], photo_ids=[])
    else:
        turn.conv.step = "category"
    categories = await turn.uow.org.categories()
    buttons = [
        Button(
            c["name_en" if turn.r.locale == "en" else "name_zh"], f"cat:{turn.draft_id}:{c['code']}"
        )
        for c in categories
    ]
    turn.reply("ask_category", buttons=button_rows(buttons))


def _stale_or(turn: Turn, prefix: str) -> list[str] | None:
    """The button's value when it belongs to this draft; answers 'expired' otherwise."""
    parts = parse_callback(turn.msg.callback_data, prefix)
    if parts is None:
        return None
    if len(parts) < 2 or parts[0] != turn.draft_id:
        turn.reply("stale_button")
        return None
    return parts[1:]


async def _on_category(turn: Turn) -> None:
    value = _stale_or(turn, "cat")
    if value is None:
        if not turn.out:
            turn.reply("use_buttons")
        return
    category = await turn.uow.org.category(value[0])
    names = {c["code"]: c for c in await turn.uow.org.categories()}[category.code]
    turn.conv.draft["category"] = category.code
    turn.conv.draft["category_name"] = names["name_en" if turn.r.locale == "en" else "name_zh"]
    await _next(turn, "photos" if turn.conv.draft.get("description") else "description")


async def _on_description(turn: Turn) -> None:
    text = (turn.msg.text or "").strip()
    if turn.msg.photos:
        await _on_photos(turn)  # a photo first is fine: keep it and ask for the words after
        return
    if not text or text.startswith("/"):
        turn.reply("ask_description_again")
        return
    turn.conv.draft["description"] = text[:2000]
    await _next(turn, "photos")


async def _on_photos(turn: Turn) -> None:
    draft = turn.conv.draft
    if turn.msg.photos:
        ids: list[int] = draft.setdefault("photo_ids", [])
        if len(ids) >= MAX_PHOTOS:
            turn.reply("too_many_photos", limit=MAX_PHOTOS)
            return
        ref = max(turn.msg.photos, key=lambda p: p.size or 0)
        ids.append(await turn.photos.save(turn.uow, turn.msg.channel, ref))
        group = turn.msg.media_group_id
        if group and draft.get("last_group") == group:
            return  # one answer per album, not one per photo
        draft["last_group"] = group
        if turn.conv.step != "photos":
            return
        turn.reply("photo_received", count=len(ids), limit=MAX_PHOTOS, buttons=_done(turn))
        return
    if _stale_or(turn, "ph") is not None or (turn.msg.text or "").strip() == turn.text("btn_done"):
        await _next(turn, "location")
        return
    if not turn.out:
        turn.reply("ask_photos_again", buttons=_done(turn))


def _done(turn: Turn) -> list[list[Button]]:
    return [[turn.button("btn_photos_done", f"ph:{turn.draft_id}:done")]]


async def _on_location(turn: Turn) -> None:
    draft = turn.conv.draft
    if turn.msg.location is not None:
        draft["latitude"] = turn.msg.location.latitude
        draft["longitude"] = turn.msg.location.longitude
        await _next(turn, "contact")
        return
    text = (turn.msg.text or "").strip()
    if _stale_or(turn, "loc") is not None or text == turn.text("btn_skip"):
        await _next(turn, "contact")
        return
    if text and not text.startswith("/"):
        draft["location_text"] = text[:300]
        await _next(turn, "contact")
        return
    if not turn.out:
        _ask(turn, "location")


async def _on_contact(turn: Turn) -> None:
    draft = turn.conv.draft
    typed = caller_phone(turn.msg.text or "") if draft.get("reporter_role") else None
    if typed is not None:  # staff type the caller's number; their own is on file
        draft["phone"] = typed
        draft["anonymous"] = False
        await _next(turn, "confirm")
        return
    if turn.msg.contact_phone:
        if not turn.msg.contact_is_own:
            turn.reply("contact_not_own")
            return
        draft["phone"] = turn.msg.contact_phone
        draft["anonymous"] = False
        await _next(turn, "confirm")
        return
    choice = _stale_or(turn, "ct")
    text = (turn.msg.text or "").strip()
    if choice is None and text in (turn.text("btn_no_phone"), turn.text("btn_anonymous")):
        choice = ["anon" if text == turn.text("btn_anonymous") else "none"]
    if choice is not None:
        draft["anonymous"] = choice[0] == "anon"
        draft.pop("phone", None)
        await _next(turn, "confirm")
        return
    if not turn.out:
        _ask(turn, "contact")


async def _on_confirm(turn: Turn) -> None:
    choice = _stale_or(turn, "cf")
    if choice is None:
        edit = _stale_or(turn, "ed")
        if edit is not None and edit[0] in REPORT_STEPS:
            turn.conv.draft["editing"] = True
            if edit[0] == "category":
                await _ask_category(turn, keep=True)
            else:
                if edit[0] == "photos":
                    turn.conv.draft["photo_ids"] = []
                # Ask that one question; the answer's _next() sees "editing" and returns here.
                turn.conv.step = edit[0]
                _ask(turn, edit[0])
            return
        if not turn.out:
            turn.reply("use_buttons")
        return
    if choice[0] == "edit":
        buttons = [turn.button(f"edit_{s}", f"ed:{turn.draft_id}:{s}") for s in REPORT_STEPS[:-1]]
        turn.reply("what_to_edit", buttons=button_rows(buttons))
        return
    if choice[0] != "ok":
        return
    person = turn.enrolled_person
    draft = turn.conv.draft
    role = _reporter(turn)
    grant = person.grant(role)
    grid_code = draft.get("grid_code") or await grid_code_of(
        turn, grant.area_ids if grant else frozenset()
    )
    number = await turn.workflow.submit_in(
        turn.uow,
        SubmitCase(
            actor=ActorRef(person.id, role),
            grid_code=grid_code,
            category_code=draft["category"],
            description=draft.get("description", ""),
            attachment_ids=tuple(draft.get("photo_ids", [])),
            location_text=draft.get("location_text"),
            latitude=draft.get("latitude"),
            longitude=draft.get("longitude"),
            anonymous=bool(draft.get("anonymous")),
            contact_phone=draft.get("phone"),
        ),
    )
    case = await turn.uow.cases.get(number)
    turn.clear()
    turn.reply("submitted", number=number, state=case.state.value, due=case.due_at,
               provisional=case.due_provisional,
               keyboard=main_menu(turn) if turn.msg.is_private else [])  # fmt: skip


async def grid_code_of(turn: Turn, grid_ids: frozenset[int]) -> str:
    for grid_id in sorted(grid_ids):
        place = await turn.uow.channels.place(grid_id)
        if place is not None:
            return place.code
    raise LookupError("resident without a grid")


async def _next(turn: Turn, step: str) -> None:
    """Go to `step`, or back to the summary when the resident was editing one answer."""
    if turn.conv.draft.pop("editing", False):
        step = "confirm"
    if step == "contact" and not turn.msg.is_private:
        step = "confirm"  # a grid worker reports as staff; their contact is on file
    turn.conv.step = step
    _ask(turn, step)


def _ask(turn: Turn, step: str) -> None:
    d = turn.draft_id
    group = not turn.msg.is_private
    if step == "description":
        turn.reply("ask_description", force_reply=group)
    elif step == "photos":
        turn.reply("ask_photos", limit=MAX_PHOTOS, buttons=_done(turn))
    elif step == "location" and group:
        turn.reply("ask_location_group", buttons=[[turn.button("btn_skip", f"loc:{d}:skip")]])
    elif step == "location":
        turn.reply("ask_location", request_location=True,
                   keyboard=[[turn.text("btn_share_location")]],
                   buttons=[[turn.button("btn_skip", f"loc:{d}:skip")]])  # fmt: skip
    elif step == "contact" and turn.conv.draft.get("reporter_role"):
        turn.reply("ask_caller_contact",
                   buttons=[[turn.button("btn_no_phone", f"ct:{d}:none"),
                             turn.button("btn_anonymous", f"ct:{d}:anon")]])  # fmt: skip
    elif step == "contact":
        turn.reply("ask_contact", request_contact=True,
                   keyboard=[[turn.text("btn_share_phone")]],
                   buttons=[[turn.button("btn_no_phone", f"ct:{d}:none"),
                             turn.button("btn_anonymous", f"ct:{d}:anon")]])  # fmt: skip
    elif step == "confirm":
        draft = turn.conv.draft
        turn.reply(
            "confirm_report",
            draft=draft,
            photo_count=len(draft.get("photo_ids", [])),
            buttons=[
                [turn.button("btn_submit", f"cf:{d}:ok")],
                [
                    turn.button("btn_edit", f"cf:{d}:edit"),
                    turn.button("btn_cancel", f"cf:{d}:cancel"),
                ],
            ],
            remove_keyboard=False,
        )
