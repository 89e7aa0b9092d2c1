"""A known week of cases (W48, November 2026) moved through the real workflow, for the rates."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import date, datetime

from sqlalchemy import select

from storage.calendar import seed_calendar
from storage.db import session_factory
from storage.org_file import load_org_file
from storage.rows import AreaRow, CategoryRow, DepartmentRow, PersonRow
from storage.uow import UnitOfWorkFactory
from tests.support.paths import EXAMPLE_COUNTY
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
