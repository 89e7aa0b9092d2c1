"""Cards that stay true: when a case moves on, every card already out is edited in place (its
state now, only the buttons that still work there), in Telegram and in the web chat; an edit
Telegram refuses fails alone; an outdated button is refused before anything is asked."""

from __future__ import annotations

import json

from sqlalchemy import select, update

from bot.web.chat.render import plain_text
from handlers.messages import PhotoRef
from storage.channel import SqlChannelStore
from storage.outbox_calls import OutboxQueue
from storage.rows import CaseRow, OutboxRow, PersonRow
from tests.support.chat import Bot
from tests.support.images import jpeg
from tests.support.sending import data_of, deliver_all, sender_for
from tests.support.texts import refusal, shown
from tests.support.webchat import chat_text, report_as_new_resident
from workflow.commands import ActorRef, ValidateCase
from workflow.model import Role
from workflow.ports import OutgoingMessage

LEADER, TOWNSHIP, DEPT_GROUP, RESIDENT = 7001, 7002, -100, 5001


async def report(bot: Bot, *, photo: bool) -> str:
    """The resident reports (with one photo, or none); returns the case number."""
    await bot.send("5001", text="📝 我要说事")
    await bot.press("5001", "cat:")
    await bot.send("5001", text="水库北侧防护网破损")
    if photo:
        await bot.send("5001", photos=(PhotoRef("red", size=9),))
    for prefix in ("ph:", "loc:", "ct:", "cf:"):
        await bot.press("5001", prefix)
    return (await bot.button("7001", "a:sv:")).split(":")[2]


