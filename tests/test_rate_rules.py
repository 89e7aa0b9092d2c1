"""The rules of docs/rates.md that keep the rates from being gamed, each on a small scenario
added to the known week (tests/support/weeks.py) with its figures computed by hand."""

from __future__ import annotations

import pytest

from bot.web.dashboard.csv_export import COLUMNS, row_values
from handlers.render import Renderer
from storage import analytics
from tests.support.weeks import AS_OF, W48, KnownWeek, at
from workflow.commands import (
    ActorRef,
    CloseUnrated,
    HandleLocally,
    PassUp,
    RateCase,
    ResolveCase,
    ValidateCase,
)
from workflow.model import Role


@pytest.fixture
async def week(engine, clock) -> KnownWeek:
    w = KnownWeek(engine, clock)
    await w.setup()
    await w.build()
    return w


async def _row(week: KnownWeek, kind: str, code: str):
    key = "department_id" if kind == "department" else "township_id"
    async with week.sessions() as session:
        (row,) = await analytics.unit_rates(
            session, kind, W48, as_of=AS_OF, **{key: week.ids[code]}
        )
    return row


async def test_reopening_never_makes_a_late_case_on_time(week: KnownWeek):
    """D (livelihood, 2 working days) was reported Mon 23 Nov 09:00: original deadline
    Wed 25 Nov 23:59:59. Civil affairs resolves it Thu 26 10:00 (late), the reporter rejects the
    result at 11:00 (reopened: fresh limit 2 working days from Thu = Mon 30 Nov 23:59:59), and
    civil affairs resolves it again Fri 27 09:00, within the fresh limit but after the original.

    civil_affairs: cases 1, resolved 1, on time 0, overdue open 0 -> on-time rate 0/1 = 0.0
    (judged against the fresh limit it would read 1/1 = 100%)."""
    week.clock.set(at(26, 10))
    await week.do(ResolveCase, "D", "P-H-05", text="已办理")
    week.clock.set(at(26, 11))
    await week.do(RateCase, "D", "P-R-02", rating="dissatisfied", comment="没解决")
    week.clock.set(at(27, 9))
    await week.do(ResolveCase, "D", "P-H-05", text="已再次办理")

    civil = await _row(week, "department", "civil_affairs")
    assert (civil.cases, civil.resolved, civil.resolved_on_time, civil.overdue_open) == (1, 1, 0, 0)
    assert civil.on_time_rate == 0.0


async def test_a_reopened_open_case_past_its_original_deadline_is_overdue(week: KnownWeek):
    """C (general, 7 working days from Mon 23 Nov: original deadline Wed 2 Dec 23:59:59) was
    resolved by water Wed 25 10:00 and reopened 10:30. Judged on Thu 3 Dec 09:00 (reopened
    limit: 7 working days from Wed 25 = Fri 4 Dec): still open and past its original deadline.

    water: resolved 0, overdue open 1 -> on-time rate 0/1 = 0.0 (the fresh limit: no value)."""
    async with week.sessions() as session:
        (water,) = await analytics.unit_rates(
            session, "department", W48, as_of=at(30, 9).replace(month=12, day=3),
            department_id=week.ids["water"],
        )  # fmt: skip
    assert (water.resolved, water.resolved_on_time, water.overdue_open) == (0, 0, 1)
    assert water.on_time_rate == 0.0


async def test_passing_up_gives_the_reply_to_the_county_center(week: KnownWeek):
    """P (piling, CG-01-G1) reported Thu 26 09:00: the CG township center handles it itself
    (a reply) and then passes it up: the county center holds it, unassigned.

    JL-CG: cases D E I P = 4; replied D (civil affairs accepted), E (handled locally),
    I (health accepted) = 3; P is nobody's reply -> reply rate 3/4 = 0.75
    (with the township's old acceptance it would read 4/4)."""
    week.clock.set(at(26, 9))
    await week.submit("P", "P-W-07", "JL-CG-01-G1", "piling")
    await week.do(ValidateCase, "P", "P-L-02")
    await week.do(HandleLocally, "P", "P-T-02")
    week.clock.set(at(26, 10))
    await week.do(PassUp, "P", "P-T-02", comment="需要县级部门处理")

    cg = await _row(week, "township", "JL-CG")
    assert (cg.cases, cg.replied) == (4, 3)
    assert cg.reply_rate == 0.75


