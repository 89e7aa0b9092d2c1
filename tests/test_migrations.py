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


async def test_0008_backfills_the_original_deadline_and_a_passed_up_reply(engine, clock):
    """A database of the known week taken back to 0007 and upgraded again: a case never
    reopened keeps due_at as its original deadline; C (general, reported Mon 23 Nov 09:00,
    reopened Wed 25) gets 7 working days from its report, Wed 2 Dec 23:59:59, not the fresh
    limit of its reopening (Fri 4 Dec); a case at the county center loses a township's reply."""
    from datetime import datetime

    from alembic import command
    from sqlalchemy import text

    from storage.db import alembic_config
    from tests.support.weeks import KnownWeek
    from workflow.clock import SHANGHAI

    week = KnownWeek(engine, clock)
    await upgrade_schema(engine)
    await week.setup()
    await week.build()

    def to(revision: str):
        def run(connection) -> None:
            cfg = alembic_config()
            cfg.attributes["connection"] = connection
            if revision == "0007":
                command.downgrade(cfg, revision)
            else:
                command.upgrade(cfg, revision)

        return run

    async with engine.begin() as conn:
        await conn.run_sync(to("0007"))
        await conn.execute(
            text("UPDATE cases SET state = 'county', accepted_at = created_at WHERE number = :n"),
            {"n": week.n["H"]},
        )
    async with engine.begin() as conn:
        await conn.run_sync(to("head"))
    async with week.uow() as uow:
        a, c, h = [await uow.cases.get(week.n[x]) for x in "ACH"]
    assert a.reopen_count == 0 and a.original_due_at == a.due_at
    assert c.reopen_count == 1
    assert c.original_due_at == datetime(2026, 12, 2, 23, 59, 59, tzinfo=SHANGHAI)
    assert c.due_at == datetime(2026, 12, 4, 23, 59, 59, tzinfo=SHANGHAI)
    assert h.accepted_at is None
