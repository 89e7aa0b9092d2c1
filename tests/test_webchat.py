"""The web chat as a browser uses it: pages, posts, the JSON history and the live event stream.

Driven through aiohttp's test server and client against a real App (SQLite and PostgreSQL via
the `engine` fixture) with a manual clock. The `Browser` helper does what the page's script
does: it reads the chat's config from the page and posts with its token.
"""

from __future__ import annotations

import asyncio
import io
import re
from datetime import timedelta
from typing import Any

import pytest
from PIL import Image
from sqlalchemy import func, select

from bot.app import open_app
from bot.config import Settings
from bot.web.chat.app import WebChat
from bot.web.chat.render import ALLOWED_TAGS, html_tree, keyboard_state, plain_text
from handlers.render import Renderer
from storage.channel import SqlChannelStore
from storage.media import MediaRefused
from storage.org_file import load_org_file
from storage.outbox import SqlOutbox
from storage.queries import case_view
from storage.rows import OutboxRow, WebMessageRow
from storage.webchat import WebChatStore
from tests.conftest import EXAMPLE_COUNTY
from tests.support.images import jpeg, png_bytes
from tests.support.webchat import (
    NUMBER,
    XSS,
    ZH,
    Browser,
    chat_text,
    chat_texts,
    make_app,
    new_key,
    page_parts,
    report_as_new_resident,
    serve,
)
from workflow.ports import OutgoingMessage


async def test_the_whole_loop_through_the_web_chat(demo):
    b, chat, app = demo
    number = await report_as_new_resident(b)
    resident = b.chat
    assert resident.startswith("r-")
    mine = [v for v in await b.history() if v["direction"] == "in"]
    assert XSS in [plain_text(v["nodes"]) for v in mine]  # the user's own words, as text
    assert any(v["file_name"] == "manhole.jpg" for v in mine)

    # The grid leader's chat already has the card, with the photo and the buttons.
    await b.pick("P-L-01")
    assert b.chat == "p-P-L-01"
    card = next(v for v in await b.history() if v["case_number"] == number)
    assert card["buttons"][0][0]["data"] == f"a:sv:{number}"
    assert len(card["photos"]) == 1
    photo = await b.client.get(card["photos"][0])
    assert photo.status == 200 and photo.headers["Content-Type"] == "image/jpeg"
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in b.html and "<script>alert" not in b.html
    assert "<img src=x" not in b.html

    # The resident follows live from here on.
    resident_browser = Browser(b.client)
    await resident_browser.open(f"/chat/{resident}")
    live = await resident_browser.stream(after=await resident_browser.last_id())
    try:
        out = await b.press(f"a:sv:{number}")
        assert chat_text("done", action="screen_valid", number=number) in plain_text(
            out[0]["nodes"]
        )
        news = await live.until(lambda v: v["case_number"] == number)
        assert "初筛" in plain_text(news["nodes"])

        await b.pick("P-T-01")
        await b.press(f"a:pu:{number}")
        await b.pick("P-C-01")
        await b.press(f"as:housing:{number}")
        await b.pick("P-H-02")
        await b.press(f"a:ac:{number}")
        accepted = await live.until(lambda v: "已被签收" in plain_text(v["nodes"]))
        assert accepted["direction"] == "out" and accepted["case_number"] == number

        # A progress note: the department replies to the card.
        card = next(
            v for v in reversed(await b.history())
            if v["case_number"] == number and v["buttons"]
        )  # fmt: skip
        answers = await b.answers(b.say("已派人到现场，明早更换", reply_to=card["id"]))
        assert chat_text("done", action="note", number=number) in answers

        # Resolve: the result text, a photo of the site, then confirm.
        await b.press(f"a:rs:{number}")
        await b.say("已更换新井盖")
        await b.upload(("fixed.jpg", jpeg("green"), "image/jpeg"))
        await b.press(f"rz:{number}:ok")
        result = await live.until(lambda v: v["buttons"] and v["case_number"] == number)
        assert "已更换新井盖" in plain_text(result["nodes"]) and len(result["photos"]) == 1
        assert [x["data"] for x in result["buttons"][0]] == [
            f"ra:{number}:s", f"ra:{number}:b", f"ra:{number}:d"
        ]  # fmt: skip
    finally:
        live.close()

    # The resident rates, back in their own chat.
    await resident_browser.open(f"/chat/{resident}")
    await resident_browser.press(f"ra:{number}:s")
    out = await resident_browser.press(f"rk:{number}")
    assert chat_text("thanks_for_rating", number=number) in plain_text(out[0]["nodes"])
    async with app.sessions() as session:
        view = await case_view(session, number)
    assert view.case.state.value == "closed" and view.case.rating.value == "satisfied"
    assert [t.action for t in view.timeline] == [
        "submit", "route", "screen_valid", "pass_up", "assign", "accept", "note", "resolve",
        "rate",
    ]  # fmt: skip
    assert len(view.timeline[0].photos) == 1 and len(view.timeline[7].photos) == 1
    assert view.case.description == XSS and view.case.location_text == "东门口往北二十米"


