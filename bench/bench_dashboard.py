"""Dashboard page time with 10,000 and with 1,000,000 cases, the same number in the last 30 days.

Builds SQLite databases on a Julu-sized county (11 townships, 2,750 grids, 63 departments;
`shuoshi org generate`), bulk-inserts cases spread over about three years with `--recent` of
them in the last 30 days in every database (the rest mostly closed, `--old-open` still open)
and a short trail per case, then times the overview page, the case list and the CSV export
for the default period (the last 30 days) through HTTP, the cache switched off. Prints the
median of `--runs` for each database and the ratio largest/smallest: the pages read the
period's cases and the open ones through indexes, so the ratio should stay near 1.

    .venv/bin/python bench/bench_dashboard.py [--cases 10000,1000000] [--recent 3000] [--runs 9]

Databases are built in a temporary directory, or kept in `--keep DIR` and reused when the
file for that size is already there.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import sqlite3
import statistics
import sys
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App
from bot.config import Settings
from bot.web.dashboard.app import setup_dashboard
from handlers.render import Renderer
from storage.calendar import seed_calendar
from storage.db import create_engine, session_factory, upgrade_schema
from storage.media import MediaStore
from storage.org_file import load_org_file
from storage.org_generate import generate_county
from storage.uow import UnitOfWorkFactory
from workflow.clock import SHANGHAI, ManualClock
from workflow.services import Workflow

NOW = datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI)
YEARS = 3
BATCH = 50_000
PAGES = {
    "overview": "/dashboard",
    "case list": "/dashboard/cases",
    "csv export": "/dashboard/cases.csv",
}
# (state, weight) of cases reported in the last 30 days, and of older ones (all finished).
RECENT_STATES = (
    ("closed", 55), ("closed_unrated", 5), ("resolved", 8), ("in_progress", 10),
    ("assigned", 5), ("screening", 5), ("township", 3), ("county", 3), ("rejected", 4),
    ("duplicate", 2),
)  # fmt: skip
OLD_STATES = (("closed", 85), ("closed_unrated", 8), ("rejected", 5), ("duplicate", 2))
OPEN_OLD = ("in_progress", "assigned", "screening", "resolved")
CASE_COLUMNS = (
    "id", "number", "state", "category_id", "deadline_class", "grid_id", "village_id",
    "township_id", "reporter_id", "reporter_role", "description", "anonymous", "contact_phone",
    "department_id", "handled_by_township", "reopen_count", "supervise_count", "rating",
    "created_at", "stage_entered_at", "stage_due_at", "due_basis_at", "due_at",
    "due_provisional", "accepted_at", "resolved_at", "closed_at", "first_response_at",
    "delivery_failed", "version",
)  # fmt: skip
TRAIL_COLUMNS = (
    "case_id", "seq", "action", "from_state", "to_state", "actor_id", "actor_role", "comment",
    "data", "at",
)  # fmt: skip


def _t(value: datetime | None) -> str | None:
    """How SQLAlchemy stores an aware time on SQLite: naive UTC text."""
    return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f") if value else None


def _pick(rng: random.Random, weighted: tuple[tuple[str, int], ...]) -> str:
    return rng.choices([s for s, _ in weighted], [w for _, w in weighted])[0]


async def prepare_schema(path: Path, workdir: Path) -> None:
    """Schema, calendar and the Julu-sized county, through the application's own code."""
    org = workdir / "julu.yaml"
    if not org.exists():
        org.write_text(generate_county(townships=11, grids=2750, departments=63, seed=0))
    engine = create_engine(f"sqlite+aiosqlite:///{path}")
    try:
        await upgrade_schema(engine)
        sessions = session_factory(engine)
        async with sessions() as session:
            await seed_calendar(session, NOW)
            await session.commit()
        await load_org_file(sessions, org)
    finally:
        await engine.dispose()


