"""Case repository: maps rows to the Case aggregate and appends its trail entries."""

from __future__ import annotations

from datetime import date
from typing import Any

from sqlalchemy import bindparam, func, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession

from storage.case_memo import known_case, remember_case
from storage.rows import CaseAttachmentRow, CaseCounterRow, CaseRow, TransitionRow
from storage.sql import affected, dialect_of, per_dialect, table_of
from workflow.clock import ensure_aware
from workflow.errors import ConcurrentUpdate, NotFound
from workflow.model import Action, Case, DeadlineClass, Rating, Role, State, TrailEntry
from workflow.states import OPEN_STATES

# Fields copied one to one between the Case dataclass and CaseRow.
_PLAIN = (
    "number", "category_id", "grid_id", "village_id", "township_id", "reporter_id",
    "description", "location_text", "latitude", "longitude", "anonymous", "contact_phone",
    "department_id", "handled_by_township", "duplicate_of", "reopen_count", "supervise_count",
    "rating_comment", "due_provisional", "delivery_failed",
)  # fmt: skip
_TIMES = (
    "created_at", "stage_entered_at", "stage_due_at", "due_basis_at", "due_at", "original_due_at",
    "accepted_at", "resolved_at", "closed_at", "first_response_at", "next_reminder_at",
)  # fmt: skip


# Built once (Core tables, no ORM bookkeeping per execution): every report runs them.
_CASES = table_of(CaseRow)
_TRAIL = table_of(TransitionRow)
_INSERT_CASE = insert(_CASES).returning(_CASES.c.id)
_UPDATE_CASE = update(_CASES).where(
    _CASES.c.id == bindparam("k_id"), _CASES.c.version == bindparam("k_version")
)
_LAST_SEQ = select(func.max(_TRAIL.c.seq)).where(_TRAIL.c.case_id == bindparam("case_id"))
# One statement for a transition's entries (submit and route come together); the rows come back
# in no set order, each with its seq to match it to its entry.
_INSERT_TRAIL = insert(_TRAIL).returning(_TRAIL.c.seq, _TRAIL.c.id)
_INSERT_LINKS = insert(table_of(CaseAttachmentRow))
_COUNTERS = table_of(CaseCounterRow)
_NEXT_NUMBER = per_dialect(
    lambda insert_: (
        insert_(_COUNTERS)
        .values(prefix=bindparam("prefix"), day=bindparam("day"), last=1)
        .on_conflict_do_update(
            index_elements=[_COUNTERS.c.prefix, _COUNTERS.c.day],
            set_={"last": _COUNTERS.c.last + 1},
        )
        .returning(_COUNTERS.c.last)
    )
)


def case_from_row(row: CaseRow) -> Case:
    """Build the aggregate from its row; SQLite's naive datetimes come back as UTC."""
    values: dict[str, Any] = {name: getattr(row, name) for name in _PLAIN}
    for name in _TIMES:
        value = getattr(row, name)
        values[name] = ensure_aware(value) if value is not None else None
    return Case(
        **values,
        state=State(row.state),
        deadline_class=DeadlineClass(row.deadline_class),
        reporter_role=Role(row.reporter_role),
        rating=Rating(row.rating) if row.rating else None,
        id=row.id,
        version=row.version,
    )


def _row_values(case: Case) -> dict[str, Any]:
    values: dict[str, Any] = {name: getattr(case, name) for name in _PLAIN + _TIMES}
    values.update(
        state=case.state.value,
        deadline_class=case.deadline_class.value,
        reporter_role=case.reporter_role.value,
        rating=case.rating.value if case.rating else None,
    )
    return values


def entry_from_row(row: TransitionRow, attachment_ids: tuple[int, ...] = ()) -> TrailEntry:
    return TrailEntry(
        action=Action(row.action),
        from_state=State(row.from_state),
        to_state=State(row.to_state),
        actor_id=row.actor_id,
        actor_role=Role(row.actor_role),
        at=ensure_aware(row.at),
        comment=row.comment,
        data=dict(row.data or {}),
        attachment_ids=attachment_ids,
        seq=row.seq,
    )