async def outbox(world) -> list[OutboxRow]:
    async with world["sessions"]() as session:
        return list((await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars())


async def test_telegram_cards_are_edited_as_the_case_moves_on(world, tmp_path, fake, media):
    bot, sender = Bot(world, tmp_path), sender_for(fake, world, media)
    number = await report(bot, photo=False)
    await deliver_all(sender)
    card = fake.last_sent(LEADER)
    assert data_of(card)[0] == f"a:sv:{number}"

    await bot.press("7001", "a:sv:")  # the grid leader acts: the case goes to the township
    await deliver_all(sender)
    [edit] = fake.calls_of("editMessageText")
    assert edit.params["message_id"] == card["message_id"]
    now = fake.current(LEADER, card["message_id"])
    assert f"{number} · 安全隐患 · 乡镇(街道)中心" in now["text"]
    assert "reply_markup" not in now  # no button works here any more
    township_card = fake.last_sent(TOWNSHIP)
    assert f"a:hl:{number}" in data_of(township_card) and f"a:pu:{number}" in data_of(township_card)

    await bot.press("7002", "a:pu:")
    await bot.press("7003", "as:housing:")
    await deliver_all(sender)
    assert "reply_markup" not in fake.current(TOWNSHIP, township_card["message_id"])
    dept_card = fake.last_sent(DEPT_GROUP)
    assert data_of(dept_card) == [f"a:ac:{number}", f"a:rn:{number}"]
    await bot.press("7004", "a:ac:", chat="-100")
    await deliver_all(sender)
    # The department still holds it: the same card now offers what comes next.
    now = fake.current(DEPT_GROUP, dept_card["message_id"])
    assert data_of(now) == [f"a:rn:{number}", f"a:nt:{number}", f"a:rs:{number}"]
    assert f"{number} · 安全隐患 · 办理中" in now["text"]

    # Every edit went out as an outbox row like any message, and none failed.
    edits = [r for r in await outbox(world) if r.payload.get("edit_message_id")]
    assert edits and {r.status for r in edits} == {"sent"}


async def test_a_photo_card_has_its_caption_edited_and_the_rating_loses_its_buttons(
    world,
    tmp_path,
    fake,
    media,
):
    bot, sender = Bot(world, tmp_path), sender_for(fake, world, media)
    bot.conv.photos.files["red"] = jpeg("red")
    number = await report(bot, photo=True)
    await deliver_all(sender)
    card = fake.last_sent(LEADER)
    assert "photo" in card and data_of(card)  # one photo: the card is its caption
    await bot.press("7001", "a:sv:")
    await deliver_all(sender)
    [edit] = fake.calls_of("editMessageCaption")
    assert edit.params["message_id"] == card["message_id"]
    assert "reply_markup" not in fake.current(LEADER, card["message_id"])

    await bot.press("7002", "a:hl:")  # the township handles it itself, and resolves
    await bot.press("7002", "a:rs:")
    await bot.send("7002", text="已修复防护网")
    await bot.press("7002", "rz:")
    await deliver_all(sender)
    rating = fake.last_sent(RESIDENT)
    assert data_of(rating) == [f"ra:{number}:s", f"ra:{number}:b", f"ra:{number}:d"]
    await bot.send("5001", callback_data=f"ra:{number}:s", callback_id="r1")
    await bot.send("5001", callback_data=f"rk:{number}", callback_id="r2")
    await deliver_all(sender)
    now = fake.current(RESIDENT, rating["message_id"])
    assert "reply_markup" not in now and "已修复防护网" in (now.get("text") or now["caption"])
    assert fake.calls_of("editMessageReplyMarkup")  # the result's words stay as they were
    # A stale 不满意 on that message is refused at once, nothing asked.
    out = await bot.send("5001", callback_data=f"ra:{number}:d", callback_id="r3")
    assert [m.text for m in out] == [refusal("illegal_transition", state="closed", action="rate")]


async def test_a_stale_card_button_is_refused_before_a_reason_is_asked(world, tmp_path):
    bot = Bot(world, tmp_path)
    number = await report(bot, photo=False)
    await bot.press("7001", "a:sv:")
    await bot.press("7002", "a:pu:")
    await bot.press("7003", "as:housing:")
    stale = await bot.button("-100", "a:rn:")  # 退回 on the card as it first came
    await bot.press("7004", "a:ac:", chat="-100")
    await bot.press("7004", "a:rs:", chat="-100")
    await bot.send("7004", "-100", text="已修复")
    await bot.press("7004", "rz:", chat="-100")
    out = await bot.send("7004", "-100", callback_data=stale, callback_id="s1")
    assert len(out) == 1 and not out[0].force_reply  # refused, no reason asked for
    assert out[0].text == refusal("role_not_allowed", action="return",
                                  role="department_handler", state="resolved")  # fmt: skip
    assert number in stale


async def test_a_departments_old_card_is_refused_at_the_press_once_another_holds_the_case(
    world, tmp_path
):
    """Housing returns the case and the county assigns it to municipal: the case is `assigned`
    again, a state in which a department may return it, but not housing. Housing's old 退回
    (a WeChat card is never edited) is refused at the press, no reason asked for."""
    bot = Bot(world, tmp_path)
    number = await report(bot, photo=False)
    await bot.press("7001", "a:sv:")
    await bot.press("7002", "a:pu:")
    await bot.send("7003", callback_data=f"as:housing:{number}", callback_id="h1")
    stale = await bot.button("-100", "a:rn:")
    await bot.send("7004", "-100", callback_data=stale, callback_id="h2")
    await bot.send("7004", "-100", text="不是本部门的事")
    await bot.send("7003", callback_data=f"as:municipal:{number}", callback_id="h3")
    out = await bot.send("7004", "-100", callback_data=stale, callback_id="h4")
    assert len(out) == 1 and not out[0].force_reply  # refused, no reason asked for
    assert out[0].text == refusal("not_your_case", case=number, role="department_handler")
    async with world["sessions"]() as session:
        case = (await session.execute(select(CaseRow).where(CaseRow.number == number))).scalar_one()
    assert case.state == "assigned"


def bot_now(world):
    return world["uow"].clock.now()


async def test_a_card_edited_where_the_case_no_longer_is_keeps_its_readers_language(
    world, tmp_path
):
    """The grid leader reads English. Their card, edited once the case went on to the township
    (no longer theirs: no buttons), is still in English, not the default Chinese."""
    async with world["sessions"]() as session:
        await session.execute(
            update(PersonRow).where(PersonRow.code == "P-L-01").values(language="en")
        )
        await session.commit()
    bot = Bot(world, tmp_path)
    number = await report(bot, photo=False)
    card = (await bot.outbox("7001"))[-1]
    assert "Safety hazard" in card.payload["text"]  # sent in English
    async with world["sessions"]() as session:
        store = SqlChannelStore(session)
        await store.link_message("telegram", "7001", "701", number, "case_card", bot_now(world))
        await session.commit()
    await bot.press("7001", "a:sv:")
    [edit] = [r for r in await bot.outbox("7001") if r.payload.get("edit_message_id") == "701"]
    assert f"{number}</b> · Safety hazards · township center" in edit.payload["text"]
    assert edit.payload["buttons"] == []


async def test_a_card_still_waiting_in_the_outbox_goes_out_as_the_case_is_now(world, tmp_path):
    """The leader's card has not gone out yet (Telegram slow, the chat rate-limited) when the
    leader screens the case from another device: the waiting row is rewritten, so it arrives
    showing the township stage and no button, and no edit is queued for it."""
    bot = Bot(world, tmp_path)
    number = await report(bot, photo=False)
    [card] = [r for r in await bot.outbox("7001") if r.payload["purpose"] == "case_card"]
    assert data_of_row(card) == [f"a:sv:{number}", f"a:si:{number}", f"a:dp:{number}",
                                 f"a:rc:{number}"]  # fmt: skip
    await bot.press("7001", "a:sv:")
    [again] = [r for r in await bot.outbox("7001") if r.id == card.id]
    assert again.status == "pending" and data_of_row(again) == []
    assert f"{number}</b> · 安全隐患 · 乡镇(街道)中心" in again.payload["text"]
    assert not [r for r in await outbox(world) if r.payload.get("edit_message_id")]


async def test_a_card_queued_earlier_in_the_same_transaction_is_rewritten_too(world, tmp_path):
    """The outbox keeps a transaction's rows until commit: a card queued for the case earlier
    in the transaction that moves it is still found and rewritten."""
    bot = Bot(world, tmp_path)
    number = await report(bot, photo=False)
    [card] = [r for r in await bot.outbox("7001") if r.payload["purpose"] == "case_card"]
    leader = ActorRef(world["people"]["P-L-01"], Role.GRID_LEADER)
    async with world["uow"]() as uow:
        await uow.outbox.add(OutgoingMessage(channel="telegram", chat_id="7001",
                                             payload=card.payload, case_number=number))  # fmt: skip
        await world["wf"].handle_in(uow, ValidateCase(case_number=number, actor=leader))
        await uow.commit()
    copies = [r for r in await bot.outbox("7001") if r.payload.get("purpose") == "case_card"]
    assert len(copies) == 2 and all(data_of_row(r) == [] for r in copies)


async def test_a_card_on_its_way_when_the_case_moves_is_edited_once_sent(world, tmp_path):
    """A deliverer read the leader's card, then the case moved (the row is rewritten), then the
    old card went out: marking it sent queues an edit to the card as it is now. Progress noted
    by the deliverer meanwhile keeps the rewritten card."""
    bot = Bot(world, tmp_path)
    number = await report(bot, photo=False)
    [read] = [r for r in await bot.outbox("7001") if r.payload["purpose"] == "case_card"]
    await bot.press("7001", "a:sv:")
    queue = OutboxQueue(world["sessions"], "telegram")
    await queue.save_progress(read.id, {**read.payload, "_parts_done": 1})
    [stored] = [r for r in await bot.outbox("7001") if r.id == read.id]
    assert stored.payload["_parts_done"] == 1 and data_of_row(stored) == []
    await queue.mark_sent(read, "900", bot_now(world))
    [edit] = [r for r in await bot.outbox("7001") if r.payload.get("edit_message_id") == "900"]
    assert edit.status == "pending" and data_of_row(edit) == [] and edit.payload["photos"] == []
    assert f"{number}</b> · 安全隐患 · 乡镇(街道)中心" in edit.payload["text"]
    assert "_parts_done" not in edit.payload


def data_of_row(row: OutboxRow) -> list[str]:
    return [b["data"] for line in row.payload["buttons"] for b in line]


async def test_an_edit_telegram_refuses_fails_alone_and_blocks_nothing(
    world,
    tmp_path,
    fake,
    media,
):
    bot, sender = Bot(world, tmp_path), sender_for(fake, world, media)
    number = await report(bot, photo=False)
    await deliver_all(sender)
    card = fake.last_sent(LEADER)
    fake.age_out(LEADER, card["message_id"])  # more than 48 hours old: Telegram refuses
    await bot.press("7001", "a:sv:")  # the edit to the leader's card, then the reply to them
    await deliver_all(sender)  # the failed edit, then the chat's next row
    edit = next(r for r in await outbox(world) if r.payload.get("edit_message_id"))
    assert edit.status == "failed" and "can't be edited" in edit.error
    # The leader's next message went out all the same.
    assert fake.last_sent(LEADER)["text"] == shown("done", action="screen_valid", number=number)
    async with world["sessions"]() as session:
        case = (await session.execute(select(CaseRow).where(CaseRow.number == number))).scalar_one()
    assert case.delivery_failed is False  # the card was delivered; only its update was not

    # "Not modified" is no failure: the message already shows what was meant.
    fake.fail_next("editMessageText", 400, "Bad Request: message is not modified",
                   chat_id=TOWNSHIP)  # fmt: skip
    await bot.press("7002", "a:pu:")
    await deliver_all(sender)
    edits = [r for r in await outbox(world) if r.payload.get("edit_message_id")]
    assert sorted((r.chat_id, r.status) for r in edits) == [
        ("7001", "failed"), ("7002", "sent")  # the leader's old card is not tried again
    ]  # fmt: skip


async def test_web_chat_cards_update_in_place_live_and_after_a_reload(demo):
    b, chat, app = demo
    number = await report_as_new_resident(b)
    await b.pick("P-L-01")
    card = next(v for v in await b.history() if v["case_number"] == number)
    assert card["buttons"][0][0]["data"] == f"a:sv:{number}"
    live = await b.stream(after=await b.last_id())
    try:
        await b.press(f"a:sv:{number}")
        update = None
        while update is None:  # the "done" answer and the update, in either order
            event = await live.next()
            if event.get("event") == "update":
                update = json.loads(event["data"])
    finally:
        live.close()
    assert update["direction"] == "edit" and update["message"]["id"] == card["id"]
    assert update["message"]["buttons"] == []
    assert f"{number} · 安全隐患 · 乡镇(街道)中心" in plain_text(update["message"]["nodes"])
    # A reload draws the card as it is now, once, without the edit as a message of its own.
    await b.open(f"/chat/{b.chat}")
    views = await b.history()
    [again] = [v for v in views if v["id"] == card["id"]]
    assert again["buttons"] == [] and all(v["direction"] != "edit" for v in views)
    # A page that missed the update and presses the old button gets the expired answer.
    old = {"message_id": str(card["id"]), "data": f"a:sv:{number}"}
    assert await b.answers(b.post("press", old)) == [chat_text("stale_button")]