async def test_a_staff_person_gets_cards_before_ever_opening_the_chat(demo):
    b, chat, app = demo
    number = await report_as_new_resident(b, "路灯不亮")
    async with app.sessions() as session:
        sent = (
            await session.execute(
                select(OutboxRow.chat_id, OutboxRow.status).where(OutboxRow.case_number == number)
            )
        ).all()
    assert ("p-P-L-01", "sent") in sent  # delivered into the leader's web chat
    await b.pick("P-L-01")
    page = page_parts(b.html)
    assert {"message", "inline-button", "reply-button", "message-photo"} <= page.testids
    assert f'data-case="{number}"' in b.html


# Delivery ------------------------------------------------------------------------------------


async def test_deliver_pending_moves_web_rows_in_order_and_links_case_messages(demo):
    b, chat, app = demo
    number = await report_as_new_resident(b, "垃圾堆放")
    now = app.clock.now()
    async with app.uow() as uow:
        for i in range(3):
            await uow.outbox.add(OutgoingMessage(
                channel="web", chat_id="p-P-C-01", payload={"text": f"第{i}条"},
                case_number=number if i == 1 else None))  # fmt: skip
        await uow.outbox.add(
            OutgoingMessage(channel="telegram", chat_id="7003", payload={"text": "tg"})
        )
        await uow.commit()
    # A row not yet due holds back the rest of its chat, not other chats.
    async with app.sessions() as session:
        later = OutboxRow(channel="web", chat_id="p-P-S-01", payload={"text": "稍后"},
                          status="pending", attempts=0, created_at=now,
                          next_attempt_at=now + timedelta(minutes=5))  # fmt: skip
        session.add(later)
        await session.flush()
        await SqlOutbox(session, app.clock).add(
            OutgoingMessage(channel="web", chat_id="p-P-S-01", payload={"text": "之后"})
        )
        await session.commit()

    assert await chat.deliver_pending() == 3
    assert await chat.deliver_pending() == 0
    async with app.sessions() as session:
        rows = (
            await session.execute(
                select(WebMessageRow).where(WebMessageRow.chat_id == "p-P-C-01")
                .order_by(WebMessageRow.id)
            )
        ).scalars().all()  # fmt: skip
        # The demo greeted the dispatcher when their chat was made, before anything else.
        assert "您好" in rows[0].payload["text"]
        rows = rows[1:]
        assert [r.payload["text"] for r in rows] == ["第0条", "第1条", "第2条"]
        link = await SqlChannelStore(session).case_for_message("web", "p-P-C-01", str(rows[1].id))
        assert link == (number, "message")
        statuses = dict(
            (await session.execute(select(OutboxRow.chat_id, OutboxRow.status)
                                   .where(OutboxRow.channel == "telegram"))).all()
        )  # fmt: skip
        assert statuses == {"7003": "pending"}  # Telegram's rows are not ours
        # Nothing but the supervisor's greeting: the row not yet due holds back the next one.
        assert (
            await session.execute(
                select(func.count()).select_from(WebMessageRow)
                .where(WebMessageRow.chat_id == "p-P-S-01")
            )
        ).scalar() == 1  # fmt: skip
    app.clock.advance(minutes=5)
    assert await chat.deliver_pending() == 2
    async with app.sessions() as session:
        texts = (
            await session.execute(
                select(WebMessageRow.payload).where(WebMessageRow.chat_id == "p-P-S-01")
                .order_by(WebMessageRow.id)
            )
        ).scalars().all()  # fmt: skip
    assert [t["text"] for t in texts][1:] == ["稍后", "之后"]


