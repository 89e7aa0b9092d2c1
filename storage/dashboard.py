"""The dashboard's read side: totals, the stuck list, case lists and exports, bounded by indexes.

Every query here reads either the cases created in the chosen period (the created_at index) or
the cases open right now (the state indexes), never the whole history: a county with a million
old cases answers as fast as one with ten thousand.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import astuple, dataclass, field
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, Select, func, select, tuple_
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.rows import (
    AreaRow,
    AttachmentRow,
    CaseAttachmentRow,
    CaseRow,
    CategoryRow,
    DepartmentRow,
    OutboxRow,
    PersonRow,
    TransitionRow,
)
from storage.sql import dialect_of
from workflow.clock import SHANGHAI, ensure_aware
from workflow.model import OPEN_STATES, State, holder_of

OPEN = tuple(sorted(s.value for s in OPEN_STATES))
# Open states in which someone still has to act before the deadline; a resolved case waits for
# its reporter's rating and no longer counts as overdue.
ACTIVE = tuple(s for s in OPEN if s != State.RESOLVED.value)
UTC_OFFSET_HOURS = 8  # Asia/Shanghai has kept +08:00 without daylight saving since 1991


@dataclass(frozen=True)
class CaseFilter:
    """What the dashboard's filter bar chose: cases created in [start, end), narrowed by unit."""

    start: datetime
    end: datetime
    township_id: int | None = None
    department_id: int | None = None
    category_id: int | None = None
    state: str | None = None

    def key(self) -> tuple[Any, ...]:
        return astuple(self)


@dataclass(frozen=True)
class Unit:
    """A township, department or category the filter bar offers."""

    id: int
    code: str
    name_zh: str
    name_en: str

    def names(self) -> dict[str, str]:
        return {"code": self.code, "zh_CN": self.name_zh, "en": self.name_en}


@dataclass(frozen=True)
class OrgOptions:
    townships: list[Unit]
    departments: list[Unit]
    categories: list[Unit]


@dataclass(frozen=True)
class Count:
    """One line of a totals table: the unit's names (None for a state) and how many cases."""

    key: str
    names: dict[str, str] | None
    count: int


@dataclass
class Overview:
    """Everything the overview page shows apart from the rates and the stuck list."""

    new_cases: int
    open_now: int
    overdue_now: int
    stage_overdue_now: int
    due_today: int
    delivery_failed_open: int
    failed_messages: int
    by_state_period: dict[str, int]
    by_state_open: dict[str, int]
    by_category: list[Count]
    by_township: list[Count]
    by_grid: list[Count]
    trend: list[tuple[date, int]]


@dataclass(frozen=True)
class StuckCase:
    """An open case, who holds it and since when."""

    number: str
    state: str
    holder: str
    holder_unit: dict[str, str] | None
    held_since: datetime
    stage_due_at: datetime | None
    due_at: datetime | None
    category: dict[str, str]
    township: dict[str, str]
    grid: dict[str, str]
    description: str
    supervise_count: int
    delivery_failed: bool


@dataclass(frozen=True)
class ListedCase:
    number: str
    state: str
    created_at: datetime
    due_at: datetime | None
    closed_at: datetime | None
    category: dict[str, str]
    township: dict[str, str]
    grid: dict[str, str]
    department: dict[str, str] | None
    description: str
    rating: str | None
    delivery_failed: bool


@dataclass
class ExportedCase:
    """One CSV line: the case, its units and when it reached each stage."""

    case: ListedCase
    village: dict[str, str]
    deadline_class: str
    handled_by_township: bool
    anonymous: bool
    reporter_name: str | None
    contact_phone: str | None
    location_text: str | None
    reopen_count: int
    supervise_count: int
    rating_comment: str | None
    first_response_at: datetime | None
    stages: dict[str, datetime | None] = field(default_factory=dict)


@dataclass(frozen=True)
class FailedMessage:
    id: int
    channel: str
    chat_id: str
    case_number: str | None
    person_name: str | None
    created_at: datetime
    attempts: int
    error: str | None


@dataclass(frozen=True)
class CaseContacts:
    """Who the case page names: the reporter (unless anonymous) and the unit's handler."""

    reporter_name: str | None
    reporter_phone: str | None
    handler_name: str | None
    handler_phone: str | None
    # Trail entries an anonymous reporter made (report, rating): shown without their name.
    anonymous_seqs: frozenset[int] = frozenset()