async def test_a_reopened_case_closed_unrated_counts_as_dissatisfied(week: KnownWeek):
    """C: water resolved it Wed 25 10:00, the reporter rejected it (不满意) at 10:30, water
    resolved it again Thu 26 09:00 and nobody rated it: the system closes it unrated Sun 29
    09:01 (3 days later). The reporter's last word stands: the case is rated, dissatisfied.

    water: rated 1, satisfied 0 -> satisfaction 0/1 = 0.0 (not "—", and never satisfied).
    county: rated A B C E I = 5, satisfied A B E I = 4 -> 0.8, as before the second result."""
    week.clock.set(at(26, 9))
    await week.do(ResolveCase, "C", "P-H-03", text="护网已全部更换")
    week.clock.set(at(29, 9, 1))
    await week.wf.handle(
        week.uow(), CloseUnrated(case_number=week.n["C"], actor=ActorRef(None, Role.SYSTEM))
    )

    water = await _row(week, "department", "water")
    assert (water.resolved, water.rated, water.satisfied) == (1, 1, 0)
    assert water.satisfaction_rate == 0.0
    async with week.sessions() as session:
        county = await analytics.county_rates(session, W48, as_of=AS_OF)
    assert (county.rated, county.satisfied) == (5, 4)


async def test_overdue_in_the_csv_the_overview_and_the_case_page_is_the_rates_rule(week: KnownWeek):
    """Judged Thu 3 Dec 09:00 over W48's cases. D (livelihood, due Wed 25 23:59:59) is resolved
    by civil affairs Wed 25 20:00 and closed unrated Sat 28 20:01: on time (its closing time
    does not count). C (general, original deadline Wed 2 Dec 23:59:59) was rejected and is open
    again: overdue although its fresh limit runs to Fri 4 Dec. H (assigned, due 2 Dec): overdue.
    I (emergency, due 24 11:00, resolved 12:00): late. A, B, E: resolved in time; F, G: invalid
    and duplicate, never late. CSV overdue: C, H, I.
    Overview's "overdue now" (open, not waiting for a rating, past the original deadline):
    C, H and Z (W47, due Tue 1 Dec) = 3."""
    from storage.dashboard.filters import CaseFilter
    from storage.dashboard.lists import export_cases
    from storage.dashboard.totals import overview

    week.clock.set(at(25, 20))
    await week.do(ResolveCase, "D", "P-H-05", text="已办理")
    week.clock.set(at(28, 20, 1))
    await week.wf.handle(
        week.uow(), CloseUnrated(case_number=week.n["D"], actor=ActorRef(None, Role.SYSTEM))
    )
    judged = at(30, 9).replace(month=12, day=3)
    async with week.sessions() as session:
        exported = [
            item
            async for batch in export_cases(session, CaseFilter(W48.start, W48.end), judged)
            for item in batch
        ]
        totals = await overview(session, CaseFilter(W48.start, W48.end), judged)
    names = {number: letter for letter, number in week.n.items()}
    assert sorted(names[i.case.number] for i in exported if i.overdue) == ["C", "H", "I"]
    # The CSV line says why C is overdue beside a later deadline: its original one.
    r = Renderer("zh_CN")
    words = r.env.get_template("web/dashboard_csv.j2").module
    [c] = [dict(zip([words.columns[k] for k in COLUMNS], row_values(i, "zh_CN", r.labels,
                                                                    words.words), strict=True))
           for i in exported if names[i.case.number] == "C"]  # fmt: skip
    assert (c["超期"], c["办理时限"], c["原办理时限"]) == (
        "是", "2026-12-04 23:59:59", "2026-12-02 23:59:59"
    )  # fmt: skip
    assert totals.overdue_now == 3
    async with week.uow() as uow:
        page = {x: analytics.case_is_late(await uow.cases.get(week.n[x]), judged) for x in "ACDHI"}
    assert page == {"A": False, "C": True, "D": False, "H": True, "I": True}


