"""Reminders, supervision and auto-close: every threshold once, restarts repeat nothing."""

from __future__ import annotations

from datetime import date, datetime, timedelta

import pytest
from sqlalchemy import select, update

from handlers.reminders import ReminderNotifier
from handlers.render import Renderer
from storage.calendar import Schedule, store_schedule
from storage.channel import SqlChannelStore
from storage.invites import create_invite
from storage.rows import CaseReminderRow, CaseRow, OutboxRow
from workflow.clock import SHANGHAI
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AssignCase,
    PassUp,
    RateCase,
    ResolveCase,
    SubmitCase,
    ValidateCase,
)
from workflow.deadlines import Limit, WorkCalendar
from workflow.model import Case, DeadlineClass, Rating, Role, State
from workflow.policy import WorkflowPolicy
from workflow.reminders import due_and_next, thresholds, to_send
from workflow.sweep import Sweeper


def at(text: str) -> datetime:
    return datetime.fromisoformat(text).replace(tzinfo=SHANGHAI)


def a_case(state: State, entered: str, stage_due: str, cls=DeadlineClass.GENERAL) -> Case:
    return Case(
        number="JL-1", state=state, category_id=1, deadline_class=cls, grid_id=1, village_id=1,
        township_id=1, reporter_id=1, reporter_role=Role.RESIDENT, description="x",
        created_at=at(entered), stage_entered_at=at(entered), stage_due_at=at(stage_due),
        due_at=at(stage_due),
    )  # fmt: skip


def names(found) -> list[tuple[str, str]]:
    return [(t.name, t.at.astimezone(SHANGHAI).strftime("%a %H:%M")) for t in found]


# ---- the thresholds themselves (pure) ----


def test_working_day_stage_thresholds():
    case = a_case(State.ASSIGNED, "2026-11-23T10:00", "2026-11-24T23:59:59")
    found = thresholds(case, WorkflowPolicy(), WorkCalendar(), until=at("2026-11-27T12:00"))
    assert names(found) == [
        ("before", "Tue 09:00"),  # one working day before: the morning of the last working day
        ("at", "Tue 23:59"),
        ("supervise:1", "Tue 23:59"),
        ("supervise:2", "Wed 09:00"),  # the superior unit one working day later
        ("overdue:1", "Wed 09:00"),
        ("overdue:2", "Thu 09:00"),
        ("overdue:3", "Fri 09:00"),
        ("overdue:4", "Mon 09:00"),  # the weekend is skipped; also the next one to come
    ]


def test_emergency_reminds_30_minutes_before_and_skips_a_lead_longer_than_the_stage():
    resolving = a_case(State.IN_PROGRESS, "2026-11-23T09:20", "2026-11-23T11:00",
                       DeadlineClass.EMERGENCY)  # fmt: skip
    found = thresholds(resolving, WorkflowPolicy(), WorkCalendar(), until=at("2026-11-23T12:05"))
    assert names(found)[:4] == [
        ("before", "Mon 10:30"), ("at", "Mon 11:00"), ("supervise:1", "Mon 11:00"),
        ("supervise:2", "Mon 12:00"),  # emergency: the second level after one hour
    ]  # fmt: skip
    screening = a_case(State.SCREENING, "2026-11-23T09:00", "2026-11-23T09:15",
                       DeadlineClass.EMERGENCY)  # fmt: skip
    first = thresholds(screening, WorkflowPolicy(), WorkCalendar(), until=at("2026-11-23T09:00"))
    assert names(first) == [("at", "Mon 09:15")]  # "30 minutes before" a 15-minute stage: none


def test_after_downtime_the_holder_hears_only_the_latest_and_each_supervision_level():
    case = a_case(State.ASSIGNED, "2026-11-23T10:00", "2026-11-24T23:59:59")
    due, next_at = due_and_next(case, WorkflowPolicy(), WorkCalendar(), at("2026-11-26T10:00"))
    assert {t.name for t in due} == {
        "before", "at", "supervise:1", "supervise:2", "overdue:1", "overdue:2"
    }  # fmt: skip
    assert names(to_send(due)) == [
        ("supervise:1", "Tue 23:59"), ("supervise:2", "Wed 09:00"), ("overdue:2", "Thu 09:00")
    ]  # fmt: skip
    assert next_at == at("2026-11-27T09:00")


