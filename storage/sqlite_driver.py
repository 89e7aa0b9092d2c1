"""SQLite under asyncio: one thread hop per statement, and one writer at a time per process.

SQLAlchemy's aiosqlite adapter makes four trips to aiosqlite's thread per statement (open a
cursor, execute, fetch, close), each a queue put and a wake-up of the event loop; on a busy
2-core machine those hand-offs cost more than the SQL. Here a statement is one function run in
that thread, which returns everything SQLAlchemy asks of the cursor afterwards.

SQLite has one writer at a time. Left to itself, a second connection that wants to write sleeps
in SQLite's busy handler (backing off up to 100 ms a try) while the first commits, so under
concurrent webhooks the slowest updates waited hundreds of milliseconds and the outbox sender
starved. Here a connection takes a process-wide asyncio lock before the statement that opens a
write transaction (SQLite's BEGIN comes with the first INSERT/UPDATE/DELETE, so reads before it
never hold it) and gives it back when the transaction ends; waiters queue in order, so the
sender gets its turn between intake's transactions (storage/write_lock.py, which logs who holds
it when a writer waits long). Other processes still meet the busy handler, as before.

A unit of work's statements are short (point reads and small writes of one turn): inside
`quick_statements()` its reads and its commit also run on the loop's thread, so a turn makes no
trip to aiosqlite's thread at all unless another process holds the database. Long reads (the
dashboard's, the weekly analysis) stay outside it and run in the thread.
"""

from __future__ import annotations

import collections
import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any

import aiosqlite
from sqlalchemy.dialects.sqlite.aiosqlite import (
    AsyncAdapt_aiosqlite_connection,
    AsyncAdapt_aiosqlite_cursor,
    AsyncAdapt_aiosqlite_dbapi,
)
from sqlalchemy.util import await_only

from storage.write_lock import WriteLock

_READS = ("SELECT", "PRAGMA", "EXPLAIN")

# Set while a unit of work runs (storage/uow.py): its reads and commit run on the loop's thread.
_quick: ContextVar[bool] = ContextVar("sqlite_quick_statements", default=False)


@contextmanager
def quick_statements(quick: bool = True) -> Iterator[None]:
    """Statements run in this block are short (or, with False, may be long): whether they may
    skip the hand-off to aiosqlite's thread."""
    token = _quick.set(quick)
    try:
        yield
    finally:
        _quick.reset(token)


def _opens_write(operation: str) -> bool:
    return not operation.lstrip()[:7].upper().startswith(_READS)


async def _nothing() -> None:
    return None


def _is_busy(error: BaseException) -> bool:
    return isinstance(error, sqlite3.OperationalError) and (
        "locked" in str(error) or "busy" in str(error)
    )


def _run_now(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool, busy_ms: int
) -> tuple[Any, list[Any], int, int | None, bool]:
    """On the event loop's thread, never waiting for another process: SQLITE_BUSY at once."""
    conn.execute("PRAGMA busy_timeout = 0")
    try:
        return _run(conn, operation, parameters, many)
    finally:
        conn.execute(f"PRAGMA busy_timeout = {busy_ms}")


def _run(
    conn: sqlite3.Connection, operation: str, parameters: Any, many: bool
) -> tuple[Any, list[Any], int, int | None, bool]:
    """The statement, its rows and what the cursor knows after it."""
    cursor = conn.cursor()
    try:
        if many:
            cursor.executemany(operation, parameters)
        elif parameters is None:
            cursor.execute(operation)
        else:
            cursor.execute(operation, parameters)
        description = cursor.description
        rows = cursor.fetchall() if description else []
        return description, rows, cursor.rowcount, cursor.lastrowid, conn.in_transaction
    finally:
        cursor.close()


