"""The limiter keeps Telegram's limits on the injected clock: 30/s, 1/s per chat, 20/min per
group, pauses after a 429; a sender that waits as told never breaks them."""

from __future__ import annotations

import itertools
from collections import deque
from datetime import UTC, datetime, timedelta
from random import Random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.ratelimit import RateLimiter, RateLimits, Send, is_group
from workflow.clock import ManualClock

T0 = datetime(2026, 11, 23, 1, 0, tzinfo=UTC)


def limiter(**limits) -> tuple[RateLimiter, ManualClock]:
    """Telegram's limits exactly (no safety margin unless asked: the margin has its tests)."""
    clock = ManualClock(T0)
    return RateLimiter(clock, RateLimits(**{"margin": 0.0, **limits})), clock


def test_group_chats_are_the_negative_ids():
    assert is_group("-100123") and is_group(-5) and not is_group("5001") and not is_group(7)


def test_one_message_per_second_in_a_chat():
    lim, clock = limiter()
    assert lim.wait_time("5001") == 0
    lim.record("5001")
    assert lim.wait_time("5001") == 1.0
    assert lim.wait_time("5002") == 0  # other chats are not held up
    clock.advance(seconds=0.4)
    assert lim.wait_time("5001") == 0.6
    assert lim.ready_at("5001") == T0 + timedelta(seconds=1)
    clock.advance(seconds=0.6)
    assert lim.wait_time("5001") == 0


def test_thirty_per_second_overall_in_a_sliding_window():
    lim, clock = limiter()
    for i in range(20):
        lim.record(str(1000 + i))
    clock.advance(seconds=0.5)
    for i in range(10):
        lim.record(str(2000 + i))
    assert lim.wait_time("3000") == 0.5  # the first twenty leave the window at T0 + 1 s
    assert lim.global_wait() == 0.5
    clock.advance(seconds=0.5)
    assert lim.wait_time("3000") == 0
    assert lim.wait_time("3000", cost=21) == 0.5  # the other ten leave at T0 + 1.5 s


def test_background_sends_leave_answers_places_within_answer_wait():
    lim, clock = limiter(answer_reserve=3, answer_wait=0.15)
    for i in range(27):
        lim.record(str(1000 + i))
    # 27 of 30 in the last 0.85 s: the rest is the answers' until the 27 are 0.85 s old
    assert lim.global_wait(background=True) == 0.85
    assert lim.ready_at("2000", background=True) == T0 + timedelta(seconds=0.85)
    assert lim.global_wait() == 0 and lim.wait_time("2000") == 0  # an answer goes at once
    clock.advance(seconds=0.85)
    assert lim.global_wait(background=True) == 0
    for i in range(3):
        lim.record(str(3000 + i))  # background fills the window...
    assert lim.global_wait() == 0.15  # ...and the next answer waits no longer than 0.15 s
    assert lim.global_wait(background=True) == 0.15


def test_an_answers_place_is_held_from_background_sends_for_answer_wait_after_it_leaves():
    """A conversation's next answer comes about when its last one leaves the window: the
    place stays the answers' for `answer_wait` longer, so a background row does not take it."""
    lim, clock = limiter(per_second=3, answer_reserve=1, answer_wait=0.2)
    for chat in ("1", "2", "3"):
        lim.record(chat, answer=True)
    clock.advance(seconds=1)
    assert lim.global_wait() == 0  # the window is free for answers
    assert lim.global_wait(background=True) == 0.2  # not yet for the background
    lim.record("1", answer=True)
    clock.advance(seconds=0.2)
    assert lim.global_wait(background=True) == 0  # the places nobody answered in are free


def test_twenty_per_minute_in_a_group_on_top_of_one_per_second():
    lim, clock = limiter()
    group = "-100"
    for _ in range(20):
        assert lim.wait_time(group) == 0
        lim.record(group)
        clock.advance(seconds=1)
    assert clock.now() == T0 + timedelta(seconds=20)
    assert lim.wait_time(group) == 40.0  # the first leaves the 60 s window at T0 + 60 s
    assert lim.wait_time("5001") == 0  # private chats have no such window
    clock.advance(seconds=40)
    assert lim.wait_time(group) == 0


