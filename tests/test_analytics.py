"""The rates of docs/rates.md on a known week of cases, moved through the real workflow."""

from __future__ import annotations

from datetime import date, datetime

import pytest
from sqlalchemy import event

from storage import analytics
from storage.analytics import rankings
from tests.support.weeks import AS_OF, W48, KnownWeek, at
from workflow.commands import (
    RateCase,
    ResolveCase,
)
from workflow.ports import Period


@pytest.fixture
async def week(engine, clock) -> KnownWeek:
    w = KnownWeek(engine, clock)
    await w.setup()
    await w.build()
    return w


TABLES = ("cases", "case_transitions")


def fields(rates) -> tuple:
    names = ("cases", "replied", "resolved", "resolved_on_time", "overdue_open", "rated",
             "satisfied", "returned", "reopened")  # fmt: skip
    return tuple(getattr(rates, name) for name in names)


async def test_department_rates_on_the_known_week(week: KnownWeek):
    async with week.sessions() as session:
        rows = await analytics.unit_rates(session, "department", W48, as_of=AS_OF)
    by_code = {r.code: r for r in rows}
    assert [r.code for r in rows] == [
        "municipal",
        "housing",
        "water",
        "public_security",
        "civil_affairs",
        "health",
    ]  # every active department, in the order of the org file
    #                                cases repl res on-time overdue rated sat returned reopened
    assert fields(by_code["municipal"]) == (2, 1, 1, 1, 0, 1, 1, 0, 0)
    assert fields(by_code["housing"]) == (1, 1, 1, 1, 0, 1, 1, 2, 0)
    assert fields(by_code["water"]) == (1, 1, 0, 0, 0, 1, 0, 0, 1)
    assert fields(by_code["public_security"]) == (0,) * 9
    assert fields(by_code["civil_affairs"]) == (1, 1, 0, 0, 1, 0, 0, 0, 0)
    assert fields(by_code["health"]) == (1, 1, 1, 0, 0, 1, 1, 0, 0)

    m = by_code["municipal"]
    assert (m.reply_rate, m.closure_rate, m.on_time_rate, m.satisfaction_rate) == (
        0.5, 0.5, 1.0, 1.0)  # fmt: skip
    assert m.avg_hours_to_close == pytest.approx(48.0) and m.avg_days_to_close == pytest.approx(2)
    assert by_code["housing"].avg_hours_to_close == pytest.approx(25.0)
    assert by_code["health"].avg_hours_to_close == pytest.approx(3.0)
    water = by_code["water"]
    assert water.on_time_rate is None and water.satisfaction_rate == 0.0
    assert water.avg_hours_to_close is None
    civil = by_code["civil_affairs"]
    assert civil.on_time_rate == 0.0 and civil.satisfaction_rate is None
    idle = by_code["public_security"]
    assert (idle.reply_rate, idle.closure_rate, idle.on_time_rate, idle.satisfaction_rate,
            idle.avg_hours_to_close) == (None,) * 5  # fmt: skip


async def test_township_and_county_rates_on_the_known_week(week: KnownWeek):
    async with week.sessions() as session:
        rows = await analytics.unit_rates(session, "township", W48, as_of=AS_OF)
        county = await analytics.county_rates(session, W48, as_of=AS_OF)
    xgc, cg = rows
    assert (xgc.code, cg.code) == ("JL-XGC", "JL-CG") and xgc.kind == "township"
    assert fields(xgc) == (4, 3, 2, 2, 0, 3, 2, 2, 1)  # A B C H
    assert xgc.avg_hours_to_close == pytest.approx(36.5)
    assert fields(cg) == (3, 3, 2, 1, 1, 2, 2, 0, 0)  # D E I
    assert cg.on_time_rate == pytest.approx(1 / 3) and cg.avg_hours_to_close == pytest.approx(14)
    assert (county.kind, county.code, county.name_zh) == ("county", "JL", "巨鹿县")
    assert fields(county) == (7, 6, 4, 3, 1, 5, 4, 2, 1)
    assert county.avg_hours_to_close == pytest.approx(25.25)
    assert county.satisfaction_rate == pytest.approx(0.8)


