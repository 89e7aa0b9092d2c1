"""Work that only one process at a time may do, kept to the holder of a lease in the database.

Two `shuoshi run` on one database used to both deliver the Telegram outbox (17% of messages
went twice). Now delivering (and, with long polling, polling and handling the inbox) for a bot
token runs only in the process holding the lease `telegram:<bot id>`: renewed every few
seconds, it expires `ttl` after the last renewal, and then another process takes it over. A
process that fails to renew stops that work at once; everything else it serves (webhook, web
chat, dashboard, sweep) goes on.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import secrets
import socket
from collections.abc import Callable
from datetime import datetime, timedelta
from typing import Any

from storage.db import SessionFactory
from storage.leases import release_lease, take_lease
from workflow.clock import Clock

log = logging.getLogger(__name__)

TTL = timedelta(seconds=10)
RENEW_EVERY = timedelta(seconds=3)
# A holder stops trusting its lease this long before it expires: the other process's clock
# and the time a send takes must not make two holders overlap.
MARGIN = timedelta(seconds=2)


def holder_id() -> str:
    """This process, readably: host, pid and a random part (a pid can be reused)."""
    return f"{socket.gethostname()[:80]}:{os.getpid()}:{secrets.token_hex(4)}"


class Lease:
    """One named lease as this process sees it: taken or renewed by `renew()`; `valid()`
    only while its last successful renewal is recent enough."""

    def __init__(
        self, sessions: SessionFactory, clock: Clock, name: str, *,
        holder: str | None = None, ttl: timedelta = TTL,
    ) -> None:  # fmt: skip
        self.sessions = sessions
        self.clock = clock
        self.name = name
        self.holder = holder or holder_id()
        self.ttl = ttl
        self._expires_at: datetime | None = None

    def valid(self) -> bool:
        return self._expires_at is not None and self.clock.now() < self._expires_at - MARGIN

    async def renew(self) -> bool:
        """Take or keep the lease; False (and not valid) when another holds it or the
        database could not be asked."""
        now = self.clock.now()
        try:
            held = await take_lease(self.sessions, self.name, self.holder, now, now + self.ttl)
        except Exception as exc:
            log.warning("lease %s could not be renewed: %s", self.name, exc)
            held = False
        self._expires_at = now + self.ttl if held else None
        return held

    async def release(self) -> None:
        if self._expires_at is None:
            return
        self._expires_at = None
        with contextlib.suppress(Exception):  # it expires by itself anyway
            await release_lease(self.sessions, self.name, self.holder, self.clock.now())


class LeasedWork:
    """Runs tasks only while the lease is held: started when it is taken, cancelled at once
    when a renewal fails. `tick()` is one renewal (tests drive it with a manual clock);
    `run()` ticks every `renew_every` until cancelled, then stops the tasks (the caller may
    still use the lease, e.g. to flush, before it releases it)."""

    def __init__(
        self, lease: Lease, start: Callable[[], list[asyncio.Task[Any]]], *,
        renew_every: timedelta = RENEW_EVERY,
    ) -> None:  # fmt: skip
        self.lease = lease
        self.start = start
        self.renew_every = renew_every
        self.tasks: list[asyncio.Task[Any]] = []
        self._told_waiting = False

    @property
    def running(self) -> bool:
        return bool(self.tasks)

    async def tick(self) -> bool:
        held = await self.lease.renew()
        if held and not self.tasks:
            log.info("lease %s taken by %s: this process delivers", self.lease.name,
                     self.lease.holder)  # fmt: skip
            self.tasks = self.start()
        elif not held and self.tasks:
            log.warning("lease %s lost: this process stops delivering", self.lease.name)
            await self.stop()
        elif not held and not self._told_waiting:
            log.info("lease %s is held by another process: this one waits to take over",
                     self.lease.name)  # fmt: skip
        self._told_waiting = not held
        return held

    async def stop(self) -> None:
        tasks, self.tasks = self.tasks, []
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)

    async def run(self) -> None:
        try:
            while True:
                await self.tick()
                await asyncio.sleep(self.renew_every.total_seconds())
        finally:
            await self.stop()
