"""Telegram delivery of the outbox: paced to Telegram's limits, retried, failed with a reason.

How rows are chosen, paced, retried and failed is described in docs/outbox.md.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from aiogram import Bot
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramRetryAfter,
)
from aiogram.types import BufferedInputFile, InputMediaPhoto

from bot.config import OutboxSettings
from bot.ratelimit import RateLimiter, RateLimits, Send
from bot.telegram.adapter import CHANNEL, TEXT_LIMIT
from bot.telegram.requests import (
    MAX_ALBUM,
    Part,
    edit_message,
    failure_reason,
    is_permanent,
    markup,
    message_parts,
    reply_parameters,
)
from handlers.messages import (
    Outgoing,
    outgoing_from_payload,
    storable,
)
from storage.db import SessionFactory, is_query_error
from storage.media import MediaStore
from storage.outbox import ANSWER_WINDOW
from storage.outbox_calls import OutboxQueue
from storage.rows import OutboxRow
from workflow.clock import Clock

log = logging.getLogger(__name__)


PARTS_DONE = "_parts_done"  # payload key: API calls of a multi-call message already made
CALLBACK_ANSWERED = "_callback_answered"  # payload key: its button press was answered
# Telegram forgets a button press after a while; answering later only earns an error.
CALLBACK_WINDOW = timedelta(seconds=60)
MAX_PAGES = 5  # pages of due rows one pass looks through when many chats must wait
MIN_PAUSE = 0.005  # seconds: run() never loops faster than this when nothing went out
COALESCE = 0.05  # seconds: wake-ups this soon after a pass began wait for one more pass
# A row is claimed for this long before its call (storage/outbox_queue.py): no other sender
# takes it meanwhile. After a crash the rows in flight go out once it ran out.
CLAIM = timedelta(seconds=30)
# Each call is cut off well within its claim, so a call never outlives the claim it runs on.
CALL_TIMEOUT = 25.0
# Rows one claim takes at most: the row about to start and the next ones the limiter would let
# start now, in one write transaction instead of one each (on SQLite each waits its turn
# behind intake's writes, 10-30 ms apart under load). About a window's worth.
CLAIM_CHUNK = 32
# How long a pass of run() may go on waiting for Telegram's overall window between sends; then
# it ends, so button presses are answered and new rows looked at at least this often.
PASS_WAIT = timedelta(seconds=2)


@dataclass(frozen=True)
class RetryPolicy:
    """When a failed send is tried again, and when the sender gives up on a row."""

    max_attempts: int = 20
    backoff_base: float = 5.0
    backoff_cap: float = 900.0

    def delay(self, failures: int) -> float:
        """Seconds to wait after the `failures`-th failure: base, 2 x base, 4 x base ... cap."""
        return min(self.backoff_cap, self.backoff_base * 2 ** min(max(failures - 1, 0), 40))


class _PassState:
    """One delivery pass's bookkeeping: calls in flight by chat, rows sent, wake-up times."""

    def __init__(self, now: datetime, wait_until: datetime | None = None) -> None:
        self.now = now
        # Until when this pass may wait for Telegram's window to free (None: it may not).
        self.wait_until = wait_until
        self.in_flight: dict[asyncio.Task[str], str] = {}
        self.busy: set[str] = set()  # chats with a delivery started in this pass
        self.sent = 0
        self.wakes: list[datetime] = []
        # Rows claimed ahead of their start (CLAIM_CHUNK), with when their claim runs out;
        # those still here when the pass's sending ends are released at once.
        self.claimed: dict[int, datetime] = {}

    def start(self, task: asyncio.Task[str], chat_id: str) -> None:
        self.in_flight[task] = chat_id
        self.busy.add(chat_id)


