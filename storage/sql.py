"""Small SQL helpers that hide the two dialects (SQLite, PostgreSQL) from the repositories."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar, cast

from sqlalchemy import CursorResult, Result, Table
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.dialects.sqlite.dml import Insert
from sqlalchemy.ext.asyncio import AsyncSession


def dialect_of(session: AsyncSession) -> str:
    return session.bind.dialect.name if session.bind is not None else "sqlite"


def upsert(session: AsyncSession, table: Any) -> Insert:
    """An INSERT that offers `on_conflict_do_nothing/_update` on either database.

    Both dialects' Insert classes share that API; it is typed as SQLite's so callers
    see one type.
    """
    if dialect_of(session) == "postgresql":
        return cast(Insert, pg_insert(table))
    return sqlite_insert(table)


_S = TypeVar("_S")


def per_dialect(build: Callable[[Callable[[Table], Insert]], _S]) -> dict[str, _S]:
    """A statement that needs its dialect's INSERT (ON CONFLICT ...), built once per dialect
    at import; `session_dialect` picks the one for a session."""
    return {
        "sqlite": build(sqlite_insert),
        "postgresql": build(lambda table: cast(Insert, pg_insert(table))),
    }


def affected(result: Result[Any]) -> int:
    """Rows an UPDATE, DELETE or INSERT ... ON CONFLICT changed."""
    return cast(CursorResult[Any], result).rowcount


def table_of(row: Any) -> Table:
    """A mapped class's Table, for Core statements built once at import (no ORM bookkeeping
    per execution)."""
    return cast(Table, row.__table__)