def test_a_holiday_moves_the_reminders():
    case = a_case(State.ASSIGNED, "2026-11-23T10:00", "2026-11-24T23:59:59")
    calendar = WorkCalendar()
    calendar.load_year(2026, holidays=[datetime(2026, 11, 25).date()], workdays=[])
    found = thresholds(case, WorkflowPolicy(), calendar, until=at("2026-11-27T00:00"))
    assert ("overdue:1", "Thu 09:00") in names(found)  # Wednesday is a holiday now


def test_resolved_cases_only_close():
    case = a_case(State.RESOLVED, "2026-11-23T10:00", "2026-11-26T10:00")
    assert names(thresholds(case, WorkflowPolicy(), WorkCalendar(), at("2026-12-01T00:00"))) == [
        ("close", "Thu 10:00")
    ]
    assert thresholds(a_case(State.CLOSED, "2026-11-23T10:00", "2026-11-26T10:00"),
                      WorkflowPolicy(), WorkCalendar(), at("2026-12-01T00:00")) == []  # fmt: skip


# ---- the sweep against the database ----


@pytest.fixture
async def town(world):
    """The notify world plus a supervisor in a private chat (7005)."""
    async with world["sessions"]() as session:
        store = SqlChannelStore(session)
        now = world["uow"].clock.now()
        invite = await create_invite(session, purpose="enrol", person_code="P-S-01", now=now)
        await store.redeem_invite(invite.code, "telegram", "7005", "韩冰", "7005", now)
        await session.commit()
    world["sweeper"] = Sweeper(world["wf"], ReminderNotifier())
    world["clock"] = world["uow"].clock
    return world


def person(w, code: str, role: Role) -> ActorRef:
    return ActorRef(w["people"][code], role)


async def assigned_case(w) -> str:
    """A safety case reported Monday 09:00 and assigned to housing at 10:00."""
    wf, uow = w["wf"], w["uow"]
    n = await wf.submit(uow(), SubmitCase(
        actor=ActorRef(w["resident"], Role.RESIDENT), grid_code="JL-XGC-01-G1",
        category_code="safety", description="井盖坏了"))  # fmt: skip
    await wf.handle(uow(), ValidateCase(case_number=n, actor=person(w, "P-L-01", Role.GRID_LEADER)))
    await wf.handle(uow(), PassUp(case_number=n, actor=person(w, "P-T-01", Role.TOWNSHIP_OPERATOR)))
    w["clock"].set(at("2026-11-23T10:00"))
    dispatcher = person(w, "P-C-01", Role.COUNTY_DISPATCHER)
    await wf.handle(uow(), AssignCase(case_number=n, department_code="housing", actor=dispatcher))
    return n


async def new_messages(w, since: int) -> list[OutboxRow]:
    async with w["sessions"]() as session:
        rows = await session.execute(select(OutboxRow).where(OutboxRow.id > since))
        return list(rows.scalars())


async def last_id(w) -> int:
    async with w["sessions"]() as session:
        rows = await session.execute(select(OutboxRow.id).order_by(OutboxRow.id.desc()).limit(1))
        return rows.scalar() or 0


async def records(w, number: str) -> list[tuple[str, bool]]:
    async with w["sessions"]() as session:
        case_id = (
            await session.execute(select(CaseRow.id).where(CaseRow.number == number))
        ).scalar()
        rows = await session.execute(
            select(CaseReminderRow.threshold, CaseReminderRow.sent)
            .where(CaseReminderRow.case_id == case_id)
            .order_by(CaseReminderRow.due_at, CaseReminderRow.id)
        )
        return [tuple(r) for r in rows.all()]


async def sweep_at(w, when: str) -> list[tuple[str, str]]:
    """Sweep at `when`; (chat, first line of text) of every message it queued."""
    w["clock"].set(at(when))
    before = await last_id(w)
    await w["sweeper"].sweep(w["uow"])
    return [(r.chat_id, r.payload["text"].splitlines()[0]) for r in await new_messages(w, before)]


