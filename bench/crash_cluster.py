"""bench/crash.py's system under test: real `shuoshi run` processes, killed with SIGKILL and
restarted, on a temporary shuoshi.toml (SQLite in a temporary data_dir, or a fresh PostgreSQL
database the bench creates and drops).
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import sys
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

ROOT = Path(__file__).resolve().parent.parent
START_TIMEOUT = 180.0  # seconds for a start (imports alone take ~10 s on a busy 2-core machine)
STOP_TIMEOUT = 60.0


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Database:
    """Where one scenario keeps its data: `url` for shuoshi, `drop()` afterwards."""

    kind: str  # sqlite | pg
    url: str | None  # None: SQLite in data_dir (shuoshi's default)
    admin_url: str | None = None
    name: str | None = None

    @classmethod
    async def create(cls, kind: str, workdir: Path, pg_admin: str) -> Database:
        if kind == "sqlite":
            return cls("sqlite", f"sqlite+aiosqlite:///{workdir / 'data' / 'shuoshi.db'}")
        import asyncpg

        name = f"shuoshi_crash_{uuid.uuid4().hex[:10]}"
        conn = await asyncpg.connect(pg_admin, timeout=10)
        try:
            await conn.execute(f'CREATE DATABASE "{name}"')
        finally:
            await conn.close()
        base = pg_admin.rsplit("/", 1)[0].replace("postgresql://", "postgresql+asyncpg://")
        return cls("pg", f"{base}/{name}", pg_admin, name)

    async def drop(self) -> None:
        if self.kind != "pg" or self.admin_url is None:
            return
        import asyncpg

        conn = await asyncpg.connect(self.admin_url, timeout=10)
        try:
            await conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')
        finally:
            await conn.close()


def write_config(
    workdir: Path, data_dir: Path, db: Database, *, port: int, telegram: dict[str, str]
) -> Path:
    """The temporary shuoshi.toml every process of the scenario reads (its working directory).
    The outbox is not paced (no 1 s per chat): the bench is about crashes, not flood limits."""
    lines = [
        f'data_dir = "{data_dir}"',
        f'database_url = "{db.url}"',
        'locale = "en"',
        'log_level = "WARNING"',
        f'example_county = "{ROOT / "bot" / "examples" / "county.yaml"}"',
        "[web]",
        'host = "127.0.0.1"',
        f"port = {port}",
        # A public address makes it production: residents' /r chats only, no role picker.
        f'public_url = "http://127.0.0.1:{port}"',
        'chat_secret = "crash-bench-secret"',
        "[outbox]",
        "messages_per_second = 1000",
        "chat_interval_seconds = 0",
        "backoff_base_seconds = 1",
        "[telegram]",
        *(f'{key} = "{value}"' for key, value in telegram.items()),
    ]
    path = workdir / "shuoshi.toml"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def _env() -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHUOSHI_")}
    env["PYTHONPATH"] = str(ROOT)
    return env


async def shuoshi_init(workdir: Path) -> None:
    """Schema, calendar and the example county, before any kill: `shuoshi init`."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "init", cwd=workdir, env=_env(),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    _, err = await asyncio.wait_for(proc.communicate(), START_TIMEOUT)
    if proc.returncode != 0:
        raise RuntimeError(f"shuoshi init failed: {err.decode()[-2000:]}")


