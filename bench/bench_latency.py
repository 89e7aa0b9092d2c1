"""Update-to-answer latency under concurrent webhooks on SQLite, and the sender's pace meanwhile.

Starts a real `shuoshi run` (SQLite, Telegram in webhook mode) against the fake Bot API of
tests/fake_telegram/ in this process, enforcing Telegram's limits in real time (30/s overall,
1/s per chat). `--residents` residents are enrolled first (`/start GRID`, not measured). Then,
at the same moment, another process starts queueing `--trickle` messages a second to other chats
(as notices and digests do) and `--clients` webhook clients start posting:
each owns its share of the residents, posts a text for one of them, waits until the bot's
answer reaches the Bot API, and goes on to its next resident (a resident's next update only a
second after its last answer, Telegram's per-chat pace, so that pacing is not what is
measured; answers and other messages together stay under Telegram's 30/s, so the queue is not
what is measured either). It prints:

- p50/p95/p99 of update-to-answer: from the webhook post to the sendMessage of the answer
  arriving at the Bot API (through the outbox and its sender: what a resident waits);
- the sender's messages/s during the load (answers and backlog together, all sendMessage calls
  the Bot API accepted while the clients ran): whether delivery keeps its pace while intake runs;
- the anchor, in the same run with the same clients and residents: bench/latency_anchor.py,
  an aiohttp server that stores each update with one SQLAlchemy insert on SQLite and answers
  with one direct sendMessage.

Goals (issue 13): p95 <= 100 ms at 8 concurrent clients, the sender >= 25 messages/s.

    .venv/bin/python bench/bench_latency.py [--clients 8] [--residents 64] [--rounds 6]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import statistics
import sys
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from bench.crash_cluster import free_port, shuoshi_init
from handlers.messages import Outgoing
from storage.db import create_engine, session_factory
from storage.uow import UnitOfWorkFactory
from tests.fake_telegram import FakeTelegram
from workflow.clock import SystemClock
from workflow.ports import OutgoingMessage

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-latency"
CHAT_PACE = 1.05  # seconds between a resident's answer and its next update


class Answers:
    """When each sendMessage reached the fake Bot API, per chat (wraps its execute)."""

    def __init__(self, fake: FakeTelegram) -> None:
        self.arrived: dict[int, list[float]] = defaultdict(list)
        self.all: list[float] = []
        self.waiters: dict[int, asyncio.Future[float]] = {}
        real = fake.execute

        async def execute(method: str, params: dict[str, Any], files: Any = None) -> Any:
            status, body = await real(method, params, files)
            if status == 200 and method.lower() == "sendmessage":
                now = time.perf_counter()
                chat = params.get("chat_id")
                self.all.append(now)
                waiter = self.waiters.pop(chat, None) if isinstance(chat, int) else None
                if waiter is not None and not waiter.done():
                    waiter.set_result(now)
            return status, body

        fake.execute = execute  # type: ignore[method-assign]

    def expect(self, chat: int) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiters[chat] = future
        return future

    def between(self, start: float, end: float) -> int:
        return sum(1 for t in self.all if start <= t <= end)


async def started(cmd: list[str], cwd: Path, env: dict[str, str], ready: bytes) -> Any:
    log = (cwd / f"{Path(cmd[-1]).name}.log").open("ab")
    proc = await asyncio.create_subprocess_exec(
        *cmd, cwd=cwd, env=env, stdout=asyncio.subprocess.PIPE, stderr=log
    )
    assert proc.stdout is not None
    line = await asyncio.wait_for(proc.stdout.readline(), 180)
    if ready not in line:
        raise RuntimeError(f"{cmd} did not start: {line!r}")
    return proc


async def stop(proc: Any) -> None:
    if proc.returncode is None:
        proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(proc.wait(), 60)
        except TimeoutError:
            proc.kill()
            await proc.wait()


def write_config(workdir: Path, fake: FakeTelegram) -> None:
    lines = [
        f'data_dir = "{workdir / "data"}"',
        'locale = "en"',
        'log_level = "WARNING"',
        f'example_county = "{ROOT / "bot" / "examples" / "county.yaml"}"',
        "[web]",
        'host = "127.0.0.1"',
        'public_url = "http://127.0.0.1"',
        'chat_secret = "bench-latency-secret"',
        "[telegram]",
        f'token = "{fake.token}"',
        f'api_base = "{fake.base_url}"',
        'mode = "webhook"',
        'webhook_url = "http://127.0.0.1"',
        f'webhook_secret = "{SECRET}"',
    ]
    (workdir / "shuoshi.toml").write_text("\n".join(lines) + "\n", encoding="utf-8")


async def trickle(database: Path, per_second: int, stop: asyncio.Event) -> None:
    """Every second, `per_second` messages to as many new chats, in one transaction (another
    process writing to the outbox, as notices and digests do; the sender finds them on its
    next pass), until `stop`."""
    engine = create_engine(f"sqlite+aiosqlite:///{database}")
    uows = UnitOfWorkFactory(session_factory(engine), SystemClock())
    k = 0
    try:
        while not stop.is_set():
            async with uows() as uow:
                for _ in range(per_second):
                    k += 1
                    chat = str(700_000 + k)
                    payload = Outgoing(chat_id=chat, text=f"notice {k}").payload()
                    await uow.outbox.add(
                        OutgoingMessage("telegram", chat, {**payload, "callback_id": None})
                    )
                await uow.commit()
            try:
                await asyncio.wait_for(stop.wait(), 1.0)
            except TimeoutError:
                pass
    finally:
        await engine.dispose()


async def load(
    fake: FakeTelegram, answers: Answers, url: str, residents: list[int], args: argparse.Namespace
) -> tuple[list[float], float, float]:
    """The clients' phase: latencies (s), and when it started and ended."""
    latencies: list[float] = []
    shares = [residents[i :: args.clients] for i in range(args.clients)]
    ready_at: dict[int, float] = dict.fromkeys(residents, 0.0)

    async def client(mine: list[int]) -> None:
        for round_ in range(args.rounds):
            for chat in mine:
                wait = ready_at[chat] - time.perf_counter()
                if wait > 0:
                    await asyncio.sleep(wait)
                answer = answers.expect(chat)
                sent = time.perf_counter()
                status, _ = await fake.post_update_to(
                    url, fake.send_text(chat, chat, f"hello {round_}"), secret_token=SECRET
                )
                if status != 200:
                    raise RuntimeError(f"webhook answered {status}")
                arrived = await asyncio.wait_for(answer, 60)
                latencies.append(arrived - sent)
                ready_at[chat] = arrived + CHAT_PACE

    start = time.perf_counter()
    await asyncio.gather(*(client(mine) for mine in shares))
    return latencies, start, time.perf_counter()