async def test_each_threshold_fires_once_to_the_right_chat(town):
    n = await assigned_case(town)
    assert await sweep_at(town, "2026-11-24T08:59") == []
    sent = await sweep_at(town, "2026-11-24T09:00")
    assert sent == [("-100", "⏳ 本环节（待部门签收）将于 11-24 23:59 到期，请抓紧办理。")]
    assert await sweep_at(town, "2026-11-24T09:30") == []  # recorded: never again
    sent = await sweep_at(town, "2026-11-25T00:00")
    assert sorted(chat for chat, _ in sent) == ["-100", "7005"]  # holder + supervisors
    assert any(text.startswith("🚨 督办") for chat, text in sent if chat == "7005")
    sent = await sweep_at(town, "2026-11-25T09:00")
    # The superior of a department is the county center; the holder's first daily reminder.
    assert sorted(chat for chat, _ in sent) == ["-100", "7003"]
    assert "超期 1 个工作日" in dict(sent)["-100"]
    assert "二级" in dict(sent)["7003"]
    assert await sweep_at(town, "2026-11-25T18:00") == []
    assert [c for c, _ in await sweep_at(town, "2026-11-26T09:00")] == ["-100"]
    assert await records(town, n) == [
        ("before", True), ("at", True), ("supervise:1", True), ("supervise:2", True),
        ("overdue:1", True), ("overdue:2", True),
    ]  # fmt: skip


async def test_a_second_sweeper_and_a_restart_repeat_nothing(town):
    await assigned_case(town)
    town["clock"].set(at("2026-11-25T00:00"))
    other = Sweeper(town["wf"], ReminderNotifier())  # another process on the same database
    before = await last_id(town)
    first = await town["sweeper"].sweep(town["uow"])
    second = await other.sweep(town["uow"])
    assert (first.reminders, second.reminders) == (2, 0)
    assert len(await new_messages(town, before)) == 2
    restarted = Sweeper(town["wf"], ReminderNotifier())
    assert (await restarted.sweep(town["uow"])).reminders == 0


async def test_downtime_is_caught_up_once(town):
    n = await assigned_case(town)
    # Down from Monday to Thursday 10:00: one current reminder, both supervision levels.
    sent = await sweep_at(town, "2026-11-26T10:00")
    assert sorted(c for c, _ in sent) == ["-100", "7003", "7005"]
    assert "超期 2 个工作日" in dict(sent)["-100"]
    assert await records(town, n) == [
        ("before", False), ("at", False), ("supervise:1", True), ("supervise:2", True),
        ("overdue:1", False), ("overdue:2", True),
    ]  # fmt: skip
    assert await sweep_at(town, "2026-11-26T10:01") == []


async def test_the_sweep_reads_only_what_is_due(town):
    n = await assigned_case(town)
    async with town["sessions"]() as session:
        due = (
            await session.execute(select(CaseRow.next_reminder_at).where(CaseRow.number == n))
        ).scalar_one()
    assert due.astimezone(SHANGHAI) == at("2026-11-24T09:00")
    town["clock"].set(at("2026-11-24T08:00"))
    result = await town["sweeper"].sweep(town["uow"])
    assert result.cases == 0  # nothing due: no case even loaded


async def test_a_new_stage_starts_its_own_thresholds(town):
    n = await assigned_case(town)
    await sweep_at(town, "2026-11-25T00:00")  # acceptance overdue: holder + supervisors
    await town["wf"].handle(town["uow"](), AcceptCase(
        case_number=n, actor=person(town, "P-H-02", Role.DEPARTMENT_HANDLER)))  # fmt: skip
    # Resolution is due with the case (7 working days from Monday: Wednesday 12-02).
    assert await sweep_at(town, "2026-11-25T09:00") == []
    sent = await sweep_at(town, "2026-12-02T09:00")
    assert sent == [("-100", "⏳ 本环节（办理中）将于 12-02 23:59 到期，请抓紧办理。")]


async def test_calendar_change_moves_future_reminders(town):
    n = await assigned_case(town)
    async with town["sessions"]() as session:
        schedule = Schedule(2026, holidays={date(2026, 11, 24): "test"})
        await store_schedule(session, schedule, source="test", now=town["clock"].now())
        await session.commit()
    town["uow"].calendar_cache.invalidate()
    await town["wf"].recompute_deadlines(town["uow"]())
    # Tuesday is a holiday now: acceptance is due Wednesday night, the reminder that morning.
    assert await sweep_at(town, "2026-11-24T09:00") == []
    sent = await sweep_at(town, "2026-11-25T09:00")
    assert sent == [("-100", "⏳ 本环节（待部门签收）将于 11-25 23:59 到期，请抓紧办理。")]
    assert [t for t, _ in await records(town, n)] == ["before"]


