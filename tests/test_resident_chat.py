"""The resident's private-chat dialogue, channel-neutral, on a real database."""

from __future__ import annotations

import itertools

import pytest
from sqlalchemy import func, select

from handlers.conversation import Conversations
from handlers.messages import Incoming, Location, Outgoing, PhotoRef
from handlers.routes import ALL_ROUTES
from storage.calendar import seed_calendar
from storage.db import session_factory
from storage.media import MediaStore
from storage.org_file import load_org_file
from storage.rows import CaseAttachmentRow, CaseRow, ConversationRow, OutboxRow
from storage.uow import UnitOfWorkFactory
from tests.conftest import EXAMPLE_COUNTY
from tests.support.chat import Photos
from tests.support.texts import said
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow


class Resident:
    """One resident typing into the bot."""

    _ids = itertools.count(1)

    def __init__(self, engine, clock, tmp_path, user_id: str = "5001") -> None:
        self.sessions = session_factory(engine)
        self.clock = clock
        self.photos = Photos(MediaStore(tmp_path / "media"))
        self.user_id = user_id
        self.restart()

    def restart(self) -> None:
        """A new process: nothing kept in memory, everything from the database."""
        self.bot = Conversations(
            UnitOfWorkFactory(self.sessions, self.clock), Workflow(WorkflowPolicy()), self.photos,
            ALL_ROUTES,
        )  # fmt: skip

    async def send(self, **kw) -> list[Outgoing]:
        n = next(self._ids)
        msg = Incoming(
            channel="telegram", chat_id=self.user_id, chat_type="private", user_id=self.user_id,
            user_name="李秀兰", language="zh-hans", message_id=str(n), update_key=f"u{n}", **kw,
        )  # fmt: skip
        self.last = msg
        return await self.bot.handle(msg)

    async def press(self, out: list[Outgoing], prefix: str) -> list[Outgoing]:
        data = next(
            b.data for m in out for row in m.buttons for b in row if b.data.startswith(prefix)
        )
        return await self.send(callback_data=data, callback_id=f"cb{next(self._ids)}")

    async def count(self, row) -> int:
        async with self.sessions() as session:
            return (await session.execute(select(func.count()).select_from(row))).scalar_one()


@pytest.fixture
async def resident(engine, clock, tmp_path):
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, EXAMPLE_COUNTY)
    return Resident(engine, clock, tmp_path)


