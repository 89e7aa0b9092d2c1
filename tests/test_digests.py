"""Morning digests and the weekly analysis go out once per unit and period, on working days."""

from __future__ import annotations

import asyncio
import logging
from datetime import date, datetime, time

import pytest
from sqlalchemy import select, update

from handlers.digests import Digests, previous_workday, weekly_send_day
from handlers.weekly import MAX_MESSAGE, message_length
from storage.channel import SqlChannelStore
from storage.invites import create_invite
from storage.rows import DigestRunRow, OutboxRow, PersonRow
from storage.uow import SqlUnitOfWork, UnitOfWorkFactory
from storage.wecom import WeComStore
from tests.support.weeks import KnownWeek, at
from workflow.clock import SHANGHAI
from workflow.commands import ValidateCase
from workflow.deadlines import WorkCalendar
from workflow.ports import UnitDigest, UnitRef

TUESDAY_MORNING = at(24, 8, 30)


async def bind(week: KnownWeek, chat_id: str, purpose: str, **unit: str) -> None:
    async with week.sessions() as session:
        invite = await create_invite(session, purpose="bind_chat", chat_purpose=purpose,
                                     now=week.clock.now(), **unit)  # fmt: skip
        await SqlChannelStore(session).redeem_invite(
            invite.code, "telegram", "1", "someone", chat_id, week.clock.now()
        )
        await session.commit()


async def enrol(week: KnownWeek, code: str, chat_id: str, language: str = "zh_CN") -> None:
    async with week.sessions() as session:
        invite = await create_invite(session, purpose="enrol", person_code=code,
                                     now=week.clock.now())  # fmt: skip
        store = SqlChannelStore(session)
        await store.redeem_invite(invite.code, "telegram", chat_id, code, chat_id,
                                  week.clock.now())  # fmt: skip
        await session.execute(
            update(PersonRow).where(PersonRow.code == code).values(language=language)
        )
        await session.commit()


@pytest.fixture
async def county(engine, clock) -> KnownWeek:
    """The known week's organisation with chats: some units have a group, some people, some none.

    housing: group -100 · municipal: its handler privately (7101, English) · water, civil
    affairs, health, public security: nobody · 西郭城镇: its operator privately (7002) ·
    城关街道: group -300 · leaders: group -900.
    """
    week = KnownWeek(engine, clock)
    await week.setup()
    await bind(week, "-100", "department", department_code="housing")
    await enrol(week, "P-H-01", "7101", "en")
    await enrol(week, "P-T-01", "7002")
    await bind(week, "-300", "township", area_code="JL-CG")
    return week


async def sent(week: KnownWeek, purpose: str = "digest") -> dict[str, str]:
    """chat id -> text of the queued messages for that purpose."""
    async with week.sessions() as session:
        rows = (await session.execute(select(OutboxRow).order_by(OutboxRow.id))).scalars().all()
    out = {r.chat_id: r.payload["text"] for r in rows if r.payload.get("purpose") == purpose}
    assert len(out) == len([r for r in rows if r.payload.get("purpose") == purpose])  # one each
    return out


async def runs(week: KnownWeek) -> set[tuple[str, str, str]]:
    async with week.sessions() as session:
        rows = await session.execute(
            select(DigestRunRow.kind, DigestRunRow.target, DigestRunRow.period)
        )
        return set(rows.all())