async def test_two_processes_delivering_the_web_outbox_deliver_each_row_once(demo):
    """No lease needed here: a row moves into the history in the transaction that marks it
    sent only if it is still pending."""
    _b, chat, app = demo
    other = WebChat(app, demo=True)  # a second `shuoshi run` on the same database
    async with app.uow() as uow:
        for i in range(30):
            chat_id = f"p-P-{'SCH'[i % 3]}-01"
            await uow.outbox.add(OutgoingMessage("web", chat_id, {"text": f"第{i}条"}))
        await uow.commit()
    delivered = await asyncio.gather(chat.deliver_pending(), other.deliver_pending())
    assert sum(delivered) == 30
    async with app.sessions() as session:
        texts = (
            await session.execute(
                select(WebMessageRow.payload["text"].as_string())
                .where(WebMessageRow.direction == "out")
            )
        ).scalars().all()  # fmt: skip
    texts = [t for t in texts if t.startswith("第")]  # not the greetings the demo sent first
    assert sorted(texts) == sorted(f"第{i}条" for i in range(30))


async def test_the_runner_loop_delivers_when_woken_and_streams_resume_by_last_event_id(demo):
    b, chat, app = demo
    await b.pick("P-S-01")
    start = await b.last_id()
    live = await b.stream(after=start)
    runner = asyncio.create_task(chat.run(idle_seconds=30))
    try:
        for text in ("督办一", "督办二"):
            async with app.uow() as uow:
                await uow.outbox.add(
                    OutgoingMessage(channel="web", chat_id="p-P-S-01", payload={"text": text})
                )
                await uow.commit()
            chat.wake()
            view = await live.until(lambda v, text=text: plain_text(v["nodes"]) == text)
        first_id = view["event_id"] - 1
    finally:
        live.close()
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
    # A browser that reconnects names the last event it saw and gets only what came after.
    again = await b.stream(last_event_id=first_id)
    try:
        view = await again.until(lambda v: True)
        assert plain_text(view["nodes"]) == "督办二" and view["event_id"] == first_id + 1
    finally:
        again.close()


async def test_a_stopping_server_ends_the_live_streams(demo):
    b, chat, app = demo
    await b.pick("P-S-01")
    live = await b.stream(after=await b.last_id())
    await chat.close()
    with pytest.raises(EOFError):
        await asyncio.wait_for(live.next(), 10)


# Bad input -----------------------------------------------------------------------------------


async def test_stale_and_forged_buttons_get_the_expired_answer(demo):
    b, chat, app = demo
    await b.pick(grid="")
    old_message, old_township = await b.button("tw:", label="西郭城镇")
    await b.press("tw:", label="西郭城镇")
    await b.press("vl:", label="西郭城村")
    await b.press("gd:", label="西郭城村第一网格")
    expired = chat_text("stale_button")
    # A button of a finished step (its draft is gone): the handlers' own answer.
    answers = await b.answers(
        b.post("press", {"message_id": str(old_message), "data": old_township})
    )
    assert answers == [expired]
    # Data no message of this chat offered (a forged card action): never reaches the handlers.
    forged = {"message_id": str(old_message), "data": "a:sv:JL-20261123-0001"}
    assert await b.answers(b.post("press", forged)) == [expired]
    assert await b.answers(b.post("press", {"message_id": "999999", "data": "gd:x:1"})) == [expired]
    # Another chat's message id is not found from here either.
    other = Browser(b.client)
    await other.pick("P-L-01")
    theirs = (await other.history())[-1]["id"]
    assert await b.answers(b.post("press", {"message_id": str(theirs), "data": "x"})) == [expired]


