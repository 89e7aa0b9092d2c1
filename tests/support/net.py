"""Serving on loopback: a free port, and `shuoshi run`'s Telegram service against a fake API."""

from __future__ import annotations

import asyncio
import socket

from bot.app import open_app
from bot.config import load_settings
from bot.runner import SHUTDOWN_SECONDS, serve_telegram
from tests.fake_telegram import FakeTelegram
from tests.support.paths import EXAMPLE_COUNTY

# How long a test waits for `serve` to stop: a stop takes well under a second, and each of its
# steps is bounded (the web server's cleanup, the last flushes, the channels' close), so only
# a write lock held through all of them takes a few SHUTDOWN_SECONDS, and its waiters log the
# holder (storage/write_lock.py). A stop that never ended was a cancellation Python 3.11's
# asyncio.wait_for dropped (tests/test_stopping.py): more time would not have helped it.
STOP_SECONDS = 3 * SHUTDOWN_SECONDS


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def start(tmp_path, fake: FakeTelegram, **telegram):
    settings = load_settings(
        data_dir=tmp_path / "data",
        example_county=EXAMPLE_COUNTY,
        telegram={"token": fake.token, "api_base": fake.base_url, **telegram},
        web={"port": free_port()},
    )
    app = await open_app(settings)
    from storage.org_file import load_org_file

    await load_org_file(app.sessions, EXAMPLE_COUNTY)
    stop = asyncio.Event()
    task = asyncio.create_task(serve_telegram(app, stop))
    return app, stop, task