async def test_overdue_is_judged_at_as_of(week: KnownWeek):
    async with week.sessions() as session:
        early = await analytics.unit_rates(
            session, "department", W48, as_of=at(25, 23), department_id=week.ids["civil_affairs"]
        )
    (civil,) = early
    assert civil.code == "civil_affairs"  # department_id also keeps only that row
    assert civil.overdue_open == 0 and civil.on_time_rate is None  # due 25 Nov 23:59:59


async def test_filters_narrow_the_cases(week: KnownWeek):
    async with week.sessions() as session:
        xgc = week.ids["JL-XGC"]
        in_xgc = await analytics.unit_rates(session, "department", W48, as_of=AS_OF,
                                            township_id=xgc)  # fmt: skip
        sanitation = await analytics.unit_rates(
            session, "township", W48, as_of=AS_OF, category_id=week.ids["sanitation"]
        )
        housing_by_town = await analytics.unit_rates(
            session, "township", W48, as_of=AS_OF, department_id=week.ids["housing"]
        )
        one_town = await analytics.unit_rates(session, "township", W48, as_of=AS_OF,
                                              township_id=xgc)  # fmt: skip
    assert {r.code: r.cases for r in in_xgc if r.cases} == {
        "municipal": 2, "housing": 1, "water": 1}  # fmt: skip
    assert [(r.code, r.cases, r.resolved) for r in sanitation] == [
        ("JL-XGC", 2, 1), ("JL-CG", 0, 0)]  # fmt: skip
    assert [(r.code, r.cases, r.returned) for r in housing_by_town] == [
        ("JL-XGC", 1, 2), ("JL-CG", 0, 0)]  # fmt: skip
    assert [r.code for r in one_town] == ["JL-XGC"]


async def test_period_bounds_are_half_open(week: KnownWeek):
    async with week.sessions() as session:
        w47 = await analytics.county_rates(session, Period.week_of(date(2026, 11, 22)),
                                           as_of=AS_OF)  # fmt: skip
        w49 = await analytics.county_rates(session, Period.week_of(date(2026, 11, 30)),
                                           as_of=AS_OF)  # fmt: skip
    assert (w47.cases, w47.replied, w47.returned) == (1, 0, 0)  # Z: waiting for water
    assert w49.cases == 1  # Y, reported at 00:00:00 on the Monday
    assert W48.iso_week == "2026-W48"
    with pytest.raises(ValueError):
        Period(AS_OF, AS_OF)
    with pytest.raises(ValueError):
        Period(datetime(2026, 11, 23), AS_OF)  # naive
    with pytest.raises(ValueError):
        await analytics.unit_rates(None, "village", W48)  # type: ignore[arg-type]


async def test_top_lists_and_setbacks(week: KnownWeek):
    async with week.sessions() as session:
        categories = await analytics.top_categories(session, W48, limit=5)
        grids = await analytics.top_grids(session, W48, limit=3)
        events = await analytics.setbacks(session, W48)
    assert [(c.code, c.cases) for c in categories] == [
        ("safety", 2),
        ("sanitation", 2),
        ("livelihood", 1),
        ("piling", 1),
        ("emergency", 1),
    ]
    assert [(g.code, g.cases, g.parent_zh) for g in grids] == [
        ("JL-XGC-01-G1", 2, "西郭城镇"), ("JL-XGC-01-G2", 2, "西郭城镇"),
        ("JL-CG-01-G1", 2, "城关街道"),
    ]  # fmt: skip
    assert [(e.number, e.event, e.department_en, e.comment) for e in events] == [
        (week.n["C"], "returned", "Housing and Urban-Rural Development Bureau", "水库护网归水利局"),
        (week.n["Z"], "returned", "Housing and Urban-Rural Development Bureau", "不属于本部门"),
        (week.n["C"], "reopened", "Water Resources Bureau", "护网还是破的"),
    ]
    assert events[-1].at == at(25, 10, 30)