async def test_refused_uploads_get_the_media_stores_localized_answers(engine, tmp_path, clock):
    app = await make_app(engine, tmp_path, clock, max_photo_bytes=1024 * 1024)
    async for client, _chat in serve(app, demo=True):
        b = Browser(client)
        await b.pick(grid="JL-XGC-01-G1")
        await b.key()
        await b.press("cat:", label="安全隐患")
        await b.say("墙体开裂")
        big = b"\xff\xd8\xff\xe0" + bytes(1536 * 1024)
        answers = await b.answers(b.upload(("big.jpg", big, "image/jpeg")))
        assert answers == [ZH.error(MediaRefused("too_large", "", size=len(big), limit_mb=1))]
        pdf = b"%PDF-1.7\n1 0 obj <<>> endobj\n"
        with pytest.raises(MediaRefused) as refused:
            app.media.inspect_photo(pdf)
        answers = await b.answers(b.upload(("notes.pdf", pdf, "application/pdf")))
        assert answers == [ZH.error(refused.value)]
        # The draft is still there: a good photo goes on as before.
        answers = await b.answers(b.upload(("ok.png", _png(), "image/png")))
        assert answers == [chat_text("photo_received", count=1, limit=9)]
        # Several files in one post are an album: one answer for all of them.
        answers = await b.answers(
            b.upload(("a.jpg", jpeg("red"), "image/jpeg"), ("b.jpg", jpeg("blue"), "image/jpeg"))
        )
        assert answers == [chat_text("photo_received", count=2, limit=9)]
        async with app.sessions() as session:
            rows = (
                await session.execute(
                    select(WebMessageRow.payload).where(
                        WebMessageRow.chat_id == b.chat, WebMessageRow.direction == "in"
                    )
                )
            ).scalars().all()  # fmt: skip
        assert [r["file_name"] for r in rows if r["kind"] == "photo"] == [
            "big.jpg", "notes.pdf", "ok.png", "a.jpg", "b.jpg"
        ]  # fmt: skip


async def test_a_picture_with_too_many_pixels_gets_the_same_reason_as_in_telegram(demo):
    b, chat, app = demo
    await b.pick(grid="JL-XGC-01-G1")
    await b.key()
    await b.press("cat:", label="安全隐患")
    await b.say("墙体开裂")
    huge = png_bytes(9000, 9000)  # 81 megapixels in a 10 KB file
    with pytest.raises(MediaRefused) as refused:
        app.media.inspect_photo(huge)
    answers = await b.answers(b.upload(("huge.png", huge, "image/png")))
    assert answers == [ZH.error(refused.value)]
    assert "9000 × 9000" in answers[0] and "MB" not in answers[0]


def _png() -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", (32, 32), "white").save(buffer, "PNG")
    return buffer.getvalue()


async def test_a_double_submit_is_taken_once(demo):
    b, chat, app = demo
    await b.pick("P-R-01")
    before = await b.last_id()
    await b.say("/my", key="same-key-123")
    await b.say("/my", key="same-key-123")
    new = await b.history(before)
    assert [v["direction"] for v in new] == ["in", "out"]
    assert plain_text(new[1]["nodes"]) == chat_text("no_cases")


async def test_bad_fields_are_refused_with_a_localized_reason(demo):
    b, chat, app = demo
    await b.pick(grid="JL-XGC-01-G1")
    labels = "web/webchat_labels.j2"
    for fields, label in (
        ({"phone": "call me"}, "bad_phone"),
        ({"latitude": "91", "longitude": "0"}, "bad_location"),
        ({"text": "   "}, "empty_message"),
    ):
        response = await b.post("send", fields)
        assert response.status == 400
        assert (await response.json())["error"] == ZH.macro(labels, label)
    response = await b.post("send", {"text": "hi"}, key="short")
    assert response.status == 400
    # A shared location finds the nearest grid; a phone number is taken as the contact.
    await b.key()
    await b.press("cat:", label="安全隐患")
    await b.say("井盖丢失")
    await b.press("ph:")
    out = await b.answers(b.post("send", {"latitude": "37.3011", "longitude": "114.9481"}))
    assert out == [chat_text("ask_contact")]
    out = await b.answers(b.post("send", {"phone": "13803190999"}))
    assert "13803190999" in out[0]


# Security ------------------------------------------------------------------------------------


