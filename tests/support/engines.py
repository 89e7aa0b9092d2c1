"""A second engine on the database a test's `engine` fixture made: what another process sees
(its own connections, its own pool), for tests of several processes on one database; and the
statements an engine runs, counted."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from sqlalchemy import event, text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine


async def another_engine(engine: AsyncEngine) -> AsyncEngine:
    """An independent engine on the same SQLite file, or the same PostgreSQL schema."""
    url = engine.url.render_as_string(hide_password=False)
    if engine.dialect.name == "sqlite":
        return create_engine(url)
    async with engine.connect() as conn:
        schema = (await conn.execute(text("SELECT current_schema()"))).scalar_one()
    return create_engine(url, connect_args={"server_settings": {"search_path": schema}})


@contextmanager
def counting(engine: AsyncEngine) -> Iterator[list[str]]:
    """The SQL statements the engine runs inside the block, as sent to the driver."""
    statements: list[str] = []

    def hook(_conn, _cursor, statement, *_rest) -> None:  # type: ignore[no-untyped-def]
        statements.append(statement)

    event.listen(engine.sync_engine, "before_cursor_execute", hook)
    try:
        yield statements
    finally:
        event.remove(engine.sync_engine, "before_cursor_execute", hook)
