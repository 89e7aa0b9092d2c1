"""/wecom/callback: WeCom's URL check and encrypted posts, checked with wechatpy's enterprise
crypto, stored in the inbox before the answer, replays stored once; members the county file
does not know, and messages the app cannot take, get a clear answer."""

from __future__ import annotations

from sqlalchemy import func, select

from bot.wecom.render import TEMPLATE
from handlers.render import Renderer
from storage.rows import InboxRow
from tests.support.texts import said
from tests.support.wecom import STAFF

LEADER = STAFF["P-L-01"]
ZH = Renderer("zh_CN")


async def _stored(env) -> int:
    async with env.app.sessions() as session:
        query = select(func.count()).select_from(InboxRow).where(InboxRow.channel == "wecom")
        return int((await session.execute(query)).scalar_one())


async def test_the_url_check_answers_the_decrypted_echostr(wc):
    assert (await wc.cb.verify_url("echo-4242")).text == "echo-4242"
    refused = await wc.cb.verify_url("echo-4242", bad=True)
    assert refused.status == 403 and "echo" not in refused.text


async def test_a_message_is_stored_once_and_answered_at_once(wc):
    xml = wc.cb.xml(LEADER, wc.cb._msg("text", Content="你好"))
    for _ in range(3):  # WeCom retries when it had no answer in 5 seconds
        posted = await wc.cb.post_xml(xml)
        assert (posted.status, posted.text) == (200, "")
    assert await _stored(wc) == 1
    await wc.settle()
    assert wc.fake.texts(LEADER) == [ZH.macro(TEMPLATE, "staff_help")]


async def test_a_replayed_card_press_is_one_press(wc):
    fields = wc.cb.press_fields("r1", "stale")
    xml = wc.cb.xml(LEADER, fields)
    for _ in range(2):
        assert (await wc.cb.post_xml(xml)).status == 200
    # The same button on another card in the same second is another press.
    other = wc.cb.xml(LEADER, {**fields, "TaskId": "r2"}, created=int(wc.clock.now().timestamp()))
    assert (await wc.cb.post_xml(other)).status == 200
    assert await _stored(wc) == 2


async def test_forged_or_spoiled_posts_are_refused_and_change_nothing(wc):
    xml = wc.cb.xml(LEADER, wc.cb._msg("text", Content="你好"))
    assert (await wc.cb.post_xml(xml, bad="msg_signature")).status == 403
    assert (await wc.cb.post_xml(xml, bad="corp")).status == 403  # another corp's key use
    assert (await wc.cb.post_xml(xml, bad="body")).status in (400, 403)  # no AES of ours
    session = wc.cb._session()
    async with session.post(wc.url, data=xml.encode()) as answer:  # not signed at all
        assert answer.status == 403
    big = b"<xml>" + b"x" * 70_000 + b"</xml>"
    async with session.post(wc.url, params={"msg_signature": "x"}, data=big) as answer:
        assert answer.status == 413
    assert await _stored(wc) == 0
    await wc.settle()
    assert wc.fake.sent == []


async def test_a_member_the_county_file_does_not_know_is_told_so(wc):
    wc.fake.members.add("Stranger01")
    await wc.cb.text("Stranger01", "你好")
    await wc.settle()
    assert wc.fake.texts("Stranger01") == [
        ZH.macro(TEMPLATE, "unknown_member", userid="Stranger01")
    ]


async def test_voice_video_and_files_get_a_clear_answer(wc):
    from bot.wechat.render import plain

    for kind, shown in (("voice", "voice"), ("video", "video"), ("file", "document")):
        await wc.cb.other(LEADER, kind)
        await wc.settle()
        assert wc.fake.texts(LEADER)[-1] == plain(said("unsupported", kind=shown, step=""))


async def test_shuoshi_run_serves_the_callback_and_answers_from_its_sender(tmp_path, monkeypatch):
    """The whole process: the route on the web server, the inbox and the sender under the
    lease, on the real clock."""
    import asyncio

    from bot.app import open_app
    from bot.config import load_settings
    from bot.runner import serve
    from storage.org_file import load_org_file
    from tests.fake_wechat.wecom import (
        AES_KEY,
        AGENT_ID,
        CORP_ID,
        SECRET,
        TOKEN,
        FakeWeCom,
        WeComCallbacks,
    )
    from tests.support.net import STOP_SECONDS, free_port
    from tests.support.wecom import county_with_wecom
    from workflow.clock import SystemClock

    monkeypatch.chdir(tmp_path)
    county = county_with_wecom(tmp_path, STAFF)
    async with FakeWeCom(SystemClock().now, set(STAFF.values())) as fake:
        port = free_port()
        settings = load_settings(
            data_dir=tmp_path / "data", example_county=county, web={"port": port},
            wecom={"corp_id": CORP_ID, "agent_id": AGENT_ID, "secret": SECRET, "token": TOKEN,
                   "encoding_aes_key": AES_KEY, "api_base": fake.base_url},
        )  # fmt: skip
        app = await open_app(settings)
        await load_org_file(app.sessions, county)
        stop, ready = asyncio.Event(), asyncio.Event()
        task = asyncio.create_task(serve(app, stop, on_ready=lambda running: ready.set()))
        cb = WeComCallbacks(fake, f"http://127.0.0.1:{port}/wecom/callback")
        try:
            await asyncio.wait_for(ready.wait(), 30)
            assert (await cb.verify_url("echo-1")).text == "echo-1"
            assert (await cb.post_xml(cb.xml(LEADER, cb._msg("text", Content="hi")))).status == 200
            (answer,) = await fake.wait_sent(LEADER, 1, timeout=15)
            assert answer["text"]["content"] == ZH.macro(TEMPLATE, "staff_help")
        finally:
            await cb.close()
            stop.set()
            await asyncio.wait_for(task, STOP_SECONDS)
            await app.close()
