"""Scenario through the conversation layer only: report, screen, pass up, assign, accept,
note by replying to the card, resolve with a result, rate; every step by pressing buttons."""

from __future__ import annotations

from sqlalchemy import select, update

from handlers.messages import PhotoRef
from storage.channel import SqlChannelStore
from storage.queries import case_view
from storage.rows import CaseRow, PersonRow
from tests.support.chat import Bot
from tests.support.texts import refusal


async def test_the_loop_by_buttons_and_replies(world, tmp_path):
    bot = Bot(world, tmp_path)
    out = await bot.send("5001", text="📝 我要说事")
    out = await bot.press("5001", "cat:")
    await bot.send("5001", text="水库北侧防护网破损")
    await bot.press("5001", "ph:")
    await bot.press("5001", "loc:")
    await bot.press("5001", "ct:")
    out = await bot.press("5001", "cf:")
    number = out[0].text.split("<b>")[1].split("</b>")[0]
    await bot.press("7001", "a:sv:")
    await bot.press("7002", "a:pu:")
    out = await bot.press("7003", "as:housing:")
    assert "派单" in out[0].text
    out = await bot.press("7004", "a:ac:", chat="-100")
    assert out[0].reply_to_message_id is not None  # addressed to the handler in the group
    # The sender records which message carried the card; a reply to it is a progress note.
    card = [r for r in await bot.outbox("-100") if r.payload["purpose"] == "case_card"][-1]
    async with world["sessions"]() as session:
        await SqlChannelStore(session).link_message("telegram", "-100", "777", number, "case_card",
                                                    world["uow"].clock.now())  # fmt: skip
        await session.commit()
    assert card.case_number == number
    out = await bot.send("7004", "-100", text="明天上午施工", reply_to_message_id="777")
    assert "进展反馈" in out[0].text
    out = await bot.press("7004", "a:rs:", chat="-100")
    assert out[0].force_reply
    out = await bot.send("7004", "-100", text="已修复防护网", reply_to_message_id="m0")
    assert "已修复防护网" in out[0].text
    out = await bot.send("7004", "-100", photos=(PhotoRef("red", size=9),))
    assert "1 张" in out[0].text
    out = await bot.press("7004", "rz:", chat="-100")
    assert "办结" in out[0].text
    rating = (await bot.outbox("5001"))[-1]
    assert rating.payload["purpose"] == "rating" and len(rating.payload["photos"]) == 1
    await bot.press("5001", f"ra:{number}:s")
    out = await bot.send("5001", text="修得很快")
    assert "感谢" in out[0].text
    async with world["sessions"]() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "closed" and view.case.rating_comment == "修得很快"
    out = await bot.send("5001", callback_data=f"my:{number}", callback_id="my1")
    assert "住房和城乡建设局" in out[0].text  # the resident sees which unit handled it
    # The steps the resident was told of are in the timeline too (workflow/table.py
    # REPORTER_TIMELINE): the township passing it up, the department's note.
    assert "上报上级" in out[0].text and "进展反馈" in out[0].text
    assert [t.action for t in view.timeline] == [
        "submit", "route", "screen_valid", "pass_up", "assign", "accept", "note", "resolve",
        "rate",
    ]  # fmt: skip


async def test_wrong_department_and_strangers_are_refused(world, tmp_path):
    bot = Bot(world, tmp_path)
    await bot.report("5001", "路灯不亮")
    data = await bot.button("7001", "a:sv:")
    out = await bot.send("9999", callback_data=data, callback_id="x1")  # not enrolled at all
    assert "登记" in out[0].text
    out = await bot.send("7004", callback_data=data, callback_id="x2")  # a department handler
    number = data.split(":")[2]
    assert out[0].text == refusal("unknown_case", case=number)  # as for an unknown number
    out = await bot.send("7001", callback_data=data, callback_id="x3")
    assert "初筛有效" in out[0].text
    out = await bot.send("7001", callback_data=data, callback_id="x4")  # pressed twice
    assert "不能" in out[0].text


async def test_leader_reclassifies_from_the_card(world, tmp_path):
    bot = Bot(world, tmp_path)
    await bot.report("5001", "路灯不亮")
    out = await bot.press("7001", "a:rc:")
    assert "类别" in out[0].text
    out = await bot.press("7001", "rc:livelihood:")
    assert "重新分类" in out[0].text
    number = (await bot.button("7001", "a:sv:")).split(":")[2]
    async with world["sessions"]() as session:
        view = await case_view(session, number)
    assert view.category["code"] == "livelihood" and view.case.deadline_class.value == "livelihood"


async def test_a_step_for_enrolled_people_refuses_an_account_let_go_mid_dialogue(world, tmp_path):
    """The grid leader presses reject, is then deactivated, and sends the reason: a localized
    "unknown person" refusal, the case untouched (it used to trip an assert: "unexpected error")."""
    bot = Bot(world, tmp_path)
    await bot.report("5001", "路灯不亮")
    await bot.press("7001", "a:si:")
    async with world["sessions"]() as session:
        await session.execute(
            update(PersonRow).where(PersonRow.code == "P-L-01").values(active=False)
        )
        await session.commit()
    out = await bot.send("7001", text="不属实")
    assert [m.text for m in out] == ["找不到该人员，请联系管理员登记。"]
    async with world["sessions"]() as session:
        states = (await session.execute(select(CaseRow.state))).scalars().all()
    assert states == ["screening"]


async def test_buttons_of_cards_sent_before_the_codes_changed_still_work_or_expire(world, tmp_path):
    """'a:rt:' was the return button and 'rt:<case>:<s|b|d>' the rating buttons; cards already
    out still carry them. Anything else unknown gets the expired-button answer."""
    bot = Bot(world, tmp_path)
    await bot.report("5001", "路灯不亮")
    number = (await bot.button("7001", "a:sv:")).split(":")[2]
    await bot.press("7001", "a:sv:")
    await bot.press("7002", "a:pu:")
    await bot.press("7003", "as:housing:")
    out = await bot.send("7004", "-100", callback_data=f"a:rt:{number}", callback_id="old1")
    assert out[0].force_reply  # asks for the reason, as the return button always did
    out = await bot.send("7004", "-100", text="不归本部门管")
    assert "退回" in out[0].text
    async with world["sessions"]() as session:
        assert (await case_view(session, number)).case.state.value == "returned"
    stale = "这个按钮已经过期了，请按最新消息里的按钮操作。"
    for data in (f"a:zz:{number}", f"a:sv:{number}:x", "as:housing", f"ra:{number}:x", "rc::"):
        out = await bot.send("7003", callback_data=data, callback_id=f"bad-{data}")
        assert [m.text for m in out] == [stale], data