# The stage columns of the CSV: (column, how it is found in the trail).
#   first:<state>   the first time the case entered that state
#   first@<action>  the first entry with that action;  last@<action>  the latest one
STAGE_COLUMNS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("screening_at", ("first:screening",)),
    ("screened_at", ("first@screen_valid",)),
    ("township_at", ("first:township",)),
    ("county_at", ("first:county",)),
    ("assigned_at", ("last@assign",)),
    ("accepted_at", ("last@accept", "last@handle_locally")),
    ("returned_at", ("last@return",)),
    ("resolved_at", ("last@resolve",)),
    ("rated_at", ("last@rate",)),
    ("supervised_at", ("last@supervise",)),
)


def _names(row: Any) -> dict[str, str]:
    return {"code": row.code, "zh_CN": row.name_zh, "en": row.name_en}


def _aware(value: datetime | None) -> datetime | None:
    return ensure_aware(value) if value is not None else None


def _unindexed(column: Any, dialect: str) -> Any:
    """On SQLite, keep the planner on the created_at range: without statistics it would rather
    walk a township's or department's whole history through their (unit, state) indexes."""
    return column + 0 if dialect == "sqlite" else column


def period_conditions(f: CaseFilter, dialect: str) -> list[ColumnElement[bool]]:
    """Cases created in the period, narrowed by the filter bar."""
    conds: list[ColumnElement[bool]] = [CaseRow.created_at >= f.start, CaseRow.created_at < f.end]
    if f.township_id is not None:
        conds.append(_unindexed(CaseRow.township_id, dialect) == f.township_id)
    if f.department_id is not None:
        conds.append(_unindexed(CaseRow.department_id, dialect) == f.department_id)
    if f.category_id is not None:
        conds.append(CaseRow.category_id == f.category_id)
    if f.state is not None:
        conds.append(CaseRow.state == f.state)
    return conds


def open_conditions(f: CaseFilter, states: Sequence[str] = OPEN) -> list[ColumnElement[bool]]:
    """Cases open right now (whenever reported), narrowed by the filter bar except the period."""
    chosen = [s for s in states if f.state is None or s == f.state]
    conds: list[ColumnElement[bool]] = [CaseRow.state.in_(chosen)]
    if f.township_id is not None:
        conds.append(CaseRow.township_id == f.township_id)
    if f.department_id is not None:
        conds.append(CaseRow.department_id == f.department_id)
    if f.category_id is not None:
        conds.append(CaseRow.category_id == f.category_id)
    return conds


async def org_options(session: AsyncSession) -> OrgOptions:
    """The townships, departments and categories the filter bar and tables name."""

    async def units(stmt: Select[int, str, str, str]) -> list[Unit]:
        return [Unit(r.id, r.code, r.name_zh, r.name_en) for r in (await session.execute(stmt))]

    cols = (AreaRow.id, AreaRow.code, AreaRow.name_zh, AreaRow.name_en)
    townships = await units(
        select(*cols).where(AreaRow.kind.in_(("township", "street"))).order_by(AreaRow.code)
    )
    dept_cols = (DepartmentRow.id, DepartmentRow.code, DepartmentRow.name_zh, DepartmentRow.name_en)
    departments = await units(select(*dept_cols).order_by(DepartmentRow.code))
    cat_cols = (CategoryRow.id, CategoryRow.code, CategoryRow.name_zh, CategoryRow.name_en)
    categories = await units(select(*cat_cols).order_by(CategoryRow.id))
    return OrgOptions(townships, departments, categories)


def shanghai_day_start(when: datetime) -> datetime:
    """Midnight in Asia/Shanghai of the day `when` falls on."""
    local = when.astimezone(SHANGHAI)
    return local.replace(hour=0, minute=0, second=0, microsecond=0)


