"""Read models for people: a case with names instead of ids, lists for operators."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import BindParameter, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.cases import case_from_row
from storage.org_cache import OrgCache
from storage.org_names import OrgNames, names
from storage.rows import (
    AreaRow,
    AttachmentRow,
    CaseAttachmentRow,
    CaseRow,
    CategoryRow,
    DepartmentRow,
    PersonRow,
    TransitionRow,
)
from workflow.clock import ensure_aware
from workflow.errors import NotFound
from workflow.model import Case


@dataclass
class TimelineItem:
    seq: int
    at: datetime
    action: str
    from_state: str
    to_state: str
    actor_name: str | None
    actor_role: str
    comment: str | None
    data: dict[str, Any]
    photos: list[str] = field(default_factory=list)  # sha256 of the public copies


@dataclass
class CaseView:
    case: Case
    category: dict[str, str]
    grid: dict[str, str]
    village: dict[str, str]
    township: dict[str, str]
    department: dict[str, str] | None
    reporter_name: str | None
    timeline: list[TimelineItem]


def _trail_statement() -> Any:
    """One round trip for a case's trail: each entry with its actor's name and its photos (one
    row per photo), and the reporter's name alongside. Built once: every card runs it."""
    actor = aliased(PersonRow)
    case_id: BindParameter[int] = bindparam("case_id")
    reporter = (
        select(PersonRow.name).where(PersonRow.id == bindparam("reporter_id")).scalar_subquery()
    )
    return (
        select(
            TransitionRow, actor.name, CaseAttachmentRow.id, AttachmentRow.public_sha256, reporter
        )
        .outerjoin(actor, actor.id == TransitionRow.actor_id)
        .outerjoin(
            CaseAttachmentRow,
            (CaseAttachmentRow.transition_id == TransitionRow.id)
            & (CaseAttachmentRow.case_id == case_id),
        )
        .outerjoin(AttachmentRow, AttachmentRow.id == CaseAttachmentRow.attachment_id)
        .where(TransitionRow.case_id == case_id)
        .order_by(TransitionRow.seq, CaseAttachmentRow.position)
    )


_TRAIL = _trail_statement()


async def case_view(
    session: AsyncSession, number: str, org: OrgCache | None = None, case: Case | None = None
) -> CaseView:
    """A case with everything its page or `shuoshi case show` prints. With the process's org
    cache the names come from it; a case this transaction already holds is not read again."""
    if case is None:
        row = (
            await session.execute(select(CaseRow).where(CaseRow.number == number.strip().upper()))
        ).scalar_one_or_none()
        if row is None:
            raise NotFound("unknown_case", f"no case numbered {number}", case=number)
        case = case_from_row(row)
    assert case.id is not None
    lookups = OrgNames(session, org)
    areas = await lookups.areas([case.grid_id, case.village_id, case.township_id])
    category = await lookups.category(case.category_id)
    department = await lookups.department(case.department_id) if case.department_id else None
    params = {"case_id": case.id, "reporter_id": case.reporter_id}
    trail = (await session.execute(_TRAIL, params)).all()
    timeline: list[TimelineItem] = []
    for t, name, linked, sha, _reporter in trail:
        if not timeline or timeline[-1].seq != t.seq:
            timeline.append(
                TimelineItem(
                    seq=t.seq,
                    at=ensure_aware(t.at),
                    action=t.action,
                    from_state=t.from_state,
                    to_state=t.to_state,
                    actor_name=name,
                    actor_role=t.actor_role,
                    comment=t.comment,
                    data=dict(t.data or {}),
                )
            )
        if linked is not None:
            timeline[-1].photos.append(sha)
    if trail:
        reporter_name = trail[0][4]
    elif case.reporter_id:  # no trail: never so for a filed case, but still its name
        person = await session.get(PersonRow, case.reporter_id)
        reporter_name = person.name if person else None
    else:
        reporter_name = None
    return CaseView(
        case=case,
        category=category if category is not None else {},
        grid=areas[case.grid_id],
        village=areas[case.village_id],
        township=areas[case.township_id],
        department=department,
        reporter_name=reporter_name,
        timeline=timeline,
    )


async def case_list(
    session: AsyncSession, *, state: str | None = None, limit: int = 50
) -> list[dict[str, Any]]:
    """Newest cases first, with the names an operator needs to recognise them."""
    grid = aliased(AreaRow)
    township = aliased(AreaRow)
    stmt = (
        select(CaseRow, CategoryRow, grid, township, DepartmentRow)
        .join(CategoryRow, CategoryRow.id == CaseRow.category_id)
        .join(grid, grid.id == CaseRow.grid_id)
        .join(township, township.id == CaseRow.township_id)
        .outerjoin(DepartmentRow, DepartmentRow.id == CaseRow.department_id)
        .order_by(CaseRow.created_at.desc(), CaseRow.id.desc())
        .limit(limit)
    )
    if state:
        stmt = stmt.where(CaseRow.state == state)
    rows = (await session.execute(stmt)).all()
    return [
        {
            "case": case_from_row(c),
            "category": names(cat),
            "grid": names(g),
            "township": names(t),
            "department": names(d) if d else None,
        }
        for c, cat, g, t, d in rows
    ]


async def department_names(session: AsyncSession, codes: set[str]) -> dict[str, dict[str, str]]:
    """Names by code, for trail entries that record the department they sent a case to."""
    if not codes:
        return {}
    rows = await session.execute(select(DepartmentRow).where(DepartmentRow.code.in_(codes)))
    return {d.code: names(d) for d in rows.scalars()}
