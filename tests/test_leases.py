"""One process at a time delivers for a bot token: the lease holder. On both databases, with
the manual clock: only the holder sends; when it dies (stops renewing) another takes over once
the lease expired; nothing is sent twice; a failed renewal stops the work at once."""

from __future__ import annotations

import asyncio
from collections import Counter
from datetime import timedelta

import aiohttp

from bot.lease import TTL, Lease, LeasedWork
from bot.telegram.sender import OutboxSender
from storage.leases import lease_holder, release_lease, take_lease
from tests.fake_telegram import FakeTelegram
from tests.support.net import start
from tests.support.outbox import photo, queue

NAME = "telegram:123456"


async def test_a_lease_is_held_by_one_holder_until_it_expires(world):
    sessions, clock = world["sessions"], world["uow"].clock
    now = clock.now()
    later = now + TTL
    assert await take_lease(sessions, NAME, "a", now, later) is True
    assert await take_lease(sessions, NAME, "b", now, later) is False
    assert await take_lease(sessions, NAME, "a", now, later) is True  # a renewal
    assert await lease_holder(sessions, NAME, now) == "a"
    expired = later + timedelta(seconds=1)
    assert await lease_holder(sessions, NAME, expired) is None
    assert await take_lease(sessions, NAME, "b", expired, expired + TTL) is True
    assert await take_lease(sessions, NAME, "a", expired, expired + TTL) is False
    await release_lease(sessions, NAME, "b", expired)  # a clean stop: no need to wait
    assert await take_lease(sessions, NAME, "a", expired, expired + TTL) is True
    assert await take_lease(sessions, "other", "b", expired, expired + TTL) is True


async def test_two_processes_taking_a_free_lease_at_once_get_it_once(world):
    sessions, clock = world["sessions"], world["uow"].clock
    now = clock.now()
    for name in ("fresh", "fresh"):  # never taken (INSERT race), then expired (UPDATE race)
        results = await asyncio.gather(
            *(take_lease(sessions, name, holder, now, now + TTL) for holder in "abcd")
        )
        assert sorted(results) == [False, False, False, True]
        now += TTL


async def test_only_the_holder_sends_and_another_takes_over(world, fake, media):
    """Kill the holder (it stops renewing), pass its expiry: the other delivers the rest."""
    sessions, clock = world["sessions"], world["uow"].clock
    senders = [OutboxSender(fake.make_bot(), sessions, media, clock) for _ in "ab"]
    leases = [Lease(sessions, clock, NAME, holder=h) for h in ("host:1:a", "host:2:b")]
    works = []
    for sender, lease in zip(senders, leases, strict=True):
        sender.may_send = lease.valid
        works.append(LeasedWork(lease, lambda: [asyncio.create_task(asyncio.Event().wait())]))
    a, b = senders
    for i in range(20):
        await queue(world, str(7001 + i % 4), f"first {i}")

    assert await works[0].tick() is True
    assert await works[1].tick() is False
    assert works[0].running and not works[1].running
    sent = await asyncio.gather(deliver_all(a), deliver_all(b))
    assert sent == [20, 0]

    # The holder dies: it renews no more. Its lease runs out; until then nobody else sends.
    for i in range(20):
        await queue(world, str(7001 + i % 4), f"second {i}")
    clock.advance(TTL / 2)
    assert await works[1].tick() is False
    assert await b.deliver_pending() == 0
    clock.advance(TTL)
    assert await a.deliver_pending() == 0  # a holder that stopped renewing stops sending
    assert await works[1].tick() is True
    assert works[1].running
    assert await deliver_all(b) == 20
    assert await works[0].tick() is False  # back from the dead: it may not take it back
    assert not works[0].running

    counts = Counter(m["text"] for m in fake.sent())
    assert len(counts) == 40 and set(counts.values()) == {1}

    # A renewal that fails (database away) stops the work at once.
    task = works[1].tasks[0]
    leases[1].sessions = _unreachable
    assert await works[1].tick() is False
    assert task.cancelled() and not works[1].running
    await queue(world, "7001", "third")
    assert await b.deliver_pending() == 0


async def test_a_lease_that_runs_out_mid_message_stops_before_its_next_call(world, fake, media):
    """A photo, then a text too long for its caption: two calls. The lease runs out after the
    first: the second is left to whoever holds the lease next."""
    sender = OutboxSender(fake.make_bot(), world["sessions"], media, world["uow"].clock)
    await queue(world, "7001", "长" * 2000, photos=[photo(media, "red")])
    answers = iter([True, True])  # the pass may start, and so may the row's first call
    sender.may_send = lambda: next(answers, False)
    assert await sender.deliver_pending() == 0
    assert [c.method for c in fake.calls if c.method.startswith("send")] == ["sendPhoto"]


async def deliver_all(sender) -> int:
    """Passes until one sends nothing (no limits here: a chat's next row is due at once)."""
    total = 0
    while sent := await sender.deliver_pending():
        total += sent
    return total


def _unreachable():
    raise ConnectionError("database away")


async def test_a_second_shuoshi_run_serves_the_web_but_neither_polls_nor_sends(
    tmp_path, monkeypatch
):
    """Two processes on one database, one bot token: the second (here talking to a Bot API of
    its own, to tell the two apart) waits for the lease; its web chat and dashboard work."""
    monkeypatch.chdir(tmp_path)
    async with FakeTelegram() as first_api, FakeTelegram() as second_api:
        first, stop_first, first_task = await start(tmp_path, first_api)
        first_api.send_text(5001, 5001, "/start JL-XGC-01-G1")
        assert "已登记" in (await first_api.wait_sent(5001, 1))[0]["text"]
        second, stop_second, second_task = await start(tmp_path, second_api)
        await second_api.wait_calls("getMe", 1)  # started: its lease keeper runs
        second_api.send_text(5002, 5002, "/start JL-XGC-01-G1")
        async with aiohttp.ClientSession() as http:
            url = f"http://127.0.0.1:{second.settings.web.port}/chat"
            async with http.get(url) as response:
                assert response.status == 200
        first_api.send_text(5003, 5003, "/start JL-XGC-01-G1")
        await first_api.wait_sent(5003, 1)
        assert second_api.calls_of("getUpdates") == []
        assert second_api.sent() == [] and len(second_api.pending_updates()) == 1
        for stop, task, app in (
            (stop_second, second_task, second),
            (stop_first, first_task, first),
        ):
            stop.set()
            await asyncio.wait_for(task, 10)
            await app.close()