async def test_unrated_cases_close_after_the_rating_window(town):
    n = await assigned_case(town)
    wf, uow = town["wf"], town["uow"]
    handler = person(town, "P-H-02", Role.DEPARTMENT_HANDLER)
    await wf.handle(uow(), AcceptCase(case_number=n, actor=handler))
    await wf.handle(uow(), ResolveCase(case_number=n, actor=handler, text="已更换"))
    town["clock"].advance(days=3)
    town["clock"].advance(seconds=-1)
    assert (await town["sweeper"].sweep(uow)).closed == 0
    town["clock"].advance(seconds=1)
    assert (await town["sweeper"].sweep(uow)).closed == 1
    async with uow() as u:
        assert (await u.cases.get(n)).state is State.CLOSED_UNRATED


async def test_rated_before_the_window_is_not_closed_twice(town):
    n = await assigned_case(town)
    wf, uow = town["wf"], town["uow"]
    handler = person(town, "P-H-02", Role.DEPARTMENT_HANDLER)
    await wf.handle(uow(), AcceptCase(case_number=n, actor=handler))
    await wf.handle(uow(), ResolveCase(case_number=n, actor=handler, text="已更换"))
    await wf.handle(uow(), RateCase(case_number=n, actor=ActorRef(town["resident"], Role.RESIDENT),
                                    rating=Rating.SATISFIED))  # fmt: skip
    town["clock"].advance(days=5)
    assert (await town["sweeper"].sweep(uow)).cases == 0


async def test_emergencies_page_township_and_county_at_intake(town):
    before = await last_id(town)
    n = await town["wf"].submit(town["uow"](), SubmitCase(
        actor=ActorRef(town["resident"], Role.RESIDENT), grid_code="JL-XGC-01-G1",
        category_code="emergency", description="燃气泄漏"))  # fmt: skip
    rows = await new_messages(town, before)
    by_chat = {r.chat_id: r.payload for r in rows}
    assert set(by_chat) == {"7001", "7002", "7003"}  # grid leader's card + two pages
    assert by_chat["7002"]["text"].startswith(f"🆘 紧急事项 <b>{n}</b>")
    assert by_chat["7003"]["buttons"] == []  # a page informs; the holder has the buttons
    assert by_chat["7001"]["buttons"]


async def test_many_cases_due_in_one_group_make_one_list(town):
    numbers = [await assigned_case(town) for _ in range(3)]
    sent = await sweep_at(town, "2026-11-24T09:00")
    assert len(sent) == 1 and sent[0][0] == "-100"
    rows = await new_messages(town, (await last_id(town)) - 1)
    assert all(number in rows[0].payload["text"] for number in numbers)


async def test_a_failing_case_does_not_stop_the_sweep(town, monkeypatch):
    good, bad = await assigned_case(town), await assigned_case(town)
    real = town["sweeper"]._record

    async def flaky(uow, case, due, now):
        if case.number == bad:
            raise RuntimeError("boom")
        return await real(uow, case, due, now)

    monkeypatch.setattr(town["sweeper"], "_record", flaky)
    town["clock"].set(at("2026-11-24T09:00"))
    result = await town["sweeper"].sweep(town["uow"])
    assert (result.reminders, result.errors) == (1, 1)
    assert [t for t, _ in await records(town, good)] == ["before"]
    assert await records(town, bad) == []
    async with town["sessions"]() as session:
        later = (
            await session.execute(select(CaseRow.next_reminder_at).where(CaseRow.number == bad))
        ).scalar_one()
    assert later > town["clock"].now()  # looked at again later, not in a tight loop


def test_policy_limits_are_configurable():
    from bot.config import load_settings

    settings = load_settings(
        None, workflow={"emergency": {"remind_before": "20m", "second_level_after": "2h"}}
    )
    rules = settings.workflow.policy().reminders[DeadlineClass.EMERGENCY]
    assert (rules.before, rules.second_level_after) == (Limit.parse("20m"), Limit.parse("2h"))
    assert timedelta(minutes=20) == timedelta(minutes=rules.before.amount)