def fill(path: Path, total: int, recent: int, old_open: int, seed: int = 1) -> None:
    """Bulk insert `total` cases and their trails with plain executemany in big batches."""
    rng = random.Random(seed)
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=WAL")
    db.execute("PRAGMA synchronous=OFF")
    grids = db.execute(
        "SELECT id, village_id, township_id FROM areas WHERE kind = 'grid'"
    ).fetchall()
    categories = db.execute("SELECT id, deadline_class FROM categories").fetchall()
    departments = [r[0] for r in db.execute("SELECT id FROM departments")]
    reporter = db.execute("SELECT id FROM people ORDER BY id LIMIT 1").fetchone()[0]
    window_recent = timedelta(days=30).total_seconds()
    window_old = timedelta(days=365 * YEARS).total_seconds() - window_recent
    open_old_ids = set(rng.sample(range(recent + 1, total + 1), min(old_open, total - recent)))
    case_sql = (
        f"INSERT INTO cases ({', '.join(CASE_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(CASE_COLUMNS))})"
    )
    trail_sql = (
        f"INSERT INTO case_transitions ({', '.join(TRAIL_COLUMNS)}) "
        f"VALUES ({', '.join('?' * len(TRAIL_COLUMNS))})"
    )
    cases: list[tuple] = []
    trail: list[tuple] = []
    for case_id in range(1, total + 1):
        if case_id <= recent:
            created = NOW - timedelta(seconds=rng.random() * window_recent)
            state = _pick(rng, RECENT_STATES)
        else:
            created = NOW - timedelta(seconds=window_recent + rng.random() * window_old)
            state = rng.choice(OPEN_OLD) if case_id in open_old_ids else _pick(rng, OLD_STATES)
        grid_id, village_id, township_id = rng.choice(grids)
        category_id, deadline_class = rng.choice(categories)
        assigned = state in ("assigned", "in_progress", "resolved", "closed", "closed_unrated")
        department = rng.choice(departments) if assigned else None
        accepted = created + timedelta(hours=rng.uniform(1, 30)) if state in (
            "in_progress", "resolved", "closed", "closed_unrated") else None  # fmt: skip
        resolved = created + timedelta(hours=rng.uniform(24, 150)) if state in (
            "resolved", "closed", "closed_unrated") else None  # fmt: skip
        finished = state in ("closed", "closed_unrated", "rejected", "duplicate")
        closed = (
            (resolved or created + timedelta(hours=3)) + timedelta(days=1) if finished else None
        )
        due = created + timedelta(days=9)
        entered = resolved or accepted or created
        rating = (
            _pick(rng, (("satisfied", 90), ("basically_satisfied", 6), ("dissatisfied", 4)))
            if state == "closed"
            else None
        )
        cases.append((
            case_id, f"B-{case_id:08d}", state, category_id, deadline_class, grid_id, village_id,
            township_id, reporter, "resident", f"bench case {case_id} 井盖破损", False, None,
            department, False, 0, 0, rating, _t(created), _t(entered),
            None if finished else _t(entered + timedelta(days=1)), _t(created), _t(due), False,
            _t(accepted), _t(resolved), _t(closed), _t(accepted), False, 1,
        ))  # fmt: skip
        trail.append((case_id, 1, "submit", "new", "reported", reporter, "resident", None, "{}",
                      _t(created)))  # fmt: skip
        trail.append((case_id, 2, "route", "reported", "screening", None, "system", None, "{}",
                      _t(created)))  # fmt: skip
        if state != "screening":
            last = closed or resolved or accepted or created + timedelta(hours=2)
            data = json.dumps({"department_id": department}) if department else "{}"
            trail.append(
                (
                    case_id,
                    3,
                    "assign" if department else "screen_invalid",
                    "screening",
                    state,
                    None,
                    "county_dispatcher",
                    None,
                    data,
                    _t(last),
                )
            )
        if len(cases) >= BATCH:
            db.executemany(case_sql, cases)
            db.executemany(trail_sql, trail)
            db.commit()
            cases.clear()
            trail.clear()
    db.executemany(case_sql, cases)
    db.executemany(trail_sql, trail)
    db.commit()
    db.close()


async def build(path: Path, total: int, args: argparse.Namespace, workdir: Path) -> float:
    """Seconds taken; 0 when a kept database is reused."""
    if path.exists():  # noqa: ASYNC240 - once, before anything runs
        return 0.0
    started = time.perf_counter()
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    await prepare_schema(partial, workdir)
    fill(partial, total, min(args.recent, total), args.old_open)
    partial.rename(path)
    return time.perf_counter() - started


async def time_pages(path: Path, runs: int, tmp: Path) -> dict[str, float]:
    """Median seconds per page, through HTTP on loopback, every query run afresh."""
    settings = Settings(data_dir=tmp, database_url=f"sqlite+aiosqlite:///{path}")
    settings.web.dashboard_cache_seconds = 0
    engine = create_engine(settings.db_url)
    sessions = session_factory(engine)
    clock = ManualClock(NOW)
    app = App(
        settings=settings, engine=engine, sessions=sessions, clock=clock,
        uow=UnitOfWorkFactory(sessions, clock), workflow=Workflow(settings.workflow.policy()),
        media=MediaStore(tmp / "media"), renderer=Renderer(),
    )  # fmt: skip
    web_app = web.Application()
    setup_dashboard(web_app, app, require_login=False)
    medians: dict[str, float] = {}
    try:
        async with TestClient(TestServer(web_app)) as client:
            for name, url in PAGES.items():
                (await (await client.get(url)).read())  # warm the page cache and templates
                times = []
                for _ in range(runs):
                    started = time.perf_counter()
                    response = await client.get(url)
                    body = await response.read()
                    times.append(time.perf_counter() - started)
                    assert response.status == 200, (url, response.status, body[:300])
                medians[name] = statistics.median(times)
    finally:
        await engine.dispose()
    return medians


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--cases", default="10000,1000000", help="comma-separated sizes")
    parser.add_argument("--recent", type=int, default=3000, help="cases in the last 30 days")
    parser.add_argument("--old-open", type=int, default=200, help="old cases still open")
    parser.add_argument("--runs", type=int, default=9)
    parser.add_argument("--keep", type=Path, help="directory to keep (and reuse) databases in")
    args = parser.parse_args()
    sizes = sorted(int(x) for x in args.cases.split(","))
    with tempfile.TemporaryDirectory() as scratch:
        workdir = args.keep or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        results: dict[int, dict[str, float]] = {}
        for total in sizes:
            path = workdir / f"dashboard-{total}.db"
            took = await build(path, total, args, workdir)
            note = f"built in {took:.0f} s" if took else "reused"
            print(f"{total:>9,} cases ({note}, {path.stat().st_size / 2**20:.0f} MB)", flush=True)
            results[total] = await time_pages(path, args.runs, Path(scratch))
            for name, seconds in results[total].items():
                print(f"    {name:<11} {seconds * 1000:8.1f} ms")
    small, large = sizes[0], sizes[-1]
    if small != large:
        print(f"ratio {large:,} / {small:,} cases (median page time):")
        for name in PAGES:
            print(f"    {name:<11} {results[large][name] / results[small][name]:6.2f}")


if __name__ == "__main__":
    asyncio.run(main())
