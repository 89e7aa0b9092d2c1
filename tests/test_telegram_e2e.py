"""End to end through aiogram: real Bot and Dispatcher, long polling a fake Bot API on loopback.

Scenario 1 of the Telegram issue: a resident reports a broken manhole cover with an album of
two photos; the grid leader screens it valid; the township passes it up; the county assigns the
housing bureau; the bureau accepts in its group, replies to the card with a progress note,
resolves with a photo; the resident rates it 满意; the timeline shows every step.
"""

from __future__ import annotations

import asyncio

from sqlalchemy import func, select

from storage.queries import case_view
from storage.rows import CaseRow
from tests.support.chat import (
    COUNTY,
    DEPT_GROUP,
    HANDLER,
    LEADER,
    RESIDENT,
    TOWNSHIP,
    Harness,
    text_of,
)
from tests.support.images import jpeg
from tests.support.texts import shown


async def test_scenario_resident_report_to_rating(harness: Harness, world):
    h, fake = harness, harness.fake
    r = RESIDENT
    await h.act(r, r, lambda: fake.send_text(r, r, "📝 我要说事"))
    await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, "cat:")))
    await h.act(r, r, lambda: fake.send_text(r, r, "小区东门井盖破损，夜里有人踩空"))
    before = h.count(r)
    fake.send_photo(r, r, jpeg("red"), media_group_id="album1")
    fake.send_photo(r, r, jpeg("blue"), media_group_id="album1")
    reply = await h.says(r, before)
    assert "1 张" in text_of(reply[0]) or "2 张" in text_of(reply[0])
    out = await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, "ph:")))
    call = [c for c in fake.calls_of("sendMessage") if c.params.get("chat_id") in (r, str(r))][-1]
    keyboard = call.params["reply_markup"]["keyboard"]
    assert keyboard[0][0]["request_location"] is True and keyboard[1][0]["text"] == "跳过"
    await h.act(r, r, lambda: fake.send_location(r, r, 37.22, 115.03))
    out = await h.act(r, r, lambda: fake.send_text(r, r, "不留电话"))  # a reply-keyboard key
    assert "2 张" in text_of(out[0])
    # Submitting sends the receipt to the resident and the card (with photos) to the leader.
    before_leader = h.count(LEADER)
    out = await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, "cf:")))
    assert "已受理" in text_of(out[0])
    number = text_of(out[0]).split("案件编号 ")[1].split("。")[0].strip()
    # The album of photos, then the card (the resident's receipt went ahead of them: answers
    # first, so they may still be on their way).
    card = await h.until(LEADER, before_leader, number)
    assert any(number in text_of(m) for m in card)

    await h.act(LEADER, LEADER, lambda: asyncio.ensure_future(h.press(LEADER, LEADER, "a:sv:")))
    await h.act(TOWNSHIP, TOWNSHIP, lambda: asyncio.ensure_future(
        h.press(TOWNSHIP, TOWNSHIP, "a:pu:")))  # fmt: skip
    await h.act(COUNTY, COUNTY, lambda: asyncio.ensure_future(
        h.press(COUNTY, COUNTY, "as:housing:")))  # fmt: skip
    before = h.count(DEPT_GROUP)
    await h.press(DEPT_GROUP, HANDLER, "a:ac:")
    await h.until(DEPT_GROUP, before, "已签收")  # the new card (with photos) and the answer
    # Reply to the card in the department group: a progress note.
    card = next(m for m in reversed(fake.sent(DEPT_GROUP)) if number in text_of(m)
                and m.get("reply_markup"))  # fmt: skip
    out = await h.act(DEPT_GROUP, HANDLER, lambda: fake.send_text(
        DEPT_GROUP, HANDLER, "已安排明早更换", reply_to_message_id=card["message_id"]))  # fmt: skip
    assert "进展反馈" in text_of(out[0])
    out = await h.act(DEPT_GROUP, HANDLER, lambda: asyncio.ensure_future(
        h.press(DEPT_GROUP, HANDLER, "a:rs:")))  # fmt: skip
    call = fake.calls_of("sendMessage")[-1]
    assert call.params["reply_markup"]["force_reply"] is True
    await h.act(DEPT_GROUP, HANDLER, lambda: fake.send_text(
        DEPT_GROUP, HANDLER, "已更换新井盖", reply_to_message_id=out[0]["message_id"]))  # fmt: skip
    await h.act(DEPT_GROUP, HANDLER, lambda: fake.send_photo(DEPT_GROUP, HANDLER, jpeg("green")))
    before = h.count(r)
    await h.act(DEPT_GROUP, HANDLER, lambda: asyncio.ensure_future(
        h.press(DEPT_GROUP, HANDLER, "rz:")))  # fmt: skip
    rating = (await h.says(r, before))[-1]
    assert "photo" in rating and "已更换新井盖" in text_of(rating)
    await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, f"ra:{number}:s")))
    out = await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, f"rk:{number}")))
    assert "感谢" in "".join(text_of(m) for m in out)

    async with world["sessions"]() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "closed" and view.case.rating.value == "satisfied"
    assert [t.action for t in view.timeline] == [
        "submit", "route", "screen_valid", "pass_up", "assign", "accept", "note", "resolve",
        "rate",
    ]  # fmt: skip
    assert len(view.timeline[0].photos) == 2 and len(view.timeline[7].photos) == 1
    assert all(t.actor_name or t.action == "route" for t in view.timeline)