async def overview(
    session: AsyncSession, f: CaseFilter, now: datetime, *, top_grids: int = 10
) -> Overview:
    """Totals of the period and the open snapshot, each one bounded query."""
    dialect = dialect_of(session)
    period = period_conditions(f, dialect)

    by_state_period = {
        state: count
        for state, count in await session.execute(
            select(CaseRow.state, func.count()).where(*period).group_by(CaseRow.state)
        )
    }
    by_state_open = {
        state: count
        for state, count in await session.execute(
            select(CaseRow.state, func.count()).where(*open_conditions(f)).group_by(CaseRow.state)
        )
    }
    active = open_conditions(f, ACTIVE)
    overdue = await _count(session, [*active, CaseRow.due_at < now])
    stage_overdue = await _count(session, [*active, CaseRow.stage_due_at < now])
    tomorrow = shanghai_day_start(now) + timedelta(days=1)
    due_today = await _count(session, [*active, CaseRow.due_at >= now, CaseRow.due_at < tomorrow])
    delivery_failed = await _count(
        session, [*open_conditions(f), CaseRow.delivery_failed.is_(True)]
    )
    failed_messages = (
        await session.execute(
            select(func.count()).select_from(OutboxRow).where(OutboxRow.status == "failed")
        )
    ).scalar_one()

    by_category = await _grouped(session, CaseRow.category_id, CategoryRow, period)
    by_township = await _grouped(session, CaseRow.township_id, AreaRow, period)
    by_grid = await _grouped(session, CaseRow.grid_id, AreaRow, period, limit=top_grids)
    return Overview(
        new_cases=sum(by_state_period.values()),
        open_now=sum(by_state_open.values()),
        overdue_now=overdue,
        stage_overdue_now=stage_overdue,
        due_today=due_today,
        delivery_failed_open=delivery_failed,
        failed_messages=failed_messages,
        by_state_period=by_state_period,
        by_state_open=by_state_open,
        by_category=by_category,
        by_township=by_township,
        by_grid=by_grid,
        trend=await _trend(session, f, period, dialect),
    )


async def _count(session: AsyncSession, conds: list[ColumnElement[bool]]) -> int:
    return (
        await session.execute(select(func.count()).select_from(CaseRow).where(*conds))
    ).scalar_one()


async def _grouped(
    session: AsyncSession,
    column: Any,
    names: Any,
    conds: list[ColumnElement[bool]],
    *,
    limit: int | None = None,
) -> list[Count]:
    counted = (
        select(column.label("unit_id"), func.count().label("n"))
        .where(*conds)
        .group_by(column)
        .order_by(func.count().desc(), column)
    )
    if limit is not None:
        counted = counted.limit(limit)
    sub = counted.subquery()
    rows = await session.execute(
        select(names, sub.c.n)
        .join(sub, sub.c.unit_id == names.id)
        .order_by(sub.c.n.desc(), names.code)
    )
    return [Count(unit.code, _names(unit), n) for unit, n in rows]


def _local_day(column: Any, dialect: str) -> Any:
    """The Asia/Shanghai calendar day of a stored UTC time, as 'YYYY-MM-DD', in SQL."""
    if dialect == "postgresql":
        return func.to_char(func.timezone("Asia/Shanghai", column), "YYYY-MM-DD")
    return func.date(column, f"+{UTC_OFFSET_HOURS} hours")


async def _trend(
    session: AsyncSession, f: CaseFilter, conds: list[ColumnElement[bool]], dialect: str
) -> list[tuple[date, int]]:
    """Cases reported per local day of the period, days without any included."""
    day = _local_day(CaseRow.created_at, dialect)
    counts = {
        str(d): n
        for d, n in await session.execute(select(day, func.count()).where(*conds).group_by(day))
    }
    first = f.start.astimezone(SHANGHAI).date()
    last = (f.end - timedelta(microseconds=1)).astimezone(SHANGHAI).date()
    days = [first + timedelta(days=i) for i in range((last - first).days + 1)]
    return [(d, counts.get(d.isoformat(), 0)) for d in days]


def _cases_with_names(*extra: Any) -> Any:
    """SELECT of cases joined to their grid, township, category and department (if any)."""
    grid, township = aliased(AreaRow), aliased(AreaRow)
    category, department = aliased(CategoryRow), aliased(DepartmentRow)
    query = (
        select(CaseRow, grid, township, category, department, *extra)
        .join(grid, grid.id == CaseRow.grid_id)
        .join(township, township.id == CaseRow.township_id)
        .join(category, category.id == CaseRow.category_id)
        .outerjoin(department, department.id == CaseRow.department_id)
    )
    return query