async def test_a_supervisors_reply_is_recorded_and_forwarded_to_the_holder(town, tmp_path):
    from tests.support.chat import Bot

    n = await assigned_case(town)
    await sweep_at(town, "2026-11-25T00:00")
    async with town["sessions"]() as session:
        card = (
            (
                await session.execute(
                    select(OutboxRow).where(OutboxRow.chat_id == "7005").order_by(OutboxRow.id)
                )
            )
            .scalars()
            .first()
        )
        assert card.payload["purpose"] == "supervision"
        # The table's one action for a supervisor on an assigned case: an instruction.
        assert [b["data"] for row in card.payload["buttons"] for b in row] == [f"a:su:{n}"]
        # As the sender does on delivery: the card's message id now finds the case.
        await SqlChannelStore(session).link_message(
            "telegram", "7005", "900", n, "supervision", town["clock"].now()
        )
        await session.commit()
    bot = Bot(town, tmp_path)
    before = await last_id(town)
    out = await bot.send("7005", text="请今天内签收并联系群众", reply_to_message_id="900")
    assert out[0].text == f"✔️ 督办意见已记入 {n} 并转给承办单位。"
    forwarded = await new_messages(town, before)
    assert [r.chat_id for r in forwarded if r.payload["purpose"] == "instruction"] == ["-100"]
    assert "请今天内签收并联系群众" in forwarded[0].payload["text"]
    async with town["uow"]() as uow:
        history = await uow.cases.history(n)
    assert (history[-1].action.value, history[-1].comment) == (
        "supervise",
        "请今天内签收并联系群众",
    )
    # A photo alone is not an instruction.
    out = await bot.send("7005", reply_to_message_id="900", text="")
    assert "请用文字回复督办意见" in out[0].text
    # The card's button asks for the instruction, and records it the same way.
    await bot.press("7005", "a:su:")
    out = await bot.send("7005", text="明天上午前办结")
    assert out[0].text == f"✔️ 督办意见已记入 {n} 并转给承办单位。"
    async with town["uow"]() as uow:
        assert (await uow.cases.history(n))[-1].comment == "明天上午前办结"


async def test_a_due_case_without_a_stage_deadline_is_let_go_not_failed(town):
    """A look due on a stage with no deadline (none of its thresholds can pass) sends nothing,
    clears the look and is no error (it used to trip an assert and retry every 10 minutes)."""
    n = await assigned_case(town)
    town["clock"].set(at("2026-11-24T09:00"))
    async with town["sessions"]() as session:
        await session.execute(update(CaseRow).where(CaseRow.number == n).values(stage_due_at=None))
        await session.commit()
    result = await town["sweeper"].sweep(town["uow"])
    assert (result.cases, result.reminders, result.errors) == (1, 0, 0)
    assert await records(town, n) == []
    async with town["sessions"]() as session:
        later = (
            await session.execute(select(CaseRow.next_reminder_at).where(CaseRow.number == n))
        ).scalar_one()
    assert later is None


async def test_only_supervisors_are_told_to_reply_with_an_instruction(town):
    """The second-level card goes to the county center, whose reply would be a progress note
    (only supervisors give instructions): it must not ask for one; the supervisors' card does."""
    await assigned_case(town)
    town["clock"].set(at("2026-11-25T00:00"))
    before = await last_id(town)
    await town["sweeper"].sweep(town["uow"])
    town["clock"].set(at("2026-11-25T09:00"))
    await town["sweeper"].sweep(town["uow"])
    cards = {
        r.chat_id: r.payload["text"]
        for r in await new_messages(town, before)
        if r.payload["purpose"] == "supervision"
    }
    assert set(cards) == {"7005", "7003"}  # the supervisors, then the county center
    reply_line = (
        Renderer("zh_CN")
        .env.from_string(
            "{{ _(\"Reply to this message to give an instruction: it is recorded in the case's"
            ' timeline and forwarded to the unit holding it.") }}'
        )
        .render()
    )
    assert reply_line in cards["7005"]
    assert reply_line not in cards["7003"]