async def test_posts_without_this_browsers_token_or_from_another_site_are_refused(demo):
    b, chat, app = demo
    await b.pick("P-R-01")
    before = await b.last_id()
    url = b.config["urls"]["send"]
    refused = ZH.macro("web/webchat_labels.j2", "csrf_refused")
    attempts = [
        ({"key": new_key(), "text": "/my"}, {}),  # no token
        ({"key": new_key(), "text": "/my", "csrf": "0" * 40}, {}),  # a wrong one
        ({"key": new_key(), "text": "/my", "csrf": b.config["csrf"]},
         {"Origin": "http://evil.example"}),  # the right token, posted by another site
        ({"key": new_key(), "text": "/my", "csrf": b.config["csrf"]},
         {"Sec-Fetch-Site": "cross-site"}),
        ({"key": new_key(), "text": "/my", "csrf": b.config["csrf"]},
         {"Origin": "null", "Sec-Fetch-Site": "cross-site"}),
    ]  # fmt: skip
    for data, headers in attempts:
        response = await b.client.post(url, data=data, headers={"Accept": "application/json",
                                                                **headers})  # fmt: skip
        assert response.status == 403
        assert (await response.json())["error"] == refused
    # Another chat's token does not work here, and a different browser's token neither.
    other = Browser(b.client)
    await other.pick("P-L-01")
    response = await b.client.post(url, data={"key": new_key(), "text": "/my",
                                              "csrf": other.config["csrf"]})  # fmt: skip
    assert response.status == 403
    b.client.session.cookie_jar.clear()  # the same page's token, from a browser without its cookie
    response = await b.client.post(url, data={"key": new_key(), "text": "/my",
                                              "csrf": b.config["csrf"]})  # fmt: skip
    assert response.status == 403
    response = await b.client.post("/chat/pick", data={"person": "P-C-01"})
    assert response.status == 403
    assert await b.history(before) == []  # nothing was recorded or answered


async def test_xss_in_a_report_shows_as_text_everywhere(demo):
    b, chat, app = demo
    number = await report_as_new_resident(b)
    pages = [await b.get(f"/chat/{b.chat}")]  # the resident's own words
    await b.pick("P-L-01")
    pages.append(b.html)  # the case card
    for html in pages:
        assert "<script>alert" not in html and "<img src=x" not in html
        assert "onerror=alert(2)&gt;" in html
    # The JSON the script draws from: the words are text nodes, no tag but the allowed ones.
    card = next(v for v in await b.history() if v["case_number"] == number)

    def tags(nodes: list) -> set[str]:
        return {n[0] for n in nodes if isinstance(n, list)} | {
            t for n in nodes if isinstance(n, list) for t in tags(n[2])
        }

    assert tags(card["nodes"]) <= ALLOWED_TAGS
    assert "<script>alert(1)</script>" in plain_text(card["nodes"])
    headers = (await b.client.get(f"/chat/{b.chat}")).headers
    assert "script-src 'self'" in headers["Content-Security-Policy"]
    assert headers["Referrer-Policy"] == "same-origin"


def test_bot_html_is_reduced_to_the_allowed_tags():
    tree = html_tree('<b>粗</b> <a href="javascript:alert(1)">x</a> <a href="https://e.org">y</a>'
                     "<script>alert(1)</script><i>斜<u>下</u></i> &lt;img&gt;<br>行")  # fmt: skip
    assert tree[0] == ["b", {}, ["粗"]]
    assert tree[2] == ["a", {}, ["x"]]  # a link to script loses its address
    assert tree[4] == ["a", {"href": "https://e.org"}, ["y"]]
    assert "alert(1)" in tree[5]  # an unknown tag's content stays text
    assert ["i", {}, ["斜", ["u", {}, ["下"]]]] in tree
    assert plain_text(tree).endswith("<img>\n行")


async def test_photos_are_served_only_to_chats_that_were_sent_them(demo):
    b, chat, app = demo
    number = await report_as_new_resident(b, "树倒了")
    await b.pick("P-L-01")
    card = next(v for v in await b.history() if v["case_number"] == number)
    url = card["photos"][0]
    sha = url.rsplit("/", 1)[1]
    assert (await b.client.get(url)).status == 200
    await b.pick("P-C-01")  # the county has not been sent the card yet
    assert (await b.client.get(f"/chat/p-P-C-01/photo/{sha}")).status == 404
    assert (await b.client.get(f"/chat/p-P-L-01/photo/{'0' * 64}")).status == 404


