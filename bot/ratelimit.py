"""Pacing for one bot token: Telegram's flood limits, kept on the injected clock.

Telegram's limits for one bot (core.telegram.org/bots/faq, "My bot is hitting limits"): about
30 messages per second overall, no more than one message per second in a chat, and no more
than 20 messages per minute in a group. Going over them earns HTTP 429 with a `retry_after`.

How this module counts:

- Each Bot API call that posts messages counts. A message with photos may take two calls (an
  album, then its text): that is two sends, spaced like any two messages.
- A `sendMediaGroup` of n items counts as n messages (the conservative reading: Telegram shows
  an album as n messages, and counts them so towards a group's 20 per minute). So an album of
  three photos uses 3 of the second's 30, 3 of a group's 20 per minute, and the chat's next
  message waits 3 seconds.
- Per chat: a send of cost c at time t lets the chat send again at t + c x `chat_interval`.
  It applies to every chat; groups (negative ids in Telegram) also have the 20-per-minute
  window on top.
- Overall and per group: sliding windows (`per_second` over any 1 s, `group_per_minute` over
  any 60 s). A window entry at time t counts until t + window, exclusive.
- After a 429, `pause(retry_after, chat_id)` stops that chat and, conservatively, every chat
  for `retry_after` seconds: Telegram does not say which limit was hit.
- A send counts from when its request goes out (`record`, so calls in flight count at once),
  and every limit is kept with a safety margin (`margin`, 50 ms by default): a send stays in
  the 1 s window for 1 s + margin, in a group's minute for 60 s + margin, and holds its chat
  for cost x `chat_interval` + margin. Telegram counts a call when it arrives, half a round
  trip after it went out; that delay is about the same for every call, so counting from the
  moment it goes out keeps the same spacing Telegram sees, and the margin absorbs the jitter.
  Counting from when the answer came back instead (as this module did) held each send a whole
  round trip longer than needed: 0.79 of 30/s with a 150 ms round trip.
- A call that took clearly longer than the others (`finished`: its round trip more than
  `margin` above the fastest of the last ones) may have reached Telegram that much later, so
  it then counts from that later moment (never later than its answer): a call delayed on the
  way does not let the next ones bunch up behind it.

Answers ahead of background sends (bot/telegram/sender.py marks them; `answer_reserve` 0
switches this off). Telegram's window is shared, and a second's worth of background rows sent
at once fills it for a whole second: an answer written just after waited up to a second for a
place. So a background send, on top of the window itself:

- keeps `answer_reserve` places free within `answer_wait`: it counts the sends of the last
  1 s + margin - `answer_wait` against 30 - `answer_reserve`, so however full the window, that
  many places free within `answer_wait`. With `answer_wait` >= `answer_reserve` / 30 s the
  background alone still gets all of 30/s, only spread out instead of in bursts;
- does not take an answer's place until `answer_wait` after it left the window: a
  conversation's next answer tends to come about then, and the background would take it.

Time is the injected Clock's, counted in whole microseconds, so tests advance a ManualClock
and land exactly on the moment a window frees; nothing here reads the system time itself.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

from workflow.clock import Clock

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_US = 1_000_000
_PRUNE_EVERY = 1024  # records between sweeps of chats that are free again
_RECENT_CALLS = 64  # round trips remembered to know what a usual one is


def _ticks(when: datetime) -> int:
    """Whole microseconds since the epoch: exact, unlike float seconds."""
    return (when - _EPOCH) // timedelta(microseconds=1)


def is_group(chat_id: str | int) -> bool:
    """Telegram group, supergroup and channel ids are negative; private chats positive."""
    return str(chat_id).startswith("-")


@dataclass(frozen=True)
class RateLimits:
    """The limits of one bot token; None switches a limit off."""

    per_second: int | None = 30  # messages per second over all chats together
    chat_interval: float | None = 1.0  # seconds between two messages in one chat
    group_per_minute: int | None = 20  # messages per 60 s in one group
    margin: float = 0.05  # seconds added to every limit: the jitter of the way to Telegram
    # Background sends leave answers `answer_reserve` places of the overall window that free
    # within `answer_wait` seconds, and an answer's place for as long after it frees (module
    # docstring); 0: off.
    answer_reserve: int = 0
    answer_wait: float = 0.15

    @classmethod
    def unlimited(cls) -> RateLimits:
        """No limits at all (tests that drive conversations on a clock nobody advances)."""
        return cls(per_second=None, chat_interval=None, group_per_minute=None, margin=0.0)


class _Entry:
    """One send in a window: when it counts from, how many messages it posted, and how much
    longer it counts for background sends (an answer's place, held for the next answer)."""

    __slots__ = ("at", "cost", "held")

    def __init__(self, at: int, cost: int, held: int = 0) -> None:
        self.at = at
        self.cost = cost
        self.held = held


class _Window:
    """Messages sent over the last `length_us`; a few dozen entries at most, so plain lists."""

    def __init__(self, capacity: int, length_us: int) -> None:
        self.capacity = capacity
        self.length_us = length_us
        self.entries: list[_Entry] = []

    def expire(self, now: int) -> None:
        self.entries = [e for e in self.entries if e.at + e.held > now - self.length_us]

    def wait_us(
        self, now: int, cost: int, capacity: int = 0, length_us: int = 0, held: bool = False
    ) -> int:
        """Microseconds until `cost` more fit; a cost above capacity waits for an empty window.
        The answers' reserve asks with a smaller `capacity` over the last `length_us`, or with
        answers' places `held` longer."""
        self.expire(now)
        capacity = max(1, capacity or self.capacity)
        length_us = length_us or self.length_us
        ends = sorted((e.at + length_us + (e.held if held else 0), e.cost) for e in self.entries)
        ends = [(end, c) for end, c in ends if end > now]
        excess = sum(c for _, c in ends) + min(cost, capacity) - capacity
        freed = 0
        for end, c in ends:
            if excess <= 0:
                break
            freed += c
            if freed >= excess:
                return end - now
        return 0

    def add(self, now: int, cost: int, held: int = 0) -> _Entry:
        self.expire(now)
        entry = _Entry(now, cost, held)
        self.entries.append(entry)
        return entry


@dataclass
class Send:
    """A send counted by `record`; `finished` closes it (and moves it later if it was slow)."""

    chat_id: str
    cost: int
    entries: list[_Entry]
    out: int = 0  # microsecond its request went out


class RateLimiter:
    """Says how long a chat must wait before its next send; records sends and 429 pauses."""

    def __init__(self, clock: Clock, limits: RateLimits | None = None) -> None:
        self.clock = clock
        self.limits = limits or RateLimits()
        self._overall = (
            _Window(self.limits.per_second, _US + round(self.limits.margin * _US))
            if self.limits.per_second is not None
            else None
        )
        self._interval_us = round((self.limits.chat_interval or 0) * _US)
        self._next_free: dict[str, int] = {}  # chat -> earliest microsecond it may send again
        self._groups: dict[str, _Window] = {}
        self._paused_until = 0
        self._records = 0
        self._margin_us = round(self.limits.margin * _US)
        self._answer_wait_us = round(self.limits.answer_wait * _US)
        self._round_trips: deque[int] = deque(maxlen=_RECENT_CALLS)

    def _now(self) -> int:
        return _ticks(self.clock.now())

    def _global_wait_us(self, now: int, cost: int, background: bool = False) -> int:
        wait = max(0, self._paused_until - now)
        window = self._overall
        if window is not None:
            wait = max(wait, window.wait_us(now, cost, held=background))
            if background and self.limits.answer_reserve:
                capacity = window.capacity - self.limits.answer_reserve
                recent = max(1, window.length_us - self._answer_wait_us)
                wait = max(wait, window.wait_us(now, cost, capacity, recent))
        return wait

    def _wait_us(self, chat_id: str, now: int, cost: int, background: bool = False) -> int:
        wait = max(
            self._global_wait_us(now, cost, background), self._next_free.get(chat_id, 0) - now
        )
        group = self._groups.get(chat_id)
        if group is not None:
            wait = max(wait, group.wait_us(now, cost))
        return wait

    def wait_time(self, chat_id: str | int, cost: int = 1) -> float:
        """Seconds until `chat_id` may send `cost` messages (0.0: now)."""
        return self._wait_us(str(chat_id), self._now(), cost) / _US

    def ready_at(self, chat_id: str | int, cost: int = 1, *, background: bool = False) -> datetime:
        """The exact moment `chat_id` may send `cost` messages, on the injected clock; a
        `background` send leaves the answers' reserve of the overall window."""
        now = self.clock.now()
        wait = self._wait_us(str(chat_id), _ticks(now), cost, background)
        return now + timedelta(microseconds=wait)

    def global_wait(self, cost: int = 1, *, background: bool = False) -> float:
        """Seconds until any chat at all may send (the overall window or a 429 pause)."""
        return self._global_wait_us(self._now(), cost, background) / _US

    def record(self, chat_id: str | int, cost: int = 1, *, answer: bool = False) -> Send:
        """Count a send of `cost` messages to `chat_id` as its request goes out (so that calls
        in flight count); pass the result to `finished` when the call comes back. An `answer`
        keeps its place from background sends for `answer_wait` after it leaves the window."""
        chat = str(chat_id)
        now = self._now()
        entries = []
        if self._overall is not None:
            held = self._answer_wait_us if answer and self.limits.answer_reserve else 0
            entries.append(self._overall.add(now, cost, held))
        if self._interval_us:
            start = max(self._next_free.get(chat, 0), now)
            self._next_free[chat] = start + cost * self._interval_us + self._margin_us
        if self.limits.group_per_minute is not None and is_group(chat):
            window = self._groups.get(chat)
            if window is None:
                length = 60 * _US + self._margin_us
                window = self._groups[chat] = _Window(self.limits.group_per_minute, length)
            entries.append(window.add(now, cost))
        self._records += 1
        if self._records % _PRUNE_EVERY == 0:
            self._prune(now)
        return Send(chat, cost, entries, out=now)

    def finished(self, send: Send) -> None:
        """The call came back. It counted from when it went out; if its round trip was more
        than `margin` above the fastest recent one, Telegram may have seen it up to that much
        later, so it counts from then (at most from now): our windows never free up before
        Telegram's do."""
        now = self._now()
        round_trip = max(0, now - send.out)
        self._round_trips.append(round_trip)
        late = round_trip - min(self._round_trips) - self._margin_us
        for entry in send.entries:
            if late > 0:
                entry.at = min(max(entry.at, send.out + late), now)
        if self._interval_us and late > 0:
            due = send.out + late + send.cost * self._interval_us + self._margin_us
            self._next_free[send.chat_id] = max(self._next_free.get(send.chat_id, 0), due)

    def pause(self, seconds: float, chat_id: str | int | None = None) -> None:
        """After a 429: nobody sends for `seconds`, and `chat_id` not before then either."""
        now = self._now()
        until = now + round(seconds * _US)
        self._paused_until = max(self._paused_until, until)
        if chat_id is not None:
            chat = str(chat_id)
            self._next_free[chat] = max(self._next_free.get(chat, 0), until)

    def _prune(self, now: int) -> None:
        """Forget chats that are free again, so a long-running sender does not grow forever."""
        self._next_free = {c: t for c, t in self._next_free.items() if t > now}
        for chat, window in list(self._groups.items()):
            window.expire(now)
            if not window.entries:
                del self._groups[chat]
