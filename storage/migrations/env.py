"""Alembic environment: runs on the connection handed over by storage.db.upgrade_schema."""

from __future__ import annotations

from alembic import context

from storage.rows import Base

target_metadata = Base.metadata


def run_migrations_online() -> None:
    connection = context.config.attributes.get("connection")
    if connection is None:
        raise RuntimeError("run migrations through `shuoshi init` (storage.db.upgrade_schema)")
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
    )
    with context.begin_transaction():
        context.run_migrations()


if context.is_offline_mode():
    raise RuntimeError("offline migrations are not supported; use `shuoshi init`")
run_migrations_online()
