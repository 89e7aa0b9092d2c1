"""The one periodic job: immediate first run, generous misfire grace, digests and wake-ups."""

from __future__ import annotations

import asyncio

from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.app import open_app
from bot.config import load_settings
from bot.scheduler import JOB_ID, PeriodicWork, make_digests, make_sweeper, start_scheduler


async def test_the_first_sweep_runs_at_start_and_late_runs_are_not_dropped(tmp_path, clock):
    settings = load_settings(data_dir=tmp_path / "data", schedule={"misfire_grace_seconds": 900})
    app = await open_app(settings, clock)
    ran = asyncio.Event()

    async def work() -> None:
        ran.set()

    scheduler: AsyncIOScheduler = start_scheduler(app, work)
    try:
        await asyncio.wait_for(ran.wait(), 10)  # at start: catch-up after downtime
        job = scheduler.get_job(JOB_ID)
        assert job.misfire_grace_time == 900  # APScheduler's default of 1 s would drop runs
        assert job.coalesce is True and job.max_instances == 1
        assert len(scheduler.get_jobs()) == 1  # one job, never one per case
    finally:
        scheduler.shutdown(wait=False)
        await app.close()


async def test_each_tick_sweeps_sends_digests_and_wakes_the_senders(tmp_path, clock):
    app = await open_app(load_settings(data_dir=tmp_path / "data"), clock)
    woken: list[str] = []

    class CountingDigests:
        calls = 0

        async def run_due(self, uow_factory, now) -> int:
            self.calls += 1
            assert now == clock.now()
            return 2  # two digest messages queued

    digests = CountingDigests()
    work = PeriodicWork(app, make_sweeper(app), digests, after=[lambda: woken.append("web")])
    result = await work()
    assert (result.cases, digests.calls, woken) == (0, 1, ["web"])
    assert make_digests(app).weekly_url is None
    await app.close()


async def test_a_failing_digest_does_not_stop_the_sweep(tmp_path, clock, caplog):
    app = await open_app(load_settings(data_dir=tmp_path / "data"), clock)

    class Broken:
        async def run_due(self, uow_factory, now) -> int:
            raise RuntimeError("digest store down")

    result = await PeriodicWork(app, make_sweeper(app), Broken())()
    assert result.errors == 0
    assert "digests failed" in caplog.text
    await app.close()