# Public mode ---------------------------------------------------------------------------------


@pytest.fixture
async def public(tmp_path, clock, monkeypatch):
    """Production: an app from open_app on a fresh SQLite file, no picker."""
    monkeypatch.delenv("SHUOSHI_LOCALE", raising=False)
    app = await open_app(Settings(data_dir=tmp_path / "data"), clock)
    await load_org_file(app.sessions, EXAMPLE_COUNTY)
    try:
        async for client, chat in serve(app, demo=False):
            yield Browser(client), chat, app
    finally:
        await app.close()


async def test_public_mode_has_no_picker_and_lists_nobody(public):
    b, chat, app = public
    assert (await b.client.get("/chat")).status == 404
    assert (await b.client.post("/chat/pick", data={"person": "P-C-01"})).status == 404
    async with app.sessions() as session:
        await WebChatStore(session).link_people(app.clock.now())  # even if a demo ran here once
        await session.commit()
    for path in ("/chat/p-P-C-01", "/chat/p-P-C-01/history", "/chat/p-P-C-01/events"):
        assert (await b.client.get(path)).status == 404
    start = await b.get("/r")
    assert "马建国" not in start and "P-L-01" not in start and "pick-person" not in start
    assert (await b.client.get("/chat/r-AAAAAAAAAAAAAAAAAAAAAAAA")).status == 404


async def test_a_public_resident_reports_and_reopens_the_chat_by_its_link(public):
    b, chat, app = public
    chat_id = await b.start()
    assert chat_id.startswith("r-") and len(chat_id) >= 26
    assert "bookmark-notice" in page_parts(b.html).testids
    link = re.search(r'value="([^"]+)" data-testid="chat-link"', b.html).group(1)
    assert link.endswith(f"/chat/{chat_id}")
    await b.press("tw:", label="城关街道")
    await b.press("vl:", label="东关社区")
    await b.press("gd:", label="东关社区第二网格")
    await b.key()
    await b.press("cat:", label="环境卫生")
    await b.say("小区门口垃圾三天没人清")
    await b.press("ph:")
    await b.press("loc:")
    await b.press("ct:", label=chat_text("btn_anonymous"))
    out = await b.press("cf:", label=chat_text("btn_submit"))
    number = NUMBER.search(plain_text(out[0]["nodes"])).group(0)

    # Another device, no cookies: the link alone opens the chat, with its history.
    b.client.session.cookie_jar.clear()
    again = Browser(b.client)
    await again.open(f"/chat/{chat_id}")
    assert number in again.html
    out = await again.key(0, 1)  # 📋 我的说事
    assert out[0]["buttons"][0][0]["data"] == f"my:{number}"
    async with app.sessions() as session:
        assert await SqlChannelStore(session).person_for("web", chat_id) is not None


async def test_a_grid_qr_code_starts_the_chat_in_that_grid(public):
    b, chat, app = public
    chat_id = await b.start(grid="JL-CG-01-G3")
    texts = await chat_texts(b)
    assert any("已登记到 东关社区第三网格" in t for t in texts)
    assert keyboard_state(await b.history())["menu"][0][0] == chat_text("menu_report")
    # Coming back to the start page in the same browser offers the chat it has.
    assert f'href="/chat/{chat_id}" data-testid="continue-chat"' in await b.get("/r")


# Pages ---------------------------------------------------------------------------------------


