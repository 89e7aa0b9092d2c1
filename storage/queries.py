"""Read models for people: a case with names instead of ids, lists for operators."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.cases import case_from_row
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


def _names(row: Any) -> dict[str, str]:
    return {"code": row.code, "zh_CN": row.name_zh, "en": row.name_en}


async def case_view(session: AsyncSession, number: str) -> CaseView:
    """A case with everything its page or `shuoshi case show` prints."""
    row = (
        await session.execute(select(CaseRow).where(CaseRow.number == number.strip().upper()))
    ).scalar_one_or_none()
    if row is None:
        raise NotFound("unknown_case", f"no case numbered {number}", case=number)
    areas = {
        a.id: a
        for a in (
            await session.execute(
                select(AreaRow).where(
                    AreaRow.id.in_([row.grid_id, row.village_id, row.township_id])
                )
            )
        ).scalars()
    }
    category = await session.get(CategoryRow, row.category_id)
    department = await session.get(DepartmentRow, row.department_id) if row.department_id else None
    reporter = await session.get(PersonRow, row.reporter_id) if row.reporter_id else None
    actor = aliased(PersonRow)
    trail = (
        await session.execute(
            select(TransitionRow, actor.name)
            .outerjoin(actor, actor.id == TransitionRow.actor_id)
            .where(TransitionRow.case_id == row.id)
            .order_by(TransitionRow.seq)
        )
    ).all()
    photos = (
        await session.execute(
            select(CaseAttachmentRow.transition_id, AttachmentRow.public_sha256)
            .join(AttachmentRow, AttachmentRow.id == CaseAttachmentRow.attachment_id)
            .where(CaseAttachmentRow.case_id == row.id)
            .order_by(CaseAttachmentRow.position)
        )
    ).all()
    by_transition: dict[int | None, list[str]] = {}
    for transition_id, sha in photos:
        by_transition.setdefault(transition_id, []).append(sha)
    timeline = [
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
            photos=by_transition.get(t.id, []),
        )
        for t, name in trail
    ]
    return CaseView(
        case=case_from_row(row),
        category=_names(category),
        grid=_names(areas[row.grid_id]),
        village=_names(areas[row.village_id]),
        township=_names(areas[row.township_id]),
        department=_names(department) if department else None,
        reporter_name=reporter.name if reporter else None,
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
            "category": _names(cat),
            "grid": _names(g),
            "township": _names(t),
            "department": _names(d) if d else None,
        }
        for c, cat, g, t, d in rows
    ]


async def department_names(session: AsyncSession, codes: set[str]) -> dict[str, dict[str, str]]:
    """Names by code, for trail entries that record the department they sent a case to."""
    if not codes:
        return {}
    rows = await session.execute(select(DepartmentRow).where(DepartmentRow.code.in_(codes)))
    return {d.code: _names(d) for d in rows.scalars()}
