"""Crash bench: residents report with photos while `shuoshi run` is killed with SIGKILL.

For each channel (Telegram long polling, Telegram webhook, the public web chat /r) and each
database (SQLite, PostgreSQL) it starts real `shuoshi run` processes on a temporary
shuoshi.toml, with the Telegram Bot API played by tests/fake_telegram/ on 127.0.0.1 inside
this process. N residents then report concurrently: /start with their grid's code, report,
category, description, photos (every other resident an album of two), done, location, no
phone, confirm; a resident who gets no answer does the step again as a new message (at most
twice). Meanwhile the bench kills a process K times at random moments spread over the
residents' work (when their progress passes random points) and restarts it. When
the residents are done (or gave up) and the outbox has drained, it stops the process with
Ctrl-C and counts, per (channel, database):

    confirmed       residents who saw the receipt with their case number
    cases           cases their accounts reported
    lost            confirmed numbers missing from the database                   (must be 0)
    duplicates      cases beyond one per resident                                 (must be 0)
    unprocessed     inputs the system acknowledged whose turn never ran: updates getUpdates
                    handed out, webhook posts answered 200, web posts answered OK (must be 0)
    delivered twice deliveries beyond one per outbox row (a crash may repeat one: allowed)
    over twice      messages delivered more than twice                            (must be 0)
    stuck           outbox rows still pending on the channels the run delivers    (must be 0)
                    (rows for channels it runs no sender for, such as the example county's
                    WeCom staff, are counted apart)
    missing photos  cases lacking a photo their resident sent                     (must be 0)

It stops by itself: every wait is bounded (a resident's patience counts only while the system
is up), and all traffic stays on 127.0.0.1. PostgreSQL runs in a fresh database created on
the server of SHUOSHI_BENCH_PG_URL (default postgresql://postgres@127.0.0.1:5432/test) and
dropped afterwards. The exit status is 1 when a figure that must be 0 is not.

    .venv/bin/python bench/crash.py [--residents 30] [--kills 5] [--db sqlite|pg|both]
        [--channel polling|webhook|web|all] [--seed 1] [--processes 1] [--patience 15]
        [--verbose] [--keep-logs DIR]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import os
import shutil
import sys
import tempfile
import time
from pathlib import Path
from random import Random

import aiohttp

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crash_audit import (
    Figures,
    audit,
    handed_out,
    served,
    telegram_deliveries,
)
from bench.crash_cluster import (
    Cluster,
    Database,
    Server,
    free_port,
    shuoshi_init,
    write_config,
)
from bench.crash_residents import (
    STEPS,
    Gone,
    Resident,
    TelegramResident,
    WebResident,
    jpeg,
    update_key,
)
from tests.fake_telegram import FakeTelegram

CHANNELS = ("polling", "webhook", "web")
GRIDS = ("JL-XGC-01-G1", "JL-XGC-01-G2", "JL-XGC-02-G1", "JL-CG-01-G1", "JL-CG-02-G3")
WEBHOOK_SECRET = "crash-bench-webhook"
SCENARIO_LIMIT = 900.0  # seconds: a scenario still running then is cut short (and says so)
DRAIN_LIMIT = 60.0  # seconds for the outbox to empty once the residents are done
PG_ADMIN = os.environ.get("SHUOSHI_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")


def make_residents(n: int, rng: Random) -> list[Resident]:
    """Every other resident sends an album of two photos, the rest one photo."""
    return [
        Resident(i, rng.choice(GRIDS), [jpeg(i, p) for p in range(2 if i % 2 == 0 else 1)])
        for i in range(n)
    ]


async def run_scenario(
    channel: str,
    db_kind: str,
    n: int,
    kills: int,
    seed: int,
    processes: int,
    patience: float,
    keep_logs: Path | None = None,
) -> Figures:
    rng = Random(f"{seed}-{channel}-{db_kind}")
    residents = make_residents(n, rng)
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix=f"crash-{channel}-{db_kind}-") as tmp:
        workdir = Path(tmp)
        db = await Database.create(db_kind, workdir, PG_ADMIN)
        fake = FakeTelegram()
        await fake.start()
        cluster: Cluster | None = None
        try:
            telegram = {}
            port = free_port()
            if channel != "web":
                telegram = {"token": fake.token, "api_base": fake.base_url}
            if channel == "webhook":
                telegram.update(mode="webhook", webhook_secret=WEBHOOK_SECRET,
                                webhook_url=f"http://127.0.0.1:{port}")  # fmt: skip
            count = 1 if channel == "polling" else processes  # one poller per token
            servers = []
            for i in range(count):
                server_dir, server_port = workdir / f"p{i}", port if i == 0 else free_port()
                server_dir.mkdir()
                # Every process shares the one data_dir (media, SQLite) and database.
                write_config(server_dir, workdir / "data", db, port=server_port,
                             telegram=telegram)  # fmt: skip
                servers.append(Server(server_dir, server_port, workdir / f"shuoshi-{i}.log"))
            await shuoshi_init(servers[0].workdir)
            cluster = Cluster(servers, patience)
            await cluster.start()
            await drive(channel, fake, cluster, residents, kills, rng)
            await drain(cluster, fake, channel, db)
            await cluster.stop()
            if channel == "polling":
                assign_handed_out(residents, handed_out(fake))
            figures = Figures(channel, db_kind, n, cluster.kills, time.monotonic() - started)
            deliveries = telegram_deliveries(fake) if channel != "web" else None
            web = "web" if channel == "web" else "telegram"
            await audit(figures, _db_url(db), web, residents, deliveries)
            figures.seconds = time.monotonic() - started
            return figures
        finally:
            if cluster is not None:
                await cluster.close()
            await fake.stop()
            await db.drop()
            if keep_logs is not None:
                copy_logs(workdir, keep_logs, f"{channel}-{db_kind}-")


def copy_logs(workdir: Path, target: Path, prefix: str) -> None:
    target.mkdir(parents=True, exist_ok=True)
    for log in workdir.glob("shuoshi-*.log"):
        shutil.copy(log, target / f"{prefix}{log.name}")


def _db_url(db: Database) -> str:
    assert db.url is not None
    return db.url


async def drive(
    channel: str, fake: FakeTelegram, cluster: Cluster, residents: list[Resident], kills: int,
    rng: Random,
) -> None:  # fmt: skip
    """All residents at once (starting over the first seconds), and the killer beside them."""
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as http:

        async def one(r: Resident, delay: float) -> None:
            await asyncio.sleep(delay)
            if channel == "web":
                person: TelegramResident | WebResident = WebResident(r, cluster, timeout)
            else:
                secret = WEBHOOK_SECRET if channel == "webhook" else None
                person = TelegramResident(r, fake, cluster, http, secret)
            with contextlib.suppress(Gone):
                await person.run()

        tasks = [asyncio.create_task(one(r, rng.uniform(0, 5))) for r in residents]
        busy = lambda: not all(t.done() for t in tasks)  # noqa: E731
        progress = lambda: sum(r.steps for r in residents) / (STEPS * len(residents))  # noqa: E731
        killer = asyncio.create_task(cluster.killer(kills, rng, progress, busy))
        done, pending = await asyncio.wait(tasks, timeout=SCENARIO_LIMIT)
        for task in pending:
            task.cancel()
        if pending:
            print(f"  cut short: {len(pending)} residents still busy after {SCENARIO_LIMIT:.0f} s")
        await asyncio.gather(*tasks, return_exceptions=True)
        with contextlib.suppress(Exception):
            await asyncio.wait_for(killer, 300)
        for task in done:
            if task.exception() is not None:
                print(f"  resident failed: {task.exception()!r}")


async def drain(cluster: Cluster, fake: FakeTelegram, channel: str, db: Database) -> None:
    """Until nothing waits in the outbox (or on the Bot API, for long polling), bounded."""
    from sqlalchemy import func, select

    from storage.db import create_engine
    from storage.rows import OutboxRow

    engine = create_engine(_db_url(db))
    try:
        deadline = time.monotonic() + DRAIN_LIMIT
        while time.monotonic() < deadline:
            async with engine.connect() as conn:
                waiting = select(func.count()).where(
                    OutboxRow.status == "pending", OutboxRow.channel.in_(served(channel))
                )
                pending = (await conn.execute(waiting)).scalar_one()
            if pending == 0 and not (channel == "polling" and fake.pending_updates()):
                break
            await asyncio.sleep(0.5)
        await asyncio.sleep(1.0)  # a turn in flight commits its outbox rows with its mark
    finally:
        await engine.dispose()


def assign_handed_out(residents: list[Resident], updates: list[dict]) -> None:
    """Long polling: what getUpdates handed out is what the system took from each resident."""
    by_chat = {r.chat: r for r in residents}
    seen: set[str] = set()
    for update in updates:
        key = update_key(update)
        if key in seen:
            continue
        seen.add(key)
        body = update.get("message") or update["callback_query"]["message"]
        resident = by_chat.get(str(body["chat"]["id"]))
        if resident is not None:
            resident.acked.append(key)


ROWS = (
    ("confirmed", "receipts with a case number", None),
    ("cases", "cases of these residents", None),
    ("acked", "inputs acknowledged", None),
    ("gave_up", "residents who gave up", None),
    ("retries", "steps done again (no answer)", None),
    ("lost", "confirmed but not in the database", 0),
    ("duplicates", "duplicate cases", 0),
    ("unprocessed", "acknowledged inputs never processed", 0),
    ("delivered_twice", "messages delivered twice", None),
    ("over_twice", "messages delivered more than twice", 0),
    ("stuck", "rows stuck in the outbox", 0),
    ("unserved", "rows for channels not run (WeCom)", None),
    ("missing_photos", "cases missing a photo", 0),
)


def table(f: Figures) -> str:
    head = (
        f"{f.channel} / {'SQLite' if f.db == 'sqlite' else 'PostgreSQL'}: {f.residents} "
        f"residents, {f.kills} kill -9, {f.seconds:.0f} s"
    )
    lines = [head, "-" * len(head)]
    for name, label, must in ROWS:
        value = getattr(f, name)
        flag = "" if must is None else ("  ok" if value == must else "  <-- must be 0")
        lines.append(f"  {label:<38} {value:>5}{flag}")
    return "\n".join(lines)


async def main(args: argparse.Namespace) -> int:
    channels = CHANNELS if args.channel == "all" else (args.channel,)
    dbs = ("sqlite", "pg") if args.db == "both" else (args.db,)
    if "pg" in dbs and (why := await pg_unreachable()):
        print(f"PostgreSQL at {PG_ADMIN} is not reachable ({why}); no PostgreSQL runs")
        if args.db == "pg":
            return 2
        dbs = ("sqlite",)
    results = []
    for db in dbs:
        for channel in channels:
            figures = await run_scenario(
                channel,
                db,
                args.residents,
                args.kills,
                args.seed,
                args.processes,
                args.patience,
                args.keep_logs,
            )
            print(table(figures), flush=True)
            if args.verbose:
                print("\n".join(f"  - {note}" for note in figures.notes))
            print(flush=True)
            results.append(figures)
    if len(results) > 1:
        print("channel   db      confirmed cases lost dup unproc twice >2 stuck photos gave_up")
        for f in results:
            print(
                f"{f.channel:<9} {f.db:<7} {f.confirmed:>9} {f.cases:>5} {f.lost:>4} "
                f"{f.duplicates:>3} {f.unprocessed:>6} {f.delivered_twice:>5} {f.over_twice:>2} "
                f"{f.stuck:>5} {f.missing_photos:>6} {f.gave_up:>7}"
            )
    return 0 if all(f.ok for f in results) else 1


async def pg_unreachable() -> str | None:
    """None when the server of SHUOSHI_BENCH_PG_URL answers; else why not."""
    try:
        import asyncpg

        conn = await asyncpg.connect(PG_ADMIN, timeout=5)
    except Exception as exc:  # no driver, no server, refused: all say the same to the user
        return f"{type(exc).__name__}: {exc}"
    await conn.close()
    return None


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--residents", type=int, default=30)
    parser.add_argument("--kills", type=int, default=5)
    parser.add_argument("--db", choices=("sqlite", "pg", "both"), default="both")
    parser.add_argument("--channel", choices=(*CHANNELS, "all"), default="all")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--verbose", action="store_true", help="say what each non-zero is")
    parser.add_argument("--keep-logs", type=Path, metavar="DIR",
                        help="copy the processes' logs (stderr, WARNING and up) there")  # fmt: skip
    parser.add_argument("--processes", type=int, default=1,
                        help="processes behind one address (webhook and web chat)")  # fmt: skip
    parser.add_argument("--patience", type=float, default=15.0,
                        help="seconds of uptime a resident waits for an answer")  # fmt: skip
    args = parser.parse_args(argv)
    if args.residents < 1 or args.kills < 0 or args.processes < 1 or args.patience <= 0:
        parser.error(
            "--residents and --processes must be at least 1, --kills at least 0, "
            "--patience more than 0"
        )
    return args


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