class OneHopCursor(AsyncAdapt_aiosqlite_cursor):
    __slots__ = ("_description", "_lastrowid", "_rowcount")

    def __init__(self, adapt_connection: OneHopConnection) -> None:
        # No driver cursor to open: each statement opens and closes its own in the thread.
        self._adapt_connection = adapt_connection
        self._connection = adapt_connection._connection
        self._cursor = None  # type: ignore[assignment]
        self._soft_closed_memoized = {}  # type: ignore[assignment]
        self._rows = collections.deque()
        self._description: Any = None
        self._rowcount = -1
        self._lastrowid: int | None = None

    @property
    def description(self) -> Any:
        return self._description

    @property
    def rowcount(self) -> int:
        return self._rowcount

    @property
    def lastrowid(self) -> int:
        return self._lastrowid  # type: ignore[return-value]

    async def _async_soft_close(self) -> None:
        return None

    def close(self) -> None:
        self._rows.clear()

    def execute(self, operation: Any, parameters: Any = None) -> Any:
        return self._go(operation, parameters, many=False)

    def executemany(self, operation: Any, seq_of_parameters: Any) -> Any:
        return self._go(operation, seq_of_parameters, many=True)

    def _go(self, operation: str, parameters: Any, many: bool) -> None:
        adapt: OneHopConnection = self._adapt_connection  # type: ignore[assignment]
        try:
            if _opens_write(operation):
                adapt.take_write_lock(operation)
            driver: aiosqlite.Connection = self._connection  # type: ignore[assignment]
            try:
                result = self._now_or_in_thread(adapt, driver, operation, parameters, many)
            except BaseException:
                adapt.release_if_done()
                raise
            self._description, rows, self._rowcount, self._lastrowid, in_tx = result
            self._rows = collections.deque(rows)
            if not in_tx:
                adapt.release_write_lock()
        except Exception as error:
            adapt._handle_exception(error)

    @staticmethod
    def _now_or_in_thread(
        adapt: OneHopConnection, driver: aiosqlite.Connection, operation: str,
        parameters: Any, many: bool,
    ) -> tuple[Any, list[Any], int, int | None, bool]:  # fmt: skip
        """Inside this process's write transaction a statement runs right here: it waits for
        no one in this process, and handing it to the thread and back costs more than the SQL
        (on a loaded machine, a scheduler slice each way). So do a unit of work's reads (WAL
        readers wait for no writer). Only if another process holds the database does it go to
        the thread, to wait there in SQLite's busy handler; other reads (the dashboard's long
        ones) always run there."""
        conn = driver._conn
        if adapt.write_lock.holder is adapt or _quick.get():
            # SQLAlchemy's AsyncConnection insists that an execute awaited something: an
            # awaitable that finishes at once satisfies it without leaving the greenlet's turn.
            await_only(_nothing())
            try:
                return _run_now(conn, operation, parameters, many, adapt.busy_ms)
            except sqlite3.OperationalError as error:
                if not _is_busy(error):
                    raise
        return await_only(driver._execute(_run, conn, operation, parameters, many))


class OneHopConnection(AsyncAdapt_aiosqlite_connection):
    __slots__ = ("busy_ms", "write_lock")

    _cursor_cls = OneHopCursor  # type: ignore[assignment]

    def __init__(
        self, dbapi: Any, connection: Any, write_lock: WriteLock, busy_seconds: float
    ) -> None:
        super().__init__(dbapi, connection)
        self.write_lock = write_lock
        self.busy_ms = int(busy_seconds * 1000)  # the connection's own busy timeout

    def take_write_lock(self, statement: str) -> None:
        if self.write_lock.holder is not self:
            await_only(self.write_lock.acquire(self, statement))

    def release_write_lock(self) -> None:
        self.write_lock.release(self)

    def release_if_done(self) -> None:
        """After a failed call: keep the lock only while this connection's transaction lives."""
        conn = self._connection._connection
        if conn is None or not conn.in_transaction:
            self.release_write_lock()

    def rollback(self) -> None:
        try:
            conn = self._connection._connection
            if conn is not None and conn.in_transaction:
                super().rollback()
        finally:
            self.release_write_lock()

    def commit(self) -> None:
        try:
            conn = self._connection._connection
            if conn is not None and conn.in_transaction:
                if not _quick.get() or not self._commit_now(conn):
                    super().commit()
        except Exception as error:
            self._handle_exception(error)
        finally:
            self.release_write_lock()

    def _commit_now(self, conn: sqlite3.Connection) -> bool:
        """A WAL commit without fsync (synchronous=NORMAL) is cheaper than the hand-off; it
        never waits here: should SQLite answer busy, False, and the thread commits."""
        await_only(_nothing())
        conn.execute("PRAGMA busy_timeout = 0")
        try:
            conn.commit()
        except sqlite3.OperationalError as error:
            if not _is_busy(error):
                raise
            return False
        finally:
            conn.execute(f"PRAGMA busy_timeout = {self.busy_ms}")
        return True

    def close(self) -> None:
        try:
            super().close()
        finally:
            self.release_write_lock()

    def terminate(self) -> None:
        try:
            super().terminate()
        finally:
            self.release_write_lock()


class OneHopDBAPI(AsyncAdapt_aiosqlite_dbapi):
    """aiosqlite as SQLAlchemy's dialect expects it, with the connections above; one per
    engine, so its write lock covers one database."""

    def __init__(self) -> None:
        super().__init__(aiosqlite, sqlite3)
        self.write_lock = WriteLock()

    def connect(self, *arg: Any, **kw: Any) -> OneHopConnection:
        busy_seconds = float(kw.get("timeout", 5.0))  # sqlite3's default
        plain = super().connect(*arg, **kw)
        return OneHopConnection(self, plain._connection, self.write_lock, busy_seconds)