async def test_morning_digest_contents_once_across_two_processes(county: KnownWeek):
    week = county
    await week.build(until=TUESDAY_MORNING)
    n = week.n
    first, second = Digests(), Digests()
    other_process = UnitOfWorkFactory(week.sessions, week.clock)
    assert await first.run_due(week.uow, at(24, 8, 29)) == 0  # not yet
    counts = await asyncio.gather(
        first.run_due(week.uow, TUESDAY_MORNING), second.run_due(other_process, TUESDAY_MORNING)
    )
    assert sum(counts) == 4
    texts = await sent(week)
    assert set(texts) == {"-100", "7101", "7002", "-300"}  # water & civil affairs: nobody to tell

    assert texts["7101"] == (
        "<b>📋 Morning digest · Urban Management Bureau</b>\n"
        "Tuesday 2026-11-24\n\n"
        f"🆕 New <b>2</b>: {n['B']}, {n['H']}\n"
        f"⏰ Due today <b>1</b>: {n['H']}\n"  # acceptance (1 working day) runs out tonight
        "⚠️ Overdue <b>0</b>\n"
        f"📥 Waiting for acceptance <b>1</b>: {n['H']}"
    )
    assert texts["-100"] == (  # C and Z were assigned to housing too, but it returned them
        "<b>📋 每日早报 · 住房和城乡建设局</b>\n"
        "2026-11-24 周二\n\n"
        f"🆕 新到 <b>1</b> 件：{n['A']}\n"
        "⏰ 今日到期 <b>0</b> 件\n"
        "⚠️ 已超期 <b>0</b> 件\n"
        "📥 待签收 <b>0</b> 件"
    )
    assert f"🆕 新到 <b>5</b> 件：{n['Z']}、{n['A']}、{n['B']}、{n['C']}、{n['H']}" in texts["7002"]
    assert "📥 待受理 <b>0</b> 件" in texts["7002"]
    assert f"🆕 新到 <b>2</b> 件：{n['D']}、{n['E']}\n" in texts["-300"]

    targets = {t for kind, t, period in await runs(week) if period == "2026-11-24"}
    assert len(targets) == 8  # every department and township, sent or not
    for again in (first, second, Digests()):  # later sweeps, a restarted process
        assert await again.run_due(other_process, at(24, 16)) == 0
    assert len(await sent(week)) == 4


async def test_a_unit_whose_only_group_is_a_wecom_app_chat_is_told_there_and_privately(
    county: KnownWeek,
):
    """A WeCom app group chat shows text only (handlers/units.py NOTICE_ONLY_GROUPS), so the
    unit's people get their cards in their own chats too; its digest goes the same way: to
    the app chat and to the handler's own chat (7101), in his language."""
    week = county
    store = WeComStore(week.sessions, "wecom:ww1:1000002")
    municipal = await store.unit("municipal")
    assert municipal is not None
    app_chat = f"appchat:{municipal.chatid}"
    assert await store.bind(municipal, app_chat, week.clock.now())
    await week.build(until=TUESDAY_MORNING)
    await Digests().run_due(week.uow, TUESDAY_MORNING)
    texts = await sent(week)
    assert texts[app_chat].startswith("<b>📋 每日早报 · 城市管理局</b>")
    assert texts["7101"].startswith("<b>📋 Morning digest · Urban Management Bureau</b>")


async def test_overdue_and_waiting_lists_a_day_later(county: KnownWeek):
    week = county
    await week.build(until=at(25, 8, 30))
    await enrol(week, "P-H-03", "7103")  # water's handler now reads its digest
    await Digests().run_due(week.uow, at(25, 8, 30))
    text = (await sent(week))["7103"]
    z = week.n["Z"]
    assert f"⚠️ 已超期 <b>1</b> 件：{z}" in text and f"📥 待签收 <b>1</b> 件：{z}" in text
    assert "🆕 新到 <b>0</b> 件" in text  # Tuesday brought water nothing new


async def test_no_digest_on_weekends_and_holidays_but_on_make_up_days(county: KnownWeek):
    week = county
    digests = Digests()
    for day in (date(2026, 10, 1), date(2026, 11, 28), date(2026, 11, 29)):  # 国庆, Sat, Sun
        assert await digests.run_due(week.uow, datetime.combine(day, time(9), SHANGHAI)) == 0
    assert await runs(week) == set()
    # Saturday 10 October 2026 is a working day (调休): the township hears of what waits.
    week.clock.set(datetime(2026, 10, 10, 8, 0, tzinfo=SHANGHAI))
    await week.submit("K", "P-R-01", "JL-XGC-01-G1", "safety")
    await week.do(ValidateCase, "K", "P-L-01")
    assert await digests.run_due(week.uow, datetime(2026, 10, 10, 9, 0, tzinfo=SHANGHAI)) == 1
    text = (await sent(week))["7002"]
    assert "2026-10-10 周六" in text and f"📥 待受理 <b>1</b> 件：{week.n['K']}" in text
    async with week.uow() as uow:
        calendar = await uow.calendar.load()
    assert previous_workday(calendar, date(2026, 10, 8)) == date(2026, 9, 30)  # across 国庆


