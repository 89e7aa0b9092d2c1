"""Text PostgreSQL refuses (NUL, lone surrogates) never breaks a conversation or the outbox:
it is cleaned where it enters, and a bad outbox row fails alone instead of stopping the rest."""

from __future__ import annotations

import asyncio

from sqlalchemy import insert, select

from handlers.messages import Incoming, Location, PhotoRef, storable
from storage.queries import case_view
from storage.rows import OutboxRow, WebMessageRow
from tests.support.chat import (
    COUNTY,
    DEPT_GROUP,
    HANDLER,
    LEADER,
    RESIDENT,
    TOWNSHIP,
    Harness,
    text_of,
)
from tests.support.webchat import report_as_new_resident
from workflow.ports import OutgoingMessage

STRANGER = 9901
BAD = "\x00\ud800"  # PostgreSQL refuses the first in text and JSON; the second is not UTF-8


def test_storable_drops_nul_and_replaces_lone_surrogates():
    assert storable("/x\x00") == "/x"
    assert storable("井盖\x00破损\ud800") == "井盖破损\ufffd"
    assert storable("\ud83d\ude00") == "😀"  # a proper pair is one character
    assert storable("普通 text") == "普通 text"


def test_every_typed_field_of_an_incoming_is_cleaned():
    incoming = Incoming(
        channel="telegram", chat_id="1" + BAD, chat_type="private", user_id="2" + BAD,
        user_name="李" + BAD, text="t" + BAD, callback_data="a:sv:" + BAD,
        contact_phone="138" + BAD, photos=(PhotoRef("f" + BAD, "u" + BAD),),
        location=Location(float("nan"), 1.0),
    )  # fmt: skip
    assert (incoming.chat_id, incoming.user_id, incoming.user_name) == (
        "1\ufffd",
        "2\ufffd",
        "李\ufffd",
    )
    assert (incoming.text, incoming.callback_data) == ("t\ufffd", "a:sv:\ufffd")
    assert incoming.contact_phone == "138\ufffd" and incoming.photos[0].file_id == "f\ufffd"
    assert incoming.location is None  # not a place on earth
    assert Incoming("web", "1", "private", "1", location=Location(37.2, 115.0)).location


async def settled(h: Harness, world) -> list[tuple]:
    """Rows still pending once the sender's pass is over (it holds them while sending)."""
    await h.sender.deliver_pending()
    async with world["sessions"]() as session:
        rows = await session.execute(select(OutboxRow).where(OutboxRow.status == "pending"))
        return [(r.chat_id, r.error, r.payload.get("text")) for r in rows.scalars()]


async def test_a_nul_command_does_not_silence_the_bot(harness: Harness, world):
    h, fake = harness, harness.fake
    stranger = fake.user(STRANGER, first_name="名" + BAD)
    out = await h.act(STRANGER, STRANGER, lambda: fake.send_text(STRANGER, stranger, "/x" + BAD))
    assert text_of(out[0])
    out = await h.act(RESIDENT, RESIDENT, lambda: fake.send_text(RESIDENT, RESIDENT, "/my"))
    assert text_of(out[0])
    assert await settled(h, world) == []


async def report(h: Harness, description: str, address: str) -> str:
    r, fake = RESIDENT, h.fake
    await h.act(r, r, lambda: fake.send_text(r, r, "📝 我要说事"))
    await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, "cat:")))
    await h.act(r, r, lambda: fake.send_text(r, r, description))
    await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, "ph:")))
    await h.act(r, r, lambda: fake.send_text(r, r, address))  # typed instead of shared
    await h.act(r, r, lambda: fake.send_text(r, r, "不留电话"))
    before = h.count(LEADER)
    out = await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, "cf:")))
    await h.says(LEADER, before)
    return text_of(out[0]).split("案件编号 ")[1].split("。")[0].strip()


