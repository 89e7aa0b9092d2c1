"""The one periodic job: sweep reminders and supervision, then send the digests that are due.

APScheduler runs a single interval job (never one job per case). The job reads what is due from
indexed columns, so a restart catches up on its first run: whatever fell due while the process
was down is in the database and goes out once. `misfire_grace_time` is raised from APScheduler's
default of one second, which would silently drop a run that started late on a busy machine.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.interval import IntervalTrigger

from bot.app import App
from handlers.digests import Digests
from handlers.reminders import ReminderNotifier
from workflow.clock import SHANGHAI
from workflow.sweep import Sweeper, SweepResult

log = logging.getLogger(__name__)

JOB_ID = "sweep"


@dataclass
class PeriodicWork:
    """What each tick does; callable directly from tests with a ManualClock."""

    app: App
    sweeper: Sweeper
    digests: Digests | None = None
    after: list[Callable[[], Any]] = field(default_factory=list)  # e.g. wake the senders

    async def __call__(self) -> SweepResult:
        result = SweepResult()
        try:
            result = await self.sweeper.sweep(self.app.uow)
        except Exception:  # the next tick tries again; per-case errors are caught inside
            log.exception("reminder sweep failed")
        queued = 0
        if self.digests is not None:
            try:
                queued = await self.digests.run_due(self.app.uow, self.app.clock.now())
            except Exception:
                log.exception("digests failed")
        if result.reminders or result.closed or queued:
            log.info(
                "sweep: %s cases looked at, %s reminders, %s closed unrated, %s digest messages",
                result.cases, result.reminders, result.closed, queued,
            )  # fmt: skip
            for wake in self.after:
                wake()
        return result


def make_sweeper(app: App) -> Sweeper:
    return Sweeper(app.workflow, ReminderNotifier(app.settings.locale, app.channels))


def make_digests(app: App) -> Digests:
    """Morning digests and the weekly analysis, at the times the settings give."""
    schedule = app.settings.schedule
    public = app.settings.web.public_url
    days = ["mon", "tue", "wed", "thu", "fri", "sat", "sun"]
    return Digests(
        morning_at=schedule.morning_digest_at,
        weekly_day=days.index(schedule.weekly_analysis_day),
        weekly_at=schedule.weekly_analysis_at,
        default_locale=app.settings.locale,
        weekly_url=public.rstrip("/") + "/dashboard/weekly" if public else None,
        enabled=app.channels,
    )


def start_scheduler(
    app: App, work: Callable[[], Awaitable[Any]], *, now: datetime | None = None
) -> AsyncIOScheduler:
    """Start the interval job; the first run is immediate, to catch up after downtime."""
    settings = app.settings.schedule
    scheduler = AsyncIOScheduler(
        timezone=SHANGHAI,
        job_defaults={
            "misfire_grace_time": settings.misfire_grace_seconds,
            "coalesce": True,  # several missed ticks run once: the sweep covers them all
            "max_instances": 1,  # a slow sweep is never overlapped by the next one
        },
    )

    async def tick() -> None:
        # A plain coroutine function: APScheduler would run an awaitable object in a thread.
        task = asyncio.current_task()
        if task is not None:  # APScheduler's task, named for the logs (storage/write_lock.py)
            task.set_name(JOB_ID)
        await work()

    scheduler.add_job(
        tick,
        IntervalTrigger(seconds=settings.sweep_every_seconds),
        id=JOB_ID,
        name="reminders, supervision and digests",
        next_run_time=now or datetime.now(SHANGHAI),
        replace_existing=True,
    )
    scheduler.start()
    return scheduler
