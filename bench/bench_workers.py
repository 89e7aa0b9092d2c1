"""1 vs 2 intake workers on one PostgreSQL database (docs/scaling.md).

For 1 and then 2 workers it creates a fresh PostgreSQL database on SHUOSHI_BENCH_PG_URL
(default postgresql://postgres@127.0.0.1:5432/test; dropped afterwards), runs `shuoshi init`,
and starts real `shuoshi run` processes on one temporary shuoshi.toml: N with
`SHUOSHI_PROCESS__ROLES=web` (the intake workers, Telegram in webhook mode) and one with
`sender,sweeper`. The Bot API is tests/fake_telegram/ in this process, enforcing Telegram's
limits in real time (30/s overall, 1/s per chat), and the outbox keeps its default pacing.

`--residents` residents (private chats) then each post `/start GRID` and `--messages` texts to
the webhook, one update at a time per resident (Telegram does so per chat), `--clients` of them
at once, spread round robin over the workers as a load balancer would. It prints, without pass
or fail:

- updates/s over the posting phase;
- updates per worker CPU-second (user + system time of the web workers, from /proc), counted
  after each worker has served one resident untimed (a running server's catalogs, templates
  and caches are warm; a short run would otherwise charge them twice to two workers);
- duplicate sends (Bot API sends beyond one per sent outbox row) and the 429s the fake
  answered (self-inflicted: every one is over a limit our sender should have kept).

The goal (issue 13): from 1 to 2 workers, updates per worker CPU-second fall by less than 15%,
with 0 duplicates and 0 429s; on more than 2 cores, updates/s >= 1.6x.

    .venv/bin/python bench/bench_workers.py [--residents 40] [--messages 8] [--clients 8]
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import signal
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crash_cluster import Database, free_port, shuoshi_init
from tests.fake_telegram import FakeTelegram

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN = os.environ.get("SHUOSHI_BENCH_PG_URL", "postgresql://postgres@127.0.0.1:5432/test")
SECRET = "bench-workers"
TICKS = os.sysconf("SC_CLK_TCK")


class Process:
    """One `shuoshi run` with its roles (and port, for a web worker)."""

    def __init__(self, workdir: Path, roles: str, port: int | None = None) -> None:
        self.workdir, self.roles, self.port = workdir, roles, port
        self.proc: asyncio.subprocess.Process | None = None

    async def start(self) -> None:
        env = {k: v for k, v in os.environ.items() if not k.startswith("SHUOSHI_")}
        env |= {"PYTHONPATH": str(ROOT), "SHUOSHI_PROCESS__ROLES": self.roles}
        if self.port is not None:
            env["SHUOSHI_WEB__PORT"] = str(self.port)
        log = (self.workdir / f"{self.roles}-{self.port}.log").open("ab")
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot.cli", "run", cwd=self.workdir, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=log,
        )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), 180)
        if b"shuoshi is running" not in line:
            raise RuntimeError(f"shuoshi run ({self.roles}) did not start: {line!r}")

    def cpu_seconds(self) -> float:
        assert self.proc is not None
        fields = Path(f"/proc/{self.proc.pid}/stat").read_text().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / TICKS  # utime + stime

    async def stop(self) -> None:
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), 60)
        except TimeoutError:
            self.proc.kill()
            await self.proc.wait()


def write_config(workdir: Path, db: Database, fake: FakeTelegram) -> None:
    lines = [
        f'data_dir = "{workdir / "data"}"',
        f'database_url = "{db.url}"',
        'locale = "en"',
        'log_level = "WARNING"',
        f'example_county = "{ROOT / "bot" / "examples" / "county.yaml"}"',
        "[web]",
        'host = "127.0.0.1"',
        'public_url = "http://127.0.0.1"',
        'chat_secret = "bench-workers-secret"',
        "[telegram]",
        f'token = "{fake.token}"',
        f'api_base = "{fake.base_url}"',
        'mode = "webhook"',
        'webhook_url = "http://127.0.0.1"',
        f'webhook_secret = "{SECRET}"',
    ]
    (workdir / "shuoshi.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


async def post(fake: FakeTelegram, url: str, update: dict) -> None:
    """Telegram's webhook delivery: again after an error, until answered 200 (bounded)."""
    for _ in range(10):
        try:
            status, _ = await fake.post_update_to(url, update, secret_token=SECRET)
        except OSError:
            status = 0
        if status == 200:
            return
    raise RuntimeError(f"update {update['update_id']} was never taken")