class SqlCaseRepository:
    """Cases in SQL; `save` refuses a stale version so two handlers never overwrite each other."""

    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, number: str) -> Case:
        known = known_case(self.session, number.strip())
        if known is not None:  # written by this transaction: as it is now (case_memo.py)
            return known
        row = await self._row(number)
        return case_from_row(row)

    async def _row(self, number: str) -> CaseRow:
        row = (
            await self.session.execute(select(CaseRow).where(CaseRow.number == number.strip()))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("unknown_case", f"no case numbered {number}", case=number)
        return row

    async def add(self, case: Case) -> None:
        result = await self.session.execute(_INSERT_CASE, {**_row_values(case), "version": 1})
        case.id = result.scalar_one()
        case.version = 1
        await self._append(case, first_seq=1)
        remember_case(self.session, case)

    async def save(self, case: Case) -> None:
        if case.id is None:
            raise ValueError("save() needs a case loaded from the repository")
        result = await self.session.execute(
            _UPDATE_CASE,
            {
                **_row_values(case), "version": case.version + 1,
                "k_id": case.id, "k_version": case.version,
            },
        )  # fmt: skip
        if affected(result) != 1:
            raise ConcurrentUpdate(
                message=f"case {case.number} was changed by someone else", case=case.number
            )
        case.version += 1
        last = (await self.session.execute(_LAST_SEQ, {"case_id": case.id})).scalar_one()
        await self._append(case, first_seq=(last or 0) + 1)
        remember_case(self.session, case)

    async def _append(self, case: Case, first_seq: int) -> None:
        entries = case.new_entries
        if not entries:
            return
        result = await self.session.execute(
            _INSERT_TRAIL,
            [
                {
                    "case_id": case.id, "seq": first_seq + offset, "action": entry.action.value,
                    "from_state": entry.from_state.value, "to_state": entry.to_state.value,
                    "actor_id": entry.actor_id, "actor_role": entry.actor_role.value,
                    "comment": entry.comment, "data": entry.data, "at": entry.at,
                }
                for offset, entry in enumerate(entries)
            ],
        )  # fmt: skip
        ids = {seq: id_ for seq, id_ in result}
        links = [
            {
                "case_id": case.id, "transition_id": ids[first_seq + offset],
                "attachment_id": attachment_id, "position": position,
            }
            for offset, entry in enumerate(entries)
            for position, attachment_id in enumerate(entry.attachment_ids)
        ]  # fmt: skip
        if links:
            await self.session.execute(_INSERT_LINKS, links)
        entries.clear()

    async def next_number(self, prefix: str, day: date) -> str:
        """JL-20261121-0042: a per-day counter bumped atomically inside the transaction."""
        stmt = _NEXT_NUMBER[dialect_of(self.session)]
        value = (await self.session.execute(stmt, {"prefix": prefix, "day": day})).scalar_one()
        return f"{prefix}-{day:%Y%m%d}-{value:04d}"

    async def open_cases(self) -> list[Case]:
        rows = await self.session.execute(
            select(CaseRow).where(CaseRow.state.in_([s.value for s in OPEN_STATES]))
        )
        return [case_from_row(row) for row in rows.scalars()]

    async def history(self, number: str) -> list[TrailEntry]:
        case_row = await self._row(number)
        rows = (
            await self.session.execute(
                select(TransitionRow)
                .where(TransitionRow.case_id == case_row.id)
                .order_by(TransitionRow.seq)
            )
        ).scalars()
        links = (
            await self.session.execute(
                select(CaseAttachmentRow.transition_id, CaseAttachmentRow.attachment_id)
                .where(CaseAttachmentRow.case_id == case_row.id)
                .order_by(CaseAttachmentRow.position)
            )
        ).all()
        by_transition: dict[int | None, list[int]] = {}
        for transition_id, attachment_id in links:
            by_transition.setdefault(transition_id, []).append(attachment_id)
        return [entry_from_row(row, tuple(by_transition.get(row.id, ()))) for row in rows]