async def test_pages_in_both_locales_have_the_same_test_ids(demo):
    b, chat, app = demo
    await report_as_new_resident(b, "测试")
    resident = b.chat
    found: dict[str, set[str]] = {}
    for lang in ("zh_CN", "en"):
        ids: set[str] = set()
        for path in ("/chat", f"/chat/{resident}", "/chat/p-P-L-01", "/r"):
            html = await b.get(f"{path}?lang={lang}")
            assert f'hreflang="{lang}" data-testid="lang-{lang}" aria-current="true"' in html
            ids |= page_parts(html).testids
        found[lang] = ids
    assert found["zh_CN"] == found["en"]
    assert {"pick-person", "pick-grid", "pick-new-resident", "send-button", "text-input",
            "photo-input", "keyboard", "live-status", "start-chat"} <= found["en"]  # fmt: skip
    assert "<title>shuoshi · chat</title>" in await b.get(f"/chat/{resident}?lang=en")


async def test_the_bot_speaks_the_pages_language_to_a_new_resident(demo):
    b, chat, app = demo
    csrf = await b.form_token("/r?lang=en")  # the choice is kept in a cookie
    response = await b.client.post("/r", data={"csrf": csrf, "grid": ""}, allow_redirects=False)
    await b.open(response.headers["Location"])
    assert '<html lang="en">' in b.html
    texts = await chat_texts(b)
    assert Renderer("en").macro("chat.html.j2", "pick_township") in texts


async def test_static_files_are_served_and_nothing_else(demo):
    b, chat, app = demo
    js = await b.client.get("/static/webchat/chat.js")
    assert js.status == 200 and "application/javascript" in js.headers["Content-Type"]
    assert "innerHTML" not in await js.text()
    assert (await b.client.get("/static/webchat/../webchat.py")).status == 404
    assert (await b.client.get("/static/webchat/secret.txt")).status == 404


async def test_the_page_works_without_its_script(demo):
    """Plain form posts: a button, then the composer (with its empty file box), and back."""
    from aiohttp import FormData

    b, chat, app = demo
    await b.pick(grid="")
    # A button is a form of its own: its key was made when the page was drawn.
    button = re.search(r'<form method="post" action="[^"]+/press".*?</form>', b.html, re.S)
    hidden = dict(re.findall(r'name="(\w+)" value="([^"]*)"', button.group(0)))
    response = await b.client.post(b.config["urls"]["press"], data=hidden, allow_redirects=False)
    assert response.status == 303 and response.headers["Location"] == f"/chat/{b.chat}#end"
    html = await b.get(f"/chat/{b.chat}")
    assert chat_text("pick_village") in html
    composer = re.search(r'<form id="composer".*?</form>', html, re.S).group(0)
    fields = dict(re.findall(r'<input type="hidden" name="(\w+)"[^>]*value="([^"]*)"', composer))
    form = FormData()
    for name in ("csrf", "key", "reply_to"):
        form.add_field(name, fields[name])
    form.add_field("text", "/my")
    form.add_field("photo", b"", filename="", content_type="application/octet-stream")
    response = await b.client.post(b.config["urls"]["send"], data=form, allow_redirects=False)
    assert response.status == 303
    views = await b.history()
    assert [v["kind"] for v in views[-4:]] == ["press", "bot", "text", "bot"]
    assert plain_text(views[-1]["nodes"]) == chat_text("not_enrolled")


class Crash(BaseException):
    """The process dies here: nothing after this point runs, nothing is caught."""


async def test_a_crash_while_taking_a_message_loses_nothing(engine, tmp_path, clock):
    """The process dies after the post reached the database but before the bot handled it;
    the page sends it again with the same key to the restarted process: the bot answers it
    once, and the chat shows the message once."""
    app = await make_app(engine, tmp_path, clock)

    async def crash(turn: Any) -> bool:
        raise Crash()

    async for client, chat in serve(app, demo=True):
        b = Browser(client)
        await b.pick("P-R-01")
        before = await b.last_id()
        chat.conversations.routes = [crash, *chat.conversations.routes]
        with pytest.raises(Crash):
            await chat._take(b.chat, "crash-key-1", {"kind": "text", "text": "/my"}, "zh_CN",
                             text="/my")  # fmt: skip
        path = f"/chat/{b.chat}"
    async for client, _restarted in serve(app, demo=True):  # a new process, same database
        b = Browser(client)
        await b.open(path)
        await b.say("/my", key="crash-key-1")
        new = await b.history(before)
        assert [v["direction"] for v in new] == ["in", "out"]
        assert plain_text(new[1]["nodes"]) == chat_text("no_cases")
