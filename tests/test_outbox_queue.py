"""The outbox queue every channel's deliverer shares (storage/outbox_queue.py), on both
databases: per-chat heads, one claim per row, failures flag the case, channels kept apart."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy import select

from storage.dashboard.lists import failed_messages
from storage.outbox import failed_deliveries, failed_delivery_count
from storage.outbox_calls import OutboxQueue
from storage.outbox_queue import OutboxRows
from storage.rows import CaseRow, OutboxRow
from tests.support.outbox import case_row, queue, rows, submit
from workflow.clock import ensure_aware


async def test_due_heads_are_the_first_pending_row_of_each_chat_of_one_channel(world):
    await queue(world, "1", "a1")
    await queue(world, "1", "a2")
    await queue(world, "2", "b1")
    await queue(world, "3", "web", channel="web")
    now = world["uow"].clock.now()
    telegram = OutboxQueue(world["sessions"], "telegram")
    heads = await telegram.due_heads(now, 0, 100)
    assert [r.payload["text"] for r in heads] == ["a1", "b1"]
    # A head waiting for a retry holds back its own chat only, and tells when it is due.
    later = now + timedelta(seconds=30)
    await telegram.retry_later(heads[0].id, 1, "timeout", later)
    assert [r.payload["text"] for r in await telegram.due_heads(now, 0, 100)] == ["b1"]
    retry_at = await telegram.next_retry_at(now)
    assert retry_at is not None and ensure_aware(retry_at) == later
    assert [r.payload["text"] for r in await telegram.due_heads(now, heads[1].id, 100)] == []


async def test_chats_waiting_for_a_fresh_answer_are_served_first_in_their_own_order(world):
    clock = world["uow"].clock
    await queue(world, "1", "stale answer", answer=True)
    clock.advance(seconds=61)  # nobody watches for it any more: it goes with the rest
    await queue(world, "2", "card")
    await queue(world, "3", "reminder")
    await queue(world, "3", "answer", answer=True)
    await queue(world, "4", "digest")
    now = clock.now()
    telegram = OutboxQueue(world["sessions"], "telegram")
    since = now - timedelta(seconds=60)
    first = await telegram.due_heads(now, 0, 100, answers_since=since)
    assert [r.payload["text"] for r in first] == ["reminder"]  # chat 3's head: order kept
    heads = await telegram.answers_first(now, since, 100)
    assert [r.payload["text"] for r in heads] == ["reminder", "stale answer", "card", "digest"]
    two = await telegram.answers_first(now, since, 2)
    assert [r.payload["text"] for r in two] == ["reminder", "stale answer"]


async def test_a_row_is_claimed_as_sent_once(world):
    await queue(world, "3", "hello", channel="web")
    now = world["uow"].clock.now()
    async with world["sessions"]() as session:
        outbox = OutboxRows(session, "web")
        (row,) = await outbox.pending(10)
        assert await outbox.mark_sent(row.id, row.attempts, now)
        assert not await outbox.mark_sent(row.id, row.attempts, now)  # already sent
        await session.commit()
    (row,) = await rows(world)
    assert (row.status, row.attempts, row.error) == ("sent", 1, None)
    assert await OutboxQueue(world["sessions"], "web").all_pending() == []


async def test_failing_a_row_flags_its_case_with_a_new_version(world):
    number = await submit(world)
    before = await case_row(world, number)
    (row,) = [r for r in await rows(world) if r.case_number == number][:1]
    telegram = OutboxQueue(world["sessions"], row.channel)
    await telegram.fail(row, "Forbidden: bot was blocked by the user", world["uow"].clock.now())
    async with world["sessions"]() as session:
        failed = await session.get(OutboxRow, row.id)
        assert failed is not None
        assert (failed.status, failed.attempts) == ("failed", row.attempts + 1)
        assert failed.error == "Forbidden: bot was blocked by the user"
        case = (await session.execute(select(CaseRow).where(CaseRow.number == number))).scalar_one()
    assert case.delivery_failed
    assert case.version == before.version + 1


async def test_one_failed_deliveries_query_serves_all_and_one_case(world):
    number = await submit(world)
    await queue(world, "9", "about nothing")
    now = world["uow"].clock.now()
    for row in await rows(world):
        await OutboxQueue(world["sessions"], row.channel).fail(row, f"gone {row.chat_id}", now)
    async with world["sessions"]() as session:
        everything = await failed_deliveries(session)
        of_case = await failed_deliveries(session, case_number=number)
        assert await failed_delivery_count(session) == len(everything) >= 2
        assert await failed_delivery_count(session, number) == len(of_case) >= 1
        assert {f.case_number for f in of_case} == {number}
        assert [f.id for f in await failed_deliveries(session, 1, offset=1)] == [everything[1].id]
        (messages_total, listed) = await failed_messages(session, case_number=number)
    assert (messages_total, [f.id for f in listed]) == (len(of_case), [f.id for f in of_case])


async def test_a_due_row_is_claimed_by_one_deliverer_and_holds_back_its_chat(world):
    await queue(world, "1", "a1")
    await queue(world, "1", "a2")
    now = world["uow"].clock.now()
    mine, theirs = (OutboxQueue(world["sessions"], "telegram") for _ in range(2))
    (head,) = await mine.due_heads(now, 0, 100)
    until = now + timedelta(seconds=30)
    assert await mine.claim(head.id, now, until)
    assert not await theirs.claim(head.id, now, until)  # taken: not due for anyone else
    # Claimed, the head is still pending: the chat's next row waits behind it.
    assert await theirs.due_heads(now, 0, 100) == []
    # An expired claim is free again (its claimer died), and a stale release cannot undo it.
    later = until + timedelta(seconds=1)
    assert await theirs.claim(head.id, later, later + timedelta(seconds=30))
    await mine.release(head.id, until, later)
    assert await mine.due_heads(later, 0, 100) == []
    # The current claimer's release makes it due again at once.
    await theirs.release(head.id, later + timedelta(seconds=30), later)
    assert [r.payload["text"] for r in await mine.due_heads(later, 0, 100)] == ["a1"]
