"""Each process's copy of the organisation's small, rarely changing tables.

Grids, categories, the county's code and the working-day calendar are read by nearly every
report and case move, and change only on `shuoshi org load` or `shuoshi calendar load`. Those
commands bump the "org" generation (a row in `generations`) in the same transaction as their
changes. A transaction learns the generation once (a turn gets it with its first read, see
storage/channel.py) and uses the copy only while it was taken at that generation; otherwise it
rereads and keeps the new copy. Any number of processes share the database this way: a load in
one of them is seen by the others at their next transaction, with no message between them.

Reading the generation before the data is what keeps this safe on PostgreSQL's read
committed: a copy can only be newer than the generation it is filed under (then it is reread
once more than needed), never older.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from sqlalchemy import event, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import Session

from storage.rows import GenerationRow

ORG = "org"
_SEEN = "org_generation"  # session.info: the generation this transaction read
_GENERATION = select(GenerationRow.generation).where(GenerationRow.name == ORG)
_BUMP = (
    update(GenerationRow)
    .where(GenerationRow.name == ORG)
    .values(generation=GenerationRow.generation + 1)
)

T = TypeVar("T")


def generation_column() -> Any:
    """The generation as a scalar subquery, for a statement that reads it along the way."""
    return _GENERATION.scalar_subquery()


def seen(session: AsyncSession, generation: int | None) -> None:
    """Note the generation a statement of this transaction read."""
    session.info[_SEEN] = generation or 0


async def current_generation(session: AsyncSession) -> int:
    if (known := session.info.get(_SEEN)) is not None:
        return int(known)
    generation = (await session.execute(_GENERATION)).scalar_one_or_none() or 0
    session.info[_SEEN] = generation
    return generation


async def bump(session: AsyncSession) -> None:
    """The organisation or the calendar changed in this transaction: every copy is stale."""
    await session.execute(_BUMP)
    session.info.pop(_SEEN, None)


@event.listens_for(Session, "after_commit")
@event.listens_for(Session, "after_soft_rollback")
def _forget(session: Session, *_: object) -> None:
    # The next transaction of the same session reads the generation afresh.
    session.info.pop(_SEEN, None)


class OrgCache:
    """Values computed from the organisation tables, filed under the generation they were read
    at; all of them are dropped when a transaction sees another generation."""

    def __init__(self) -> None:
        self._generation: int | None = None
        self._values: dict[Any, Any] = {}

    async def get(self, session: AsyncSession, key: Any, read: Callable[[], Awaitable[T]]) -> T:
        generation = await current_generation(session)
        if generation != self._generation:
            self._values = {}
            self._generation = generation
        if key in self._values:
            return self._values[key]
        value = await read()
        if self._generation == generation:  # not moved on by another transaction meanwhile
            self._values[key] = value
        return value

    def invalidate(self) -> None:
        """Drop the copy now (this process wrote the tables without bumping; tests)."""
        self._generation = None
        self._values = {}