async def test_a_repeated_update_creates_nothing_twice(harness: Harness, world):
    h, fake = harness, harness.fake
    r = RESIDENT
    update = fake.send_text(r, r, "📝 我要说事")
    await h.says(r, 0)
    fake.queue(update)  # Telegram delivers the same update again
    await h.act(r, r, lambda: fake.send_text(r, r, "/my"))
    texts = [text_of(m) for m in fake.sent(r)]
    assert sum("类别" in t for t in texts) == 1
    async with world["sessions"]() as session:
        assert (await session.execute(select(func.count()).select_from(CaseRow))).scalar() == 0


async def test_bad_input_through_telegram_gets_clear_answers(harness: Harness):
    h, fake = harness, harness.fake
    r = RESIDENT
    await h.act(r, r, lambda: fake.send_text(r, r, "📝 我要说事"))
    answers = []
    for send in (
        lambda: fake.send_sticker(r, r),
        lambda: fake.send_voice(r, r),
        lambda: fake.send_document(r, r, file_size=25 * 1024 * 1024),
        lambda: fake.send_video(r, r),
        lambda: fake.send_text(r, r, "/frobnicate"),
    ):
        answers.append(text_of((await h.act(r, r, send))[0]))
    # Each says what it cannot take, and that the draft still waits at the category step.
    kinds = ("sticker", "voice", "document", "video")
    assert answers[:4] == [shown("unsupported", kind=k, step="category") for k in kinds]
    assert shown("use_buttons") in answers[4]


async def test_scenario_grid_worker_reports_in_the_group(harness: Harness, world):
    """Scenario 2: the same loop started by a grid worker in a group chat, rated by that worker."""
    from tests.support.world import enrol_workers

    await enrol_workers(world)  # workers 8001/8002 enrolled, group -200 bound to two grids
    h, fake = harness, harness.fake
    group, worker = -200, 8001
    out = await h.act(
        group, worker, lambda: fake.send_text(group, worker, "/report 水库北侧防护网破损")
    )
    assert out[0]["reply_to_message"]["from"]["id"] == worker  # addressed to the worker who asked
    await h.act(group, worker, lambda: asyncio.ensure_future(h.press(group, worker, "cat:")))
    await h.act(group, worker, lambda: fake.send_photo(group, worker, jpeg("gray")))
    await h.act(group, worker, lambda: asyncio.ensure_future(h.press(group, worker, "ph:")))
    out = await h.act(group, worker, lambda: fake.send_text(group, worker, "北侧大坝"))
    assert "核对" in text_of(out[0])
    before = h.count(group)
    await h.press(group, worker, "cf:")
    new = await h.until(group, before, "已受理")
    number = next(text_of(m) for m in new if "已受理" in text_of(m)).split("<b>")[-1]
    number = number.split("案件编号 ")[1].split("。")[0].strip()
    # The group is bound to the grid: the leader screens right there.
    before = h.count(group)
    await h.press(group, LEADER, "a:sv:")
    await h.until(group, before, "初筛有效")
    await h.act(TOWNSHIP, TOWNSHIP, lambda: asyncio.ensure_future(
        h.press(TOWNSHIP, TOWNSHIP, "a:pu:")))  # fmt: skip
    await h.act(COUNTY, COUNTY, lambda: asyncio.ensure_future(
        h.press(COUNTY, COUNTY, "as:housing:")))  # fmt: skip
    before = h.count(DEPT_GROUP)
    await h.press(DEPT_GROUP, HANDLER, "a:ac:")
    await h.until(DEPT_GROUP, before, "已签收")
    out = await h.act(DEPT_GROUP, HANDLER, lambda: asyncio.ensure_future(
        h.press(DEPT_GROUP, HANDLER, "a:rs:")))  # fmt: skip
    await h.act(DEPT_GROUP, HANDLER, lambda: fake.send_text(
        DEPT_GROUP, HANDLER, "已修复", reply_to_message_id=out[0]["message_id"]))  # fmt: skip
    before = h.count(worker)
    await h.press(DEPT_GROUP, HANDLER, "rz:")
    await h.says(worker, before)  # the worker gets the result in a private chat
    await h.act(worker, worker, lambda: asyncio.ensure_future(
        h.press(worker, worker, f"ra:{number}:s")))  # fmt: skip
    await h.act(worker, worker, lambda: fake.send_text(worker, worker, "很及时"))
    async with world["sessions"]() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "closed" and view.case.reporter_role.value == "grid_worker"
    assert view.case.rating_comment == "很及时" and len(view.timeline[0].photos) == 1