async def test_resident_reports_with_an_album_and_gets_a_case_number(resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    out = await resident.send(text="📝 我要说事")
    assert "类别" in out[0].text and len(out[0].buttons) >= 4
    out = await resident.press(out, "cat:")
    assert "描述" in out[0].text
    out = await resident.send(text="东门路口井盖破损 <b>很危险</b>")
    done = out
    out = await resident.send(photos=(PhotoRef("red", size=100),), media_group_id="g1")
    assert len(out) == 1 and "1 张" in out[0].text
    assert await resident.send(photos=(PhotoRef("blue", size=100),), media_group_id="g1") == []
    out = await resident.press(done, "ph:")
    assert out[0].request_location
    out = await resident.send(location=Location(37.22, 115.03))
    assert out[0].request_contact
    out = await resident.press(out, "ct:")  # first button: no phone
    assert "&lt;b&gt;很危险&lt;/b&gt;" in out[0].text  # user text escaped for HTML mode
    assert "2 张" in out[0].text
    out = await resident.press(out, "cf:")  # first button: submit
    assert "JL-20261123-0001" in out[0].text
    async with resident.sessions() as session:
        case = (await session.execute(select(CaseRow))).scalar_one()
        photos = (
            await session.execute(select(func.count()).select_from(CaseAttachmentRow))
        ).scalar()
    assert (case.state, case.latitude, case.anonymous, photos) == ("screening", 37.22, False, 2)
    assert await resident.count(ConversationRow) == 0  # the draft is gone with the submit


async def test_a_repeated_update_is_processed_once(resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    before = await resident.count(OutboxRow)
    assert await resident.bot.handle(resident.last) == []
    assert await resident.count(OutboxRow) == before


async def test_restart_in_the_middle_of_a_report_continues(resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    out = await resident.send(text="📝 我要说事")
    await resident.press(out, "cat:")
    resident.restart()
    out = await resident.send(text="路灯不亮")
    assert said("ask_photos", limit=9) in out[0].text


async def test_bad_input_keeps_the_draft(resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    old = await resident.send(text="📝 我要说事")
    out = await resident.press(old, "cat:")
    out = await resident.send(unsupported="sticker")
    assert "表情" in out[0].text and "描述问题" in out[0].text
    out = await resident.send(text="/start")
    assert said("report_in_progress", step="description") in out[0].text
    out = await resident.press(old, "cat:")  # a category button again, at the description step
    assert said("ask_description_again") in out[0].text
    out = await resident.send(text="/frobnicate")
    assert said("ask_description_again") in out[0].text
    out = await resident.send(text="垃圾堆放")
    assert said("ask_photos", limit=9) in out[0].text


async def test_cancel_and_stale_buttons(resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    old = await resident.send(text="📝 我要说事")
    out = await resident.send(text="/cancel")
    assert said("cancelled") in out[0].text
    out = await resident.press(old, "cat:")
    assert said("stale_button") in out[0].text
    out = await resident.send(text="/cancel")
    assert said("nothing_to_cancel") in out[0].text
    assert await resident.count(CaseRow) == 0


async def test_picking_the_grid_without_a_qr_code(resident: Resident):
    out = await resident.send(text="/start")
    assert out[0].request_location and "乡镇" in out[1].text
    out = await resident.press(out, "tw:")
    out = await resident.press(out, "vl:")
    out = await resident.press(out, "gd:")
    assert "已登记" in out[0].text
    out = await resident.send(text="/my")
    assert said("no_cases") in out[0].text


async def test_one_key_help_raises_an_emergency_case_after_one_confirmation(resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    confirm = await resident.send(text="🆘 一键呼叫")
    assert "紧急" in confirm[0].text
    out = await resident.press(confirm, "sos:")
    assert "JL-20261123-0001" in out[0].text
    async with resident.sessions() as session:
        case = (await session.execute(select(CaseRow))).scalar_one()
    assert case.deadline_class == "emergency" and "李秀兰" in case.description
    assert (case.due_at - case.created_at).total_seconds() == 2 * 3600
    out = await resident.press(confirm, "sos:")  # the old confirmation again
    assert "过期" in out[0].text and await resident.count(CaseRow) == 1


async def test_edit_an_answer_from_the_summary_then_follow_the_case(resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    out = await resident.send(text="📝 我要说事")
    out = await resident.press(out, "cat:")
    await resident.send(text="路灯不亮")
    out = await resident.send(text="完成")  # the keyboard text works like the button
    out = await resident.send(text="东门路口")
    summary = await resident.send(text="不留电话")
    assert "路灯不亮" in summary[0].text and "东门路口" in summary[0].text
    buttons = [b.data for row in summary[0].buttons for b in row]
    out = await resident.send(callback_data=buttons[1], callback_id="e1")  # ✏️ edit
    edit = next(b.data for row in out[0].buttons for b in row if b.data.endswith(":description"))
    out = await resident.send(callback_data=edit, callback_id="e2")
    assert "描述" in out[0].text
    out = await resident.send(text="路灯整晚不亮，已经三天")
    assert "核对" in out[0].text and "已经三天" in out[0].text  # straight back to the summary
    out = await resident.press(out, "cf:")
    number = out[0].text.split("<b>")[1].split("</b>")[0]
    out = await resident.send(text="/my")
    assert out[0].buttons[0][0].data == f"my:{number}"
    out = await resident.press(out, "my:")
    assert number in out[0].text and "上报" in out[0].text


async def test_a_shared_location_finds_the_nearest_grid(resident: Resident):
    out = await resident.send(text="/start")
    out = await resident.send(location=Location(10.0, 10.0))  # far from every grid
    assert "3 公里" in out[0].text
    out = await resident.send(location=Location(37.3052, 114.9512))  # by Xiguocheng grid 2
    assert "西郭城村第二网格" in out[0].text
    async with resident.sessions() as session:
        from storage.rows import AreaRow, RoleAssignmentRow

        grid = (
            await session.execute(
                select(AreaRow.code)
                .join(RoleAssignmentRow, RoleAssignmentRow.area_id == AreaRow.id)
                .where(RoleAssignmentRow.role == "resident")
                .order_by(RoleAssignmentRow.id.desc())
            )
        ).first()
    assert grid[0] == "JL-XGC-01-G2"


async def test_an_unexpected_failure_is_answered_and_writes_nothing(resident: Resident):
    await resident.send(text="/start JL-XGC-01-G1")
    out = await resident.send(text="📝 我要说事")
    await resident.press(out, "cat:")
    calls = []

    async def explode(turn):
        calls.append(1)
        turn.conv.step = "broken"
        raise RuntimeError("disk on fire")

    resident.bot.routes = [explode, *ALL_ROUTES]
    before = await resident.count(OutboxRow)
    out = await resident.send(text="路灯不亮")
    assert "没有保存" in out[0].text and calls == [1]
    assert await resident.count(OutboxRow) == before + 1  # only the apology
    resident.bot.routes = ALL_ROUTES
    out = await resident.send(text="路灯不亮")
    assert said("ask_photos", limit=9) in out[0].text  # the draft was still at the description step


async def test_a_raced_turn_is_run_again(resident: Resident):
    from workflow.errors import ConcurrentUpdate

    raced = []

    async def race_once(turn):
        if not raced:
            raced.append(1)
            raise ConcurrentUpdate("conversation_changed", "raced")
        return False

    resident.bot.routes = [race_once, *ALL_ROUTES]
    out = await resident.send(text="/start JL-XGC-01-G1")
    assert len(out) == 1 and "已登记" in out[0].text