async def stuck_cases(
    session: AsyncSession,
    f: CaseFilter,
    *,
    offset: int = 0,
    limit: int = 50,
    delivery_failed: bool = False,
) -> tuple[int, list[StuckCase]]:
    """Every open case with its holder, longest held first; (total, this page). With
    delivery_failed, only those a message about could not be delivered."""
    conds = open_conditions(f)
    if delivery_failed:
        conds.append(CaseRow.delivery_failed.is_(True))
    total = await _count(session, conds)
    query = _cases_with_names()
    rows = await session.execute(
        query.where(*conds)
        .order_by(CaseRow.stage_entered_at, CaseRow.id)
        .offset(offset)
        .limit(limit)
    )
    found = []
    for case, g, t, cat, dept in rows:
        holder = holder_of(State(case.state), case.handled_by_township)
        unit = {
            "grid_leader": _names(g),
            "township": _names(t),
            "department": _names(dept) if dept is not None else None,
        }.get(holder.value)
        found.append(
            StuckCase(
                number=case.number,
                state=case.state,
                holder=holder.value,
                holder_unit=unit,
                held_since=ensure_aware(case.stage_entered_at or case.created_at),
                stage_due_at=_aware(case.stage_due_at),
                due_at=_aware(case.due_at),
                category=_names(cat),
                township=_names(t),
                grid=_names(g),
                description=case.description,
                supervise_count=case.supervise_count,
                delivery_failed=case.delivery_failed,
            )
        )
    return total, found


def _listed(case: CaseRow, g: Any, t: Any, cat: Any, dept: Any) -> ListedCase:
    return ListedCase(
        number=case.number,
        state=case.state,
        created_at=ensure_aware(case.created_at),
        due_at=_aware(case.due_at),
        closed_at=_aware(case.closed_at),
        category=_names(cat),
        township=_names(t),
        grid=_names(g),
        department=_names(dept) if dept is not None else None,
        description=case.description,
        rating=case.rating,
        delivery_failed=case.delivery_failed,
    )


