"""The process's single SQLite writer (storage/sqlite_driver.py): an asyncio lock held from a
write transaction's first statement to its commit or rollback, which can say who holds it.

A writer that waits long means another one keeps its transaction open (a network call or a
second session inside it, a task stuck elsewhere). So a waiter that has waited WARN_SECONDS
logs one line naming the holder: its task, how long it has held the lock and the statement its
transaction began with; after WRITE_WAIT_SECONDS it gives up with SQLite's own error, with the
same line. A task that wants the lock while it holds it (a second session writing inside a
write transaction) would wait for itself: it fails at once, with that line.

The wait is bounded with asyncio.timeout, not asyncio.wait_for: on Python 3.11 wait_for waits in
a task of its own and, when that task takes the lock just as the waiter is cancelled, returns
and drops the cancellation, so a task told to stop (at shutdown) went on writing.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
from dataclasses import dataclass

log = logging.getLogger(__name__)

# How long a connection waits for another one's write transaction: the busy timeout's length,
# and then the same error SQLite gives, so a stuck writer fails loudly instead of hanging.
WRITE_WAIT_SECONDS = 30.0
# A wait this long is logged with its holder: shorter than a shutdown step's bound
# (bot/runner.py SHUTDOWN_SECONDS), so a step cut short has said what it waited for.
WARN_SECONDS = 3.0
STATEMENT_CHARS = 160  # of the holder's first statement, in the line


@dataclass(frozen=True)
class Holding:
    """Who took the lock, and with what: read only when a waiter tells about it."""

    task: asyncio.Task[object] | None
    statement: str  # the write transaction's first statement, as executed
    since: float  # the loop's time


def _name(task: asyncio.Task[object] | None) -> str:
    if task is None:
        return "(no task)"
    # A holder whose task has ended left its transaction open: a leak, not a slow writer.
    return repr(task.get_name()) + (" (finished)" if task.done() else "")


class WriteLock:
    """The process's single SQLite writer: held from a write transaction's first statement to
    its commit or rollback."""

    def __init__(self) -> None:
        self._lock = asyncio.Lock()
        self.holder: object | None = None
        self.holding: Holding | None = None
        self.waiting = 0  # connections queued for it (figures, tests)

    async def acquire(self, holder: object, statement: str = "") -> None:
        task = asyncio.current_task()
        if not self._lock.locked() and not self.waiting:
            await self._lock.acquire()  # free and nobody queued: taken at once, no timer
        else:
            await self._wait(task)
        self.holder = holder
        self.holding = Holding(task, statement, asyncio.get_running_loop().time())

    async def _wait(self, task: asyncio.Task[object] | None) -> None:
        loop = asyncio.get_running_loop()
        began = loop.time()
        if self.holding is not None and task is not None and self.holding.task is task:
            log.error("%s", self.told(task, began, "would wait for itself"))
            raise sqlite3.OperationalError("database is locked")
        self.waiting += 1
        warning = loop.call_later(WARN_SECONDS, self._warn, task, began)
        try:
            async with asyncio.timeout(WRITE_WAIT_SECONDS):
                await self._lock.acquire()
        except TimeoutError:
            log.error("%s", self.told(task, began, "gave up"))
            raise sqlite3.OperationalError("database is locked") from None
        finally:
            warning.cancel()
            self.waiting -= 1

    def _warn(self, task: asyncio.Task[object] | None, began: float) -> None:
        log.warning("%s", self.told(task, began, "still waits"))

    def told(self, task: asyncio.Task[object] | None, began: float, what: str) -> str:
        """The one line about a waiter and the holder it waits for."""
        now = asyncio.get_running_loop().time()
        line = f"SQLite write lock: task {_name(task)} {what} after {now - began:.1f} s"
        held = self.holding
        if held is None:  # released, and not yet taken by the next waiter
            return f"{line}; the lock is being handed over"
        first = " ".join(held.statement.split())[:STATEMENT_CHARS]
        return (
            f"{line}; held {now - held.since:.1f} s by task {_name(held.task)}, whose "
            f"transaction began with: {first or '?'} ({self.waiting} waiting)"
        )

    def release(self, holder: object) -> None:
        if self.holder is holder:
            self.holder = None
            self.holding = None
            self._lock.release()
