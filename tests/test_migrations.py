"""The schema is built by Alembic on both databases and matches the rows."""

from sqlalchemy import inspect

from storage.db import upgrade_schema
from storage.rows import Base


async def test_upgrade_builds_every_table_and_is_repeatable(engine):
    await upgrade_schema(engine)  # a second start upgrades nothing and fails nothing
    async with engine.connect() as conn:
        tables = await conn.run_sync(lambda c: set(inspect(c).get_table_names()))
        indexes = await conn.run_sync(
            lambda c: {ix["name"] for ix in inspect(c).get_indexes("cases")}
        )
    assert set(Base.metadata.tables) <= tables
    assert {
        "ix_cases_state_stage_due",
        "ix_cases_department_state",
        "ix_cases_township_state",
    } <= indexes