def test_an_album_counts_each_photo():
    lim, clock = limiter()
    lim.record("-100", cost=3)
    assert lim.wait_time("-100") == 3.0  # the chat's next message after three intervals
    clock.advance(seconds=3)
    for _ in range(17):
        lim.record("-100")
        clock.advance(seconds=1)
    assert lim.wait_time("-100") == 40.0  # 3 + 17 = 20 in the minute that started at T0


def test_an_album_larger_than_a_window_waits_for_it_to_empty_instead_of_forever():
    lim, clock = limiter(per_second=5, chat_interval=None)
    lim.record("1", cost=2)
    assert lim.wait_time("2", cost=10) == 1.0
    clock.advance(seconds=1)
    assert lim.wait_time("2", cost=10) == 0


def test_a_429_pauses_the_chat_and_everyone():
    lim, clock = limiter()
    lim.pause(7, "5001")
    assert lim.wait_time("5001") == 7.0
    assert lim.wait_time("5002") == 7.0  # Telegram does not say which limit was hit
    assert lim.global_wait() == 7.0
    clock.advance(seconds=7)
    assert lim.wait_time("5001") == 0 and lim.wait_time("5002") == 0


def test_limits_can_be_switched_off():
    lim, _ = limiter(per_second=None, chat_interval=None, group_per_minute=None)
    for _ in range(500):
        lim.record("-100")
    assert lim.wait_time("-100") == 0
    assert RateLimiter(ManualClock(T0), RateLimits.unlimited()).wait_time("-1") == 0


def test_chats_that_are_free_again_are_forgotten():
    lim, clock = limiter()
    for i in range(3000):
        lim.record(str(i) if i % 2 else str(-i - 1))
        clock.advance(seconds=0.05)
    clock.advance(seconds=120)
    for _ in range(1024 - 3000 % 1024):  # reach the next sweep
        lim.record("1")
    assert set(lim._next_free) == {"1"} and lim._groups == {}


@settings(max_examples=60, deadline=None)
@given(
    st.lists(
        st.tuples(
            st.sampled_from(["1", "2", "3", "-10", "-20"]),
            st.integers(1, 3),  # cost: a message or a small album
            st.integers(0, 1500),  # milliseconds the sender idles before asking
        ),
        min_size=1,
        max_size=120,
    )
)
def test_a_sender_that_waits_as_told_never_breaks_a_limit(sends):
    lim, clock = limiter(per_second=4)  # a small overall limit so that it binds
    log: list[tuple[datetime, str, int]] = []
    for chat, cost, idle_ms in sends:
        clock.advance(milliseconds=idle_ms)
        clock.set(lim.ready_at(chat, cost))
        assert lim.wait_time(chat, cost) == 0
        lim.record(chat, cost)
        log.append((clock.now(), chat, cost))
    for i, (at, chat, cost) in enumerate(log):
        later = log[i + 1 :]
        second = [c for t, _, c in later if t < at + timedelta(seconds=1)]
        assert cost + sum(second) <= 4
        same_chat = [t for t, c, _ in later if c == chat]
        if same_chat:
            assert same_chat[0] >= at + timedelta(seconds=cost)
        if chat.startswith("-"):
            minute = [c for t, ch, c in later if ch == chat and t < at + timedelta(seconds=60)]
            assert cost + sum(minute) <= 20


def test_a_send_counts_from_when_it_went_out_plus_a_margin():
    """Telegram sees a call half a round trip after it went out, about the same delay for
    every call: counting from the going out keeps Telegram's spacing; the margin its jitter."""
    lim, clock = limiter(per_second=2, margin=0.05)
    first = lim.record("1")
    lim.record("2")
    assert lim.wait_time("3") == 1.05  # calls in flight count at once, for 1 s + margin
    assert lim.wait_time("1") == 1.05  # and hold their chat for an interval + margin
    clock.advance(seconds=0.15)
    lim.finished(first)  # a usual round trip: nothing moves
    assert lim.wait_time("3") == 0.9
    assert lim.wait_time("1") == 0.9
    lim.pause(5, "1")
    lim.finished(first)  # a late finish never shortens a pause
    assert lim.wait_time("1") == 5.0


