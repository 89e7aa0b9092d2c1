"""A resident in the Official Account: follows through a grid's QR code, reports with a photo
and a location, confirms; the case is there. Menus, typed numbers and refusals."""

from __future__ import annotations

from sqlalchemy import select

from bot.wechat.render import plain
from handlers.render import Renderer
from storage.rows import AttachmentRow
from tests.support.images import jpeg
from tests.support.texts import said
from tests.support.wechat import describe_hazard

RESIDENT = "o-resident-1"
ZH = Renderer("zh_CN")


def _zh(macro: str, **params) -> str:
    return plain(said(macro, **params))


async def _case_numbers(env) -> list[str]:
    async with env.app.uow.reading() as uow:
        return [c["number"] for c in await uow.channels.cases_of_reporter(await _person(env))]


async def _person(env) -> int:
    async with env.app.uow() as uow:
        person = await uow.channels.person_for("wechat", RESIDENT)
    assert person is not None
    return person.id


async def test_follow_by_grid_qr_then_report_with_photo_and_location(wx):
    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    await wx.settle()
    assert wx.fake.texts(RESIDENT) == [_zh("resident_bound", grid="西郭城村第一网格")]

    await wx.cb.click(RESIDENT, "report")  # the account menu's 我要说事
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1].startswith(_zh("ask_category"))
    await wx.cb.choose(RESIDENT, "安全隐患")  # a clicked msgmenu option
    await wx.settle()
    await wx.cb.text(RESIDENT, "井盖丢失，很危险")
    await wx.settle()
    await wx.cb.image(RESIDENT, jpeg("red"))
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1].startswith(_zh("photo_received", count=1, limit=9))
    await wx.cb.text(RESIDENT, "1")  # a typed number: the first option (done with photos)
    await wx.settle()
    assert _zh("ask_location") in wx.fake.texts(RESIDENT)[-1]
    await wx.cb.location(RESIDENT, 37.3011, 114.9481, label="西郭城村")
    await wx.settle()
    assert _zh("ask_contact") in wx.fake.texts(RESIDENT)[-1]
    await wx.cb.text(RESIDENT, "138 1234 5678")  # WeChat cannot share a contact: typed
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1].count("13812345678") == 1
    await wx.cb.choose(RESIDENT, plain(said("btn_submit")))
    await wx.settle()

    numbers = await _case_numbers(wx)
    assert len(numbers) == 1
    async with wx.app.uow() as uow:
        case = await uow.cases.get(numbers[0])
    assert case.description == "井盖丢失，很危险"
    assert case.latitude == 37.3011 and case.contact_phone == "13812345678"
    # WeChat tells no follower's name: staff see "微信用户" and the openid's end, not "-".
    async with wx.app.uow() as uow:
        card = await uow.channels.case_card(numbers[0])
    assert card.reporter_name == "微信用户nt-1"
    shown = plain(ZH.macro("chat.html.j2", "case_card", card=card, event=None))
    assert "👤 微信用户nt-1 13812345678" in shown
    async with wx.app.sessions() as session:
        photo = (await session.execute(select(AttachmentRow))).scalar_one()
    assert (photo.channel, photo.channel_file_id) == ("wechat", "MEDIA-1")
    assert numbers[0] in wx.fake.texts(RESIDENT)[-1]
    # The photo came from WeChat's media/get into the media store, not as a link.
    assert wx.fake.refusals == []


async def test_voice_video_and_files_get_a_clear_refusal(wx):
    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    for kind, shown in (("voice", "voice"), ("video", "video"), ("file", "document")):
        await wx.cb.other(RESIDENT, kind)
        await wx.settle()
        assert wx.fake.texts(RESIDENT)[-1] == _zh("unsupported", kind=shown, step="")


async def test_an_unknown_follower_is_asked_for_the_grid(wx):
    # Following without a grid's QR code (a search, a shared card): pick the grid first.
    await wx.cb.text("o-stranger", "路灯坏了")
    await wx.settle()
    assert wx.fake.texts("o-stranger") == [_zh("help", step="")]
    await wx.cb.click("o-stranger", "report")
    await wx.settle()
    shown = wx.fake.texts("o-stranger")
    assert _zh("share_location_to_find_grid") in shown[-2]
    assert shown[-1].startswith(_zh("pick_township"))


async def test_a_replayed_message_is_handled_once(wx):
    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    await wx.settle()
    xml = wx.cb.xml(RESIDENT, {"MsgType": "event", "Event": "CLICK", "EventKey": "report"})
    for _ in range(3):
        assert (await wx.cb.post_xml(xml)).text == "success"
    await wx.settle()
    assert len(wx.fake.texts(RESIDENT)) == 2  # bound, then one category question


async def test_a_scan_when_already_following_moves_the_resident(wx):
    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    await wx.cb.scan(RESIDENT, "JL-XGC-01-G2")
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1].startswith(
        plain(said("resident_bound", grid="西郭城村第二网格"))[:8]
    )


async def test_a_photo_sent_as_the_token_expired_is_fetched_before_the_turn_writes(wx, caplog):
    """The photo is downloaded before the turn's transaction opens: the token renewed on the
    way (forgotten, then saved, each in a session of its own) waits for no write lock of the
    turn's, which would have waited for itself (storage/write_lock.py)."""
    await describe_hazard(wx, RESIDENT, "井盖丢失，很危险")
    await wx.settle()
    requests = wx.fake.token_requests
    wx.fake.expire_tokens()
    await wx.cb.image(RESIDENT, jpeg("red"))
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1].startswith(_zh("photo_received", count=1, limit=9))
    assert wx.fake.token_requests == requests + 1
    assert [r.getMessage() for r in caplog.records if r.name == "storage.write_lock"] == []


async def test_a_picture_that_is_no_photo_is_refused_and_the_draft_stays(wx):
    from tests.support.texts import refusal

    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    await wx.cb.click(RESIDENT, "report")
    await wx.settle()
    await wx.cb.choose(RESIDENT, "安全隐患")
    await wx.settle()
    await wx.cb.image(RESIDENT, b"%PDF-1.4 not a photo")
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1] == plain(refusal("not_an_image", format="PDF"))
    # WeChat keeps a MediaId three days: a stale one is a damaged photo, said so.
    await wx.cb.send(RESIDENT, wx.cb._msg("image", PicUrl="http://x", MediaId="MEDIA-gone"))
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1] == plain(refusal("not_an_image", reason="damaged"))
    await wx.cb.text(RESIDENT, "井盖丢失")  # the draft is still at the description
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1].startswith(_zh("ask_photos", limit=9)[:10])


async def test_a_typed_number_picks_only_from_the_last_message(wx):
    await wx.cb.follow(RESIDENT, scene="JL-XGC-01-G1")
    await wx.cb.click(RESIDENT, "report")
    await wx.settle()
    await wx.cb.text(RESIDENT, "2")  # the second category of the menu just sent
    await wx.settle()
    assert wx.fake.texts(RESIDENT)[-1] == _zh("ask_description")
    await wx.cb.text(RESIDENT, "1")  # the question offered no options: "1" is the description
    await wx.settle()
    async with wx.app.uow() as uow:
        person = await uow.channels.person_for("wechat", RESIDENT)
        conv = await uow.channels.conversation("wechat", RESIDENT, RESIDENT)
    assert person is not None and conv.draft["description"] == "1"
    assert conv.draft["category"] == "sanitation"