@dataclass
class Server:
    """One `shuoshi run` process at a time on one port: started, killed, restarted."""

    workdir: Path
    port: int
    log: Path
    proc: asyncio.subprocess.Process | None = None
    up: asyncio.Event = field(default_factory=asyncio.Event)
    ready_at: float = 0.0  # monotonic time of the last successful start
    starts: int = 0
    kills: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def start(self) -> None:
        with self.log.open("ab") as log:
            log.write(f"--- start {self.starts + 1} at {time.strftime('%H:%M:%S')}\n".encode())
            self.proc = await asyncio.create_subprocess_exec(
                sys.executable, "-m", "bot.cli", "run", cwd=self.workdir, env=_env(),
                stdout=asyncio.subprocess.PIPE, stderr=log,
            )  # fmt: skip
        assert self.proc.stdout is not None
        line = await asyncio.wait_for(self.proc.stdout.readline(), START_TIMEOUT)
        if b"http://" not in line:
            raise RuntimeError(f"shuoshi run did not start (see {self.log}): {line!r}")
        self.starts += 1
        self.ready_at = time.monotonic()
        self.up.set()

    async def kill9(self) -> None:
        """SIGKILL: no handler runs, nothing is flushed."""
        self.up.clear()
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGKILL)
            await self.proc.wait()
            self.kills += 1
            with self.log.open("ab") as log:
                log.write(f"--- kill -9 at {time.strftime('%H:%M:%S')}\n".encode())

    async def stop(self) -> None:
        """Ctrl-C, as an operator would; SIGKILL if it does not stop in time."""
        self.up.clear()
        if self.proc is None or self.proc.returncode is not None:
            return
        self.proc.send_signal(signal.SIGINT)
        try:
            await asyncio.wait_for(self.proc.wait(), STOP_TIMEOUT)
        except TimeoutError:
            await self.kill9()


class Cluster:
    """The processes of one scenario, and the patience of the users in front of them: a user
    waits for an answer `patience` seconds of the system being up, however long restarts take."""

    def __init__(self, servers: list[Server], patience: float) -> None:
        self.servers = servers
        self.patience = patience
        self._next = 0

    async def start(self) -> None:
        for server in self.servers:
            await server.start()

    async def stop(self) -> None:
        for server in self.servers:
            await server.stop()

    @property
    def kills(self) -> int:
        return sum(s.kills for s in self.servers)

    async def pick(self) -> Server:
        """A running process, round robin (a load balancer); waits while all are down."""
        for _ in range(len(self.servers)):
            server = self.servers[self._next % len(self.servers)]
            self._next += 1
            if server.up.is_set():
                return server
        await asyncio.wait(
            [asyncio.create_task(s.up.wait()) for s in self.servers],
            return_when=asyncio.FIRST_COMPLETED,
        )
        return await self.pick()

    def all_up(self) -> bool:
        return all(s.up.is_set() for s in self.servers)

    def out_of_patience(self, since: float) -> bool:
        """True when the system has been up for `patience` seconds since `since`."""
        if not self.all_up():
            return False
        last_start = max(s.ready_at for s in self.servers)
        return time.monotonic() > max(since, last_start) + self.patience

    async def wait_until(self, check: Callable[[], object], since: float) -> object | None:
        """Poll `check` (sync or async) until it gives a truthy value or patience runs out."""
        while True:
            value = check()
            if asyncio.iscoroutine(value):
                value = await value
            if value:
                return value
            if self.out_of_patience(since):
                return None
            await asyncio.sleep(0.2)

    async def killer(
        self, kills: int, rng: Random, progress: Callable[[], float], busy: Callable[[], bool]
    ) -> None:
        """`kills` SIGKILLs spread over the users' work: each when `progress` (0..1) passes a
        random point, a random fraction of a second later; each followed by a restart."""
        points = sorted(rng.uniform(0.05, 0.95) for _ in range(kills))
        for point in points:
            while busy() and progress() < point:  # noqa: ASYNC110 - polled: a figure, no event
                await asyncio.sleep(0.1)
            if not busy():
                break
            await asyncio.sleep(rng.uniform(0.0, 1.0))
            server = rng.choice(self.servers)
            await server.kill9()
            await asyncio.sleep(rng.uniform(0.0, 0.5))
            await server.start()

    async def close(self) -> None:
        """Whatever happens, no process outlives the bench."""
        for server in self.servers:
            with contextlib.suppress(ProcessLookupError):
                await server.kill9()
