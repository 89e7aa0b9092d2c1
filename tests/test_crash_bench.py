"""bench/crash.py's counting, on both databases: each loss it must report is planted and seen.

The bench itself runs real processes and takes minutes; this checks its core (the audit and
the readers of the fake Bot API and the web chat) in about a second.
"""

from __future__ import annotations

from collections import Counter

from sqlalchemy import insert, select

from bench.crash_audit import Figures, count_figures, handed_out, telegram_deliveries
from bench.crash_residents import NUMBER, Resident, _flatten, jpeg, update_key
from bot.web.chat.render import html_tree
from storage.channel import SqlChannelStore
from storage.db import session_factory
from storage.media import MediaStore
from storage.org_file import load_org_file
from storage.rows import AreaRow, CaseAttachmentRow, CaseRow, CategoryRow, OutboxRow
from tests.conftest import EXAMPLE_COUNTY
from tests.fake_telegram import FakeTelegram


async def test_the_audit_counts_every_kind_of_loss(engine, clock, tmp_path):
    sessions = session_factory(engine)
    await load_org_file(sessions, EXAMPLE_COUNTY)
    media = MediaStore(tmp_path / "media")
    now = clock.now()
    # 0: all well; 1: two cases for one report; 2: told a number the database does not have,
    # and its one case lacks a photo; 3: an acknowledged update that never ran.
    residents = [Resident(i, "JL-XGC-01-G1", [jpeg(i, 0), jpeg(i, 1)], chat=str(700 + i))
                 for i in range(4)]  # fmt: skip
    residents[0].number = "JL-20261123-0001"
    residents[2].number = "JL-20261123-0099"
    residents[3].acked = ["m:703:5", "c:77"]
    async with sessions() as session:
        store = SqlChannelStore(session)
        areas = dict((await session.execute(select(AreaRow.code, AreaRow.id))).all())
        category = (await session.execute(select(CategoryRow.id).limit(1))).scalar_one()
        people = [
            await store.enrol_resident("telegram", r.chat, "r", "en", areas[r.grid], now)
            for r in residents
        ]
        for n, (who, photos) in enumerate([(0, 2), (1, 2), (1, 2), (2, 1)], 1):
            case_id = (await session.execute(insert(CaseRow).values(
                number=f"JL-20261123-{n:04d}", state="screening", category_id=category,
                deadline_class="general", grid_id=areas["JL-XGC-01-G1"],
                village_id=areas["JL-XGC-01"], township_id=areas["JL-XGC"],
                reporter_id=people[who].id, reporter_role="resident", description="x",
                created_at=now,
            ).returning(CaseRow.id))).scalar_one()  # fmt: skip
            for position, data in enumerate(residents[who].photos[:photos]):
                row = await media.save_photo(session, data, now=now)
                await session.execute(insert(CaseAttachmentRow).values(
                    case_id=case_id, attachment_id=row.id, position=position))  # fmt: skip
        await store.mark_processed("telegram", "m:703:5", now)
        for status, text in (("sent", "hello"), ("pending", "late")):
            session.add(OutboxRow(channel="telegram", chat_id="700", payload={"text": text},
                                  status=status, created_at=now, next_attempt_at=now))  # fmt: skip
        await session.commit()

        figures = Figures("polling", "sqlite", 4, 0, 0.0)
        deliveries = Counter({("700", "hello"): 3})  # one row, three deliveries
        await count_figures(session, figures, "telegram", residents, deliveries)

    assert (figures.confirmed, figures.cases, figures.acked) == (2, 4, 2)
    assert (figures.lost, figures.duplicates, figures.unprocessed) == (1, 1, 1)
    assert (figures.delivered_twice, figures.over_twice, figures.stuck) == (2, 1, 1)
    assert figures.missing_photos == 1 and not figures.ok
    assert any("c:77" in note for note in figures.notes)
    assert any("row" in note and "'late'" in note for note in figures.notes)  # the stuck one


async def test_rows_for_a_channel_the_run_does_not_deliver_are_not_stuck(engine, clock):
    """The example county gives staff a wecom_userid and the bench runs no WeCom sender: their
    cards stay pending, which no kill caused; a pending row of a channel it delivers is stuck."""
    now = clock.now()
    async with session_factory(engine)() as session:
        for channel, chat in (("wecom", "HuChunMei"), ("telegram", "700"), ("web", "r-1")):
            row = dict(channel=channel, chat_id=chat, payload={"text": "card"}, status="pending")
            session.add(OutboxRow(**row, created_at=now, next_attempt_at=now))
        await session.commit()
        polling, web = Figures("polling", "pg", 0, 0, 0.0), Figures("web", "pg", 0, 0, 0.0)
        await count_figures(session, polling, "telegram", [], Counter())
        await count_figures(session, web, "web", [], None)

    assert (polling.stuck, polling.unserved) == (2, 1)  # telegram and web; wecom apart
    assert (web.stuck, web.unserved) == (1, 2)  # the web chat's run has no Telegram either


async def test_what_the_residents_read_and_what_the_api_handed_out():
    receipt = html_tree("✅ Received as case <b>JL-20261130-0012</b>.\n<i>a <b>b</b></i>")
    text = _flatten(receipt)
    assert text.startswith("✅ Received as case JL-20261130-0012.")
    assert NUMBER.search(text).group(0) == "JL-20261130-0012"
    async with FakeTelegram() as fake:
        update = fake.send_text(5, 5, "hi")
        assert update_key(update) == f"m:5:{update['message']['message_id']}"
        await fake.execute("getUpdates", {"timeout": 0})
        for text in ("<b>ok</b>", "<b>ok</b>", "<b>bad"):  # the last is refused: not sent
            await fake.execute("sendMessage", {"chat_id": 5, "text": text, "parse_mode": "HTML"})
        assert [update_key(u) for u in handed_out(fake)] == [update_key(update)]
        assert telegram_deliveries(fake) == Counter({("5", "<b>ok</b>"): 2})
