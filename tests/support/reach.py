"""Walking the transition table through a channel: cases set up in a given state (through the
workflow, so the holders get their cards the usual way), and one driver per channel that presses
a button carrying given data in a role's chat and answers what it asks.

The drivers only ever press buttons the bot itself sent: a cell is reachable only if some card
offers it.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from handlers.callbacks import (
    AssignTo,
    CaseAction,
    ConfirmResult,
    RateAs,
    ReclassifyTo,
    SkipComment,
)
from handlers.reminders import ReminderNotifier
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AssignCase,
    CaseCommand,
    HandleLocally,
    PassUp,
    RateCase,
    ResolveCase,
    ReturnCase,
    SubmitCase,
    ValidateCase,
)
from workflow.events import ReminderDue
from workflow.model import LEVEL_STATE, DeadlineClass, Rating, Role, State
from workflow.policy import WorkflowPolicy
from workflow.table import SAME, Ask, NextOnRoute, Transition

R = Role
# The people of the example county who play each role in both channels.
PLAYERS = {
    R.RESIDENT: "P-R-01", R.GRID_WORKER: "P-W-01", R.GRID_LEADER: "P-L-01",
    R.TOWNSHIP_OPERATOR: "P-T-01", R.COUNTY_DISPATCHER: "P-C-01",
    R.DEPARTMENT_HANDLER: "P-H-02", R.SUPERVISOR: "P-S-01",
}  # fmt: skip


class Driver(Protocol):
    """One channel as the person playing a role uses it."""

    async def press(self, role: Role, data: str) -> None: ...
    async def say(self, role: Role, text: str) -> None: ...
    async def photo(self, role: Role) -> None: ...


def supervision_reminder(uow_factory: Callable[[], Any]) -> Callable[[str], Awaitable[None]]:
    """The sweeper's supervision notice (督办) for a case, through its hook as the sweep sends
    it when a stage is overdue: the supervisors get the case's supervision card, whose
    instruction button works in every open state."""

    async def remind(number: str) -> None:
        async with uow_factory() as uow:
            case = await uow.cases.get(number)
            due = case.stage_due_at or case.due_at
            reminder = ReminderDue(
                case_number=number, threshold="supervise:1", audience="supervisors", level=1,
                state=case.state, stage_due_at=due, due_at=due,
            )  # fmt: skip
            await ReminderNotifier()(uow, [reminder])
            await uow.commit()

    return remind


@dataclass
class Setup:
    """How to run workflow commands as the county's people, outside any chat."""

    submit: Callable[[SubmitCase], Awaitable[str]]
    handle: Callable[[CaseCommand], Awaitable[Any]]
    people: dict[Role, int]  # the person playing each role
    remind: Callable[[str], Awaitable[None]]  # supervision_reminder

    def actor(self, role: Role) -> ActorRef:
        return ActorRef(self.people[role], role)

    async def case(self, state: State, *, by: Role = R.RESIDENT, township_holds: bool = False,
                   reopened: bool = False, supervised: bool = False) -> str:  # fmt: skip
        """A new case brought to `state` the ordinary way (each step tells its holder).
        `supervised`: the supervisors got its supervision card on the way (while it was
        overdue in progress, for a case brought on to `resolved`)."""
        n = await self.submit(SubmitCase(
            actor=self.actor(by), grid_code="JL-XGC-01-G1", category_code="safety",
            description="路灯不亮，晚上看不清",
        ))  # fmt: skip
        a = self.actor
        steps: list[CaseCommand] = []
        if state is not State.SCREENING:
            steps.append(ValidateCase(case_number=n, actor=a(R.GRID_LEADER)))
        if township_holds:
            steps.append(HandleLocally(case_number=n, actor=a(R.TOWNSHIP_OPERATOR)))
        elif state not in (State.SCREENING, State.TOWNSHIP):
            steps.append(PassUp(case_number=n, actor=a(R.TOWNSHIP_OPERATOR)))
            if state is not State.COUNTY:
                steps.append(AssignCase(case_number=n, actor=a(R.COUNTY_DISPATCHER),
                                        department_code="housing"))  # fmt: skip
            if state is State.RETURNED:
                steps.append(ReturnCase(case_number=n, actor=a(R.DEPARTMENT_HANDLER),
                                        reason="不是本部门的事"))  # fmt: skip
            elif state not in (State.COUNTY, State.ASSIGNED):
                steps.append(AcceptCase(case_number=n, actor=a(R.DEPARTMENT_HANDLER)))
        holder = a(R.TOWNSHIP_OPERATOR) if township_holds else a(R.DEPARTMENT_HANDLER)
        rounds = 0
        if state in (State.RESOLVED, State.SUPERVISION):
            rounds = 2 if reopened or state is State.SUPERVISION else 1
        for i in range(rounds):
            steps.append(ResolveCase(case_number=n, actor=holder, text="已修好"))
            if i < rounds - 1 or state is State.SUPERVISION:
                steps.append(RateCase(case_number=n, actor=a(by), rating=Rating.DISSATISFIED))
        for i, cmd in enumerate(steps):
            if supervised and state is State.RESOLVED and i == len(steps) - 1:
                await self.remind(n)
            await self.handle(cmd)
        if supervised and state is not State.RESOLVED:
            await self.remind(n)
        return n


def target_state(row: Transition, source: State, policy: WorkflowPolicy) -> State:
    """Where the row leaves a general case that was in `source`."""
    if row.target is SAME:
        return source
    if isinstance(row.target, NextOnRoute):
        return LEVEL_STATE[policy.next_level(DeadlineClass.GENERAL, row.target.after)]
    assert isinstance(row.target, State)
    return row.target


# The rating each RATE row needs, by the event it emits.
RATING_OF_ROW = {"CaseRated": "s", "CaseReopened": "d", "CaseEscalated": "d"}


async def walk(driver: Driver, row: Transition, role: Role, number: str, *, other: str) -> None:
    """Press the row's button on the case's card as `role` and answer what the screen asks."""
    screen = row.screen
    assert screen is not None
    if screen.asks is Ask.DEPARTMENT:
        await driver.press(role, AssignTo("housing", number).pack())
    elif screen.asks is Ask.RATING:
        await driver.press(role, RateAs(number, RATING_OF_ROW[row.emits.__name__]).pack())
        await driver.press(role, SkipComment(number).pack())
    else:
        await driver.press(role, CaseAction(screen.code, number).pack())
        if screen.asks is Ask.CATEGORY:
            await driver.press(role, ReclassifyTo("livelihood", number).pack())
        elif screen.asks in (Ask.REASON, Ask.TEXT):
            await driver.say(role, "情况不属实，已核实")
        elif screen.asks is Ask.TEXT_OR_PHOTOS:
            await driver.photo(role)
        elif screen.asks is Ask.DUPLICATE:
            await driver.say(role, other)
        elif screen.asks is Ask.RESULT:
            await driver.say(role, "已更换灯泡")
            await driver.photo(role)
            await driver.press(role, ConfirmResult(number).pack())
