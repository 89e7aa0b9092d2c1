"""The loop of issue 12 §4, encryption on both callbacks: a resident follows the Official
Account through a grid's QR code and reports with a photo and a location; the grid leader, the
township, the county center and the housing department act on interactive template cards (the
transition table's buttons, as in Telegram); two days later the department notes its progress
and resolves with words and a photo sent as messages to the app; every card is updated in
place as the case moves on, and a button on a card that moved on is refused. The resident,
outside WeChat's 48-hour window by then, gets template messages; their link opens the web chat
with the result photo, and the rating given there lands on the case."""

from __future__ import annotations

from urllib.parse import urlsplit

import pytest
from sqlalchemy import select

from bot.web.chat.render import plain_text
from bot.wechat.api import WeChatError
from bot.wechat.render import plain
from bot.wecom.render import BUTTON_TEXT_LIMIT, STALE_KEY
from handlers.render import Renderer
from handlers.units import card_buttons
from storage.rows import AttachmentRow
from tests.support.images import jpeg
from tests.support.texts import refusal, said
from tests.support.wechat import PUBLIC_URL, report_case, resident_browser
from tests.support.wecom import STAFF
from workflow.model import Role

RESIDENT = "o-resident-1"
LEADER, TOWNSHIP, COUNTY, HOUSING = (STAFF[c] for c in ("P-L-01", "P-T-01", "P-C-01", "P-H-02"))
ZH = Renderer("zh_CN")


def btn(macro: str) -> str:
    """A button's label as the card shows it (cut like the card's)."""
    text = plain(said(macro))
    return text if len(text) <= BUTTON_TEXT_LIMIT else text[: BUTTON_TEXT_LIMIT - 1]


async def _state(env, number: str) -> str:
    async with env.app.uow() as uow:
        return (await uow.cases.get(number)).state.value


async def _table_keys(env, number: str, role: Role) -> list[str]:
    async with env.app.uow() as uow:
        card = await uow.channels.case_card(number)
    return [b.data for row in card_buttons(ZH, card, role) for b in row]


async def test_a_case_goes_round_the_wecom_cards_and_each_card_follows_it(wc):
    await _round(wc)


async def test_the_same_round_on_postgresql(wc_pg):
    await _round(wc_pg)


