"""The Telegram webhook lets in only Telegram: a secret is required, compared safely, and a
request that is not an update is refused without a traceback."""

from __future__ import annotations

import asyncio
import logging

import aiohttp
import pytest

from bot.app import open_app
from bot.cli.main import main
from bot.config import ConfigError, load_settings
from bot.runner import WEBHOOK_PATH, serve
from bot.telegram.service import WebhookHandler
from storage.org_file import load_org_file
from tests.conftest import EXAMPLE_COUNTY
from tests.fake_telegram import FakeTelegram
from tests.support.net import free_port

SECRET = "s3cret-Token_1"


@pytest.fixture(autouse=True)
def _no_config_file(monkeypatch):
    monkeypatch.delenv("SHUOSHI_CONFIG", raising=False)


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"webhook_url": "https://bot.example.org"}, "telegram.webhook_secret"),
        ({"webhook_secret": SECRET}, "telegram.webhook_url"),
        ({"webhook_secret": SECRET, "webhook_url": "bot.example.org"}, "telegram.webhook_url"),
        (
            {"webhook_url": "https://bot.example.org", "webhook_secret": ""},
            "telegram.webhook_secret",
        ),
        (
            {"webhook_url": "https://bot.example.org", "webhook_secret": "a b"},
            "telegram.webhook_secret",
        ),
    ],
)
def test_webhook_mode_needs_a_secret_and_an_address(given, named):
    with pytest.raises(ConfigError) as refused:
        load_settings(telegram={"token": "1:x", "mode": "webhook", **given})
    message = str(refused.value)
    assert message.startswith(f"invalid setting {named}:") and "\n" not in message
    assert "a b" not in message  # a secret is never echoed, not even a bad one


def test_polling_needs_neither():
    settings = load_settings(telegram={"token": "1:x"})
    assert settings.telegram.mode == "polling" and settings.telegram.webhook_secret is None


def test_run_refuses_to_start_an_open_webhook(workdir, capsys, monkeypatch):
    monkeypatch.setenv("SHUOSHI_TELEGRAM__TOKEN", "1:x")
    monkeypatch.setenv("SHUOSHI_TELEGRAM__MODE", "webhook")
    monkeypatch.setenv("SHUOSHI_TELEGRAM__WEBHOOK_URL", "https://bot.example.org")
    code = main(["run"])
    err = capsys.readouterr().err
    assert code == 2
    assert "telegram.webhook_secret" in err and "SHUOSHI_TELEGRAM__WEBHOOK_SECRET" in err
    assert len(err.strip().splitlines()) == 1


def test_handler_without_a_secret_lets_nobody_in():
    handler = WebhookHandler.__new__(WebhookHandler)
    handler.secret_token = None
    assert not handler.verify_secret("", None)  # aiogram's own handler says True here
    handler.secret_token = SECRET
    assert handler.verify_secret(SECRET, None)
    assert not handler.verify_secret(SECRET[:-1], None)
    assert not handler.verify_secret("é" + SECRET, None)  # non-ASCII is a plain no


async def test_forged_and_malformed_requests_are_refused_cleanly(tmp_path, monkeypatch, caplog):
    monkeypatch.chdir(tmp_path)
    async with FakeTelegram() as fake:
        settings = load_settings(
            data_dir=tmp_path / "data", example_county=EXAMPLE_COUNTY, web={"port": free_port()},
            telegram={"token": fake.token, "api_base": fake.base_url, "mode": "webhook",
                      "webhook_secret": SECRET, "webhook_url": "https://bot.example.org"},
        )  # fmt: skip
        app = await open_app(settings)
        await load_org_file(app.sessions, EXAMPLE_COUNTY)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(app, stop, on_ready=lambda _: ready.set()))
        try:
            await asyncio.wait_for(ready.wait(), 30)
            url = f"http://127.0.0.1:{settings.web.port}{WEBHOOK_PATH}"
            sender = {"id": 5001, "is_bot": False, "first_name": "李"}
            message = {"message_id": 1, "date": 0, "chat": {"id": 5001, "type": "private"},
                       "from": sender, "text": "/start"}  # fmt: skip
            update = {"update_id": 1, "message": message}
            caplog.set_level(logging.INFO)
            async with aiohttp.ClientSession() as http:

                async def post(body: bytes, secret: str | None = SECRET) -> int:
                    headers = {"Content-Type": "application/json"}
                    if secret is not None:
                        headers["X-Telegram-Bot-Api-Secret-Token"] = secret
                    async with http.post(url, data=body, headers=headers) as resp:
                        return resp.status

                assert await post(b"{}", secret=None) == 401
                assert await post(b"{}", secret="é" + SECRET) == 401  # was a 500
                assert await post(b"{not json") == 400
                assert await post(b"\xff\xfe") == 400
                assert await post(b"[1, 2]") == 400
                assert await post(b'{"update_id": "x"}') == 400
            assert not [r for r in caplog.records if r.levelno >= logging.ERROR]
            assert not fake.sent(5001)
            status, _ = await fake.post_update_to(url, update, secret_token=SECRET)
            assert status == 200
            assert await fake.wait_sent(5001, 1)  # a real update is still answered
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
            await app.close()
