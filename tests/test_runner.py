"""`shuoshi run`'s Telegram service: polling and webhook, against the fake Bot API."""

from __future__ import annotations

import asyncio
import contextlib

import pytest

from bot.app import open_app
from bot.config import load_settings
from bot.runner import WEBHOOK_PATH
from tests.conftest import EXAMPLE_COUNTY
from tests.fake_telegram import FakeTelegram
from tests.support.net import free_port, start
from tests.support.texts import BOUND_TO_G1


async def test_polling_answers_and_stops_cleanly(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with FakeTelegram() as fake:
        app, stop, task = await start(tmp_path, fake)
        fake.send_text(5001, 5001, "/start JL-XGC-01-G1")
        sent = await fake.wait_sent(5001, 1)
        assert sent[0]["text"] == BOUND_TO_G1
        stop.set()
        await asyncio.wait_for(task, 10)
        await app.close()


async def test_webhook_checks_the_secret_and_answers_after_commit(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    async with FakeTelegram() as fake:
        app, stop, task = await start(
            tmp_path, fake, mode="webhook", webhook_secret="s3cret",
            webhook_url="https://bot.example.org",
        )  # fmt: skip
        await fake.wait_calls("setWebhook", 1)
        url = f"http://127.0.0.1:{app.settings.web.port}{WEBHOOK_PATH}"
        sender = {"id": 5001, "is_bot": False, "first_name": "李"}
        chat = {"id": 5001, "type": "private"}
        message = {"message_id": 1, "date": 0, "chat": chat, "from": sender, "text": "/start"}
        update = {"update_id": 1, "message": message}
        status, _ = await fake.post_update_to(url, update, secret_token="wrong")
        assert status == 401
        status, _ = await fake.post_update_to(url, update, secret_token="s3cret")
        assert status == 200
        # The conversation row exists as soon as Telegram got its answer.
        from sqlalchemy import func, select

        from storage.rows import ConversationRow

        async with app.sessions() as session:
            count = await session.execute(select(func.count()).select_from(ConversationRow))
            assert count.scalar() == 1
        stop.set()
        await asyncio.wait_for(task, 10)
        await app.close()


async def test_run_without_a_token_serves_web_chat_and_dashboard_and_stops_on_ctrl_c(tmp_path):
    """The README's first command: no token, no database server, one line saying where to go."""
    import os
    import signal
    import sys

    import aiohttp

    port = free_port()
    env = {**os.environ, "SHUOSHI_WEB__PORT": str(port), "SHUOSHI_LOCALE": "en"}
    env.pop("SHUOSHI_TELEGRAM__TOKEN", None)
    env.pop("SHUOSHI_CONFIG", None)
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot.cli", "run", cwd=tmp_path, env=env,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    try:
        line = (await asyncio.wait_for(proc.stdout.readline(), 60)).decode()
        assert f"open http://127.0.0.1:{port}/" in line and "web chat only" in line, line
        async with aiohttp.ClientSession() as http:
            async with http.get(f"http://127.0.0.1:{port}/") as home:
                assert home.status == 200 and str(home.url).endswith("/chat")
                assert "P-L-01" in await home.text()  # the demo's role picker
            async with http.get(f"http://127.0.0.1:{port}/dashboard") as board:
                assert board.status == 200
        assert (tmp_path / "data" / "shuoshi.db").is_file()  # SQLite under ./data
        proc.send_signal(signal.SIGINT)
        try:
            out, err = await asyncio.wait_for(proc.communicate(), 60)
        except TimeoutError:
            proc.send_signal(signal.SIGUSR1)  # the stacks of a process that did not stop
            with contextlib.suppress(TimeoutError):  # give it a moment to write them
                await asyncio.wait_for(proc.wait(), 2)
            proc.kill()
            out, err = await proc.communicate()
            raise AssertionError("did not stop on Ctrl-C:\n" + err.decode()[-20000:]) from None
        assert proc.returncode == 0, err.decode()
        assert "Stopped" in out.decode()
    finally:
        if proc.returncode is None:
            proc.kill()
            await proc.wait()


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch):
    monkeypatch.delenv("SHUOSHI_CONFIG", raising=False)


async def test_behind_a_proxy_there_is_no_role_picker_and_the_dashboard_needs_a_login(tmp_path):
    """Listening on loopback behind a reverse proxy (public_url set) is not a local demo."""
    import aiohttp

    from bot.runner import serve

    port = free_port()
    settings = load_settings(
        data_dir=tmp_path / "data", example_county=EXAMPLE_COUNTY,
        web={"port": port, "public_url": "https://shuoshi.example.org"},
    )  # fmt: skip
    app = await open_app(settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    seen = []
    task = asyncio.create_task(serve(app, stop, on_ready=lambda r: (seen.append(r), ready.set())))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        assert (seen[0].demo, seen[0].login) == (False, True)
        base = f"http://127.0.0.1:{port}"
        async with aiohttp.ClientSession() as http:
            async with http.get(f"{base}/", allow_redirects=False) as home:
                assert home.headers["Location"] == "/dashboard"
            async with http.get(f"{base}/dashboard", allow_redirects=False) as board:
                assert board.status in (302, 303) and "login" in board.headers["Location"]
            async with http.get(f"{base}/chat", allow_redirects=False) as picker:
                assert picker.status != 200 or "P-C-01" not in await picker.text()
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await app.close()


def test_a_process_without_a_token_never_loads_aiogram():
    """aiogram costs ~135 MB: the web-chat-only process (and the CLI) must not import it."""
    import subprocess
    import sys

    code = (
        "import sys, bot.cli.main, bot.runner, bot.app\n"
        "print(sorted(m for m in sys.modules if m.split('.')[0] == 'aiogram'))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]", out.stdout
