"""The WeCom sender against the fake: the shared token refreshed once when WeCom refuses it,
WeCom's limits kept (every delivery waits, nothing lost), members it cannot reach failed with
the reason; a unit's app group chat gets its messages while its members keep their cards;
reminders and supervision notices arrive as app messages."""

from __future__ import annotations

from sqlalchemy import select

from bot.scheduler import PeriodicWork, make_digests, make_sweeper
from bot.wechat.render import plain
from bot.wecom.render import BUTTON_TEXT_LIMIT
from storage.rows import CaseRow, OutboxRow
from storage.wecom import APPCHAT_PREFIX
from tests.support.images import jpeg
from tests.support.texts import said
from tests.support.wechat import report_case
from tests.support.wecom import STAFF

RESIDENT = "o-resident-1"
LEADER = STAFF["P-L-01"]
SUPERVISOR = STAFF["P-S-01"]


async def _wecom_rows(env) -> list[OutboxRow]:
    async with env.app.sessions() as session:
        query = select(OutboxRow).where(OutboxRow.channel == "wecom").order_by(OutboxRow.id)
        return list((await session.execute(query)).scalars())


async def test_a_refused_token_is_renewed_once_and_the_card_goes(wc):
    wc.fake.expire_tokens()  # none yet: the first call fetches one
    number = await report_case(wc.wx, RESIDENT)
    await wc.settle()
    assert len(wc.fake.card_tasks(LEADER)) == 1 and wc.fake.token_requests == 1
    wc.fake.expire_tokens()  # WeCom ends it early (42001): one new token, the call again
    await wc.cb.text(LEADER, "你好")
    await wc.settle()
    assert wc.fake.token_requests == 2 and 42001 in wc.fake.refusals
    wc.fake.tokens.clear()  # unknown to WeCom (40014): the same
    await wc.cb.text(LEADER, "你好")
    await wc.settle()
    assert wc.fake.token_requests == 3 and 40014 in wc.fake.refusals
    assert len(wc.fake.texts(LEADER)) == 3 and number


async def test_limits_pause_every_delivery_and_nothing_is_lost(wc):
    await report_case(wc.wx, RESIDENT, photo=jpeg("red"))
    wc.fake.quota = 0  # 45009: the app's frequency or daily quota is spent
    await wc.settle()
    assert wc.fake.to(LEADER) == [] and 45009 in wc.fake.refusals
    sender = wc.channel.sender
    assert sender.paused_until is not None and sender.paused_until > wc.clock.now()
    pending = [r for r in await _wecom_rows(wc) if r.status == "pending"]
    assert pending and "45009" in (pending[0].error or "")
    wc.fake.quota = None
    await wc.settle()  # still paused: the clock has not moved
    assert wc.fake.to(LEADER) == []
    wc.fake.busy = 1  # then 45033 (too many calls at once): paused again
    wc.clock.advance(seconds=sender.retry.delay(1) + 1)
    await wc.settle()
    assert 45033 in wc.fake.refusals and wc.fake.to(LEADER) == []
    wc.clock.advance(seconds=sender.retry.delay(2) + 1)
    await wc.settle()
    # The photo, then the card: each sent once, in order.
    assert [m["msgtype"] for m in wc.fake.to(LEADER)] == ["image", "template_card"]


async def test_a_member_wecom_does_not_know_fails_with_the_reason_and_flags_the_case(wc):
    wc.fake.members.discard(LEADER)  # left the corp's address book
    number = await report_case(wc.wx, RESIDENT)
    await wc.settle()
    failed = [r for r in await _wecom_rows(wc) if r.status == "failed"]
    assert [r.chat_id for r in failed] == [LEADER] and "81013" in (failed[0].error or "")
    async with wc.app.sessions() as session:
        case = (await session.execute(select(CaseRow).where(CaseRow.number == number))).scalar_one()
    assert case.delivery_failed


async def test_a_units_group_chat_gets_its_messages_and_members_keep_their_cards(wc):
    cards = wc.channel.cards
    unit = await cards.unit("JL-XGC-01-G1")
    assert unit is not None
    wc.fake.members.add("ZhangWei")
    chatid = await wc.channel.api.appchat_create(unit.chatid, unit.name, LEADER,
                                                 [LEADER, "ZhangWei"])  # fmt: skip
    assert await cards.bind(unit, APPCHAT_PREFIX + chatid, wc.clock.now())
    number = await report_case(wc.wx, RESIDENT)
    await wc.settle()
    (group,) = wc.fake.appchat_sent
    assert group["chatid"] == chatid and group["msgtype"] == "text"
    assert number in group["text"]["content"]
    assert "卡片" in group["text"]["content"]  # act in the app: the group takes no presses
    assert len(wc.fake.card_tasks(LEADER)) == 1  # the leader's own card, with its buttons


async def test_reminders_and_supervision_notices_arrive_as_app_messages(wc):
    number = await report_case(wc.wx, RESIDENT)
    await wc.settle()
    before = len(wc.fake.to(LEADER))
    work = PeriodicWork(wc.app, make_sweeper(wc.app), make_digests(wc.app))
    wc.clock.advance(days=2)  # past the screening stage's limit
    await work()
    await wc.settle()
    # The holder's reminder is its card again, with the buttons it can press.
    (reminder,) = wc.fake.to(LEADER)[before:]
    assert reminder["msgtype"] == "template_card"
    card = reminder["template_card"]
    assert number in card["sub_title_text"] and card["button_list"]
    # The unit above hears of it as an app message (text); it has nothing to press or reply.
    (notice,) = wc.fake.to(STAFF["P-T-01"])
    assert notice["msgtype"] == "text" and number in notice["text"]["content"]
    assert "回复这条消息" not in notice["text"]["content"]
    # The supervisor's card: WeCom has no replies, so it points at the instruction button.
    (supervision,) = wc.fake.to(SUPERVISOR)
    card = supervision["template_card"]
    shown = card["main_title"]["title"] + card["sub_title_text"]
    assert number in shown and "回复这条消息" not in shown
    assert plain(said("btn_instruct")) in shown
    await wc.cb.press(SUPERVISOR, plain(said("btn_instruct"))[:BUTTON_TEXT_LIMIT])
    await wc.settle()
    await wc.cb.text(SUPERVISOR, "请今天内到场核实")
    await wc.settle()
    # The holder gets the instruction, pointing at the card's progress-note button.
    instruction = wc.fake.texts(LEADER)[-1]
    assert "请今天内到场核实" in instruction and plain(said("btn_note")) in instruction
    assert "回复案件卡片" not in instruction


async def test_the_morning_digest_arrives_as_an_app_message(wc):
    number = await report_case(wc.wx, RESIDENT)
    await wc.settle()
    await wc.cb.press(LEADER, plain(said("btn_valid"))[:BUTTON_TEXT_LIMIT])
    await wc.settle()
    township = STAFF["P-T-01"]
    before = len(wc.fake.to(township))
    work = PeriodicWork(wc.app, make_sweeper(wc.app), make_digests(wc.app))
    wc.clock.advance(days=2)  # Wednesday, after the morning digest's time
    await work()
    await wc.settle()
    texts = [m["text"]["content"] for m in wc.fake.to(township)[before:] if m["msgtype"] == "text"]
    # The township's digest (overdue and waiting: the case), as a text message.
    assert any(number in t and "2026-11-25" in t for t in texts)
