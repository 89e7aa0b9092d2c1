"""/wechat/mp: WeChat's URL check, signed and AES-encrypted callbacks, refusals, retries."""

from __future__ import annotations

import asyncio

import aiohttp
import pytest
from sqlalchemy import func, select

from bot.config import ConfigError, load_settings
from storage.rows import InboxRow
from tests.fake_wechat.callbacks import TOKEN, sign


async def _inbox_rows(env) -> int:
    async with env.app.sessions() as session:
        return (
            await session.execute(
                select(func.count()).select_from(InboxRow).where(InboxRow.channel == "wechat")
            )
        ).scalar_one()


async def _get(url: str, **query: str) -> tuple[int, str]:
    async with aiohttp.ClientSession() as session:
        async with session.get(url, params=query) as answer:
            return answer.status, await answer.text()


async def test_url_check_echoes_only_when_signed_with_our_token(wx):
    good = sign(TOKEN, "1700000000", "abc")
    assert await _get(wx.url, signature=good, timestamp="1700000000", nonce="abc",
                      echostr="echo-123") == (200, "echo-123")  # fmt: skip
    bad = sign("other", "1700000000", "abc")
    status, text = await _get(wx.url, signature=bad, timestamp="1700000000", nonce="abc",
                              echostr="echo-123")  # fmt: skip
    assert status == 403 and "echo-123" not in text


async def test_an_encrypted_message_is_stored_once_and_answered_success(wx):
    xml = wx.cb.xml("o-res-1", {"MsgType": "text", "Content": "你好", "MsgId": 42})
    first = await wx.cb.post_xml(xml)
    assert (first.status, first.text) == (200, "success")
    # WeChat retries after 5 s without an answer: the same MsgId is stored only once.
    again = await wx.cb.post_xml(xml)
    assert (again.status, again.text) == (200, "success")
    assert await _inbox_rows(wx) == 1
    # Events have no MsgId: sender + CreateTime tell a retry.
    follow = wx.cb.xml("o-res-1", {"MsgType": "event", "Event": "subscribe"}, created=1764000000)
    assert (await wx.cb.post_xml(follow)).text == "success"
    assert (await wx.cb.post_xml(follow)).text == "success"
    assert await _inbox_rows(wx) == 2


@pytest.mark.parametrize("spoil", ["signature", "msg_signature", "body"])
async def test_forged_or_undecryptable_callbacks_are_refused_and_change_nothing(wx, spoil):
    xml = wx.cb.xml("o-res-1", {"MsgType": "text", "Content": "hi", "MsgId": 7})
    posted = await wx.cb.post_xml(xml, bad=spoil)
    assert posted.status in (400, 403) and posted.text != "success"
    assert await _inbox_rows(wx) == 0
    assert await wx.channel.store.last_inbound("o-res-1") is None


async def test_safe_mode_refuses_plain_callbacks(wx):
    wx.cb.encrypted = False
    posted = await wx.cb.post_xml(wx.cb.xml("o-1", {"MsgType": "text", "Content": "x", "MsgId": 1}))
    assert posted.status == 403
    assert await _inbox_rows(wx) == 0


async def test_plain_mode_takes_signed_plain_callbacks(wx_plain):
    posted = await wx_plain.cb.text("o-1", "你好")
    assert (posted.status, posted.text) == (200, "success")
    assert await _inbox_rows(wx_plain) == 1
    forged = await wx_plain.cb.post_xml(
        wx_plain.cb.xml("o-1", {"MsgType": "text"}), bad="signature"
    )
    assert forged.status == 403


async def test_a_body_that_is_not_a_message_is_refused(wx_plain):
    posted = await wx_plain.cb.post_xml("<xml><broken>")
    assert posted.status == 400
    posted = await wx_plain.cb.post_xml("<xml><MsgType>text</MsgType></xml>")  # no sender
    assert posted.status == 400
    assert await _inbox_rows(wx_plain) == 0


async def test_a_body_arriving_in_pieces_is_read_whole_and_a_large_one_refused(wx_plain):
    from unittest import mock

    from aiohttp.streams import StreamReader
    from aiohttp.test_utils import make_mocked_request

    xml = wx_plain.cb.xml("o-1", {"MsgType": "text", "Content": "长" * 3000, "MsgId": 9})
    body = xml.encode()
    query = f"?timestamp=1&nonce=n&signature={sign(TOKEN, '1', 'n')}"
    reader = StreamReader(mock.Mock(_reading_paused=False), 2**16, loop=asyncio.get_running_loop())
    request = make_mocked_request("POST", "/wechat/mp" + query, payload=reader)
    reader.feed_data(body[:1000])  # the rest is still on its way when the handler reads
    answer = asyncio.create_task(wx_plain.channel.receive(request))
    for _ in range(5):
        await asyncio.sleep(0)  # let the handler take what is there (no time passes)
    reader.feed_data(body[1000:])
    reader.feed_eof()
    assert (await answer).text == "success"
    assert await _inbox_rows(wx_plain) == 1
    async with aiohttp.ClientSession() as session:
        async with session.post(wx_plain.url + query, data=b"x" * 70_000) as too_large:
            assert too_large.status == 413


def test_malformed_settings_say_what_is_wrong_in_one_line():
    with pytest.raises(ConfigError) as info:
        load_settings(wechat={"app_id": "wx1", "app_secret": "s", "token": "t",
                              "encoding_aes_key": "too-short"})  # fmt: skip
    message = str(info.value)
    assert "\n" not in message and "wechat.encoding_aes_key" in message
    assert "too-short" not in message  # a key is never echoed
    with pytest.raises(ConfigError, match=r"wechat\.token: required"):
        load_settings(wechat={"app_id": "wx1", "app_secret": "s"})


async def test_shuoshi_run_serves_the_callback_when_an_app_id_is_set(tmp_path, monkeypatch):
    import asyncio

    from bot.app import open_app
    from bot.runner import serve
    from tests.fake_wechat import APP_ID, APP_SECRET
    from tests.support.net import STOP_SECONDS, free_port
    from tests.support.paths import EXAMPLE_COUNTY

    monkeypatch.chdir(tmp_path)
    port = free_port()
    settings = load_settings(
        data_dir=tmp_path / "data", example_county=EXAMPLE_COUNTY, web={"port": port},
        wechat={"app_id": APP_ID, "app_secret": APP_SECRET, "token": TOKEN,
                "api_base": "http://127.0.0.1:9"},
    )  # fmt: skip
    app = await open_app(settings)
    stop, ready = asyncio.Event(), asyncio.Event()
    task = asyncio.create_task(serve(app, stop, on_ready=lambda running: ready.set()))
    try:
        await asyncio.wait_for(ready.wait(), 30)
        url = f"http://127.0.0.1:{port}/wechat/mp"
        good = sign(TOKEN, "1", "n")
        assert await _get(url, signature=good, timestamp="1", nonce="n", echostr="e") == (200, "e")
    finally:
        stop.set()
        await asyncio.wait_for(task, STOP_SECONDS)
        await app.close()
