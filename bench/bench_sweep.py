"""Sweep cost with 10,000 and with 1,000,000 cases in the database, the same number due.

Builds two SQLite databases: the example county, `--due` real cases brought to their
department through the workflow (their acceptance reminder falls due), and filler cases
inserted in bulk (mostly closed, a tenth open with reminders weeks away). Then it times one
sweep in each (median of `--runs`, restoring the due state between runs) and prints both times
and their ratio: the sweep reads the `next_reminder_at` index, so the ratio should stay near 1.

    .venv/bin/python bench/bench_sweep.py [--small 10000] [--large 1000000] [--due 100]
"""

from __future__ import annotations

import argparse
import asyncio
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from sqlalchemy import delete, select, update

from handlers.notify import Notifier
from handlers.reminders import ReminderNotifier
from storage.calendar import seed_calendar
from storage.db import create_engine, session_factory, upgrade_schema
from storage.org_file import load_org_file
from storage.rows import AreaRow, CaseReminderRow, CaseRow, CategoryRow, OutboxRow, PersonRow
from storage.uow import UnitOfWorkFactory
from workflow.clock import SHANGHAI, ManualClock
from workflow.commands import ActorRef, AssignCase, PassUp, SubmitCase, ValidateCase
from workflow.model import Role
from workflow.policy import WorkflowPolicy
from workflow.services import Workflow
from workflow.sweep import Sweeper

ROOT = Path(__file__).resolve().parent.parent
START = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)


def _sqlite_time(value: datetime) -> str:
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


async def build(path: Path, total: int, due: int) -> tuple[UnitOfWorkFactory, Workflow, object]:
    """A database with `total` cases, `due` of them due for a reminder at START + 1 day."""
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    await upgrade_schema(engine)
    sessions = session_factory(engine)
    clock = ManualClock(START)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, ROOT / "bot" / "examples" / "county.yaml")
    async with sessions() as session:
        people = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
        grid = (
            await session.execute(select(AreaRow).where(AreaRow.code == "JL-XGC-01-G1"))
        ).scalar_one()
        category = (
            await session.execute(select(CategoryRow.id).where(CategoryRow.code == "safety"))
        ).scalar_one()
    uow = UnitOfWorkFactory(sessions, clock)
    workflow = Workflow(WorkflowPolicy(), on_events=Notifier())
    for _ in range(due):
        n = await workflow.submit(uow(), SubmitCase(
            actor=ActorRef(people["P-R-01"], Role.RESIDENT), grid_code="JL-XGC-01-G1",
            category_code="safety", description="bench"))  # fmt: skip
        await workflow.handle(uow(), ValidateCase(
            case_number=n, actor=ActorRef(people["P-L-01"], Role.GRID_LEADER)))  # fmt: skip
        await workflow.handle(uow(), PassUp(
            case_number=n, actor=ActorRef(people["P-T-01"], Role.TOWNSHIP_OPERATOR)))  # fmt: skip
        await workflow.handle(uow(), AssignCase(
            case_number=n, department_code="housing",
            actor=ActorRef(people["P-C-01"], Role.COUNTY_DISPATCHER)))  # fmt: skip
    await engine.dispose()
    fill(path, total - due, grid, category)
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    sessions = session_factory(engine)
    clock.set(START + timedelta(days=1))  # Tuesday 09:00: every due case's "before" reminder
    return UnitOfWorkFactory(sessions, clock), workflow, engine


def fill(path: Path, count: int, grid: AreaRow, category: int) -> None:
    """Bulk rows through sqlite3 directly: building a million cases through the ORM takes long."""
    db = sqlite3.connect(path)
    history = timedelta(days=3 * 365)
    rows = []
    for i in range(count):
        created = START - history + timedelta(seconds=(i * history.total_seconds()) // count)
        closed = i % 10 != 0
        state = "closed" if closed else "in_progress"
        next_look = None if closed else _sqlite_time(START + timedelta(days=60))
        rows.append((
            f"F-{i:07d}", state, category, "general", grid.id, grid.village_id, grid.township_id,
            None, "resident", "filler", _sqlite_time(created), _sqlite_time(created),
            None if closed else _sqlite_time(START + timedelta(days=70)), next_look,
            _sqlite_time(created + timedelta(days=3)) if closed else None, 1,
        ))  # fmt: skip
        if len(rows) == 50_000:
            _insert(db, rows)
            rows = []
    _insert(db, rows)
    db.execute("ANALYZE")
    db.commit()
    db.close()


def _insert(db: sqlite3.Connection, rows: list[tuple]) -> None:
    db.executemany(
        "INSERT INTO cases (number, state, category_id, deadline_class, grid_id, village_id,"
        " township_id, reporter_id, reporter_role, description, created_at, stage_entered_at,"
        " stage_due_at, next_reminder_at, closed_at, version, anonymous, handled_by_township,"
        " reopen_count, supervise_count, due_provisional, delivery_failed)"
        " VALUES (?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,?,0,0,0,0,0,0)",
        rows,
    )


async def time_sweep(uow: UnitOfWorkFactory, workflow: Workflow, runs: int) -> tuple[float, int]:
    """Median seconds of one sweep; between runs the reminders are forgotten again."""
    sweeper = Sweeper(workflow, ReminderNotifier())
    times, sent = [], 0
    async with uow() as u:
        due_rows = (
            await u.session.execute(
                select(CaseRow.id, CaseRow.next_reminder_at).where(
                    CaseRow.next_reminder_at <= u.clock.now()
                )
            )
        ).all()
    for _ in range(runs):
        async with uow() as u:
            await u.session.execute(delete(CaseReminderRow))
            await u.session.execute(delete(OutboxRow))
            for case_id, at in due_rows:
                await u.session.execute(
                    update(CaseRow).where(CaseRow.id == case_id).values(next_reminder_at=at)
                )
            await u.commit()
        started = time.perf_counter()
        result = await sweeper.sweep(uow)
        times.append(time.perf_counter() - started)
        sent = result.reminders
    return statistics.median(times), sent


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--large", type=int, default=1_000_000)
    parser.add_argument("--due", type=int, default=100)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        for total in (args.small, args.large):
            started = time.perf_counter()
            uow, workflow, engine = await build(Path(tmp) / f"{total}.db", total, args.due)
            built = time.perf_counter() - started
            seconds, sent = await time_sweep(uow, workflow, args.runs)
            await engine.dispose()
            results[total] = seconds
            print(
                f"{total:>9,} cases, {args.due} due: sweep {seconds * 1000:8.1f} ms "
                f"({sent} reminders queued; database built in {built:.0f} s)"
            )
    ratio = results[args.large] / results[args.small]
    print(f"ratio {args.large:,} / {args.small:,} cases: {ratio:.2f} (1.00 = independent of size)")


if __name__ == "__main__":
    asyncio.run(main())