async def test_a_missed_digest_is_sent_later_that_day_never_for_past_days(county: KnownWeek):
    week = county
    await week.build(until=TUESDAY_MORNING)
    digests = Digests()
    # Down at 08:30; back at 14:00 the same day: today's digests still go out.
    assert await digests.run_due(week.uow, at(24, 14)) == 4
    # Down all Wednesday morning: Thursday's digest goes out, Wednesday's is not made up.
    fresh = Digests()
    assert await fresh.run_due(week.uow, at(26, 7)) == 0
    await fresh.run_due(week.uow, at(26, 10))
    periods = {period for _, _, period in await runs(week)}
    assert periods == {"2026-11-24", "2026-11-26"}


async def test_one_failing_unit_does_not_stop_the_others(county: KnownWeek, caplog):
    week = county
    await week.build(until=TUESDAY_MORNING)
    broken = {"on": True}

    class FlakyUnitOfWork(SqlUnitOfWork):
        """Reading housing's lists fails while `broken` is on."""

        async def __aenter__(self) -> FlakyUnitOfWork:
            await super().__aenter__()
            read = self.reports.unit_digest

            async def unit_digest(unit, window, now):
                if broken["on"] and unit.code == "housing":
                    raise RuntimeError("database hiccup")
                return await read(unit, window, now)

            self.reports.unit_digest = unit_digest  # type: ignore[method-assign]
            return self

    def factory() -> FlakyUnitOfWork:
        return FlakyUnitOfWork(week.sessions, week.clock)

    digests = Digests()
    with caplog.at_level(logging.ERROR):
        assert await digests.run_due(factory, TUESDAY_MORNING) == 3
    assert "department:" in caplog.text and "database hiccup" in caplog.text
    assert "-100" not in await sent(week)
    broken["on"] = False
    assert await digests.run_due(factory, at(24, 8, 31)) == 1  # retried at the next sweep
    assert "-100" in await sent(week)


def test_a_huge_digest_still_fits_one_message():
    unit = UnitRef("department", 1, "x", "很长的部门名称" * 20, "A very long name " * 10)
    numbers = tuple(f"JL-20261124-{i:04d}" for i in range(2000))
    digest = UnitDigest(unit, new=numbers, due_today=numbers, overdue=numbers, waiting=numbers)
    for locale in ("zh_CN", "en"):
        text = Digests().morning_text(digest, date(2026, 11, 24), locale)
        assert message_length(text) <= MAX_MESSAGE
        assert "2000" in text and numbers[9] in text and numbers[10] not in text
    assert message_length("📋") == 2  # Telegram counts UTF-16 code units


async def test_weekly_analysis_to_the_leaders_once(county: KnownWeek):
    week = county
    await week.build()
    await bind(week, "-900", "leaders")
    await bind(week, "-800", "supervisors")
    digests = Digests(default_locale="en", weekly_url="https://gov.example/dashboard/weekly")
    await digests.run_due(week.uow, at(30, 8, 59))  # the morning digests only
    assert await sent(week, "weekly") == {}
    await digests.run_due(week.uow, at(30, 9))
    texts = await sent(week, "weekly")
    assert list(texts) == ["-900"]  # the leaders' chat, not the supervisors'
    text = texts["-900"]
    assert text.startswith("<b>📊 Weekly analysis · 2026-W48</b> (23 Nov – 29 Nov 2026)")
    assert "Urban Management Bureau: 2 cases | reply 50.0% | closed 50.0%" in text
    assert '<a href="https://gov.example/dashboard/weekly">' in text
    assert await Digests().run_due(week.uow, at(30, 15)) == 0  # another process, later
    assert await digests.run_due(week.uow, at(30, 9, 5)) == 0  # the next sweep
    assert ("weekly", "county", "2026-W48") in await runs(week)


