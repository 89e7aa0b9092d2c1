"""Delivery to WeChat: customer-service messages within 48 hours, template messages after,
the shared access token, WeChat's limits and refusals."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from storage.rows import CaseRow, OutboxRow, WeChatTokenRow
from tests.support.images import jpeg
from tests.support.wechat import PUBLIC_URL, report_case, resident_browser, staff_resolve

RESIDENT = "o-resident-2"


async def _rows(env, status: str) -> list[OutboxRow]:
    async with env.app.sessions() as session:
        result = await session.execute(
            select(OutboxRow).where(OutboxRow.channel == "wechat", OutboxRow.status == status)
        )
        return list(result.scalars())


async def test_news_within_48_hours_goes_as_customer_service_messages(wx):
    number = await report_case(wx, RESIDENT, photo=jpeg("blue"))
    wx.clock.advance(hours=47)
    await staff_resolve(wx, number)
    await wx.settle()
    assert wx.fake.templates == []
    assert any(number in t and "已更换井盖" in t for t in wx.fake.texts(RESIDENT))
    rating = wx.fake.to(RESIDENT)[-1]
    assert rating["msgtype"] == "msgmenu" and len(rating["msgmenu"]["list"]) == 3


async def test_outside_48_hours_the_resident_gets_a_template_message_linking_the_case(wx):
    number = await report_case(wx, RESIDENT)
    sent_before = len(wx.fake.custom)
    wx.clock.advance(hours=49)
    await staff_resolve(wx, number)
    await wx.settle()
    assert len(wx.fake.custom) == sent_before  # no customer-service message was tried
    assert {t["template_id"] for t in wx.fake.templates} == {"TPL-RESULT", "TPL-RATING"}
    rating = next(t for t in wx.fake.templates if t["template_id"] == "TPL-RATING")
    assert rating["data"]["keyword1"]["value"] == number
    # The link opens the resident's web chat, where the rating buttons wait.
    chat = await wx.channel.store.web_chat_of(RESIDENT, wx.clock.now(), create=False)
    assert chat is not None and rating["url"] == f"{PUBLIC_URL}/chat/{chat}"
    async with wx.app.sessions() as session:
        web_rows = (
            await session.execute(select(OutboxRow).where(OutboxRow.chat_id == chat))
        ).scalars()
        purposes = [r.payload.get("purpose") for r in web_rows]
    assert "rating" in purposes
    assert await _rows(wx, "failed") == []


async def test_errcode_45015_falls_back_to_the_template_message(wx):
    number = await report_case(wx, RESIDENT)
    # Our record says the window is open, WeChat says it is not (e.g. its clock, a lost
    # callback): its answer wins.
    wx.fake.last_message[RESIDENT] = wx.clock.now() - timedelta(hours=49)
    await staff_resolve(wx, number)
    await wx.settle()
    assert 45015 in wx.fake.refusals
    # Each piece of news (passed on, assigned, accepted, resolved) and the rating request.
    assert [t["template_id"] for t in wx.fake.templates][-2:] == ["TPL-RESULT", "TPL-RATING"]
    assert all(t["data"]["keyword1"]["value"] == number for t in wx.fake.templates)


async def test_an_expired_token_is_refreshed_once_and_shared_through_the_database(wx):
    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    await wx.settle()
    assert wx.fake.token_requests == 1
    wx.fake.expire_tokens()  # WeChat ended it early (another client asked for a new one)
    await wx.cb.click(RESIDENT, "my")
    await wx.settle()
    assert wx.fake.refusals == [42001]
    assert wx.fake.token_requests == 2 and len(wx.fake.custom) == 2
    async with wx.app.sessions() as session:
        stored = (await session.execute(select(WeChatTokenRow))).scalar_one()
    assert stored.token in wx.fake.tokens and wx.fake.tokens[stored.token] > wx.clock.now()
    # Another process (a fresh API client on the same database) uses the stored token.
    from bot.wechat.api import OfficialAccountApi
    from tests.fake_wechat import APP_ID, APP_SECRET

    other = OfficialAccountApi(wx.fake.base_url, APP_ID, APP_SECRET, wx.channel.store, wx.clock)
    try:
        assert await other.tokens.get() == stored.token
    finally:
        await other.close()
    assert wx.fake.token_requests == 2


async def test_the_api_quota_pauses_delivery_and_nothing_is_lost(wx):
    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    wx.fake.quota = 0
    await wx.settle()
    assert wx.fake.refusals == [45009] and wx.fake.custom == []
    [waiting] = await _rows(wx, "pending")
    assert waiting.attempts == 1 and "45009" in (waiting.error or "")
    assert wx.channel.sender.paused_until is not None
    wx.fake.reset_quota()
    await wx.settle()  # still paused: the clock has not moved
    assert wx.fake.custom == []
    wx.clock.advance(seconds=10)
    await wx.settle()
    assert len(wx.fake.custom) == 1 and await _rows(wx, "pending") == []


async def test_a_follower_who_left_fails_for_good_and_the_case_is_flagged(wx):
    number = await report_case(wx, RESIDENT)
    wx.fake.followers.discard(RESIDENT)  # unfollowed: WeChat no longer knows the openid
    await staff_resolve(wx, number)
    await wx.settle()
    failed = await _rows(wx, "failed")
    assert failed and all("40003" in (r.error or "") for r in failed)
    async with wx.app.sessions() as session:
        case = (await session.execute(select(CaseRow).where(CaseRow.number == number))).scalar_one()
    assert case.delivery_failed


async def test_the_template_link_opens_the_residents_web_chat_where_they_rate(wx):
    from urllib.parse import urlsplit

    number = await report_case(wx, RESIDENT, photo=jpeg("green"))
    wx.clock.advance(hours=72)  # the result comes days later
    await staff_resolve(wx, number)
    await wx.settle()
    link = next(t for t in wx.fake.templates if t["template_id"] == "TPL-RATING")["url"]
    async with resident_browser(wx.app) as browser:
        await browser.open(urlsplit(link).path)
        await browser.press(f"ra:{number}:", label="满意")
        await browser.press(f"rk:{number}")  # no comment
    async with wx.app.uow() as uow:
        case = await uow.cases.get(number)
    assert case.rating is not None and case.rating.value == "satisfied"


async def test_a_row_another_sender_claimed_is_not_sent_twice(wx, monkeypatch):
    from storage.outbox_calls import OutboxQueue

    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    await wx.channel.processor.process_pending()
    sender = wx.channel.sender
    now = wx.clock.now()
    # Both senders read the row as due; the other one claims it first.
    seen = await sender.queue.due_heads(now, 0, 10)
    assert len(seen) == 1
    assert await OutboxQueue(wx.app.sessions, "wechat").claim(
        seen[0].id, now, now + timedelta(seconds=30)
    )
    calls = iter([seen])
    monkeypatch.setattr(sender.queue, "due_heads", lambda *a: _async(next(calls, [])))
    await wx.settle()
    assert wx.fake.custom == []  # the other sender has it
    monkeypatch.undo()
    wx.clock.advance(seconds=31)  # it died: the claim ran out
    await wx.settle()
    assert len(wx.fake.custom) == 1 and await _rows(wx, "pending") == []


async def _async(value):
    return value
