"""The SQL unit of work: one session, one transaction, every repository sharing it."""

from __future__ import annotations

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.accounts import SqlAccounts
from storage.calendar import SqlCalendarStore
from storage.cases import SqlCaseRepository
from storage.channel import SqlChannelStore
from storage.grid_boards import GridBoards
from storage.org import SqlOrgDirectory
from storage.org_cache import OrgCache
from storage.outbox import SqlOutbox
from storage.reminders import SqlReminderStore
from storage.reports import SqlReports
from storage.sqlite_driver import quick_statements
from storage.wakeups import TOPICS, Wakeups, take_announced
from storage.webchat import WebChatStore
from workflow.clock import Clock


class SqlUnitOfWork:
    """Commit or nothing: leaving the block without commit() rolls everything back."""

    session: AsyncSession
    # A command's statements are short: on SQLite they run on the loop's thread, without the
    # hand-off to aiosqlite's (storage/sqlite_driver.py). Readings may be long: not theirs.
    quick = True

    def __init__(
        self,
        sessions: async_sessionmaker,
        clock: Clock,
        calendar_cache: OrgCache | None = None,
        wakeups: Wakeups | None = None,
    ) -> None:
        self._sessions = sessions
        self.clock = clock
        self._calendar_cache = calendar_cache
        self._wakeups = wakeups

    async def __aenter__(self) -> SqlUnitOfWork:
        self._statements = quick_statements(self.quick)
        self._statements.__enter__()
        self.session = self._sessions()
        self.cases = SqlCaseRepository(self.session)
        self.org = SqlOrgDirectory(self.session, self._calendar_cache)
        self.calendar = SqlCalendarStore(self.session, self._calendar_cache)
        self.outbox = SqlOutbox(self.session, self.clock)
        self.channels = SqlChannelStore(self.session, self._calendar_cache)
        self.reminders = SqlReminderStore(self.session)
        self.reports = SqlReports(self.session)
        self.accounts = SqlAccounts(self.session)
        self.webchat = WebChatStore(self.session)
        self.boards = GridBoards(self.session)
        return self

    async def __aexit__(self, *exc: object) -> None:
        try:
            self.outbox.discard()
            await self.session.rollback()
        finally:
            try:
                await self.session.close()
            finally:
                self._statements.__exit__(None, None, None)

    async def commit(self) -> None:
        # Outbox rows and web chat messages written here wake their deliverers and streams:
        # other processes through the tables' NOTIFY triggers (sent on commit), this one right
        # after the commit.
        topics = take_announced(self.session)
        await self.session.commit()
        if topics and self._wakeups is not None:
            self._wakeups.publish(topics)

    async def rollback(self) -> None:
        self.session.info.pop(TOPICS, None)  # what was rolled back wakes nobody
        self.outbox.discard()
        await self.session.rollback()


class SqlReading(SqlUnitOfWork):
    """A unit of work for reads whose rows are used after the block: leaving it closes the
    session without a rollback, which would expire them (nothing uncommitted is kept)."""

    quick = False  # the dashboard's and the analysis's reads: in aiosqlite's thread

    async def __aexit__(self, *exc: object) -> None:
        try:
            await self.session.close()
        finally:
            self._statements.__exit__(None, None, None)


class UnitOfWorkFactory:
    """Makes a fresh unit of work per command; shared caches live here."""

    def __init__(self, sessions: async_sessionmaker, clock: Clock) -> None:
        self.sessions = sessions
        self.clock = clock
        # the organisation and the calendar as this process last read them (org_cache.py)
        self.calendar_cache = OrgCache()
        self.wakeups = Wakeups()  # told what each commit wrote (storage/wakeups.py)

    def __call__(self) -> SqlUnitOfWork:
        return SqlUnitOfWork(self.sessions, self.clock, self.calendar_cache, self.wakeups)

    def reading(self) -> SqlReading:
        return SqlReading(self.sessions, self.clock, self.calendar_cache, self.wakeups)