async def test_weekly_falls_back_to_supervisors_and_waits_for_a_chat(county: KnownWeek, caplog):
    week = county
    week.clock.set(at(30, 9))
    digests = Digests(weekly_day=0, weekly_at=time(9, 0))
    with caplog.at_level(logging.WARNING):
        await digests.run_due(week.uow, at(30, 9))
        await digests.run_due(week.uow, at(30, 9, 1))
    assert caplog.text.count("weekly analysis 2026-W48 not sent") == 1
    assert ("weekly", "county", "2026-W48") not in await runs(week)
    await bind(week, "-800", "supervisors")
    await digests.run_due(week.uow, at(30, 10))
    assert list(await sent(week, "weekly")) == ["-800"]
    tuesday = Digests(weekly_day=1)
    await tuesday.run_due(week.uow, at(30, 11))  # Monday is not its day
    assert len(await sent(week, "weekly")) == 1


def test_weekly_day_is_checked():
    with pytest.raises(ValueError):
        Digests(weekly_day=7)


async def test_a_case_arriving_after_the_digest_is_tomorrows_news(county: KnownWeek):
    week = county
    await week.build(until=TUESDAY_MORNING)
    digests = Digests()
    await digests.run_due(week.uow, TUESDAY_MORNING)
    week.clock.set(at(24, 9))
    await week.submit("L", "P-R-01", "JL-XGC-01-G2", "safety")
    await week.do(ValidateCase, "L", "P-L-01")
    assert await digests.run_due(week.uow, at(24, 9, 30)) == 0  # no second digest today
    assert week.n["L"] not in (await sent(week))["7002"]
    await Digests().run_due(week.uow, at(25, 8, 30))
    async with week.sessions() as session:
        rows = (await session.execute(select(OutboxRow).where(OutboxRow.chat_id == "7002")
                                      .order_by(OutboxRow.id))).scalars().all()  # fmt: skip
    wednesday = [r.payload["text"] for r in rows if r.payload.get("purpose") == "digest"][-1]
    assert f"🆕 新到 <b>1</b> 件：{week.n['L']}" in wednesday
    assert f"📥 待受理 <b>1</b> 件：{week.n['L']}" in wednesday


def test_the_weekly_analysis_waits_for_the_first_working_day_of_a_holiday_week():
    calendar = WorkCalendar()
    calendar.load_year(
        2026,
        holidays=[date(2026, 5, d) for d in range(1, 6)] + [date(2026, 10, d) for d in range(1, 8)],
        workdays=[date(2026, 5, 9), date(2026, 10, 10)],
    )
    assert weekly_send_day(calendar, date(2026, 5, 4), 0) == date(2026, 5, 6)  # Wednesday
    assert weekly_send_day(calendar, date(2026, 5, 7), 0) == date(2026, 5, 6)
    assert weekly_send_day(calendar, date(2026, 10, 5), 0) == date(2026, 10, 8)  # Thursday
    assert weekly_send_day(calendar, date(2026, 11, 30), 0) == date(2026, 11, 30)  # a plain Monday
    assert weekly_send_day(calendar, date(2026, 10, 5), 2) == date(2026, 10, 8)  # from Wednesday on
    all_off = WorkCalendar()
    all_off.load_year(2026, holidays=[date(2026, 2, d) for d in range(16, 23)], workdays=[])
    assert weekly_send_day(all_off, date(2026, 2, 18), 0) == date(2026, 2, 16)  # never skipped


async def test_weekly_analysis_on_a_holiday_monday_goes_out_on_wednesday(county: KnownWeek):
    week = county
    await week.build()
    await bind(week, "-900", "leaders")
    digests = Digests(default_locale="en")

    def may(day: int, hour: int) -> datetime:
        return datetime(2026, 5, day, hour, tzinfo=SHANGHAI)

    week.clock.set(may(4, 9))
    await digests.run_due(week.uow, may(4, 9))  # Labour Day holiday: Monday 05-04
    await digests.run_due(week.uow, may(5, 9))  # and Tuesday
    assert await sent(week, "weekly") == {}
    week.clock.set(may(6, 9))
    await digests.run_due(week.uow, may(6, 9))  # the first working day of the week
    assert list(await sent(week, "weekly")) == ["-900"]
    assert ("weekly", "county", "2026-W18") in await runs(week)
    await Digests().run_due(week.uow, may(7, 9))  # a fresh process on Thursday sends nothing more
    assert len(await sent(week, "weekly")) == 1