async def test_hostile_characters_in_every_typed_field(harness: Harness, world):
    h, fake, r = harness, harness.fake, RESIDENT
    # A case screened invalid: the reason is typed by the grid leader and echoed to the resident.
    first = await report(h, "第一件" + BAD, "东门" + BAD)
    out = await h.act(
        LEADER, LEADER, lambda: asyncio.ensure_future(h.press(LEADER, LEADER, "a:si:"))
    )
    before = h.count(r)
    await h.act(LEADER, LEADER, lambda: fake.send_text(
        LEADER, LEADER, "不属实" + BAD, reply_to_message_id=out[0]["message_id"]))  # fmt: skip
    told = await h.says(r, before)
    assert "不属实\ufffd" in text_of(told[-1]) and "\x00" not in text_of(told[-1])
    assert await settled(h, world) == []

    # A case that goes the whole way: a progress note, a result and a rating comment.
    number = await report(h, "井盖破损" + BAD, "西门" + BAD)
    await h.act(LEADER, LEADER, lambda: asyncio.ensure_future(h.press(LEADER, LEADER, "a:sv:")))
    await h.act(TOWNSHIP, TOWNSHIP, lambda: asyncio.ensure_future(
        h.press(TOWNSHIP, TOWNSHIP, "a:pu:")))  # fmt: skip
    await h.act(COUNTY, COUNTY, lambda: asyncio.ensure_future(
        h.press(COUNTY, COUNTY, "as:housing:")))  # fmt: skip
    before = h.count(DEPT_GROUP)
    await h.press(DEPT_GROUP, HANDLER, "a:ac:")
    await h.until(DEPT_GROUP, before, "已签收")
    card = next(m for m in reversed(fake.sent(DEPT_GROUP)) if number in text_of(m)
                and m.get("reply_markup"))  # fmt: skip
    out = await h.act(DEPT_GROUP, HANDLER, lambda: fake.send_text(
        DEPT_GROUP, HANDLER, "明早更换" + BAD, reply_to_message_id=card["message_id"]))  # fmt: skip
    assert "进展反馈" in text_of(out[0])
    out = await h.act(DEPT_GROUP, HANDLER, lambda: asyncio.ensure_future(
        h.press(DEPT_GROUP, HANDLER, "a:rs:")))  # fmt: skip
    await h.act(DEPT_GROUP, HANDLER, lambda: fake.send_text(
        DEPT_GROUP, HANDLER, "已更换" + BAD, reply_to_message_id=out[0]["message_id"]))  # fmt: skip
    before = h.count(r)
    await h.act(DEPT_GROUP, HANDLER, lambda: asyncio.ensure_future(
        h.press(DEPT_GROUP, HANDLER, "rz:")))  # fmt: skip
    await h.says(r, before)
    await h.act(r, r, lambda: asyncio.ensure_future(h.press(r, r, f"ra:{number}:s")))
    await h.act(r, r, lambda: fake.send_text(r, r, "很及时" + BAD))
    # Forged button data and a command with the same characters, from a stranger.
    last = fake.sent(r)[-1]["message_id"]
    out = await h.act(
        r, STRANGER, lambda: fake.press(r, STRANGER, last, "a:sv:" + BAD, strict=False)
    )
    await h.act(STRANGER, STRANGER, lambda: fake.send_text(STRANGER, STRANGER, "/start " + BAD))
    assert await settled(h, world) == []

    async with world["sessions"]() as session:
        view = await case_view(session, number)
        invalid = await case_view(session, first)
    assert view.case.state.value == "closed" and view.case.description == "井盖破损\ufffd"
    assert view.case.location_text == "西门\ufffd" and view.case.rating_comment == "很及时\ufffd"
    assert invalid.case.state.value == "rejected"  # screened invalid, the reason kept
    # Somebody else's ordinary message is still answered at once.
    out = await h.act(TOWNSHIP, TOWNSHIP, lambda: fake.send_text(TOWNSHIP, TOWNSHIP, "/help"))
    assert text_of(out[0]) and await settled(h, world) == []


async def test_one_unreadable_outbox_row_fails_alone(harness: Harness, world):
    """Rows written before inputs were cleaned (or broken some other way) are failed with their
    reason; every other chat's messages still go out."""
    h, fake, clock = harness, harness.fake, world["uow"].clock
    now = clock.now()
    bad = [
        {"text": "/x" + BAD, "callback_id": "cb1", "callback_answer": "?" + BAD},
        {"text": "按钮坏了", "buttons": "not a list of rows"},
    ]
    async with world["sessions"]() as session:
        for chat, payload in zip(("9902", "9903"), bad, strict=True):
            await session.execute(insert(OutboxRow).values(
                channel="telegram", chat_id=chat, payload=payload, status="pending", attempts=0,
                created_at=now, next_attempt_at=now))  # fmt: skip
        await session.commit()
    out = await h.act(RESIDENT, RESIDENT, lambda: fake.send_text(RESIDENT, RESIDENT, "/my"))
    assert text_of(out[0])
    assert await settled(h, world) == []
    async with world["sessions"]() as session:
        failed = (await session.execute(
            select(OutboxRow.chat_id, OutboxRow.error).where(OutboxRow.status == "failed")
        )).all()  # fmt: skip
    assert sorted(chat for chat, _ in failed) == ["9902", "9903"]
    assert all(error for _, error in failed)


