"""One chat's turns one at a time across processes: a transaction-scoped advisory lock.

Two webhook workers can get updates of one chat at once (an album's photos arrive as several
updates, each to whichever worker the load balancer picks). Without a lock both turns read the
same draft, one meets the version check and runs again: under load, retry storms, and album
photos stored out of order. On PostgreSQL the turn's first statement takes
`pg_advisory_xact_lock` on a hash of (channel, chat), so the second turn waits for the first
to commit and then reads its result; the lock goes with the transaction (commit, rollback or a
dropped connection), so nothing can leave it held. On SQLite writes are serialised anyway (one
writer, one process): nothing to do.

The lock costs no statement of its own when the update has a key: it is a condition of the
processed mark's INSERT (`LOCKED`, storage/channel.py `begin_turn`), evaluated once before the
row goes in. That statement's snapshot is older than the lock, which does not matter for an
INSERT ... ON CONFLICT (the conflict check sees rows committed meanwhile, and waits for one
still being written); the turn's reads come in later statements, whose snapshots (READ
COMMITTED: one per statement) are taken once the lock is held, so they see the previous turn.
The lock could not be a condition of the turn's read itself: that statement's snapshot would
be taken before the wait, and the turn would read the draft as it was before the previous turn.
"""

from __future__ import annotations

import hashlib
from typing import Any

from sqlalchemy import ColumnElement, Integer, bindparam, func, text
from sqlalchemy.ext.asyncio import AsyncSession

# The first of the two 32-bit keys: marks these locks as chat turns, so they never meet an
# advisory lock another part of the system (or another program on the database) might take.
CHAT_TURNS = 0x53480001
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")
# The lock as a condition of another statement (PostgreSQL): a WHERE without columns is checked
# once, before any row (a one-time filter); a void result is never NULL, so it always holds.
LOCKED: ColumnElement[bool] = func.pg_advisory_xact_lock(
    bindparam("lock_space", type_=Integer), bindparam("lock_key", type_=Integer)
).is_not(None)


def chat_key(channel: str, chat_id: str) -> int:
    """A signed 32-bit hash of the chat; two chats sharing one only wait for each other."""
    digest = hashlib.sha256(f"{channel}\x00{chat_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


async def lock_chat(session: AsyncSession, channel: str, chat_id: str) -> None:
    """Wait for, then hold until the end of this transaction, the chat's turn lock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(_LOCK, {"space": CHAT_TURNS, "key": chat_key(channel, chat_id)})


def locked_params(channel: str, chat_id: str) -> dict[str, Any]:
    """The parameters of `LOCKED` for this chat."""
    return {"lock_space": CHAT_TURNS, "lock_key": chat_key(channel, chat_id)}
