"""The migrations build exactly the schema the rows describe: autogenerate finds nothing to do."""

from __future__ import annotations

from typing import Any

from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.engine import Connection

from storage.rows import Base


def _differences(connection: Connection) -> list[Any]:
    context = MigrationContext.configure(connection, opts={"compare_type": True})
    return compare_metadata(context, Base.metadata)


async def test_migrations_match_the_rows(engine):
    async with engine.connect() as conn:
        diff = await conn.run_sync(_differences)
    assert diff == []