async def list_cases(
    session: AsyncSession, f: CaseFilter, *, offset: int = 0, limit: int = 50
) -> tuple[int, list[ListedCase]]:
    """Cases of the period, newest first; (total, this page)."""
    conds = period_conditions(f, dialect_of(session))
    total = await _count(session, conds)
    query = _cases_with_names()
    rows = await session.execute(
        query.where(*conds)
        .order_by(CaseRow.created_at.desc(), CaseRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return total, [_listed(*row) for row in rows]


async def export_cases(
    session: AsyncSession, f: CaseFilter, *, batch: int = 1000
) -> AsyncIterator[list[ExportedCase]]:
    """The period's cases oldest first, in batches, each with its stage times from the trail.

    Batches follow (created_at, id) rather than OFFSET, so the last batch costs what the first
    did however long the period."""
    conds = period_conditions(f, dialect_of(session))
    village, reporter = aliased(AreaRow), aliased(PersonRow)
    query = _cases_with_names(village, reporter.name)
    query = query.join(village, village.id == CaseRow.village_id).outerjoin(
        reporter, reporter.id == CaseRow.reporter_id
    )
    after: tuple[datetime, int] | None = None
    while True:
        page_conds = list(conds)
        if after is not None:
            page_conds.append(tuple_(CaseRow.created_at, CaseRow.id) > tuple_(*after))
        rows = (
            await session.execute(
                query.where(*page_conds).order_by(CaseRow.created_at, CaseRow.id).limit(batch)
            )
        ).all()
        if not rows:
            return
        last = rows[-1][0]
        after = (last.created_at, last.id)
        stages = await _stage_times(session, [row[0].id for row in rows])
        yield [
            ExportedCase(
                case=_listed(c, g, t, cat, dept),
                village=_names(v),
                deadline_class=c.deadline_class,
                handled_by_township=c.handled_by_township,
                anonymous=c.anonymous,
                reporter_name=None if c.anonymous else reporter_name,
                contact_phone=None if c.anonymous else c.contact_phone,
                location_text=c.location_text,
                reopen_count=c.reopen_count,
                supervise_count=c.supervise_count,
                rating_comment=c.rating_comment,
                first_response_at=_aware(c.first_response_at),
                stages=stages.get(c.id, {}),
            )
            for c, g, t, cat, dept, v, reporter_name in rows
        ]
        if len(rows) < batch:
            return


async def _stage_times(
    session: AsyncSession, case_ids: list[int]
) -> dict[int, dict[str, datetime | None]]:
    """Stage columns of many cases from one read of their trails (the (case_id, seq) index)."""
    trail = await session.execute(
        select(
            TransitionRow.case_id,
            TransitionRow.action,
            TransitionRow.to_state,
            TransitionRow.from_state,
            TransitionRow.at,
        )
        .where(TransitionRow.case_id.in_(case_ids))
        .order_by(TransitionRow.case_id, TransitionRow.seq)
    )
    found: dict[int, dict[str, datetime]] = {}
    for case_id, action, to_state, from_state, at in trail:
        seen = found.setdefault(case_id, {})
        at = ensure_aware(at)
        seen.setdefault(f"first@{action}", at)
        seen[f"last@{action}"] = at
        if to_state != from_state:
            seen.setdefault(f"first:{to_state}", at)
    result: dict[int, dict[str, datetime | None]] = {}
    for case_id in case_ids:
        seen = found.get(case_id, {})
        result[case_id] = {
            column: max((seen[k] for k in keys if k in seen), default=None)
            for column, keys in STAGE_COLUMNS
        }
    return result


async def failed_messages(
    session: AsyncSession, *, offset: int = 0, limit: int = 50, case_number: str | None = None
) -> tuple[int, list[FailedMessage]]:
    """Outbox messages given up on (blocked bot, chat gone), newest first; found through the
    (status, next_attempt_at) index, so the sent millions are never read."""
    failed = OutboxRow.status == "failed"
    if case_number is not None:
        failed = failed & (OutboxRow.case_number == case_number)
    total = (
        await session.execute(select(func.count()).select_from(OutboxRow).where(failed))
    ).scalar_one()
    rows = await session.execute(
        select(OutboxRow, PersonRow.name)
        .outerjoin(PersonRow, PersonRow.id == OutboxRow.person_id)
        .where(failed)
        .order_by(OutboxRow.id.desc())
        .offset(offset)
        .limit(limit)
    )
    return total, [
        FailedMessage(
            id=m.id,
            channel=m.channel,
            chat_id=m.chat_id,
            case_number=m.case_number,
            person_name=name,
            created_at=ensure_aware(m.created_at),
            attempts=m.attempts,
            error=m.error,
        )
        for m, name in rows
    ]


async def case_contacts(session: AsyncSession, number: str) -> CaseContacts:
    """The reporter's contact (hidden when anonymous) and the handler who accepted or resolved."""
    case = (
        await session.execute(select(CaseRow).where(CaseRow.number == number.strip().upper()))
    ).scalar_one()
    reporter = await session.get(PersonRow, case.reporter_id) if case.reporter_id else None
    handler_id = (
        await session.execute(
            select(TransitionRow.actor_id)
            .where(
                TransitionRow.case_id == case.id,
                TransitionRow.action.in_(("accept", "handle_locally", "resolve", "note")),
                TransitionRow.actor_id.is_not(None),
            )
            .order_by(TransitionRow.seq.desc())
            .limit(1)
        )
    ).scalar_one_or_none()
    handler = await session.get(PersonRow, handler_id) if handler_id else None
    hidden = case.anonymous
    masked: frozenset[int] = frozenset()
    if hidden and case.reporter_id is not None:
        seqs = await session.execute(
            select(TransitionRow.seq).where(
                TransitionRow.case_id == case.id, TransitionRow.actor_id == case.reporter_id
            )
        )
        masked = frozenset(seqs.scalars())
    return CaseContacts(
        reporter_name=None if hidden or reporter is None else reporter.name,
        reporter_phone=None if hidden else _reporter_phone(case, reporter),
        handler_name=handler.name if handler else None,
        handler_phone=handler.phone if handler else None,
        anonymous_seqs=masked,
    )


async def case_photo_mime(session: AsyncSession, number: str, sha256: str) -> str | None:
    """The MIME type of a photo of this case (by its public copy's hash), None if not its own."""
    return (
        await session.execute(
            select(AttachmentRow.mime_type)
            .join(CaseAttachmentRow, CaseAttachmentRow.attachment_id == AttachmentRow.id)
            .join(CaseRow, CaseRow.id == CaseAttachmentRow.case_id)
            .where(CaseRow.number == number.strip().upper(), AttachmentRow.public_sha256 == sha256)
            .limit(1)
        )
    ).scalar_one_or_none()


def _reporter_phone(case: CaseRow, reporter: PersonRow | None) -> str | None:
    """The number given with the report, else the one the reporter is known by."""
    return case.contact_phone or (reporter.phone if reporter else None)