async def test_a_second_rejection_is_an_escalation(week: KnownWeek):
    week.clock.set(at(26, 9))
    await week.do(ResolveCase, "C", "P-H-03", text="护网已全部更换")
    await week.do(RateCase, "C", "P-R-01", rating="dissatisfied")
    async with week.sessions() as session:
        events = await analytics.setbacks(session, W48)
        (water,) = await analytics.unit_rates(session, "department", W48, as_of=AS_OF,
                                              department_id=week.ids["water"])  # fmt: skip
    assert [e.event for e in events][-2:] == ["reopened", "escalated"]
    assert water.reopened == 2 and water.resolved == 0  # under supervision: not resolved


async def test_morning_lists_of_a_unit(week: KnownWeek):
    async with week.sessions() as session:
        units = {u.code: u for u in await analytics.units(session, "department")}
        window = Period(at(23, 8, 30), at(24, 8, 30))
        water = await analytics.unit_digest(session, units["water"], window, at(24, 8, 30))
        later = await analytics.unit_digest(session, units["water"], window, at(25, 8, 30))
    assert water.new == (week.n["C"], week.n["Z"])  # both assigned to water on Monday
    assert water.waiting == (week.n["Z"],) and water.due_today == (week.n["Z"],)
    assert water.overdue == () and not water.is_empty
    assert later.overdue == (week.n["Z"],) and later.due_today == ()  # acceptance ran out


async def test_rates_read_through_indexes_not_whole_tables(week: KnownWeek, engine):
    """Every statement the rates run is bounded by an index on SQLite (EXPLAIN QUERY PLAN)."""
    if engine.dialect.name != "sqlite":
        pytest.skip("query plans are checked on SQLite")
    statements: list[tuple[str, object]] = []

    def remember(conn, cursor, statement, parameters, context, executemany) -> None:
        if statement.lstrip().upper().startswith("SELECT"):
            statements.append((statement, parameters))

    event.listen(engine.sync_engine, "before_cursor_execute", remember)
    try:
        async with week.sessions() as session:
            await analytics.unit_rates(session, "department", W48, as_of=AS_OF)
            await analytics.unit_rates(session, "township", W48, as_of=AS_OF,
                                       category_id=week.ids["safety"])  # fmt: skip
            for town in ("JL-XGC", "JL-CG"):
                await analytics.unit_rates(session, "department", W48, as_of=AS_OF,
                                           township_id=week.ids[town])  # fmt: skip
            await analytics.unit_rates(session, "township", W48, as_of=AS_OF,
                                       department_id=week.ids["housing"])  # fmt: skip
            await analytics.county_rates(session, W48, as_of=AS_OF)
            await analytics.top_categories(session, W48)
            await analytics.top_grids(session, W48)
            for kind in ("township", "department"):
                for unit in await analytics.units(session, kind):
                    await analytics.unit_digest(session, unit, W48, AS_OF)
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", remember)
    plans = []
    async with engine.connect() as conn:
        for statement, parameters in statements:
            if "FROM cases" not in statement and "case_transitions" not in statement:
                continue
            rows = await conn.exec_driver_sql(f"EXPLAIN QUERY PLAN {statement}", parameters)
            plans.append((statement, [r[-1] for r in rows]))
    assert len(plans) >= 8
    # Each read of cases or transitions goes in by the period (created_at, at), by open states
    # (state=), or by keys found that way (rowid=, case_id=): never a unit's whole history.
    bounded = ("created_at>", "at>", "state=", "rowid=", "case_id=")
    for statement, plan in plans:
        for line in plan:
            if line.startswith(("SCAN", "SEARCH")) and line.split()[1] in TABLES:
                ok = line.startswith("SEARCH") and any(b in line for b in bounded)
                assert ok, (statement, plan)


async def test_setbacks_read_assignments_in_chunks(week: KnownWeek, monkeypatch):
    async with week.sessions() as session:
        whole = await analytics.setbacks(session, W48)
        monkeypatch.setattr(rankings, "_IN_CHUNK", 1)
        chunked = await analytics.setbacks(session, W48)
    assert chunked == whole and len(whole) == 3
