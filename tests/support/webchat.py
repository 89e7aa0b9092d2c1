"""The web chat as a browser uses it: `Browser` does what the page's script does (reads the
chat's config from the page, posts with its token); `demo` serves the demo chat on a real App."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator, Callable
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.app import App, assemble
from bot.config import Settings
from bot.web.chat.app import WebChat, setup_webchat
from bot.web.chat.render import html_tree, keyboard_state, plain_text
from handlers.render import Renderer
from storage.calendar import seed_calendar
from storage.db import session_factory
from storage.media import MediaStore
from storage.org_file import load_org_file
from tests.support.images import jpeg
from tests.support.paths import EXAMPLE_COUNTY

ZH = Renderer("zh_CN")
XSS = "井盖破损 <script>alert(1)</script> <img src=x onerror=alert(2)>"
NUMBER = re.compile(r"JL-\d{8}-\d{4}")


def chat_text(macro: str, **params: Any) -> str:
    """A bot text as the page shows it: the template's words without markup."""
    return plain_text(html_tree(ZH.macro("chat.html.j2", macro, **params)))


async def make_app(
    engine, tmp_path: Path, clock, *, max_photo_bytes: int | None = None, telegram: bool = False
) -> App:
    """An App like open_app's, on the test's database (SQLite file or a PostgreSQL schema).
    With `telegram`, a bot token is set, so messages are addressed to Telegram chats too
    (nothing here talks to Telegram: no service is started)."""
    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, EXAMPLE_COUNTY)
    settings = Settings(data_dir=tmp_path / "data", locale="zh_CN")
    if telegram:
        settings = Settings(data_dir=tmp_path / "data", locale="zh_CN", telegram={"token": "1:t"})
    media = MediaStore(tmp_path / "media")
    if max_photo_bytes is not None:
        media = MediaStore(tmp_path / "media", max_bytes=max_photo_bytes)
    return assemble(settings, engine, sessions, clock, media=media)


class _Scripts(HTMLParser):
    """Collects the JSON blobs and the data-testid attributes of a page."""

    def __init__(self) -> None:
        super().__init__()
        self.blobs: dict[str, str] = {}
        self.testids: set[str] = set()
        self._in: str | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if found.get("data-testid"):
            self.testids.add(found["data-testid"] or "")
        if tag == "script" and found.get("type") == "application/json":
            self._in = found.get("id")

    def handle_data(self, data: str) -> None:
        if self._in:
            self.blobs[self._in] = self.blobs.get(self._in, "") + data

    def handle_endtag(self, tag: str) -> None:
        self._in = None


def page_parts(html: str) -> _Scripts:
    parser = _Scripts()
    parser.feed(html)
    return parser