async def test_web_chat_text_is_cleaned_and_a_bad_row_fails_alone(demo):
    b, chat, app = demo
    number = await report_as_new_resident(b, "垃圾\x00")  # a form cannot carry a lone surrogate
    async with app.sessions() as session:
        view = await case_view(session, number)
        history = (await session.execute(select(WebMessageRow.payload))).scalars().all()
    assert view.case.description == "垃圾"
    assert not [p for p in history if "\x00" in str(p.get("text"))]
    async with app.uow() as uow:
        await uow.outbox.add(OutgoingMessage(channel="web", chat_id="p-P-C-01", payload=["x"]))
        await uow.outbox.add(OutgoingMessage(
            channel="web", chat_id="p-P-C-01", payload={"text": "x", "purpose": ["x"]},
            case_number=number))  # fmt: skip
        await uow.outbox.add(
            OutgoingMessage(channel="web", chat_id="p-P-S-01", payload={"text": "照常送达"})
        )
        await uow.commit()
    assert await chat.deliver_pending() >= 1
    async with app.sessions() as session:
        rows = (
            await session.execute(select(OutboxRow).where(OutboxRow.channel == "web"))
        ).scalars()
        status = {(r.chat_id, r.status) for r in rows}
        shown = (await session.execute(
            select(WebMessageRow.payload).where(WebMessageRow.chat_id == "p-P-S-01")
        )).scalars().all()  # fmt: skip
    assert ("p-P-C-01", "failed") in status and ("p-P-C-01", "pending") not in status
    assert {"text": "照常送达"} in shown
    async with app.sessions() as session:  # someone must reach that chat another way
        assert (await case_view(session, number)).case.delivery_failed


async def test_long_polling_through_the_inbox_takes_hostile_text(engine, clock, tmp_path):
    """`shuoshi run` in polling mode: updates go through the inbox (stored as JSON first)."""
    from bot.app import assemble
    from bot.config import load_settings
    from bot.runner import serve
    from storage.calendar import seed_calendar
    from storage.db import session_factory
    from storage.org_file import load_org_file
    from storage.rows import InboxRow
    from tests.conftest import EXAMPLE_COUNTY
    from tests.fake_telegram import FakeTelegram
    from tests.support.net import free_port

    sessions = session_factory(engine)
    async with sessions() as session:
        await seed_calendar(session, clock.now())
        await session.commit()
    await load_org_file(sessions, EXAMPLE_COUNTY)
    async with FakeTelegram() as fake:
        config = load_settings(
            data_dir=tmp_path / "data", web={"port": free_port()},
            telegram={"token": fake.token, "api_base": fake.base_url},
            outbox={"chat_interval_seconds": 0},
        )  # fmt: skip
        app = assemble(config, engine, sessions, clock)
        stop = asyncio.Event()
        task = asyncio.create_task(serve(app, stop))
        try:
            stranger = fake.user(STRANGER, first_name="名" + BAD)
            fake.send_text(STRANGER, stranger, "/x" + BAD)
            fake.send_text(STRANGER, stranger, "/start " + BAD)
            assert len(await fake.wait_sent(STRANGER, 2, timeout=20)) == 2
            fake.send_text(RESIDENT, RESIDENT, "/start JL-XGC-01-G1")
            assert "已登记" in text_of((await fake.wait_sent(RESIDENT, 1, timeout=20))[0])
        finally:
            stop.set()
            await asyncio.wait_for(task, 30)
    async with sessions() as session:
        inbox = (await session.execute(select(InboxRow.status, InboxRow.last_error))).all()
        outbox = (await session.execute(select(OutboxRow.status))).scalars().all()
    assert inbox and all(status == "done" for status, _ in inbox), inbox
    assert "pending" not in outbox
