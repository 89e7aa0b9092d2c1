"""Supervision cards follow their case: the card the sweep sends the supervisors at a deadline
is edited in place as the case is accepted, resolved and closed, like every case card. It
offers what the table offers a supervisor in the new state (an instruction while the case is
open, nothing once it is closed), and its instruct button still works after an edit."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from bot.web.chat.render import plain_text
from handlers.reminders import ReminderNotifier
from storage.channel import SqlChannelStore
from storage.invites import create_invite
from storage.rows import CaseRow, PersonRow
from tests.support.chat import Bot
from tests.support.reach import PLAYERS, Setup, supervision_reminder
from tests.support.sending import data_of, deliver_all, sender_for
from tests.support.webchat import Browser, chat_text, report_as_new_resident
from workflow.clock import SHANGHAI
from workflow.commands import (
    AcceptCase,
    ActorRef,
    AssignCase,
    PassUp,
    RateCase,
    ResolveCase,
    ValidateCase,
)
from workflow.model import Rating, Role, State
from workflow.sweep import Sweeper

SUPERVISOR, DEPT_GROUP = 7005, -100
RECORDED = "✔️ 督办意见已记入 {} 并转给承办单位。"


async def report(bot: Bot) -> str:
    """The resident (5001) reports a safety hazard; the grid leader (7001) gets its card."""
    await bot.send("5001", text="📝 我要说事")
    await bot.press("5001", "cat:")
    await bot.send("5001", text="水库北侧防护网破损")
    for prefix in ("ph:", "loc:", "ct:", "cf:"):
        await bot.press("5001", prefix)
    return (await bot.button("7001", "a:sv:")).split(":")[2]


async def enrol_supervisor(world) -> None:
    """P-S-01 on Telegram, in the private chat 7005 (no supervisors' group: cards go there)."""
    async with world["sessions"]() as session:
        now = world["uow"].clock.now()
        invite = await create_invite(session, purpose="enrol", person_code="P-S-01", now=now)
        await SqlChannelStore(session).redeem_invite(
            invite.code, "telegram", "7005", "韩冰", "7005", now
        )
        await session.commit()


async def overdue_at_housing(world, tmp_path, fake, media):  # type: ignore[no-untyped-def]
    """A report assigned to housing, whose acceptance is due two days on: at the deadline the
    sweep writes the supervision card (not yet delivered). Returns (bot, sender, number)."""
    await enrol_supervisor(world)
    bot, sender = Bot(world, tmp_path), sender_for(fake, world, media)
    number = await report(bot)
    await bot.press("7001", "a:sv:")
    await bot.press("7002", "a:pu:")
    await bot.press("7003", "as:housing:")
    world["uow"].clock.set(datetime(2026, 11, 25, 0, 0, tzinfo=SHANGHAI))
    await Sweeper(world["wf"], ReminderNotifier()).sweep(world["uow"])
    return bot, sender, number


async def test_a_telegram_supervision_card_follows_its_case(world, tmp_path, fake, media):
    bot, sender, number = await overdue_at_housing(world, tmp_path, fake, media)
    await deliver_all(sender)
    card = fake.last_sent(SUPERVISOR)
    assert "督办" in card["text"] and data_of(card) == [f"a:su:{number}"]

    await bot.press("7004", "a:ac:", chat="-100")  # housing accepts: still open
    await deliver_all(sender)
    now = fake.current(SUPERVISOR, card["message_id"])
    assert f"{number} · 安全隐患 · 办理中" in now["text"] and "案件此后已有进展" in now["text"]
    assert data_of(now) == [f"a:su:{number}"]
    # The instruct button of the edited card works: asked for words, recorded, forwarded.
    await bot.send("7005", callback_data=data_of(now)[0], callback_id="su1")
    out = await bot.send("7005", text="今天内联系群众")
    assert out[0].text == RECORDED.format(number)

    await bot.press("7004", "a:rs:", chat="-100")
    await bot.send("7004", "-100", text="已修复")
    await bot.press("7004", "rz:", chat="-100")
    await deliver_all(sender)
    now = fake.current(SUPERVISOR, card["message_id"])
    assert "待评价" in now["text"] and data_of(now) == [f"a:su:{number}"]

    await bot.send("5001", callback_data=f"ra:{number}:s", callback_id="r1")
    await bot.send("5001", callback_data=f"rk:{number}", callback_id="r2")
    await deliver_all(sender)
    now = fake.current(SUPERVISOR, card["message_id"])
    assert "已结案" in now["text"] and "reply_markup" not in now
    assert "回复这条消息" not in now["text"]  # no instruction is asked for a closed case


async def bind_supervision_groups(world) -> None:
    """The supervisors' and the leaders' group chats (-300, -301), bound after the first
    supervision cards went out privately."""
    async with world["sessions"]() as session:
        now = world["uow"].clock.now()
        for purpose, chat in (("supervisors", "-300"), ("leaders", "-301")):
            bind = await create_invite(session, purpose="bind_chat", chat_purpose=purpose,
                                       now=now)  # fmt: skip
            await SqlChannelStore(session).redeem_invite(bind.code, "telegram", "7005", "韩冰",
                                                         chat, now)  # fmt: skip
        await session.commit()


@pytest.mark.parametrize("delivered", [True, False], ids=["edited", "rewritten_in_outbox"])
async def test_a_private_supervision_card_keeps_its_button_and_overdue_line_once_groups_are_bound(
    world, tmp_path, fake, media, delivered
):
    """Sent to the supervisor's own chat while no supervisors' or leaders' group was bound,
    the card is kept true as the supervisor's card still (the role it was sent to is kept with
    the message, not worked out from today's bindings), and it still says which stage was due
    when. The same whether it was out already (edited) or still in the outbox (rewritten)."""
    bot, sender, number = await overdue_at_housing(world, tmp_path, fake, media)
    overdue = "本环节（待部门签收）时限 11-24 23:59"
    if delivered:
        await deliver_all(sender)
        card = fake.last_sent(SUPERVISOR)
        assert overdue in card["text"] and data_of(card) == [f"a:su:{number}"]

    await bind_supervision_groups(world)
    await bot.press("7004", "a:ac:", chat="-100")
    await deliver_all(sender)
    [card] = [m for m in fake.sent(SUPERVISOR) if "督办" in m["text"]]
    now = fake.current(SUPERVISOR, card["message_id"])
    assert data_of(now) == [f"a:su:{number}"] and "回复这条消息" in now["text"]
    headline = now["text"].split("\n")[0]
    assert "案件此后已有进展" in headline and overdue in headline
    await bot.send("7005", callback_data=data_of(now)[0], callback_id="su1")
    out = await bot.send("7005", text="今天内联系群众")
    assert out[0].text == RECORDED.format(number)


async def test_a_supervision_card_sent_in_supervision_loses_assign_and_close_once_assigned(
    world, tmp_path, fake, media
):
    """Escalated after a second 不满意, the case is the supervisors' own: their supervision card
    offers assign, close and instruct. Once they assign it from that card, only instruct stays."""
    await enrol_supervisor(world)
    bot, sender = Bot(world, tmp_path), sender_for(fake, world, media)
    people = {role: world["people"][code] for role, code in PLAYERS.items()}
    people[Role.RESIDENT] = world["resident"]
    wf, uow = world["wf"], world["uow"]
    setup = Setup(lambda cmd: wf.submit(uow(), cmd), lambda cmd: wf.handle(uow(), cmd), people,
                  supervision_reminder(uow))  # fmt: skip
    number = await setup.case(State.SUPERVISION, supervised=True)
    await deliver_all(sender)
    card = fake.last_sent(SUPERVISOR)
    assert "督办" in card["text"] and f"a:cl:{number}" in data_of(card)
    assert f"as:housing:{number}" in data_of(card)

    await bot.press("7005", "as:housing:")
    await deliver_all(sender)
    now = fake.current(SUPERVISOR, card["message_id"])
    assert data_of(now) == [f"a:su:{number}"] and "待部门签收" in now["text"]


async def test_a_web_chat_supervision_card_follows_its_case(demo):
    b, chat, app = demo
    number = await report_as_new_resident(b)
    supervisor = Browser(b.client)
    await supervisor.open(f"/chat/{await b.pick('P-S-01')}")
    async with app.sessions() as session:
        people = dict((await session.execute(select(PersonRow.code, PersonRow.id))).all())
        reporter = (
            await session.execute(select(CaseRow.reporter_id).where(CaseRow.number == number))
        ).scalar_one()

    def actor(code: str, role: Role) -> ActorRef:
        return ActorRef(people[code], role)

    async def handle(cmd) -> None:
        await app.workflow.handle(app.uow(), cmd)
        while await chat.deliver_pending():
            pass

    await handle(ValidateCase(case_number=number, actor=actor("P-L-01", Role.GRID_LEADER)))
    await handle(PassUp(case_number=number, actor=actor("P-T-01", Role.TOWNSHIP_OPERATOR)))
    await handle(AssignCase(case_number=number, department_code="housing",
                            actor=actor("P-C-01", Role.COUNTY_DISPATCHER)))  # fmt: skip
    await supervision_reminder(app.uow)(number)
    await handle(AcceptCase(case_number=number, actor=actor("P-H-02", Role.DEPARTMENT_HANDLER)))

    async def card() -> dict:
        [view] = [v for v in await supervisor.history() if v["case_number"] == number]
        return view

    async def buttons() -> list[str]:
        return [btn["data"] for row in (await card())["buttons"] for btn in row]

    assert "办理中" in plain_text((await card())["nodes"])
    assert await buttons() == [f"a:su:{number}"]
    out = await supervisor.press("a:su:")  # on the edited card
    assert out and out[-1]["buttons"] == [] and (await card())["buttons"]
    assert await supervisor.answers(supervisor.say("今天内联系群众")) == [
        chat_text("instruction_recorded", number=number)
    ]

    await handle(ResolveCase(case_number=number, text="已修复",
                             actor=actor("P-H-02", Role.DEPARTMENT_HANDLER)))  # fmt: skip
    assert await buttons() == [f"a:su:{number}"]
    await handle(RateCase(case_number=number, rating=Rating.SATISFIED,
                          actor=ActorRef(reporter, Role.RESIDENT)))  # fmt: skip
    assert "已结案" in plain_text((await card())["nodes"]) and await buttons() == []