class Stream:
    """A server-sent events stream, read event by event."""

    def __init__(self, response: Any) -> None:
        self.response = response

    async def next(self) -> dict[str, str]:
        event: dict[str, str] = {}
        while True:
            line = await self.response.content.readline()
            if not line:
                raise EOFError("stream ended")
            text = line.decode().rstrip("\n")
            if not text:
                if "data" in event:
                    return event
                event = {}
            elif not text.startswith(":"):
                name, _, value = text.partition(": ")
                event[name] = value

    async def until(self, wanted: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
        """The next message the predicate accepts (a guard stops a test that would hang)."""
        while True:
            event = await asyncio.wait_for(self.next(), 10)
            view = json.loads(event["data"])
            view["event_id"] = int(event["id"])
            if wanted(view):
                return view

    def close(self) -> None:
        self.response.close()


class Browser:
    """One browser: its cookies (the client's), the chat it is on, and that chat's token."""

    def __init__(self, client: TestClient) -> None:
        self.client = client
        self.chat = ""
        self.config: dict[str, Any] = {}
        self.html = ""

    async def get(self, path: str) -> str:
        response = await self.client.get(path)
        assert response.status == 200, (path, response.status, await response.text())
        return await response.text()

    async def form_token(self, path: str) -> str:
        html = await self.get(path)
        return re.search(r'name="csrf" value="([0-9a-f]+)"', html).group(1)

    async def pick(self, person: str | None = None, grid: str = "") -> str:
        """Demo: pick a person of the org file, or a new resident (of a grid, if given)."""
        csrf = await self.form_token("/chat")
        form = {"csrf": csrf, "person": person} if person else {"csrf": csrf, "grid": grid}
        response = await self.client.post("/chat/pick", data=form, allow_redirects=False)
        assert response.status == 303, await response.text()
        return await self.open(response.headers["Location"])

    async def start(self, grid: str = "") -> str:
        """Public mode: start a resident chat at /r."""
        csrf = await self.form_token("/r" + (f"?grid={grid}" if grid else ""))
        response = await self.client.post(
            "/r", data={"csrf": csrf, "grid": grid}, allow_redirects=False
        )
        assert response.status == 303, await response.text()
        return await self.open(response.headers["Location"])

    async def open(self, path: str) -> str:
        self.html = await self.get(path)
        self.config = json.loads(page_parts(self.html).blobs["chat-config"])
        self.chat = self.config["chat"]
        return self.chat

    async def post(self, what: str, fields: dict[str, Any], *, key: str | None = None) -> Any:
        data = {"csrf": self.config["csrf"], "key": key or new_key(), **fields}
        return await self.client.post(
            self.config["urls"][what], data=data, headers={"Accept": "application/json"}
        )

    async def say(self, text: str, *, reply_to: int | None = None, key: str | None = None) -> Any:
        fields = {"text": text, **({"reply_to": str(reply_to)} if reply_to else {})}
        response = await self.post("send", fields, key=key)
        assert response.status == 200, await response.text()
        return response

    async def upload(self, *files: tuple[str, bytes, str], text: str = "") -> Any:
        """Photos through the form's file box, as multipart (fields first, as the page sends)."""
        from aiohttp import FormData

        form = FormData()
        form.add_field("csrf", self.config["csrf"])
        form.add_field("key", new_key())
        form.add_field("text", text)
        for name, data, mime in files:
            form.add_field("photo", data, filename=name, content_type=mime)
        response = await self.client.post(
            self.config["urls"]["send"], data=form, headers={"Accept": "application/json"}
        )
        assert response.status == 200, await response.text()
        return response

    async def history(self, after: int = 0) -> list[dict[str, Any]]:
        response = await self.client.get(f"{self.config['urls']['history']}?after={after}")
        assert response.status == 200
        return (await response.json())["messages"]

    async def button(self, prefix: str = "", *, label: str | None = None) -> tuple[int, str]:
        """The newest button whose data starts with `prefix` (and shows `label`, if given)."""
        for view in reversed(await self.history()):
            for row in view["buttons"]:
                for b in row:
                    if b["data"].startswith(prefix) and (label is None or b["text"] == label):
                        return view["id"], b["data"]
        raise AssertionError(f"no button {prefix!r} {label or ''} in chat {self.chat}")

    async def press(self, prefix: str = "", *, label: str | None = None) -> list[dict]:
        """Press a button and return what the bot said after it."""
        before = await self.last_id()
        message_id, data = await self.button(prefix, label=label)
        response = await self.post("press", {"message_id": str(message_id), "data": data})
        assert response.status == 200, await response.text()
        return [v for v in await self.history(before) if v["direction"] == "out"]

    async def key(self, row: int = 0, column: int = 0) -> list[dict]:
        """Tap a key of the reply keyboard the chat shows now."""
        state = keyboard_state(await self.history())
        keys = state["once"]["keys"] if state["once"] else state["menu"]
        before = await self.last_id()
        await self.say(keys[row][column])
        return [v for v in await self.history(before) if v["direction"] == "out"]

    async def last_id(self) -> int:
        views = await self.history()
        return views[-1]["id"] if views else 0

    async def answers(self, action: Any) -> list[str]:
        """The bot's words after an action (a coroutine), as plain text."""
        before = await self.last_id()
        await action
        return [
            plain_text(v["nodes"]) for v in await self.history(before) if v["direction"] == "out"
        ]

    async def stream(self, after: int | None = None, last_event_id: int | None = None) -> Stream:
        url = self.config["urls"]["events"]
        if after is not None:
            url += f"?after={after}"
        headers = {"Last-Event-ID": str(last_event_id)} if last_event_id is not None else {}
        response = await self.client.get(url, headers=headers)
        assert response.status == 200
        assert response.headers["Content-Type"].startswith("text/event-stream")
        return Stream(response)


_keys = iter(range(10**9))


def new_key() -> str:
    return f"testkey-{next(_keys):08d}"


async def serve(app: App, *, demo: bool) -> AsyncIterator[tuple[TestClient, WebChat]]:
    web_app = web.Application()
    chat = setup_webchat(web_app, app, demo=demo)
    async with TestClient(TestServer(web_app)) as client:
        yield client, chat


@pytest.fixture
async def demo(engine, tmp_path, clock):
    app = await make_app(engine, tmp_path, clock)
    async for client, chat in serve(app, demo=True):
        yield Browser(client), chat, app


async def report_as_new_resident(b: Browser, description: str = XSS) -> str:
    """The resident flow through the page: grid picked from the list, a photo uploaded."""
    await b.pick(grid="")
    await b.press("tw:", label="西郭城镇")
    await b.press("vl:", label="西郭城村")
    out = await b.press("gd:", label="西郭城村第一网格")
    assert "已登记到 西郭城村第一网格" in plain_text(out[0]["nodes"])
    await b.key()  # 📝 我要说事 on the menu keyboard
    await b.press("cat:", label="安全隐患")
    await b.say(description)
    out = await b.upload(("manhole.jpg", jpeg("red"), "image/jpeg"))
    assert chat_text("photo_received", count=1, limit=9) in await chat_texts(b)
    await b.press("ph:")
    await b.say("东门口往北二十米")  # the location step: typing an address
    await b.press("ct:", label=chat_text("btn_no_phone"))
    out = await b.press("cf:", label=chat_text("btn_submit"))
    number = NUMBER.search(plain_text(out[0]["nodes"])).group(0)
    return number


async def chat_texts(b: Browser) -> list[str]:
    return [plain_text(v["nodes"]) for v in await b.history()]


# The whole loop ------------------------------------------------------------------------------
