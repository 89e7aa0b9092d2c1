"""Morning digests and the weekly analysis into chats: one message per unit, never one per case.

The periodic sweep calls `Digests.run_due` (every 30 s); it sends what is due at that moment and
not yet recorded in digest_runs. The record is written first, in the same transaction as the
outbox rows, so a restart or a second process never sends a digest twice, and a failure leaves
nothing behind and is retried at the next sweep. Definitions of every list: docs/rates.md.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import date, datetime, time, timedelta

from handlers.messages import Outgoing
from handlers.ports import UnitOfWork
from handlers.render import Renderer
from handlers.units import unit_targets
from handlers.weekly import build_weekly, fit, previous_week, render_weekly_message
from workflow.channels import ALL_CHANNELS, ChatBinding
from workflow.clock import SHANGHAI
from workflow.deadlines import WorkCalendar
from workflow.model import Role
from workflow.ports import OutgoingMessage, Period, UnitDigest, UnitRef

log = logging.getLogger(__name__)

MORNING = "morning"
WEEKLY = "weekly"
# digest_runs target of the weekly analysis: one per county, whichever chat it went to.
WEEKLY_TARGET = "county"
# Case numbers listed per list, most generous first, until the message fits.
LIST_LIMITS = (10, 5, 3, 1, 0)
# How far back to look for the previous working day (the longest holiday is 8-9 days).
_MAX_LOOKBACK_DAYS = 31

# The unit whose cards a digest's unit gets, by its kind: (chat purpose, role).
_UNIT_CHATS = {
    "department": ("department", Role.DEPARTMENT_HANDLER),
    "township": ("township", Role.TOWNSHIP_OPERATOR),
}


def previous_workday(calendar: WorkCalendar, day: date) -> date:
    """The working day before `day` on the official calendar (Friday for a Monday)."""
    for back in range(1, _MAX_LOOKBACK_DAYS + 1):
        candidate = day - timedelta(days=back)
        if calendar.is_workday(candidate):
            return candidate
    return day - timedelta(days=1)


def weekly_send_day(calendar: WorkCalendar, day: date, weekly_day: int) -> date:
    """The day of `day`'s week the weekly analysis goes out: the first working day from the
    configured weekday on (Wednesday 2026-05-06 after the Labour Day holiday, not Monday);
    the configured day itself when the rest of the week is all holiday, so no week is skipped."""
    start = day - timedelta(days=day.weekday() - weekly_day)
    for offset in range(7 - weekly_day):
        candidate = start + timedelta(days=offset)
        if calendar.is_workday(candidate):
            return candidate
    return start


class Digests:
    """Decides which digests are due and queues each, once per target and period."""

    def __init__(
        self,
        morning_at: time = time(8, 30),
        weekly_day: int = 0,
        weekly_at: time = time(9, 0),
        default_locale: str = "zh_CN",
        weekly_url: str | None = None,
        enabled: frozenset[str] = ALL_CHANNELS,
    ) -> None:
        if not 0 <= weekly_day <= 6:
            raise ValueError(f"weekly_day must be 0 (Monday) to 6 (Sunday), not {weekly_day}")
        self.morning_at = morning_at
        self.weekly_day = weekly_day
        self.weekly_at = weekly_at
        self.default_locale = default_locale
        self.weekly_url = weekly_url
        self.enabled = enabled  # the channels delivered (bot/app.py): nothing goes to others
        # The latest period of each kind this process finished: later sweeps skip it without a
        # query (only the latest is kept: an older period is never due again).
        self._finished: dict[str, str] = {}
        self._warned_week: str | None = None
        self._not_weekly_day: date | None = None  # a day found not to be the send day

    async def run_due(self, uow_factory: Callable[[], UnitOfWork], now: datetime) -> int:
        """Queue every digest due at `now` that was not sent yet; returns the messages queued."""
        local = now.astimezone(SHANGHAI)
        try:
            queued = await self._morning(uow_factory, local)
        except Exception:  # the calendar or the unit list could not be read: next sweep
            log.exception("morning digests could not start; the next sweep retries")
            queued = 0
        return queued + await self._weekly(uow_factory, local)

    # Morning digest ------------------------------------------------------------------------

    async def _morning(self, uow_factory: Callable[[], UnitOfWork], now: datetime) -> int:
        if now.time() < self.morning_at:
            return 0
        day = now.date()
        period = day.isoformat()
        if self._finished.get(MORNING) == period:
            return 0
        async with uow_factory() as uow:
            calendar = await uow.calendar.load()
            if not calendar.is_workday(day):
                self._finished[MORNING] = period
                return 0
            done = await uow.reports.runs_recorded(MORNING, period)
            units = [*await uow.reports.units("department"), *await uow.reports.units("township")]
        since = previous_workday(calendar, day)
        window = Period(
            datetime.combine(since, self.morning_at, tzinfo=SHANGHAI),
            datetime.combine(day, self.morning_at, tzinfo=SHANGHAI),
        )
        queued, failed = 0, False
        for unit in units:
            if unit.target in done:
                continue
            try:
                queued += await self._morning_for(uow_factory, unit, window, now, period)
            except Exception:
                failed = True
                log.exception("morning digest for %s failed; the next sweep retries", unit.target)
        if not failed:
            self._finished[MORNING] = period
        return queued

    async def _morning_for(
        self, uow_factory: Callable[[], UnitOfWork], unit: UnitRef, window: Period, now: datetime,
        period: str,
    ) -> int:  # fmt: skip
        """One unit in one transaction: claim, read its lists, queue its messages, commit."""
        async with uow_factory() as uow:
            # First statement of the transaction: a second process waits here, then finds it.
            if not await uow.reports.claim_run(MORNING, unit.target, period, now):
                return 0
            digest = await uow.reports.unit_digest(unit, window, now)
            if digest.is_empty:
                await uow.commit()  # nothing to say today; recorded so it is not asked again
                return 0
            chats = await self._chats(uow, unit)
            if not chats:
                log.info("morning digest for %s: no group bound and nobody enrolled", unit.target)
            for channel, chat_id, locale in chats:
                text = self.morning_text(digest, now.date(), locale)
                await uow.outbox.add(
                    OutgoingMessage(
                        channel=channel,
                        chat_id=chat_id,
                        payload=Outgoing(chat_id=chat_id, text=text, purpose="digest").payload(),
                    )
                )
            await uow.commit()
            return len(chats)

    def morning_text(self, digest: UnitDigest, day: date, locale: str | None = None) -> str:
        """The digest message, listing fewer case numbers per list until it fits."""
        r = Renderer(locale or self.default_locale)

        def render(limit: int) -> str:
            return r.macro("digest.html.j2", "morning", digest=digest, day=day, limit=limit)

        return fit(render, LIST_LIMITS, render(0))

    async def _chats(self, uow: UnitOfWork, unit: UnitRef) -> list[tuple[str, str, str]]:
        """The chats that get the unit's cards (handlers/units.py `unit_targets`): its bound
        group chats (and the web workspaces of its people who have no other chat account),
        else, or when its only groups take no button presses (a WeCom app chat), also its
        people's own chats."""
        purpose, role = _UNIT_CHATS[unit.kind]
        department = unit.kind == "department"
        return await unit_targets(
            uow.channels, purpose, role, None if department else unit.id,
            unit.id if department else None, self.default_locale, self.enabled,
        )  # fmt: skip

    # Weekly analysis -----------------------------------------------------------------------

    async def _bound(self, uow: UnitOfWork, purpose: str) -> list[ChatBinding]:
        """The chats bound for `purpose` on the channels this deployment delivers."""
        return [b for b in await uow.channels.chats_for(purpose) if b.channel in self.enabled]

    async def _weekly(self, uow_factory: Callable[[], UnitOfWork], now: datetime) -> int:
        if now.weekday() < self.weekly_day or now.time() < self.weekly_at:
            return 0
        period = previous_week(now)
        key = period.iso_week
        if self._finished.get(WEEKLY) == key or self._not_weekly_day == now.date():
            return 0
        try:
            async with uow_factory() as uow:
                calendar = await uow.calendar.load()
                if now.date() != weekly_send_day(calendar, now.date(), self.weekly_day):
                    self._not_weekly_day = now.date()
                    return 0
                if not await uow.reports.claim_run(WEEKLY, WEEKLY_TARGET, key, now):
                    self._finished[WEEKLY] = key
                    return 0
                chats = await self._bound(uow, "leaders") or await self._bound(uow, "supervisors")
                if not chats:
                    # Not recorded: a leaders' chat bound later today still gets this week's.
                    if self._warned_week != key:
                        self._warned_week = key
                        log.warning(
                            "weekly analysis %s not sent: no leaders' or supervisors' chat is "
                            "bound (shuoshi invite chat --purpose leaders)",
                            key,
                        )
                    return 0
                report = await build_weekly(uow, period, now)
                text = render_weekly_message(report, self.default_locale, self.weekly_url)
                for binding in chats:
                    await uow.outbox.add(
                        OutgoingMessage(
                            channel=binding.channel,
                            chat_id=binding.chat_id,
                            payload=Outgoing(
                                chat_id=binding.chat_id, text=text, purpose="weekly"
                            ).payload(),
                        )
                    )
                await uow.commit()
        except Exception:
            log.exception("weekly analysis %s failed; the next sweep retries", key)
            return 0
        self._finished[WEEKLY] = key
        return len(chats)