def test_a_call_slower_than_usual_counts_from_when_it_may_have_arrived():
    lim, clock = limiter(per_second=1, margin=0.05)
    usual = lim.record("1")
    clock.advance(seconds=0.15)
    lim.finished(usual)  # the fastest round trip so far: 150 ms
    clock.advance(seconds=0.9)
    assert lim.wait_time("2") == 0  # 1.05 s after the first went out
    slow = lim.record("2")
    clock.advance(seconds=0.65)  # 500 ms slower than usual: perhaps all of it on the way
    lim.finished(slow)
    # It counts from 0.45 s after it went out (0.5 s late, less the margin), not from then.
    assert lim.wait_time("3") == 0.85
    assert lim.wait_time("2") == 0.85


@pytest.mark.parametrize("seed", range(3))
def test_with_round_trips_of_150_ms_a_sender_keeps_90_percent_of_30_a_second(seed):
    """A sender as bot/telegram/sender.py runs one: 8 calls in flight to different chats, each
    chat one at a time and in order, waiting as the limiter says; every call takes 150 ms
    there and back (75 ms each way, plus up to 40 ms of jitter each way, within the margin
    of 50 ms). At Telegram's end (arrival times) no 1 s holds more than 30 and no chat gets
    two within 1 s; and 600 messages go out at >= 0.9 of 30/s, counted as the bench does."""
    rng = Random(seed)
    lim, clock = limiter(margin=0.05)
    chats = rng.randint(60, 200)  # most chats get several messages
    waiting: dict[str, deque[int]] = {}
    for n in range(600):
        waiting.setdefault(str(5000 + n % chats), deque()).append(n)
    in_flight: dict[str, tuple[datetime, Send]] = {}  # chat: when its answer is back, the send
    arrivals: list[tuple[datetime, str, int]] = []
    while waiting or in_flight:
        now = clock.now()
        for chat, (back, send) in list(in_flight.items()):
            if back <= now:
                lim.finished(send)
                del in_flight[chat]
        heads = sorted((queue[0], chat) for chat, queue in waiting.items() if chat not in in_flight)
        for n, chat in heads:
            if len(in_flight) >= 8 or lim.wait_time(chat) > 0:
                continue
            there = now + timedelta(milliseconds=75 + rng.uniform(0, 40))
            back = there + timedelta(milliseconds=75 + rng.uniform(0, 40))
            in_flight[chat] = (back, lim.record(chat))
            arrivals.append((there, chat, n))
            waiting[chat].popleft()
            if not waiting[chat]:
                del waiting[chat]
        events = [back for back, _ in in_flight.values()]
        if len(in_flight) < 8:  # else the next answer is the next thing that can happen
            events += [lim.ready_at(chat) for chat in waiting if chat not in in_flight]
        if events:
            clock.set(max(now + timedelta(microseconds=1), min(events)))
    arrivals.sort()
    times = [at for at, _, _ in arrivals]
    start = 0
    for i, at in enumerate(times):  # Telegram's sliding second, at its end
        while times[start] <= at - timedelta(seconds=1):
            start += 1
        assert i - start + 1 <= 30, f"{i - start + 1} arrived within 1 s up to {at}"
    by_chat: dict[str, list[tuple[datetime, int]]] = {}
    for at, chat, n in arrivals:
        by_chat.setdefault(chat, []).append((at, n))
    for mine in by_chat.values():
        assert [n for _, n in mine] == sorted(n for _, n in mine)  # in the order written
        assert all(b[0] - a[0] >= timedelta(seconds=1) for a, b in itertools.pairwise(mine))
    span = (times[-1] - times[0]).total_seconds()
    assert len(times) / (30 * (span + 1)) >= 0.9