async def _round(wc) -> None:
    number = await report_case(wc.wx, RESIDENT, photo=jpeg("red"), location=(37.3011, 114.9481))
    await wc.settle()
    async with wc.app.uow() as uow:
        reported = await uow.cases.get(number)
    assert (reported.latitude, reported.longitude) == (37.3011, 114.9481)

    # The grid leader's card: the report's photo, then the card with the table's buttons.
    assert [m["msgtype"] for m in wc.fake.to(LEADER)] == ["image", "template_card"]
    first = wc.fake.latest_card(LEADER)
    assert number in first["main_title"]["title"] + first["sub_title_text"]
    keys = [b["key"] for b in first["button_list"]]
    assert keys == (await _table_keys(wc, number, Role.GRID_LEADER))[:6]
    await wc.cb.press(LEADER, btn("btn_valid"))
    await wc.settle()
    assert await _state(wc, number) == "township"
    # Updated in place: the same card, now showing the case with the township, no buttons.
    versions = wc.fake.card_versions[first["task_id"]]
    assert (
        len(versions) == 2
        and number in versions[1]["sub_title_text"] + versions[1]["main_title"]["title"]
    )
    assert [b["key"] for b in versions[1]["button_list"]] == [STALE_KEY]
    assert wc.fake.card_tasks(LEADER) == [first["task_id"]]  # no second card

    # A button of the card as it was (a phone that missed the update) is refused clearly.
    await wc.cb.press(LEADER, btn("btn_valid"), card=first)
    await wc.settle()
    assert wc.fake.texts(LEADER)[-1] == plain(
        refusal("role_not_allowed", action="screen_valid", role="grid_leader", state="township")
    )
    assert await _state(wc, number) == "township"

    await wc.cb.press(TOWNSHIP, btn("btn_pass_up"))
    await wc.settle()
    assert await _state(wc, number) == "county"
    await wc.cb.press(COUNTY, "住房")  # the department's own button on the county's card
    await wc.settle()
    assert await _state(wc, number) == "assigned"
    await wc.cb.press(HOUSING, btn("btn_accept"))
    await wc.settle()
    assert await _state(wc, number) == "in_progress"
    card = wc.fake.latest_card(HOUSING)
    assert [b["key"] for b in card["button_list"]] == (
        await _table_keys(wc, number, Role.DEPARTMENT_HANDLER)
    )[:6]
    # As in Telegram: a fresh card for the new stage, and the pressed one updated in place.
    assigned_card = wc.fake.card_tasks(HOUSING)[0]
    assert len(wc.fake.card_versions[assigned_card]) == 2

    # Two days pass: the resident has not written since the report, WeChat's 48-hour window
    # of customer-service messages is closed (the fake refuses them with 45015, as WeChat).
    wc.clock.advance(hours=49)
    with pytest.raises(WeChatError) as refused:
        await wc.wx.channel.api.send_custom(
            {"touser": RESIDENT, "msgtype": "text", "text": {"content": "x"}}
        )
    assert refused.value.errcode == 45015
    custom_before = len(wc.wx.fake.custom)

    # A progress note: the button asks, the words come as a message.
    await wc.cb.press(HOUSING, btn("btn_note"))
    await wc.settle()
    assert wc.fake.texts(HOUSING)[-1].startswith(plain(said("ask_note", number=number)))
    await wc.cb.text(HOUSING, "已派人到场查看")
    await wc.settle()
    assert wc.fake.texts(HOUSING)[-1] == plain(said("done", action="note", number=number))

    # Resolve: words, a photo, then the confirming card's button.
    await wc.cb.press(HOUSING, btn("btn_resolve"))
    await wc.settle()
    await wc.cb.text(HOUSING, "已更换井盖")
    await wc.settle()
    await wc.cb.image(HOUSING, jpeg("green"))
    await wc.settle()
    await wc.cb.press(HOUSING, btn("btn_resolve"))
    await wc.settle()
    assert await _state(wc, number) == "resolved"
    async with wc.app.sessions() as session:
        photos = (await session.execute(select(AttachmentRow.channel))).scalars().all()
    assert sorted(photos) == ["wechat", "wecom"]  # the report's and the result's
    # The resident hears of it by template messages only, each linking to their web chat.
    assert len(wc.wx.fake.custom) == custom_before
    news = [t for t in wc.wx.fake.templates if t["data"]["keyword1"]["value"] == number]
    assert [t["template_id"] for t in news][-2:] == ["TPL-RESULT", "TPL-RATING"]
    link = urlsplit(news[-1]["url"])
    assert f"{link.scheme}://{link.netloc}" == PUBLIC_URL and link.path.startswith("/chat/")
    assert wc.fake.refusals == [] and wc.wx.fake.refusals == [45015]

    # The link opened in the resident's browser: the result with its photo, and the rating.
    async with resident_browser(wc.app) as browser:
        await browser.open(link.path)
        result = [v for v in await browser.history() if v["photos"]]
        assert "已更换井盖" in plain_text(result[-1]["nodes"])
        photo = await browser.client.get(result[-1]["photos"][0])
        assert photo.status == 200 and photo.content_type == "image/jpeg"
        assert (await photo.read())[:2] == b"\xff\xd8"
        await browser.press(f"ra:{number}:", label="满意")
        await browser.press(f"rk:{number}")  # no comment
    async with wc.app.uow() as uow:
        rated = await uow.cases.get(number)
    assert rated.rating is not None and rated.rating.value == "satisfied"


async def test_more_choices_than_six_buttons_are_numbered_and_a_typed_number_picks_one(wc):
    from handlers.messages import Button, Outgoing
    from workflow.ports import OutgoingMessage

    choices = [[Button(f"部门{i}", f"x{i}")] for i in range(1, 9)]
    async with wc.app.uow() as uow:
        message = Outgoing(chat_id=LEADER, text="选择部门\n请选择", buttons=choices)
        await uow.outbox.add(OutgoingMessage(channel="wecom", chat_id=LEADER,
                                             payload=message.payload()))  # fmt: skip
        await uow.commit()
    await wc.settle()
    card = wc.fake.latest_card(LEADER)
    assert [b["key"] for b in card["button_list"]] == [f"x{i}" for i in range(1, 7)]
    assert "8. 部门8" in card["sub_title_text"]

    def typed(text: str) -> dict:
        return {"FromUserName": LEADER, "MsgType": "text", "Content": text, "MsgId": "1",
                "key": "m:1"}  # fmt: skip

    picked = await wc.channel.builder.build(typed("8"))
    assert picked is not None and picked.callback_data == "x8"
    assert (await wc.channel.builder.build(typed("9"))).text == "9"  # type: ignore[union-attr]


async def test_a_reason_is_asked_by_the_button_and_sent_as_a_message(wc):
    number = await report_case(wc.wx, RESIDENT)
    await wc.settle()
    await wc.cb.press(LEADER, btn("btn_invalid"))
    await wc.settle()
    assert wc.fake.texts(LEADER)[-1].startswith(plain(said("ask_reason", number=number)))
    await wc.cb.other(LEADER, "voice")  # not words: said so, the question stays
    await wc.settle()
    assert await _state(wc, number) == "screening"
    await wc.cb.text(LEADER, "重复反映，已在处理")
    await wc.settle()
    assert await _state(wc, number) == "rejected"
    async with wc.app.uow() as uow:
        trail = await uow.cases.history(number)
    assert trail[-1].comment == "重复反映，已在处理"
