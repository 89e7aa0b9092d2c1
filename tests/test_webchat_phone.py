"""What the resident's phone page needs from the server (issue 14): their own photos, quoted
replies, a Reply link only where replying does something, the text box's hint for the step,
greetings before cards, and the small texts (a refused file named in words, the done notes)."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from aiohttp.test_utils import TestClient, TestServer

from bot.web.chat.render import plain_text
from bot.web.dashboard.app import setup_dashboard
from storage.media import MediaRefused
from tests.support.images import jpeg
from tests.support.webchat import (
    ZH,
    Browser,
    chat_text,
    make_app,
    report_as_new_resident,
    serve,
)
from workflow.clock import SHANGHAI


async def test_the_residents_own_photo_is_shown_to_their_chat_and_nobody_elses(demo):
    b, _chat, app = demo
    await report_as_new_resident(b, "井盖松动")
    own = [v for v in await b.history() if v["direction"] == "in" and v["kind"] == "photo"]
    assert len(own) == 1 and own[0]["file_name"] == "manhole.jpg"
    [url] = own[0]["photos"]
    response = await b.client.get(url)
    assert response.status == 200 and response.content_type == "image/jpeg"
    # The location-free copy, the one the grid leader's card shows too.
    await b.pick("P-L-01")
    card = next(v for v in await b.history() if v["photos"])
    assert card["photos"][0].rsplit("/", 1)[1] == url.rsplit("/", 1)[1]
    # Another resident's chat cannot fetch it.
    other = Browser(b.client)
    await other.pick(grid="JL-XGC-01-G1")
    sha = url.rsplit("/", 1)[1]
    assert (await b.client.get(f"/chat/{other.chat}/photo/{sha}")).status == 404


async def test_a_reply_quotes_the_card_and_only_cards_offer_a_reply(demo):
    b, _chat, _app = demo
    number = await report_as_new_resident(b, "路灯不亮")
    # A resident's messages (news, receipts, questions) have nothing a reply would do.
    assert not any(v["replyable"] for v in await b.history())
    assert 'data-testid="reply-button"' not in messages_of(await b.get(f"/chat/{b.chat}"))
    await b.pick("P-L-01")
    views = await b.history()
    card = next(v for v in views if v["case_number"] == number and v["buttons"])
    assert card["replyable"]
    assert [v["replyable"] for v in views if v is not card and v["direction"] == "out"] == [
        False
    ]  # the greeting
    await b.say("现场已核实", reply_to=card["id"])
    reply = next(v for v in await b.history() if v["direction"] == "in" and v["reply_to"])
    assert reply["reply_to"] == card["id"]
    words = " ".join(plain_text(card["nodes"]).split())
    assert reply["quote"] == words[:59] + "…"
    html = await b.get(f"/chat/{b.chat}")
    shown = messages_of(html)
    assert reply["quote"] in shown and shown.count('data-testid="reply-button"') == 1


async def test_staff_are_greeted_before_any_card_reaches_them(demo):
    b, _chat, _app = demo
    number = await report_as_new_resident(b, "垃圾堆放")
    await b.pick("P-L-01")
    views = await b.history()
    assert "您好" in plain_text(views[0]["nodes"]) and views[0]["case_number"] is None
    assert views[1]["case_number"] == number
    assert len([v for v in views if "您好" in plain_text(v["nodes"])]) == 1  # picked: no second


async def test_the_text_box_hint_follows_the_step(demo):
    b, _chat, _app = demo
    await b.pick(grid="JL-XGC-01-G1")
    assert 'placeholder="输入文字……"' in b.html
    await b.key()  # 📝 report
    hint = await b.client.get(b.config["urls"]["history"] + "?after=0")
    assert (await hint.json())["placeholder"] == "请点上面的按钮选择……"  # the categories
    await b.press("cat:", label="安全隐患")
    html = await b.get(f"/chat/{b.chat}")
    assert 'placeholder="描述一下问题……"' in html
    await b.say("墙体开裂")
    assert (await (await b.client.get(b.config["urls"]["history"])).json())[
        "placeholder"
    ] == "用 📷 添加照片，或输入文字……"


async def test_a_file_that_is_not_a_photo_is_named_in_words(demo):
    b, _chat, app = demo
    await b.pick(grid="JL-XGC-01-G1")
    await b.key()
    await b.press("cat:", label="安全隐患")
    await b.say("墙体开裂")
    answers = await b.answers(b.upload(("notes.txt", "墙体开裂的情况说明".encode(), "text/plain")))
    assert answers == ["只接受照片（JPEG、PNG、WEBP、GIF），收到的是文本文件。"]
    assert "TEXT" not in answers[0]
    heic = b"\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic" + bytes(64)
    refused = ZH.error(MediaRefused("not_an_image", "", format="HEIC", reason="unrecognised"))
    assert "HEIC 照片" in refused and "截图" in refused
    assert ZH.error(MediaRefused("not_an_image", "", format="BMP")).endswith("收到的是BMP 文件。")
    assert (await b.answers(b.upload(("IMG_0001.HEIC", heic, "image/heic"))))[0] == refused
    # The draft is still there: a good photo goes on.
    answers = await b.answers(b.upload(("ok.jpg", jpeg("red"), "image/jpeg")))
    assert answers == [chat_text("photo_received", count=1, limit=9)]


def messages_of(html: str) -> str:
    """The history part of a chat page (not its templates for the script)."""
    return html.split('id="messages"', 1)[1].split("</ol>", 1)[0]


def test_the_done_notes_read_as_sentences():
    note = chat_text("done", action="note", number="JL-20261123-0001")
    assert note == "✔️ JL-20261123-0001：进展反馈已记录。" and "已进展反馈" not in note
    local = chat_text("done", action="handle_locally", number="JL-20261123-0001")
    assert local == "✔️ JL-20261123-0001：已转由乡镇自办。"
    assert chat_text("done", action="accept", number="X") == "✔️ X：已签收。"


async def test_an_empty_dashboard_says_how_to_try_it(engine, tmp_path, clock):
    app = await make_app(engine, tmp_path, clock)
    web_app = web.Application()
    setup_dashboard(web_app, app, require_login=False)
    async with TestClient(TestServer(web_app)) as client:
        html = await (await client.get("/dashboard")).text()
        assert 'data-testid="first-start"' in html
        assert 'href="/chat"' in html and "shuoshi demo" in html
        # Once there is a case, even outside the period shown, the hint is gone.
        async for chat_client, _chat in serve(app, demo=True):
            await report_as_new_resident(Browser(chat_client), "树倒了")
        clock.advance(days=90)
        html = await (await client.get("/dashboard")).text()
        assert 'data-testid="first-start"' not in html


async def test_the_weekly_page_links_the_weeks_before_and_after(engine, tmp_path, clock):
    clock.set(datetime(2026, 12, 1, 9, 0, tzinfo=SHANGHAI))  # a Tuesday of 2026-W49
    app = await make_app(engine, tmp_path, clock)
    web_app = web.Application()
    setup_dashboard(web_app, app, require_login=False)
    async with TestClient(TestServer(web_app)) as client:
        html = await (await client.get("/dashboard/weekly")).text()  # last week: 2026-W48
        assert 'href="?week=2026-W47" rel="prev"' in html
        assert 'href="?week=2026-W49" rel="next"' in html  # this week has begun
        html = await (await client.get("/dashboard/weekly?week=2026-W49")).text()
        assert 'href="?week=2026-W48" rel="prev"' in html and 'rel="next"' not in html
        html = await (await client.get("/dashboard/weekly?week=2026-W01")).text()
        assert 'href="?week=2025-W52" rel="prev"' in html
        assert 'href="?week=2026-W02" rel="next"' in html
    # The file `shuoshi report weekly --out` writes has no links that lead nowhere.
    from handlers.weekly import build_weekly, parse_week, render_weekly_page

    async with app.uow() as uow:
        report = await build_weekly(uow, parse_week("2026-W48"), clock.now())
    assert 'data-testid="week-nav"' not in render_weekly_page(report, "zh_CN")
