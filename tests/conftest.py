"""Shared fixtures: a migrated database on SQLite and, when reachable, on PostgreSQL."""

from __future__ import annotations

import os
import socket
import uuid
from collections.abc import AsyncIterator
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import text
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import create_engine, upgrade_schema
from tests.support.chat import harness  # noqa: F401  (fixtures shared by several modules)
from tests.support.dashboard import site  # noqa: F401
from tests.support.outbox import fake, media  # noqa: F401
from tests.support.paths import EXAMPLE_COUNTY, ROOT  # noqa: F401  (re-exported)
from tests.support.staff import desk  # noqa: F401
from tests.support.webchat import demo  # noqa: F401
from tests.support.wechat import wx, wx_plain  # noqa: F401
from tests.support.wecom import wc, wc_pg  # noqa: F401
from tests.support.world import world  # noqa: F401
from workflow.clock import SHANGHAI, ManualClock

PG_URL = os.environ.get("SHUOSHI_TEST_PG_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/test")


def _pg_reachable() -> str | None:
    """None when PostgreSQL answers, else the reason to skip."""
    try:
        with socket.create_connection(("127.0.0.1", 5432), timeout=1):
            pass
    except OSError as exc:
        return f"PostgreSQL not reachable at 127.0.0.1:5432 ({exc})"
    try:
        import asyncpg  # noqa: F401
    except ImportError:
        return "asyncpg not installed"
    return None


PG_SKIP_REASON = _pg_reachable()


@pytest.fixture(autouse=True)
def _cheap_password_hashes(monkeypatch: pytest.MonkeyPatch) -> None:
    """OWASP's scrypt factors take most of a second per hash: tests hash with tiny ones.
    tests/test_users_cli.py checks, in a fresh process, that production uses OWASP's."""
    from bot.web.dashboard import passwords as passwords

    monkeypatch.setattr(passwords, "COST", passwords.ScryptCost(n=2**10, r=8, p=1))


def pytest_report_header(config: pytest.Config) -> str:
    if PG_SKIP_REASON:
        return f"shuoshi: PostgreSQL tests will be skipped: {PG_SKIP_REASON}"
    return "shuoshi: PostgreSQL tests run against 127.0.0.1:5432/test"


@pytest.fixture(params=["sqlite", "postgresql"])
async def engine(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[AsyncEngine]:
    """A freshly migrated database: a temp SQLite file, or a private schema on PostgreSQL."""
    if request.param == "sqlite":
        eng = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'test.db'}")
        await upgrade_schema(eng)
        yield eng
        await eng.dispose()
        return
    if PG_SKIP_REASON:
        pytest.skip(PG_SKIP_REASON)
    schema = f"t_{uuid.uuid4().hex[:12]}"
    admin = create_engine(PG_URL)
    async with admin.begin() as conn:
        await conn.execute(text(f'CREATE SCHEMA "{schema}"'))
    eng = create_engine(PG_URL, connect_args={"server_settings": {"search_path": schema}})
    try:
        await upgrade_schema(eng)
        yield eng
    finally:
        await eng.dispose()
        async with admin.begin() as conn:
            await conn.execute(text(f'DROP SCHEMA "{schema}" CASCADE'))
        await admin.dispose()


@pytest.fixture
def workdir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A clean working directory for CLI runs, free of the developer's settings."""
    monkeypatch.chdir(tmp_path)
    for name in ("SHUOSHI_CONFIG", "SHUOSHI_DATABASE_URL", "SHUOSHI_LOCALE"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("SHUOSHI_EXAMPLE_COUNTY", str(EXAMPLE_COUNTY))
    return tmp_path


@pytest.fixture
def clock() -> ManualClock:
    return ManualClock(datetime(2026, 11, 23, 9, 0, tzinfo=SHANGHAI))