class OutboxSender:
    """Delivers pending Telegram outbox rows: in order per chat, within Telegram's limits,
    retried when that can help and failed with the reason when not; never lost.

    Built plainly it sends one call at a time and paces nothing (tests that drive
    conversations on a clock nobody advances); `from_settings`, which `shuoshi run` uses, keeps
    within Telegram's limits and has several calls in flight to different chats.
    """

    def __init__(
        self, bot: Bot, sessions: SessionFactory, media: MediaStore, clock: Clock, *,
        limiter: RateLimiter | None = None, retry: RetryPolicy | None = None,
        batch_size: int = 200, concurrency: int = 1,
    ) -> None:  # fmt: skip
        self.bot = bot
        self.queue = OutboxQueue(sessions, CHANNEL)
        self.media = media
        self.clock = clock
        self.limiter = limiter or RateLimiter(clock, RateLimits.unlimited())
        self.retry = retry or RetryPolicy()
        self.batch_size = batch_size
        self.concurrency = concurrency
        # When something may next be sendable, as of the last pass; None: nothing pending.
        self.wake_at: datetime | None = None
        self._wake = asyncio.Event()
        self._pass = asyncio.Lock()  # passes never overlap: two would send the same row
        # Calls that went out but whose row could not be updated (database trouble): the next
        # try records them instead of sending them again.
        self._unmarked: dict[tuple[int, int], str] = {}
        # `shuoshi run` sets this to its lease: no send starts while it says no, so two
        # processes never both deliver (docs/reliability.md).
        self.may_send: Callable[[], bool] = lambda: True

    @classmethod
    def from_settings(
        cls, bot: Bot, sessions: SessionFactory, media: MediaStore, clock: Clock,
        settings: OutboxSettings,
    ) -> OutboxSender:  # fmt: skip
        """The sender `shuoshi run` uses: Telegram's limits and retries from the settings."""
        limits = RateLimits(
            per_second=settings.messages_per_second,
            chat_interval=settings.chat_interval_seconds or None,
            group_per_minute=settings.group_messages_per_minute,
            margin=settings.safety_margin_seconds,
            answer_reserve=settings.answer_reserve,
            answer_wait=settings.answer_wait_seconds,
        )
        retry = RetryPolicy(
            max_attempts=settings.max_attempts,
            backoff_base=settings.backoff_base_seconds,
            backoff_cap=settings.backoff_cap_seconds,
        )
        return cls(
            bot, sessions, media, clock, limiter=RateLimiter(clock, limits), retry=retry,
            batch_size=settings.batch_size, concurrency=settings.concurrency,
        )  # fmt: skip

    def wake(self) -> None:
        """New rows were committed: deliver now instead of at the next planned pass."""
        self._wake.set()

    def seconds_until_wake(self, idle_seconds: float) -> float:
        """How long run() may wait before the next pass: until `wake_at`, at most idle."""
        if self.wake_at is None:
            return idle_seconds
        return min(idle_seconds, max(0.0, (self.wake_at - self.clock.now()).total_seconds()))

    async def run(self, idle_seconds: float = 1.0) -> None:
        """Deliver forever: woken at once by new work, else when a chat or retry is due, and at
        least every `idle_seconds` (what no wake-up announced: a CLI's rows on SQLite, or any
        while the PostgreSQL listener of storage/wakeups.py reconnects)."""
        loop = asyncio.get_running_loop()
        while True:
            sent = 0
            started = loop.time()
            try:
                sent = await self.deliver_pending(paced=True)
            except Exception:  # the database may be away for a moment; rows wait for us
                log.exception("outbox delivery failed")
                self.wake_at = None
            delay = self.seconds_until_wake(idle_seconds)
            if sent == 0:
                delay = max(delay, MIN_PAUSE)
            if delay > 0:
                try:
                    async with asyncio.timeout(delay):  # not wait_for (bot/runner.py)
                        await self._wake.wait()
                    # Woken by a commit: under load every intake commit of every process wakes
                    # us, so wake-ups within COALESCE of the last pass's start share one pass
                    # (a lone message still leaves at once).
                    await asyncio.sleep(max(0.0, started + COALESCE - loop.time()))
                except TimeoutError:
                    pass
            self._wake.clear()

    async def deliver_pending(self, limit: int | None = None, *, paced: bool = False) -> int:
        """One pass: answer fresh button presses, then send every row that may go now, oldest
        first and one at a time per chat; returns how many rows were completely sent.

        `paced` (run(), in real time): when only the overall window holds everyone back, the
        pass waits for it to free, for up to PASS_WAIT, instead of ending there: a new pass
        costs its queries before the first send, time the window would stand unused."""
        async with self._pass:
            if not self.may_send():
                return 0
            # From here on a wake-up means rows this pass may not see: committed after `now`,
            # they are not due in its reads.
            self._wake.clear()
            now = self.clock.now()
            await self._answer_callbacks(now)
            work = _PassState(now, now + PASS_WAIT if paced else None)
            try:
                await self._send_due(work, now, limit or self.batch_size)
            finally:
                await self._settle(work, everything=True)
            retry_at = await self.queue.next_retry_at(now)
            if retry_at is not None:
                work.wakes.append(retry_at)
            self.wake_at = min(work.wakes) if work.wakes else None
            return work.sent

    async def _send_due(self, work: _PassState, now: datetime, batch: int) -> None:
        """Start a delivery for each due chat the limiter lets go; a chat that must wait is
        left for later without holding up the others. Chats waiting for an answer to what
        their user just did go first; then every chat oldest first (background rows get what
        of the overall window the answers leave)."""
        try:
            answers = await self._answer_heads(now, batch)
            for i, row in enumerate(answers):
                if not await self._start(work, row, answers[i + 1 :]):
                    return
            after = 0
            for _ in range(MAX_PAGES):
                rows = await self.queue.due_heads(now, after, batch)
                for i, row in enumerate(rows):
                    after = row.id
                    if not await self._start(work, row, rows[i + 1 :], background=True):
                        return
                if len(rows) < batch:
                    return
            work.wakes.append(self.clock.now())  # more due rows than one pass looks at
        finally:
            await self._release_unstarted(work)

    async def _claim(
        self, work: _PassState, row: OutboxRow, upcoming: list[OutboxRow], background: bool
    ) -> datetime | None:
        """The claim under which `row` may start now (when it runs out), None: another sender
        has it or it is no longer due. Claims it together with the next of `upcoming` that
        the limiter would let start now (answers first: a burst's answers in one statement);
        a claim taken earlier serves while it outlasts a call."""
        now = self.clock.now()
        until = work.claimed.pop(row.id, None)
        if until is not None and now + timedelta(seconds=CALL_TIMEOUT) < until:
            return until
        # Not claimed yet, or so long ago that a call could outlive the claim (calls in flight
        # held the pass up): what this pass holds unstarted is released, and claimed anew.
        await self._release_unstarted(work)
        ids = [row.id]
        chats = {row.chat_id}
        for later in upcoming:
            if len(ids) >= CLAIM_CHUNK:
                break
            if later.chat_id in work.busy or later.chat_id in chats:
                continue
            if self.limiter.ready_at(later.chat_id, background=background) > now:
                continue  # it would wait: not held from other senders meanwhile
            ids.append(later.id)
            chats.add(later.chat_id)
        until = now + CLAIM
        claimed = await self.queue.claim_many(ids, now, until)
        work.claimed.update((row_id, until) for row_id in claimed if row_id != row.id)
        return until if row.id in claimed else None

    async def _release_unstarted(self, work: _PassState) -> None:
        """Rows claimed ahead that did not start are due again at once, as when they were read
        (the pass's `now`: not a retry that wake_at would wait for)."""
        if not work.claimed:
            return
        by_claim: dict[datetime, list[int]] = {}
        for row_id, until in work.claimed.items():
            by_claim.setdefault(until, []).append(row_id)
        work.claimed.clear()
        for until, ids in by_claim.items():
            await self.queue.release_many(ids, until, work.now)

    async def _answer_heads(self, now: datetime, batch: int) -> list[OutboxRow]:
        """The due heads of chats with a fresh answer pending (storage/outbox.py ANSWER)."""
        since = now - ANSWER_WINDOW
        try:
            return await self.queue.due_heads(now, 0, batch, answers_since=since)
        except Exception as exc:
            if not is_query_error(exc):
                raise
            # A payload PostgreSQL cannot look into (see _answer_callbacks) fails alone.
            log.error("outbox: the answer query failed; failing unreadable rows", exc_info=True)
            await self._fail_unqueryable()
            return await self.queue.due_heads(now, 0, batch, answers_since=since)

    async def _start(
        self, work: _PassState, row: OutboxRow, upcoming: list[OutboxRow],
        *, background: bool = False,
    ) -> bool:  # fmt: skip
        """Start delivering `row` if its chat may send now; False: the pass goes no further
        (the lease was lost, or nobody may send now). A `background` row leaves the answers'
        places of the overall window (bot/ratelimit.py), and once new rows were committed (a
        wake-up) neither starts nor waits for the window: they may hold an answer, which the
        next pass serves first, instead of after this pass's backlog."""
        if not self.may_send():
            return False
        if background and self._wake.is_set():
            # New rows were committed since this pass read its answers: they may hold one,
            # and this row would take its place in the window. The next pass, at once, serves
            # answers first.
            work.wakes.append(self.clock.now())
            return False
        if row.chat_id in work.busy:
            return True  # its previous row is still in flight (or it went first as an answer)
        try:
            parts = message_parts(outgoing_from_payload(row.payload))
        except Exception as exc:  # a payload no message can be made of fails alone
            await self._fail(row, f"unreadable message: {failure_reason(exc)}")
            return True
        done = min(int(row.payload.get(PARTS_DONE) or 0), len(parts) - 1)
        ready = await self._ready(work, row.chat_id, parts[done].cost, background=background)
        if ready > self.clock.now():
            work.wakes.append(ready)
            # nobody may send now: the rest waits too
            return self.limiter.global_wait(background=background) <= 0
        claim = await self._claim(work, row, upcoming, background)
        if claim is None:
            return True  # another sender has it, or it is no longer due
        send = self.limiter.record(row.chat_id, parts[done].cost, answer=not background)
        task = asyncio.create_task(self._deliver(row, parts, done, send, claim))
        work.start(task, row.chat_id)
        if len(work.in_flight) >= self.concurrency:
            await self._settle(work, everything=False)
        return True

    async def _ready(
        self, work: _PassState, chat_id: str, cost: int, *, background: bool = False
    ) -> datetime:
        """When `chat_id` may send `cost` messages. While only the overall window (or a pause)
        holds everyone back and calls are in flight, the pass waits here for the first of: a
        call coming back, or the window freeing; so it goes on sending as soon as the limit
        allows instead of ending, waiting for every call and starting over (which left the
        window part unused: 0.85 of 30/s with a 150 ms round trip). A paced pass also waits
        with nothing in flight, while it is young (`wait_until`)."""
        while True:
            now = self.clock.now()
            ready = self.limiter.ready_at(chat_id, cost, background=background)
            wait = self.limiter.global_wait(cost, background=background)
            if ready <= now or wait <= 0:
                return ready
            if background and self._wake.is_set():
                return ready  # new rows: the pass ends here, the next one serves answers first
            if work.in_flight:
                await self._settle(work, everything=False, at_most=wait)
            elif work.wait_until is not None and ready <= work.wait_until:
                await self._pause(wait, background)
            else:
                return ready

    async def _pause(self, seconds: float, background: bool) -> None:
        """Wait for the window; a background row stops waiting when new rows are committed
        (they may hold an answer, which the reserve lets go at once)."""
        if not background:
            await asyncio.sleep(seconds)
            return
        with contextlib.suppress(TimeoutError):
            async with asyncio.timeout(seconds):  # not wait_for (bot/runner.py)
                await self._wake.wait()

    async def _settle(
        self, work: _PassState, *, everything: bool, at_most: float | None = None
    ) -> None:
        """Wait for one (or every) delivery in flight (for `at_most` seconds) and note when
        its chat may go on."""
        if not work.in_flight:
            return
        when = asyncio.ALL_COMPLETED if everything else asyncio.FIRST_COMPLETED
        done, _ = await asyncio.wait(work.in_flight, timeout=at_most, return_when=when)
        for task in done:
            chat = work.in_flight.pop(task)
            if task.cancelled():
                continue
            if (exc := task.exception()) is not None:
                # Marking failed (database trouble): the row is still pending and goes again.
                log.error("outbox delivery to chat %s failed", chat, exc_info=exc)
                continue
            outcome = task.result()
            if outcome == "sent":
                work.sent += 1
            if outcome != "retry":  # its next row (or the rest of this one) may follow
                work.wakes.append(self.limiter.ready_at(chat))

    async def _answer_callbacks(self, now: datetime) -> None:
        """Stop the spinner on pressed buttons at once: callback answers are not messages,
        so they go ahead of rows that wait for a chat's turn or for a retry."""
        since = now - CALLBACK_WINDOW
        try:
            rows = await self.queue.fresh_callbacks(since, self.batch_size)
        except Exception as exc:
            if not is_query_error(exc):
                raise
            # PostgreSQL cannot look into a JSON value holding a NUL or a lone surrogate (one
            # written before inputs were cleaned), and one such row breaks this query for
            # every row: it fails alone, and the rest are answered.
            log.error("outbox: the callback query failed; failing unreadable rows", exc_info=True)
            await self._fail_unqueryable()
            rows = await self.queue.fresh_callbacks(since, self.batch_size)
        for row_id, payload in rows:
            if payload.get(CALLBACK_ANSWERED) or not payload.get("callback_id"):
                continue
            try:
                await self.bot.answer_callback_query(
                    payload["callback_id"], text=payload.get("callback_answer") or None
                )
            except TelegramRetryAfter as exc:
                log.info("callback answers wait %ss (429)", exc.retry_after)
                return
            except TelegramBadRequest as exc:
                log.info("callback %s not answered: %s", payload["callback_id"], exc.message)
            except Exception as exc:  # network trouble: the next pass tries again
                log.info("callback %s not answered yet: %s", payload["callback_id"], exc)
                continue
            await self.queue.set_payload(row_id, {**payload, CALLBACK_ANSWERED: True})

    async def _fail_unqueryable(self) -> None:
        """Fail each pending row whose payload has text the database cannot query."""
        bad = [row for row in await self.queue.all_pending() if not _queryable(row.payload)]
        for row in bad:
            await self._fail(row, "the message holds a NUL or a lone surrogate (not storable)")

    async def _deliver(
        self, row: OutboxRow, parts: list[Part], done: int, send: Send, claim: datetime
    ) -> str:
        """Make the row's calls from part `done` on, as long as the limiter lets the chat go on
        (an album's text usually waits for a later pass) and the claim lasts; returns sent,
        part, retry or failed. A row left with calls to make is released for a later pass."""
        while True:
            outcome = await self._deliver_part(row, parts, done, send)
            done += 1
            if outcome != "part":
                return outcome
            if (
                self.limiter.wait_time(row.chat_id, parts[done].cost) > 0
                or not self.may_send()  # the lease ran out mid-message: the holder goes on
                or self.clock.now() + timedelta(seconds=CALL_TIMEOUT) >= claim
            ):
                await self.queue.release(row.id, claim, self.clock.now())
                return outcome
            send = self.limiter.record(row.chat_id, parts[done].cost)

    async def _deliver_part(self, row: OutboxRow, parts: list[Part], done: int, send: Send) -> str:
        """One call, its outcome recorded in a short transaction of its own right after it (a
        crash in between sends that call once more; it is never lost)."""
        key = (row.id, done)
        message_id = self._unmarked.get(key)
        if message_id is None:
            try:
                message = outgoing_from_payload(row.payload)
                try:
                    async with asyncio.timeout(CALL_TIMEOUT):
                        message_id = await self._send_part(row.chat_id, message, parts[done])
                finally:
                    self.limiter.finished(send)
            except TelegramRetryAfter as exc:
                self.limiter.pause(exc.retry_after, row.chat_id)
                return await self._retry_later(row, exc.message, exc.retry_after)
            except Exception as exc:
                reason = failure_reason(exc)
                if is_permanent(exc):
                    await self._fail(row, reason)
                    return "failed"
                # A traceback only for what is neither Telegram's answer nor the network's.
                unexpected = not isinstance(exc, TelegramAPIError | OSError)
                return await self._retry_later(row, reason, None, traceback=unexpected)
            self._unmarked[key] = message_id
        if done + 1 < len(parts):
            await self._save_progress(row, done + 1)
            outcome = "part"
        else:
            await self._mark_sent(row, message_id, caption=parts[done].caption)
            outcome = "sent"
        del self._unmarked[key]
        return outcome

    async def _retry_later(
        self, row: OutboxRow, error: str, delay: float | None, *, traceback: bool = False
    ) -> str:
        """Pending again after `delay` (None: the backoff); failed once attempts run out."""
        failures = row.attempts + 1
        if failures >= self.retry.max_attempts:
            await self._fail(row, f"gave up after {failures} attempts: {error}")
            return "failed"
        wait = self.retry.delay(failures) if delay is None else delay
        log.log(
            logging.INFO if delay is not None else logging.WARNING,  # a 429 is flow control
            "outbox row %s to chat %s (attempt %s): %s; next try in %gs", row.id, row.chat_id,
            failures, error, wait, exc_info=traceback,
        )  # fmt: skip
        next_at = self.clock.now() + timedelta(seconds=wait)
        await self.queue.retry_later(row.id, failures, error, next_at)
        return "retry"

    async def _fail(self, row: OutboxRow, reason: str) -> None:
        """Failed for good, and the case flagged in the same transaction so that a person
        reaches that party another way."""
        await self.queue.fail(row, reason, self.clock.now())
        log.warning(
            "outbox row %s to chat %s (case %s) failed for good: %s", row.id, row.chat_id,
            row.case_number or "-", reason,
        )  # fmt: skip

    async def _save_progress(self, row: OutboxRow, parts_done: int) -> None:
        await self.queue.save_progress(row.id, {**row.payload, PARTS_DONE: parts_done})

    async def _mark_sent(self, row: OutboxRow, message_id: str, *, caption: bool) -> None:
        if not await self.queue.mark_sent(row, message_id, self.clock.now(), caption=caption):
            log.warning("outbox row %s: no case %s to link", row.id, row.case_number)

    async def _send_part(self, chat_id: str, message: Outgoing, part: Part) -> str:
        """One Bot API call; returns the id of the (first) message it posted."""
        if part.kind == "edit":
            return await edit_message(self.bot, chat_id, message)
        reply = reply_parameters(message)
        if part.kind == "album":
            photos = [await self.media.read_public_sha(s) for s in message.photos[:MAX_ALBUM]]
            album = await self.bot.send_media_group(
                chat_id,
                [
                    InputMediaPhoto(media=BufferedInputFile(p, f"{i}.jpg"))
                    for i, p in enumerate(photos)
                ],
                reply_parameters=reply,
            )
            return str(album[0].message_id)
        if part.kind == "photo":
            photo = BufferedInputFile(await self.media.read_public_sha(message.photos[0]), "1.jpg")
            if not part.caption:  # the text follows in a message of its own
                return str((await self.bot.send_photo(chat_id, photo)).message_id)
            sent = await self.bot.send_photo(
                chat_id, photo, caption=message.text, reply_markup=markup(message),
                reply_parameters=reply,
            )  # fmt: skip
            return str(sent.message_id)
        sent = await self.bot.send_message(
            chat_id, message.text[:TEXT_LIMIT], reply_markup=markup(message),
            reply_parameters=reply,
        )  # fmt: skip
        return str(sent.message_id)


def _queryable(value: Any) -> bool:
    """Whether every text in a JSON value is as `storable` leaves it."""
    if isinstance(value, str):
        return storable(value) == value
    if isinstance(value, dict):
        return all(_queryable(k) and _queryable(v) for k, v in value.items())
    if isinstance(value, list):
        return all(_queryable(v) for v in value)
    return True