async def test_a_return_after_the_stage_deadline_is_a_late_case_for_the_department(
    week: KnownWeek,
):
    """H (sanitation, general) was assigned to municipal Mon 23 10:00: acceptance limit 1
    working day, Tue 24 23:59:59. Municipal returns it unaccepted Wed 25 09:00: a late return.

    municipal: cases B (H left its set) = 1, resolved 1, on time 1, overdue 0, late returns 1
    -> on-time rate 1/(1 + 0 + 1) = 0.5 (without the rule 1/1 = 100%); returned 1.
    JL-XGC: A B C H = 4, resolved A B = 2, on time 2, late returns 1 shown but not charged
    (H is still its case) -> on-time 2/2 = 1.0; returned C Z H = 3.
    county: late returns 1, on-time unchanged: 3/(4 + 1) = 0.6.
    Morning digest of municipal for Wed 25 08:30 - Thu 26 08:30: late returns H."""
    from handlers.digests import Digests
    from handlers.weekly import build_weekly, render_weekly_message, render_weekly_page
    from workflow.commands import ReturnCase
    from workflow.ports import Period

    week.clock.set(at(25, 9))
    await week.do(ReturnCase, "H", "P-H-01", reason="不归我局")

    municipal = await _row(week, "department", "municipal")
    assert (municipal.cases, municipal.resolved, municipal.resolved_on_time) == (1, 1, 1)
    assert (municipal.overdue_open, municipal.late_returns, municipal.returned) == (0, 1, 1)
    assert municipal.on_time_rate == 0.5
    xgc = await _row(week, "township", "JL-XGC")
    assert (xgc.cases, xgc.resolved, xgc.resolved_on_time, xgc.late_returns) == (4, 2, 2, 1)
    assert xgc.on_time_rate == 1.0 and xgc.returned == 3
    async with week.sessions() as session:
        county = await analytics.county_rates(session, W48, as_of=AS_OF)
        events = await analytics.setbacks(session, W48)
        units = {u.code: u for u in await analytics.units(session, "department")}
        digest = await analytics.unit_digest(
            session, units["municipal"], Period(at(25, 8, 30), at(26, 8, 30)), at(26, 8, 30)
        )
        housing = await analytics.unit_digest(
            session, units["housing"], Period(at(23, 8, 30), at(24, 8, 30)), at(24, 8, 30)
        )
    assert county.late_returns == 1 and county.on_time_rate == pytest.approx(0.6)
    assert [(week.n.get("H") == e.number, e.late) for e in events if e.event == "returned"] == [
        (False, False), (False, False), (True, True)]  # fmt: skip
    assert digest.late_returns == (week.n["H"],)
    assert housing.late_returns == ()  # C and Z went back within their acceptance time
    morning = Digests().morning_text(digest, at(26, 8, 30).date(), "en")
    assert f"Returned after the deadline (late cases) <b>1</b>: {week.n['H']}" in morning

    async with week.uow() as uow:
        report = await build_weekly(uow, W48, AS_OF)
    message = render_weekly_message(report, "en")
    assert "| returned 1 | late returns 1" in message  # municipal's line
    page = render_weekly_page(report, "en")
    assert 'href="#late-returns"' in page and 'id="late-returns"' in page


def test_average_time_to_close_has_one_format_everywhere():
    """Hours with one decimal under a day, days with one decimal from a day on: health's 3 h
    (emergency, reported 09:00, resolved 12:00) reads "3.0 h", not "0.1 d"; the county's
    25.25 h reads 25.25 / 24 = 1.05 -> "1.1 d"; CG's 14 h reads "14.0 h". Every template
    that shows the figure goes through the one macro."""
    import re

    from handlers.render import Renderer
    from tests.support.paths import ROOT

    en, zh = Renderer("en").labels, Renderer("zh_CN").labels
    assert [str(en.time_to_close(h)) for h in (None, 3.0, 14.0, 23.9, 25.25, 48.0)] == [
        "—", "3.0 h", "14.0 h", "23.9 h", "1.1 d", "2.0 d"]  # fmt: skip
    assert [str(zh.time_to_close(h)) for h in (3.0, 25.25)] == ["3.0 小时", "1.1 天"]
    shown = []
    for path in (ROOT / "templates").rglob("*.j2"):
        for use in re.findall(r"[\w.]+\(\s*r(?:\.row)?\.avg_hours_to_close\s*\)", path.read_text()):
            shown.append((path.name, use.split("(")[0]))
    assert {name for name, _ in shown} >= {
        "dashboard_overview.html.j2", "weekly.html.j2", "digest.html.j2", "cli.j2"}  # fmt: skip
    assert {macro for _, macro in shown} == {"l.time_to_close"}