async def enrol(fake: FakeTelegram, answers: Answers, url: str, residents: list[int]) -> None:
    gate = asyncio.Semaphore(8)

    async def one(chat: int) -> None:
        async with gate:
            answer = answers.expect(chat)
            update = fake.send_text(chat, chat, "/start JL-XGC-01-G1")
            await fake.post_update_to(url, update, secret_token=SECRET)
            await asyncio.wait_for(answer, 60)

    await asyncio.gather(*(one(chat) for chat in residents))
    await asyncio.sleep(CHAT_PACE)


def percentiles(values: list[float]) -> tuple[float, float, float]:
    cuts = statistics.quantiles(values, n=100, method="inclusive")
    return cuts[49] * 1000, cuts[94] * 1000, cuts[98] * 1000


async def run(args: argparse.Namespace) -> dict[str, Any]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHUOSHI_")}
    env["PYTHONPATH"] = str(ROOT)
    residents = [900_000 + i for i in range(args.residents)]
    with tempfile.TemporaryDirectory(prefix="bench-latency-") as tmp:
        workdir = Path(tmp)
        async with FakeTelegram() as fake:
            fake.enforce_limits()  # Telegram's limits, in real time
            answers = Answers(fake)
            write_config(workdir, fake)
            await shuoshi_init(workdir)
            port = free_port()
            proc = await started(
                [sys.executable, "-m", "bot.cli", "run"], workdir,
                env | {"SHUOSHI_WEB__PORT": str(port)}, b"shuoshi is running",
            )  # fmt: skip
            try:
                url = f"http://127.0.0.1:{port}/telegram/webhook"
                await enrol(fake, answers, url, residents)
                done = asyncio.Event()
                others = asyncio.create_task(
                    trickle(workdir / "data" / "shuoshi.db", args.trickle, done)
                )
                latencies, start, end = await load(fake, answers, url, residents, args)
                done.set()
                await others
                sender_rate = answers.between(start, end) / (end - start)
            finally:
                await stop(proc)

            fake.enforce_limits(None, None, None)  # the anchor does not pace itself
            anchor_port = free_port()
            anchor = await started(
                [sys.executable, str(ROOT / "bench" / "latency_anchor.py"), str(anchor_port),
                 str(workdir / "anchor.db"), fake.base_url, fake.token],
                workdir, env, b"anchor is running",
            )  # fmt: skip
            try:
                anchor_url = f"http://127.0.0.1:{anchor_port}/telegram/webhook"
                await asyncio.sleep(CHAT_PACE)  # the residents' last answers are a second old
                anchor_latencies, _, _ = await load(fake, answers, anchor_url, residents, args)
            finally:
                await stop(anchor)
    return {
        "shuoshi": percentiles(latencies),
        "anchor": percentiles(anchor_latencies),
        "updates": len(latencies),
        "sender": sender_rate,
        "seconds": end - start,
        "too_many": fake.too_many_requests,
    }


async def main(args: argparse.Namespace) -> int:
    r = await run(args)
    load1, load5, _ = os.getloadavg()
    print(f"{os.cpu_count()} cores, load average {load1:.1f} / {load5:.1f} (1 / 5 min) at the end")
    print(f"{args.clients} clients, {args.residents} residents, {r['updates']} updates in "
          f"{r['seconds']:.1f} s ({r['updates'] / r['seconds']:.1f}/s), and {args.trickle} "
          "messages/s to other chats queued by another process meanwhile")  # fmt: skip
    print("update-to-answer     p50 ms   p95 ms   p99 ms")
    for name in ("shuoshi", "anchor"):
        p50, p95, p99 = r[name]
        print(f"{name:<18} {p50:8.1f} {p95:8.1f} {p99:8.1f}")
    print(f"p95 / anchor p95: {r['shuoshi'][1] / r['anchor'][1]:.2f}; goal: shuoshi p95 <= 100 ms")
    print(f"sender during the load: {r['sender']:.1f} messages/s (goal >= 25; Telegram's limit "
          f"30), 429s from the fake: {r['too_many']}")  # fmt: skip
    return 0


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--clients", type=int, default=8, help="webhook clients at once")
    parser.add_argument("--residents", type=int, default=16, help="each at most 1 update/s")
    parser.add_argument("--rounds", type=int, default=12, help="texts per resident")
    parser.add_argument(
        "--trickle", type=int, default=12, help="messages/s to other chats during the load"
    )
    return parser.parse_args(argv)


if __name__ == "__main__":
    sys.exit(asyncio.run(main(parse_args())))
