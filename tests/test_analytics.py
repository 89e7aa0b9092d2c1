"""The rates of docs/rates.md on a known week of cases, moved through the real workflow."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime

import pytest
from sqlalchemy import event, select

from storage import analytics
from storage.analytics import rankings
from storage.calendar import seed_calendar
from storage.db import session_factory
from storage.org_file import load_org_file
from storage.rows import AreaRow, CategoryRow, DepartmentRow, PersonRow
from storage.uow import UnitOfWorkFactory
from tests.conftest import EXAMPLE_COUNTY
from workflow.clock import SHANGHAI
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AssignCase,
    HandleLocally,
    MarkDuplicate,
    PassUp,
    RateCase,
    RejectCase,
    ResolveCase,
    ReturnCase,
    SubmitCase,
    ValidateCase,
)
from workflow.model import Role
from workflow.policy import WorkflowPolicy
from workflow.ports import Period
from workflow.services import Workflow

W48 = Period.week_of(date(2026, 11, 23))  # Monday 23 to Sunday 29 November 2026
AS_OF = datetime(2026, 11, 30, 9, 0, tzinfo=SHANGHAI)  # the Monday after, when it is reported


def at(day: int, hour: int, minute: int = 0) -> datetime:
    """A wall-clock moment in November 2026, Asia/Shanghai."""
    return datetime(2026, 11, day, hour, minute, tzinfo=SHANGHAI)


class KnownWeek:
    """A week of cases with every outcome the rates distinguish (see the table in build())."""

    def __init__(self, engine, clock, on_events=None) -> None:
        self.sessions = session_factory(engine)
        self.clock = clock
        self.uow = UnitOfWorkFactory(self.sessions, clock)
        self.wf = Workflow(WorkflowPolicy(), on_events=on_events)
        self.people: dict[str, int] = {}
        self.n: dict[str, str] = {}  # letter -> case number
        self.ids: dict[str, int] = {}  # department / area / category code -> id

    async def setup(self) -> None:
        async with self.sessions() as session:
            await seed_calendar(session, self.clock.now())
            await session.commit()
        await load_org_file(self.sessions, EXAMPLE_COUNTY)
        async with self.sessions() as session:
            self.people = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
            for row in (DepartmentRow, AreaRow, CategoryRow):
                self.ids.update(dict((await session.execute(select(row.code, row.id))).all()))

    def who(self, code: str) -> ActorRef:
        role = {
            "P-R": Role.RESIDENT, "P-W": Role.GRID_WORKER, "P-L": Role.GRID_LEADER,
            "P-T": Role.TOWNSHIP_OPERATOR, "P-C": Role.COUNTY_DISPATCHER,
            "P-H": Role.DEPARTMENT_HANDLER, "P-S": Role.SUPERVISOR,
        }[code[:3]]  # fmt: skip
        return ActorRef(self.people[code], role)

    async def submit(self, letter: str, who: str, grid: str, category: str) -> None:
        cmd = SubmitCase(actor=self.who(who), grid_code=grid, category_code=category,
                         description=f"案件 {letter}")  # fmt: skip
        self.n[letter] = await self.wf.submit(self.uow(), cmd)

    async def do(self, command: type, letter: str, who: str, **kw) -> None:
        await self.wf.handle(self.uow(), command(case_number=self.n[letter], actor=self.who(who),
                                                 **kw))  # fmt: skip

    def steps(self) -> list[tuple[datetime, Callable[[], Awaitable[None]]]]:
        """The week as (when, what), in time order.

        letter  where          category     path                                         W48?
        Z       XGC-01-G1      safety       housing returns it, water has it (waiting)  W47
        A       XGC-01-G1      safety       housing: accept, resolve in 25 h, satisfied  yes
        B       XGC-01-G2      sanitation   municipal: resolve in 48 h, basically sat.   yes
        C       XGC-01-G1      safety       housing returns, water resolves, reopened    yes
        D       CG-01-G2       livelihood   civil affairs accepts, overdue (2 wd)        yes
        E       CG-01-G1       piling       township handles it locally, 25 h, satisfied yes
        F       XGC-01-G3      dispute      invalid at screening                         excl.
        G       XGC-01-G1      safety       duplicate of A                               excl.
        H       XGC-01-G2      sanitation   municipal, not accepted yet                  yes
        I       CG-01-G1       emergency    health, resolved 1 h late (3 h), satisfied   yes
        Y       XGC-01-G1      safety       reported at the first second of W49          W49
        """
        s, d = self.submit, self.do
        leader1, leader2, town1, town2 = "P-L-01", "P-L-02", "P-T-01", "P-T-02"
        county, housing, municipal = "P-C-01", "P-H-02", "P-H-01"
        water, civil, health = "P-H-03", "P-H-05", "P-H-06"

        def assign(letter: str, dept: str) -> Callable[[], Awaitable[None]]:
            return lambda: d(AssignCase, letter, county, department_code=dept)

        return [
            (at(22, 23, 30), lambda: s("Z", "P-R-01", "JL-XGC-01-G1", "safety")),
            (at(23, 9), lambda: s("A", "P-R-01", "JL-XGC-01-G1", "safety")),
            (at(23, 9), lambda: s("B", "P-W-02", "JL-XGC-01-G2", "sanitation")),
            (at(23, 9), lambda: s("C", "P-R-01", "JL-XGC-01-G1", "safety")),
            (at(23, 9), lambda: s("D", "P-R-02", "JL-CG-01-G2", "livelihood")),
            (at(23, 9), lambda: s("E", "P-W-07", "JL-CG-01-G1", "piling")),
            (at(23, 9), lambda: s("F", "P-W-03", "JL-XGC-01-G3", "dispute")),
            (at(23, 9), lambda: s("G", "P-R-01", "JL-XGC-01-G1", "safety")),
            (at(23, 9), lambda: s("H", "P-W-02", "JL-XGC-01-G2", "sanitation")),
            *[(at(23, 9, 30), lambda x=x: d(ValidateCase, x, leader1)) for x in "ZABCH"],
            (at(23, 9, 30), lambda: d(RejectCase, "F", leader1, reason="不属于受理范围")),
            (at(23, 9, 30), lambda: d(MarkDuplicate, "G", leader1, duplicate_of=self.n["A"])),
            *[(at(23, 9, 30), lambda x=x: d(ValidateCase, x, leader2)) for x in "DE"],
            *[(at(23, 9, 45), lambda x=x: d(PassUp, x, town1)) for x in "ZABCH"],
            (at(23, 9, 45), lambda: d(PassUp, "D", town2)),
            (at(23, 9, 45), lambda: d(HandleLocally, "E", town2)),
            (at(23, 10), assign("Z", "housing")),
            (at(23, 10), assign("A", "housing")),
            (at(23, 10), assign("B", "municipal")),
            (at(23, 10), assign("C", "housing")),
            (at(23, 10), assign("D", "civil_affairs")),
            (at(23, 10), assign("H", "municipal")),
            (at(23, 10, 30), lambda: d(AcceptCase, "A", housing)),
            (at(23, 10, 30), lambda: d(ReturnCase, "C", housing, reason="水库护网归水利局")),
            (at(23, 10, 30), lambda: d(ReturnCase, "Z", housing, reason="不属于本部门")),
            (at(23, 10, 30), lambda: d(AcceptCase, "B", municipal)),
            (at(23, 10, 30), lambda: d(AcceptCase, "D", civil)),
            (at(23, 11), assign("C", "water")),
            (at(23, 11), assign("Z", "water")),
            (at(23, 11, 30), lambda: d(AcceptCase, "C", water)),
            # Tuesday
            (at(24, 9), lambda: s("I", "P-W-07", "JL-CG-01-G1", "emergency")),
            (at(24, 9, 5), lambda: d(ValidateCase, "I", leader2)),
            (at(24, 9, 10), lambda: d(PassUp, "I", town2)),
            (at(24, 9, 15), assign("I", "health")),
            (at(24, 9, 20), lambda: d(AcceptCase, "I", health)),
            (at(24, 10), lambda: d(ResolveCase, "A", housing, text="已更换井盖")),
            (at(24, 10), lambda: d(ResolveCase, "E", town2, text="已清理")),
            (at(24, 11), lambda: d(RateCase, "A", "P-R-01", rating="satisfied")),
            (at(24, 11), lambda: d(RateCase, "E", "P-W-07", rating="satisfied")),
            (at(24, 12), lambda: d(ResolveCase, "I", health, text="已处置")),
            (at(24, 13), lambda: d(RateCase, "I", "P-W-07", rating="satisfied")),
            # Wednesday
            (at(25, 9), lambda: d(ResolveCase, "B", municipal, text="已清运")),
            (at(25, 9, 30), lambda: d(RateCase, "B", "P-W-02", rating="basically_satisfied")),
            (at(25, 10), lambda: d(ResolveCase, "C", water, text="已修复")),
            (at(25, 10, 30), lambda: d(RateCase, "C", "P-R-01", rating="dissatisfied",
                                       comment="护网还是破的")),
            # The first second of the next week: outside W48.
            (at(30, 0), lambda: s("Y", "P-R-01", "JL-XGC-01-G1", "safety")),
        ]  # fmt: skip

    async def build(self, until: datetime | None = None) -> None:
        """Play the steps up to (not including) `until`; the clock is left at the last one."""
        for when, step in self.steps():
            if until is not None and when >= until:
                break
            self.clock.set(when)
            await step()


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
