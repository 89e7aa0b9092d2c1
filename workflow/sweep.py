"""The periodic sweep: reminders, supervision (督办) and closing unrated cases, once each.

One scheduled job calls `Sweeper.sweep` (every 30 s by default). It reads only cases whose
`next_reminder_at` has passed (an indexed column), so its cost follows what is due, not how many
cases the county has. Each threshold is recorded once per case, stage and threshold in the same
transaction as the messages it causes: a restart or a second sweeper never repeats one.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime, timedelta

from workflow.commands import ActorRef, CloseUnrated
from workflow.errors import WorkflowError
from workflow.events import ReminderDue
from workflow.model import Case, Role, State
from workflow.ports import SweepUnitOfWork
from workflow.reminders import Audience, Threshold, due_and_next, stage_key, to_send
from workflow.services import Workflow

log = logging.getLogger(__name__)

ReminderHook = Callable[[SweepUnitOfWork, list[ReminderDue]], Awaitable[None]]
# A case whose sweep fails is looked at again after this, so it cannot starve the others.
RETRY_FAILED_AFTER = timedelta(minutes=10)


@dataclass
class SweepResult:
    cases: int = 0
    reminders: int = 0
    closed: int = 0
    errors: int = 0


class Sweeper:
    """Finds what fell due, records it once, and hands the news to the reminder hook."""

    def __init__(
        self,
        workflow: Workflow,
        on_reminders: ReminderHook | None = None,
        *,
        batch: int = 200,
        max_batches: int = 50,
    ) -> None:
        self.workflow = workflow
        self.on_reminders = on_reminders
        self.batch = batch
        self.max_batches = max_batches

    async def sweep(self, uow_factory: Callable[[], SweepUnitOfWork]) -> SweepResult:
        """Handle everything due now, a batch per transaction; one bad case never stops it."""
        result = SweepResult()
        for _ in range(self.max_batches):
            async with uow_factory() as uow:
                now = uow.clock.now()
                numbers = await uow.reminders.due_numbers(now, self.batch)
            if not numbers:
                break
            try:
                await self._process(uow_factory, numbers, result)
            except Exception:
                log.exception("sweep batch of %s cases failed; retrying case by case", len(numbers))
                for number in numbers:
                    try:
                        await self._process(uow_factory, [number], result)
                    except Exception:
                        log.exception("sweep of case %s failed", number)
                        result.errors += 1
                        await self._postpone(uow_factory, number)
            if len(numbers) < self.batch:
                break
        return result

    async def _process(
        self, uow_factory: Callable[[], SweepUnitOfWork], numbers: list[str], result: SweepResult
    ) -> None:
        async with uow_factory() as uow:
            now = uow.clock.now()
            calendar = await uow.calendar.load()
            events: list[ReminderDue] = []
            counts = SweepResult()
            for number in numbers:
                case = await uow.cases.get(number)
                counts.cases += 1
                if case.state is State.RESOLVED:
                    counts.closed += await self._close_unrated(uow, case, now)
                    continue
                due, next_at = due_and_next(case, self.workflow.policy, calendar, now)
                if not await uow.reminders.set_next(case, next_at):
                    continue  # changed since we read it: its new stage has its own thresholds
                events += await self._record(uow, case, due, now)
            if events and self.on_reminders is not None:
                await self.on_reminders(uow, events)
            await uow.commit()
        result.cases += counts.cases
        result.closed += counts.closed
        result.reminders += len(events)

    async def _record(
        self, uow: SweepUnitOfWork, case: Case, due: list[Threshold], now: datetime
    ) -> list[ReminderDue]:
        deadline = case.stage_due_at
        if deadline is None:
            return []  # a stage without a deadline has no thresholds (see thresholds())
        if case.id is None:
            raise ValueError(f"case {case.number} has no id: it was not read from storage")
        key = stage_key(case)
        recorded = await uow.reminders.recorded(case.id, key)
        new = [t for t in due if t.name not in recorded and t.audience is not Audience.SYSTEM]
        if not new:
            return []
        send = to_send(new)
        inserted = await uow.reminders.record(case.id, key, new, {t.name for t in send}, now)
        return [
            ReminderDue(
                case_number=case.number,
                threshold=t.name,
                audience=t.audience.value,
                level=t.level,
                state=case.state,
                stage_due_at=deadline,
                due_at=t.at,
            )
            for t in send
            if t.name in inserted  # another sweeper recorded the rest first: it sends them
        ]

    async def _close_unrated(self, uow: SweepUnitOfWork, case: Case, now: datetime) -> int:
        """The rating window has passed: close the case as unrated (the table decides if it may)."""
        if case.stage_due_at is None or case.stage_due_at > now:
            await uow.reminders.set_next(case, case.stage_due_at)
            return 0
        cmd = CloseUnrated(case_number=case.number, actor=ActorRef(None, Role.SYSTEM))
        try:
            await self.workflow.handle_in(uow, cmd)
        except WorkflowError as exc:
            log.warning("case %s not closed unrated: %s", case.number, exc.message)
            await uow.reminders.set_next(await uow.cases.get(case.number), None)
            return 0
        return 1

    async def _postpone(self, uow_factory: Callable[[], SweepUnitOfWork], number: str) -> None:
        try:
            async with uow_factory() as uow:
                await uow.reminders.postpone(number, uow.clock.now() + RETRY_FAILED_AFTER)
                await uow.commit()
        except Exception:
            log.exception("could not postpone case %s", number)
