"""A second engine on the database a test's `engine` fixture made: what another process sees
(its own connections, its own pool), for tests of several processes on one database."""

from __future__ import annotations

from sqlalchemy import text
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
