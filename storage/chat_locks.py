"""One chat's turns one at a time across processes: a transaction-scoped advisory lock.

Two webhook workers can get updates of one chat at once (an album's photos arrive as several
updates, each to whichever worker the load balancer picks). Without a lock both turns read the
same draft, one meets the version check and runs again: under load, retry storms, and album
photos stored out of order. On PostgreSQL the turn's first statement takes
`pg_advisory_xact_lock` on a hash of (channel, chat), so the second turn waits for the first
to commit and then reads its result; the lock goes with the transaction (commit, rollback or a
dropped connection), so nothing can leave it held. On SQLite writes are serialised anyway (one
writer, one process): nothing to do.
"""

from __future__ import annotations

import hashlib

from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncSession

# The first of the two 32-bit keys: marks these locks as chat turns, so they never meet an
# advisory lock another part of the system (or another program on the database) might take.
CHAT_TURNS = 0x53480001
_LOCK = text("SELECT pg_advisory_xact_lock(:space, :key)")


def chat_key(channel: str, chat_id: str) -> int:
    """A signed 32-bit hash of the chat; two chats sharing one only wait for each other."""
    digest = hashlib.sha256(f"{channel}\x00{chat_id}".encode("utf-8", "surrogatepass")).digest()
    return int.from_bytes(digest[:4], "big", signed=True)


async def lock_chat(session: AsyncSession, channel: str, chat_id: str) -> None:
    """Wait for, then hold until the end of this transaction, the chat's turn lock."""
    if session.get_bind().dialect.name != "postgresql":
        return
    await session.execute(_LOCK, {"space": CHAT_TURNS, "key": chat_key(channel, chat_id)})
