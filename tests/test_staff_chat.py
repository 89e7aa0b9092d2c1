"""Scenario through the conversation layer only: report, screen, pass up, assign, accept,
note by replying to the card, resolve with a result, rate; every step by pressing buttons."""

from __future__ import annotations

import itertools

from sqlalchemy import select

from handlers.conversation import Conversations
from handlers.messages import Incoming, PhotoRef
from handlers.notify import Notifier
from handlers.routes import ALL_ROUTES
from storage.channel import SqlChannelStore
from storage.queries import case_view
from storage.rows import OutboxRow
from tests.test_notify import world  # noqa: F401  (fixture)
from tests.test_resident_chat import Photos
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow

ids = itertools.count(1)


class Bot:
    def __init__(self, w, tmp_path) -> None:
        from storage.media import MediaStore

        self.world = w
        self.conv = Conversations(
            w["uow"], Workflow(WorkflowPolicy(), on_events=Notifier()),
            Photos(MediaStore(tmp_path / "media")), ALL_ROUTES,
        )  # fmt: skip

    async def send(self, user: str, chat: str | None = None, **kw):
        n = next(ids)
        chat = chat or user
        msg = Incoming(
            channel="telegram", chat_id=chat, user_id=user,
            chat_type="private" if chat == user else "supergroup",
            message_id=f"m{n}", update_key=f"u{n}", **kw,
        )  # fmt: skip
        return await self.conv.handle(msg)

    async def outbox(self, chat: str) -> list[OutboxRow]:
        async with self.world["sessions"]() as session:
            rows = await session.execute(
                select(OutboxRow).where(OutboxRow.chat_id == chat).order_by(OutboxRow.id)
            )
            return list(rows.scalars())

    async def button(self, chat: str, prefix: str) -> str:
        for row in reversed(await self.outbox(chat)):
            for line in row.payload["buttons"]:
                for b in line:
                    if b["data"].startswith(prefix):
                        return b["data"]
        raise AssertionError(f"no {prefix} button in chat {chat}")

    async def report(self, user: str, text: str) -> None:
        """A resident's whole report with the first choice at every step."""
        await self.send(user, text="📝 我要说事")
        await self.press(user, "cat:")
        await self.send(user, text=text)
        for prefix in ("ph:", "loc:", "ct:", "cf:"):
            await self.press(user, prefix)

    async def press(self, user: str, prefix: str, chat: str | None = None):
        data = await self.button(chat or user, prefix)
        return await self.send(user, chat, callback_data=data, callback_id=f"c{next(ids)}")


async def test_the_loop_by_buttons_and_replies(world, tmp_path):  # noqa: F811
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
    await bot.press("5001", f"rt:{number}:s")
    out = await bot.send("5001", text="修得很快")
    assert "感谢" in out[0].text
    async with world["sessions"]() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "closed" and view.case.rating_comment == "修得很快"
    out = await bot.send("5001", callback_data=f"my:{number}", callback_id="my1")
    assert "住房和城乡建设局" in out[0].text  # the resident sees which unit handled it
    assert [t.action for t in view.timeline] == [
        "submit", "route", "screen_valid", "pass_up", "assign", "accept", "note", "resolve",
        "rate",
    ]  # fmt: skip


async def test_wrong_department_and_strangers_are_refused(world, tmp_path):  # noqa: F811
    bot = Bot(world, tmp_path)
    await bot.report("5001", "路灯不亮")
    data = await bot.button("7001", "a:sv:")
    out = await bot.send("9999", callback_data=data, callback_id="x1")  # not enrolled at all
    assert "登记" in out[0].text
    out = await bot.send("7004", callback_data=data, callback_id="x2")  # a department handler
    assert "没有编号" in out[0].text  # not its case: answered as for an unknown number
    out = await bot.send("7001", callback_data=data, callback_id="x3")
    assert "初筛有效" in out[0].text
    out = await bot.send("7001", callback_data=data, callback_id="x4")  # pressed twice
    assert "不能" in out[0].text


async def test_leader_reclassifies_from_the_card(world, tmp_path):  # noqa: F811
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