async def sent_rows(db: Database) -> tuple[int, int]:
    """(sent, pending) Telegram outbox rows."""
    import asyncpg

    assert db.url is not None
    conn = await asyncpg.connect(db.url.replace("postgresql+asyncpg://", "postgresql://"))
    try:
        sent = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE channel = 'telegram' AND status = 'sent'"
        )
        pending = await conn.fetchval(
            "SELECT count(*) FROM outbox WHERE channel = 'telegram' AND status = 'pending'"
        )
    finally:
        await conn.close()
    return sent, pending


async def scenario(workers: int, args: argparse.Namespace) -> dict[str, float]:
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        workdir = Path(tmp)
        db = await Database.create("pg", workdir, PG_ADMIN)
        procs: list[Process] = []
        try:
            async with FakeTelegram() as fake:
                fake.enforce_limits()  # Telegram's limits, in real time
                write_config(workdir, db, fake)
                await shuoshi_init(workdir)
                web = [Process(workdir, "web", free_port()) for _ in range(workers)]
                procs = [*web, Process(workdir, "sender,sweeper")]
                for proc in procs:
                    await proc.start()
                urls = itertools.cycle(f"http://127.0.0.1:{p.port}/telegram/webhook" for p in web)
                gate = asyncio.Semaphore(args.clients)

                async def resident(chat: int) -> None:
                    async with gate:
                        texts = [
                            "/start JL-XGC-01-G1",
                            *(f"hello {k}" for k in range(args.messages)),
                        ]
                        for text in texts:
                            await post(fake, next(urls), fake.send_text(chat, chat, text))

                # Warm-up, untimed: each worker serves one resident first, as a running server
                # has (catalogs read, templates compiled, caches filled); then the count starts.
                for n, proc in enumerate(web):
                    url = f"http://127.0.0.1:{proc.port}/telegram/webhook"
                    for text in ("/start JL-XGC-01-G1", "hello"):
                        await post(fake, url, fake.send_text(800_000 + n, 800_000 + n, text))
                cpu_before = [p.cpu_seconds() for p in web]
                started = time.perf_counter()
                await asyncio.gather(*(resident(900_000 + i) for i in range(args.residents)))
                elapsed = time.perf_counter() - started
                cpu = sum(p.cpu_seconds() - b for p, b in zip(web, cpu_before, strict=True))
                updates = args.residents * (args.messages + 1)
                deadline = time.monotonic() + 300
                while (await sent_rows(db))[1] and time.monotonic() < deadline:  # noqa: ASYNC110 - polled: another process drains
                    await asyncio.sleep(0.5)
                sent, pending = await sent_rows(db)
                calls = len(fake.sent())
                return {
                    "workers": workers,
                    "updates": updates,
                    "updates_per_s": updates / elapsed,
                    "per_cpu_s": updates / cpu if cpu else float("nan"),
                    "duplicates": max(0, calls - sent),
                    "too_many": fake.too_many_requests,
                    "pending": pending,
                }
        finally:
            for proc in procs:
                await proc.stop()
            await db.drop()


async def main(args: argparse.Namespace) -> int:
    rows = [await scenario(n, args) for n in (1, 2)]
    print(f"{os.cpu_count()} cores; {args.residents} residents x {args.messages + 1} updates, "
          f"{args.clients} at once")  # fmt: skip
    print("workers  updates/s  updates per worker CPU-s  duplicate sends  429s  still pending")
    for r in rows:
        print(f"{r['workers']:>7}  {r['updates_per_s']:>9.1f}  {r['per_cpu_s']:>24.1f}  "
              f"{r['duplicates']:>15}  {r['too_many']:>4}  {r['pending']:>13}")  # fmt: skip
    one, two = rows
    print(f"2 vs 1: updates/s x{two['updates_per_s'] / one['updates_per_s']:.2f} (goal >= 1.6 on "
          f"more than 2 cores); per worker CPU-s x{two['per_cpu_s'] / one['per_cpu_s']:.2f} "
          "(goal: falls by less than 15%, i.e. >= 0.85); duplicates and 429s: goal 0")  # fmt: skip
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--residents", type=int, default=40)
    parser.add_argument("--messages", type=int, default=8, help="texts after /start, each")
    parser.add_argument("--clients", type=int, default=8, help="residents posting at once")
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
