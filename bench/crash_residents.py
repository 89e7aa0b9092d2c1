"""bench/crash.py's users: residents reporting a problem with photos, through Telegram (long
polling or webhook, the Bot API played by tests/fake_telegram/) or the public web chat (/r).

Each resident does what a patient person does: one step, then waits for the bot's answer; when
none comes within the cluster's patience (counted while the system is up), they do the step
again as a new message, at most `RETRIES` times, then give up. Each resident records what it
sent (photos by sha256), what the system acknowledged (for the audit: every acknowledged input
must have been processed) and the case number of the receipt, if one reached them.
"""

from __future__ import annotations

import asyncio
import hashlib
import io
import re
import secrets
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from PIL import Image

from bench.crash_cluster import Cluster
from bot.telegram import WEBHOOK_PATH

RETRIES = 2
STEPS = 9  # answered steps of one report, from /start to the receipt
NUMBER = re.compile(r"\b[A-Z]+-\d{8}-\d{4,}\b")
CSRF = re.compile(r'name="csrf" value="([0-9a-f]+)"')

LOCATION = (37.3012, 114.9481)


def jpeg(resident: int, photo: int) -> bytes:
    """A small JPEG unique to (resident, photo), so each is recognised by its sha256."""
    buffer = io.BytesIO()
    color = (resident % 256, (resident // 256) % 256, 40 + 100 * photo)
    Image.new("RGB", (64 + photo, 48), color).save(buffer, "JPEG")
    return buffer.getvalue()


@dataclass
class Resident:
    index: int
    grid: str
    photos: list[bytes]
    chat: str = ""  # Telegram user (= private chat) id, or the web chat id
    number: str | None = None  # from the receipt the resident saw
    retries: int = 0
    gave_up_at: str | None = None  # the step nobody answered
    acked: list[str] = field(default_factory=list)  # update keys the system took from us
    steps: int = 0  # steps answered so far

    @property
    def shas(self) -> set[str]:
        return {hashlib.sha256(p).hexdigest() for p in self.photos}


class Gone(Exception):
    """Nobody answered a step, even after the retries."""


# --------------------------------------------------------------------------- Telegram


class TelegramResident:
    """Talks to the bot through the fake Bot API; in webhook mode it also plays Telegram's
    webhook delivery: POST with the secret header, again after an error, until answered 200."""

    def __init__(
        self, r: Resident, fake: Any, cluster: Cluster, http: aiohttp.ClientSession,
        webhook_secret: str | None,
    ) -> None:  # fmt: skip
        self.r = r
        self.fake = fake
        self.cluster = cluster
        self.http = http
        self.secret = webhook_secret
        self.user = 700000 + r.index
        r.chat = str(self.user)
        fake.user(self.user, f"Resident {r.index}", language_code="en")

    async def run(self) -> None:
        u = self.user
        await self.step(lambda: [self.fake.send_text(u, u, f"/start {self.r.grid}")],
                        "You are registered")  # fmt: skip
        await self.step(lambda: [self.fake.send_text(u, u, "📝 Report a problem")],
                        "What kind of problem")  # fmt: skip
        await self.step(lambda: [self.press("cat:")], "Please describe")
        text = f"Crash bench resident {self.r.index}: the street lamp at the east gate is out"
        await self.step(lambda: [self.fake.send_text(u, u, text)], "Send photos")
        await self.step(self.send_photos, "Got ")
        await self.step(lambda: [self.press("ph:")], "Where is it?")
        await self.step(lambda: [self.fake.send_location(u, u, *LOCATION)], "May the handling")
        await self.step(lambda: [self.fake.send_text(u, u, "No phone number")], "Please check")
        receipt = await self.step(lambda: [self.press("cf:", "ok")], "Received as case")
        found = NUMBER.search(receipt)
        self.r.number = found.group(0) if found else None

    def send_photos(self) -> list[dict[str, Any]]:
        u = self.user
        album = f"a{self.r.index}-{secrets.token_hex(3)}" if len(self.r.photos) > 1 else None
        return [self.fake.send_photo(u, u, p, media_group_id=album) for p in self.r.photos]

    def press(self, prefix: str, value: str | None = None) -> dict[str, Any]:
        """Press the newest button starting with `prefix` (and ending with `value`)."""
        for message in reversed(self.fake.sent(self.user)):
            for row in message.get("reply_markup", {}).get("inline_keyboard", []):
                for button in row:
                    data = button.get("callback_data", "")
                    if data.startswith(prefix) and (value is None or data.endswith(value)):
                        return self.fake.press(self.user, self.user, message["message_id"], data)
        raise Gone(f"no {prefix} button")

    def _texts_since(self, before: int) -> list[str]:
        sent = self.fake.sent(self.user)[before:]
        return [m.get("text") or m.get("caption") or "" for m in sent]

    async def step(self, action: Callable[[], list[dict[str, Any]]], expect: str) -> str:
        before = len(self.fake.sent(self.user))
        for attempt in range(RETRIES + 1):
            if attempt:
                self.r.retries += 1
            since = time.monotonic()
            try:
                updates = action()
            except Gone:
                updates = []  # the button never came: waiting shows whether anything does
            if self.secret is not None:
                await asyncio.gather(*(self.post(u) for u in updates))

            def answered() -> str | None:
                return next((t for t in self._texts_since(before) if expect in t), None)

            text = await self.cluster.wait_until(answered, since)
            if text is not None:
                self.r.steps += 1
                return str(text)
        self.r.gave_up_at = expect
        raise Gone(expect)

    async def post(self, update: dict[str, Any]) -> None:
        """Telegram's webhook delivery: the same update again until a 200 (bounded)."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.secret or ""}
        for _ in range(600):
            server = await self.cluster.pick()
            try:
                async with self.http.post(
                    server.url + WEBHOOK_PATH, json=update, headers=headers
                ) as resp:
                    await resp.read()
                    if resp.status == 200:
                        self.r.acked.append(update_key(update))
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.2)


def update_key(update: dict[str, Any]) -> str:
    """The key shuoshi's Telegram adapter marks an update processed under."""
    if "callback_query" in update:
        return f"c:{update['callback_query']['id']}"
    message = update["message"]
    return f"m:{message['chat']['id']}:{message['message_id']}"


# --------------------------------------------------------------------------- web chat


class WebResident:
    """A browser without script in the public resident mode: /r, then form posts with the
    page's CSRF token and a key per action, posted again with the same key after an error
    (as the page's script does)."""

    def __init__(self, r: Resident, cluster: Cluster, timeout: aiohttp.ClientTimeout) -> None:
        self.r = r
        self.cluster = cluster
        # The processes listen on 127.0.0.1: the jar must keep cookies of an IP address.
        self.http = aiohttp.ClientSession(
            cookie_jar=aiohttp.CookieJar(unsafe=True), timeout=timeout
        )
        self.csrf = ""
        self.seen = 0  # newest message id read from the history

    async def run(self) -> None:
        try:
            await self._run()
        finally:
            await self.http.close()

    async def _run(self) -> None:
        await self.open_chat()
        await self.step(lambda k: self.send(k, text="📝 Report a problem"), "What kind of problem")
        await self.step(lambda k: self.press(k, "cat:"), "Please describe")
        text = f"Crash bench resident {self.r.index}: the street lamp at the east gate is out"
        await self.step(lambda k: self.send(k, text=text), "Send photos")
        await self.step(lambda k: self.send(k, photos=self.r.photos), "Got ")
        await self.step(lambda k: self.press(k, "ph:"), "Where is it?")
        lat, lon = LOCATION
        await self.step(lambda k: self.send(k, latitude=str(lat), longitude=str(lon)),
                        "May the handling")  # fmt: skip
        await self.step(lambda k: self.send(k, text="No phone number"), "Please check")
        receipt = await self.step(lambda k: self.press(k, "cf:", "ok"), "Received as case")
        found = NUMBER.search(receipt)
        self.r.number = found.group(0) if found else None

    async def request(self, method: str, path: str, **kw: Any) -> tuple[int, str, Any]:
        """One request to a running process; (0, "", None) when the connection failed."""
        server = await self.cluster.pick()
        try:
            async with self.http.request(method, server.url + path, **kw) as resp:
                return resp.status, await resp.text(), resp.headers
        except (aiohttp.ClientError, TimeoutError):
            return 0, "", None

    async def open_chat(self) -> None:
        """GET /r (a grid's QR code), POST /r: a new chat whose first message is /start GRID."""
        since = time.monotonic()
        while not self.cluster.out_of_patience(since):
            status, page, _ = await self.request("GET", f"/r?grid={self.r.grid}")
            token = CSRF.search(page) if status == 200 else None
            if token is None:
                await asyncio.sleep(0.2)
                continue
            form = {"csrf": token.group(1), "grid": self.r.grid}
            status, _, headers = await self.request("POST", "/r", data=form, allow_redirects=False)
            location = headers.get("Location", "") if headers else ""
            if status == 303 and "/chat/" in location:
                self.r.chat = location.rsplit("/chat/", 1)[1].split("#")[0]
                self.r.acked.append(f"w:{self.r.chat}:start")
                break
            await asyncio.sleep(0.2)
        else:
            self.r.gave_up_at = "/r"
            raise Gone("/r")
        while not self.cluster.out_of_patience(since):
            status, page, _ = await self.request("GET", f"/chat/{self.r.chat}")
            if status == 200 and (token := CSRF.search(page)):
                self.csrf = token.group(1)
                break
            await asyncio.sleep(0.2)
        if await self.wait_for("You are registered", since) is not None:
            self.r.steps += 1

    async def post(self, path: str, data: Any, keys: list[str]) -> None:
        """The same post (same key) until it is answered OK; then its keys were acknowledged."""
        since = time.monotonic()
        headers = {"Accept": "application/json"}
        while not self.cluster.out_of_patience(since):
            body = data() if callable(data) else data
            status, text, _ = await self.request("POST", path, data=body, headers=headers)
            if status == 200 and '"ok": true' in text:
                self.r.acked.extend(f"w:{self.r.chat}:{k}" for k in keys)
                return
            await asyncio.sleep(0.2)

    async def send(self, key: str, photos: list[bytes] | None = None, **fields: str) -> None:
        path = f"/chat/{self.r.chat}/send"
        if not photos:
            await self.post(path, {"csrf": self.csrf, "key": key, **fields}, [key])
            return

        def form() -> aiohttp.FormData:  # a FormData is spent once posted: one per try
            data = aiohttp.FormData()
            data.add_field("csrf", self.csrf)
            data.add_field("key", key)
            for i, photo in enumerate(photos, 1):
                data.add_field("photo", photo, filename=f"{i}.jpg", content_type="image/jpeg")
            return data

        await self.post(path, form, [f"{key}.{i}" for i in range(1, len(photos) + 1)])

    async def press(self, key: str, prefix: str, value: str | None = None) -> None:
        status, text, _ = await self.request("GET", f"/chat/{self.r.chat}/history")
        messages = _json(text)["messages"] if status == 200 else []
        for message in reversed(messages):
            for row in message.get("buttons", []):
                for button in row:
                    data = button["data"]
                    if data.startswith(prefix) and (value is None or data.endswith(value)):
                        form = {"csrf": self.csrf, "key": key, "message_id": str(message["id"]),
                                "data": data}  # fmt: skip
                        await self.post(f"/chat/{self.r.chat}/press", form, [key])
                        return

    async def step(self, action: Callable[[str], Any], expect: str) -> str:
        for attempt in range(RETRIES + 1):
            if attempt:
                self.r.retries += 1
            since = time.monotonic()
            await action(secrets.token_urlsafe(12))  # a new action: a new key
            text = await self.wait_for(expect, since)
            if text is not None:
                self.r.steps += 1
                return text
        self.r.gave_up_at = expect
        raise Gone(expect)

    async def wait_for(self, expect: str, since: float) -> str | None:
        async def answered() -> str | None:
            status, text, _ = await self.request(
                "GET", f"/chat/{self.r.chat}/history?after={self.seen}"
            )
            if status != 200:
                return None
            for message in _json(text)["messages"]:
                self.seen = max(self.seen, int(message["id"]))
                shown = _flatten(message.get("nodes"))
                if message["direction"] == "out" and expect in shown:
                    return shown
            return None

        found = await self.cluster.wait_until(answered, since)
        return str(found) if found else None


def _json(text: str) -> dict[str, Any]:
    import json

    try:
        return json.loads(text)
    except ValueError:
        return {"messages": []}


def _flatten(nodes: Any) -> str:
    """The plain text of webchat_render's node tree: strings, and [tag, attributes, children]."""
    if isinstance(nodes, str):
        return nodes
    if not isinstance(nodes, list):
        return ""
    if len(nodes) == 3 and isinstance(nodes[0], str) and isinstance(nodes[1], dict):
        return _flatten(nodes[2])
    return "".join(_flatten(n) for n in nodes)
