"""Wake-ups after a commit: who is told that outbox rows or web chat messages were written.

A transaction that writes an outbox row or a web chat message notes a topic on its session
(`announce`): `outbox:<channel>` for a row to deliver, `web:<chat id>` for a message in a web
chat's history. When the unit of work commits, the topics are published to this process's
`Wakeups` hub at once. On PostgreSQL the database tells the other processes itself: triggers on
`outbox` and `web_messages` (migration 0014) call `pg_notify` with the same topics for every
INSERT, on the channel "shuoshi.<schema>", so PostgreSQL delivers them on commit (and never for
a rollback) to every process that `listen`s: a web chat stream held by one process sees a
message written by another, and a sender wakes for rows an intake process wrote, within
milliseconds instead of at its next planned pass. The application sends no NOTIFY statement of
its own (a turn pays one statement fewer). SQLite has one process, so the hub alone is complete
there.

While a process's listener is down (the database restarted, the connection dropped) the hub
says so (`live` is False) and its subscribers fall back to polling; once the listener is back
it publishes `RESYNC`, so each of them rereads what it may have missed.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable, Iterable
from typing import Any

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession

log = logging.getLogger(__name__)

TOPICS = "shuoshi_wakeup_topics"  # session.info key: topics of the open transaction
RESYNC = "*"  # published when the listener (re)connects: reread everything
# One channel per schema: a test's schema (or a second deployment in the same database) does
# not wake this one. The name is built the same way by the triggers (migration 0014, which
# spells out this prefix and the topics below: keep them in step) and the listener.
_CHANNEL_PREFIX = "shuoshi."


def outbox_topic(channel: str) -> str:
    return f"outbox:{channel}"


def chat_topic(chat_id: str) -> str:
    """A web chat's history changed (the only channel whose history is ours to show)."""
    return f"web:{chat_id}"


def announce(session: AsyncSession, topic: str) -> None:
    """Note `topic` for when this session's transaction commits (see the module's text)."""
    session.info.setdefault(TOPICS, set()).add(topic)


def take_announced(session: AsyncSession) -> set[str]:
    """At the commit: the topics of this transaction, for this process's hub (other processes
    hear the same topics from the database's triggers)."""
    topics: set[str] = session.info.pop(TOPICS, set())
    return topics


class Wakeups:
    """This process's hub: subscribers are called with each topic that was committed, here or
    (through `listen`) in another process. Callbacks must be quick and must not raise: they
    set events; the work happens in the subscriber's own task."""

    def __init__(self) -> None:
        self._subscribers: list[Callable[[str], None]] = []
        # Whether the hub hears every process's commits: always with SQLite (one process);
        # on PostgreSQL only while `listen` is connected. Subscribers poll while it is False.
        self.live = True
        self.changed = asyncio.Event()  # set whenever `live` changes (tests wait for it)

    def subscribe(self, callback: Callable[[str], None]) -> Callable[[], None]:
        """Call `callback(topic)` from now on; returns the function that stops it."""
        self._subscribers.append(callback)
        return lambda: self._unsubscribe(callback)

    def _unsubscribe(self, callback: Callable[[str], None]) -> None:
        with contextlib.suppress(ValueError):
            self._subscribers.remove(callback)

    def publish(self, topics: Iterable[str]) -> None:
        for topic in topics:
            for callback in list(self._subscribers):
                try:
                    callback(topic)
                except Exception:  # one subscriber's bug must not silence the others
                    log.exception("wake-up subscriber failed on %s", topic)

    def set_live(self, live: bool) -> None:
        if live == self.live:
            return
        self.live = live
        self.changed.set()
        if live:
            self.publish((RESYNC,))


def listens(engine: AsyncEngine) -> bool:
    """Whether wake-ups cross processes on this database (PostgreSQL's LISTEN/NOTIFY)."""
    return engine.dialect.name == "postgresql"


async def listen(
    engine: AsyncEngine, hub: Wakeups, *, retry_seconds: float = 1.0, check_seconds: float = 10.0
) -> None:
    """PostgreSQL: LISTEN on one connection of its own, for good, publishing what other
    processes commit to `hub`. A lost connection is noticed (asyncpg's termination callback,
    and a `SELECT 1` every `check_seconds` for a silently dead one) and opened again every
    `retry_seconds`; meanwhile `hub.live` is False. Returns at once on SQLite."""
    if not listens(engine):
        return
    hub.set_live(False)
    while True:
        try:
            await _listen_once(engine, hub, check_seconds)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # the database is away: poll until it is back
            log.warning("wake-up listener lost its connection (%s); retrying", exc)
        finally:
            hub.set_live(False)
        await asyncio.sleep(retry_seconds)


async def _listen_once(engine: AsyncEngine, hub: Wakeups, check_seconds: float) -> None:
    # A connection of the engine's own pool, so it has the same settings (search path, SSL);
    # it is held for as long as it lives and thrown away (not pooled again) afterwards.
    async with engine.connect() as conn:
        try:
            schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
            await conn.commit()
            raw: Any = (await conn.get_raw_connection()).driver_connection
            lost = asyncio.Event()

            def received(_conn: Any, _pid: int, _channel: str, payload: str) -> None:
                hub.publish((payload,))

            raw.add_termination_listener(lambda _conn: lost.set())
            await raw.add_listener(_CHANNEL_PREFIX + schema, received)
            log.info("wake-up listener connected")
            hub.set_live(True)
            while not lost.is_set():
                # asyncio.timeout, not wait_for: on Python 3.11 wait_for may drop the
                # cancellation that stops this listener (storage/write_lock.py)
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(check_seconds):
                        await lost.wait()
                if not lost.is_set():
                    async with asyncio.timeout(check_seconds):
                        await raw.fetchval("SELECT 1")
            raise ConnectionError("the listening connection was closed")
        finally:
            await conn.invalidate()
