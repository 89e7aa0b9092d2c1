"""Engines and schema upgrades for SQLite (embedded, WAL) and PostgreSQL."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any, TypeAlias

from alembic import command
from alembic.config import Config
from sqlalchemy import event
from sqlalchemy.engine import Connection, make_url
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.ext.asyncio import (
    AsyncEngine,
    AsyncSession,
    async_sessionmaker,
    create_async_engine,
)

from storage.sqlite_driver import OneHopDBAPI

log = logging.getLogger(__name__)

MIGRATIONS = Path(__file__).parent / "migrations"

# What the composition root hands the repositories: a new session per call; the engine it
# closes on the way out. Named here so that bot/ need not import SQLAlchemy.
SessionFactory: TypeAlias = async_sessionmaker[AsyncSession]
Session: TypeAlias = AsyncSession
Engine: TypeAlias = AsyncEngine


def create_engine(url: str, **kwargs: Any) -> AsyncEngine:
    """An async engine; SQLite gets WAL, foreign keys and a busy timeout on every connection."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        database = parsed.database
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        kwargs.setdefault("connect_args", {}).setdefault("timeout", 30)
        if "module" not in kwargs:
            # statements of a write transaction run on the loop's thread (sqlite_driver.py)
            kwargs["module"] = OneHopDBAPI()
            kwargs["connect_args"].setdefault("check_same_thread", False)
        engine = create_async_engine(url, **kwargs)

        @event.listens_for(engine.sync_engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA synchronous=NORMAL")
            cursor.close()

        return engine
    # No pre-ping: it was a round trip before every checkout, i.e. every transaction. A
    # connection the server dropped (a PostgreSQL restart) fails its first statement instead;
    # SQLAlchemy then discards the pool's connections, so only that one transaction fails
    # (a turn answers with its error in a fresh one; a sender pass runs again).
    return create_async_engine(url, **kwargs)


def session_factory(engine: AsyncEngine) -> SessionFactory:
    return async_sessionmaker(engine, expire_on_commit=False)


def is_query_error(exc: BaseException) -> bool:
    """The database refused a statement (or the connection under it): a driver error."""
    return isinstance(exc, DBAPIError)


def is_transient(exc: BaseException) -> bool:
    """A lost connection or a timeout, not something about one row."""
    if isinstance(exc, DBAPIError):
        return bool(exc.connection_invalidated) or isinstance(exc, OperationalError)
    return isinstance(exc, OSError | TimeoutError)


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(MIGRATIONS))
    return cfg


def _upgrade(connection: Connection) -> None:
    cfg = alembic_config()
    cfg.attributes["connection"] = connection
    command.upgrade(cfg, "head")


async def upgrade_schema(engine: AsyncEngine) -> None:
    """Bring the schema to the newest migration; run on every start."""
    async with engine.begin() as conn:
        await conn.run_sync(_upgrade)
