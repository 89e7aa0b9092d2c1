"""What chats show of a case: the card units act on, and the resident's own view of it."""

from __future__ import annotations

from typing import Any

from sqlalchemy import ColumnElement, and_, bindparam, select
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm import aliased

from storage.case_memo import known_card, known_case, remember_card
from storage.org_cache import OrgCache
from storage.org_names import OrgNames
from storage.queries import case_view
from storage.rows import (
    CaseRow,
    DepartmentRow,
    IdentityRow,
    PersonRow,
    RoleAssignmentRow,
)
from workflow.cards import CaseCard, ProposedDepartment
from workflow.channels import ALL_CHANNELS
from workflow.model import Role
from workflow.table import REPORTER_TIMELINE

# A staff member's web chat (storage/webchat.py's CHANNEL and PERSON_PREFIX, repeated here:
# importing that module from this one would be circular).
WEB_CHANNEL = "web"
PERSON_PREFIX = "p-"
# Trail entries a reporter sees in /my: the steps they are told of (workflow/table.py decides);
# internal ones (returns, reclassification, supervision) stay inside.
PUBLIC_ACTIONS = frozenset(a.value for a in REPORTER_TIMELINE)


class CaseCards:
    """Read side for chat messages; mixed into SqlChannelStore's unit of work."""

    session: AsyncSession
    org_cache: OrgCache | None

    async def case_card(self, number: str) -> CaseCard:
        """The card as the case stands in this transaction: built once per transaction (every
        event of a command, the reply after it) and again only after the case is written."""
        card = known_card(self.session, number)
        if card is None:
            card = await self._case_card(number)
            remember_card(self.session, card)
        return card

    async def _case_card(self, number: str) -> CaseCard:
        org = self.org_cache
        view = await case_view(self.session, number, org, known_case(self.session, number))
        case = view.case
        report_photos = view.timeline[0].photos if view.timeline else []
        resolved = [t for t in view.timeline if t.action == "resolve"]
        owners = await OrgNames(self.session, org).owners(case.category_id)
        department_name = view.department or {}
        last = view.timeline[-1] if view.timeline else None
        return CaseCard(
            number=case.number,
            state=case.state.value,
            category=view.category,
            deadline_class=case.deadline_class.value,
            grid=view.grid,
            village=view.village,
            township=view.township,
            grid_id=case.grid_id,
            township_id=case.township_id,
            department_id=case.department_id,
            department=department_name,
            handled_by_township=case.handled_by_township,
            description=case.description,
            location_text=case.location_text,
            latitude=case.latitude,
            longitude=case.longitude,
            anonymous=case.anonymous,
            contact_phone=None if case.anonymous else case.contact_phone,
            reporter_name=None if case.anonymous else view.reporter_name,
            reporter_id=case.reporter_id,
            reporter_role=case.reporter_role.value if case.reporter_role else None,
            created_at=case.created_at,
            due_at=case.due_at,
            stage_due_at=case.stage_due_at,
            due_provisional=case.due_provisional,
            report_photos=report_photos,
            result_photos=resolved[-1].photos if resolved else [],
            result_text=resolved[-1].comment if resolved else None,
            last_comment=last.comment if last else None,
            last_photos=last.photos if last else [],
            rating=case.rating.value if case.rating else None,
            proposed_departments=[
                ProposedDepartment(code=code, name=zh, name_en=en) for code, zh, en in owners
            ],
        )

    async def case_summary(self, number: str, person_id: int) -> dict[str, Any] | None:
        """The reporter's view of their own case; None for anybody else's."""
        row = (
            await self.session.execute(select(CaseRow).where(CaseRow.number == number))
        ).scalar_one_or_none()
        if row is None or row.reporter_id != person_id:
            return None
        view = await case_view(self.session, number)
        codes = {t.data["department"] for t in view.timeline if t.data.get("department")}
        names = dict(
            (
                await self.session.execute(
                    select(DepartmentRow.code, DepartmentRow.name_zh).where(
                        DepartmentRow.code.in_(codes)
                    )
                )
            ).all()
        )
        return {
            "number": number,
            "state": view.case.state.value,
            "description": view.case.description,
            "timeline": [
                {
                    "at": t.at,
                    "action": t.action,
                    "comment": t.comment if t.action in ("resolve", "screen_invalid") else None,
                    "unit": names.get(t.data.get("department", "")),
                }
                for t in view.timeline
                if t.action in PUBLIC_ACTIONS
            ],
        }

    async def cases_of_reporter(self, person_id: int, limit: int = 10) -> list[dict[str, Any]]:
        rows = await self.session.execute(
            select(CaseRow.number, CaseRow.state)
            .where(CaseRow.reporter_id == person_id)
            .order_by(CaseRow.created_at.desc(), CaseRow.id.desc())
            .limit(limit)
        )
        return [{"number": n, "state": s} for n, s in rows.all()]

    async def private_chats_of(self, person_id: int) -> list[tuple[str, str, str]]:
        """(channel, chat id, locale) of a person's private chats: there chat id == user id."""
        rows = await self.session.execute(
            select(IdentityRow.channel, IdentityRow.external_id, PersonRow.language)
            .join(PersonRow, PersonRow.id == IdentityRow.person_id)
            .where(IdentityRow.person_id == person_id, PersonRow.active.is_(True))
            .order_by(IdentityRow.id)
        )
        return [(c, e, lang) for c, e, lang in rows.all()]

    async def private_chats_with_role(
        self, role: Role, *, area_id: int | None = None, department_id: int | None = None,
        channels: frozenset[str] = ALL_CHANNELS,
    ) -> list[tuple[str, str, str]]:  # fmt: skip
        """Private chats, on the delivered `channels`, of everyone holding `role` over that area
        or department. A staff web workspace is among them only for a person with no chat
        account elsewhere (as desk_chats_with_role): one in Telegram too gets each card there,
        not twice."""
        return await self._chats_holding("private", role, area_id, department_id, channels)

    async def desk_chats_with_role(
        self, role: Role, *, area_id: int | None = None, department_id: int | None = None,
        channels: frozenset[str] = ALL_CHANNELS,
    ) -> list[tuple[str, str, str]]:  # fmt: skip
        """The staff web workspaces (web chats "p-<code>") of people holding `role` over that
        area or department who have no chat account on any other delivered channel: a unit's
        bound group chat does not reach a clerk who has no Telegram or WeChat, so their
        workspace gets the unit's cards too (as it does when their only account is on a
        channel this deployment does not deliver)."""
        return await self._chats_holding("desk", role, area_id, department_id, channels)

    async def _chats_holding(
        self, kind: str, role: Role, area_id: int | None, department_id: int | None,
        channels: frozenset[str],
    ) -> list[tuple[str, str, str]]:  # fmt: skip
        """(channel, chat, language) of the active people holding `role` there, each chat once
        (one person may hold the role over several grids)."""
        stmt = _HOLDING[kind, area_id is not None, department_id is not None]
        params = {
            "role": role.value, "area_id": area_id, "department_id": department_id,
            # Sorted: the same set gives the same parameters, in any process.
            "channels": sorted(channels),
        }  # fmt: skip
        seen: dict[tuple[str, str], str] = {}
        for c, e, lang in (await self.session.execute(stmt, params)).all():
            seen.setdefault((c, e), lang)
        return [(c, e, lang) for (c, e), lang in seen.items()]


def _workspace() -> ColumnElement[bool]:
    """The identity is a staff web workspace (a web chat "p-<code>")."""
    return and_(
        IdentityRow.channel == WEB_CHANNEL, IdentityRow.external_id.startswith(PERSON_PREFIX)
    )


def _delivered(column: Any) -> ColumnElement[bool]:
    """The channel is one this deployment delivers (the bound list `channels`: the statements
    stay built once, whatever the settings)."""
    return column.in_(bindparam("channels", expanding=True))


def _has_chat_elsewhere() -> ColumnElement[bool]:
    """The identity's person has a chat account on a delivered channel other than the web
    chat: an account on a channel nobody sends to reaches nobody, so it does not count."""
    other = aliased(IdentityRow)
    return (
        select(other.id).where(
            other.person_id == PersonRow.id, other.channel != WEB_CHANNEL, _delivered(other.channel)
        )
    ).exists()


def _holding_statement(kind: str, by_area: bool, by_department: bool) -> Any:
    """The chats of a role's holders on delivered channels: "private" all but the workspaces
    of people with a chat elsewhere, "desk" only those workspaces. Built once per shape: every
    new case runs one."""
    workspace, elsewhere = _workspace(), _has_chat_elsewhere()
    which = ~(workspace & elsewhere) if kind == "private" else workspace & ~elsewhere
    which = which & _delivered(IdentityRow.channel)
    stmt = (
        select(IdentityRow.channel, IdentityRow.external_id, PersonRow.language)
        .join(PersonRow, PersonRow.id == IdentityRow.person_id)
        .join(RoleAssignmentRow, RoleAssignmentRow.person_id == PersonRow.id)
        .where(RoleAssignmentRow.role == bindparam("role"), PersonRow.active.is_(True), which)
        .order_by(IdentityRow.id)
    )
    if by_area:
        stmt = stmt.where(RoleAssignmentRow.area_id == bindparam("area_id"))
    if by_department:
        stmt = stmt.where(RoleAssignmentRow.department_id == bindparam("department_id"))
    return stmt


_HOLDING = {
    (kind, by_area, by_department): _holding_statement(kind, by_area, by_department)
    for kind in ("private", "desk")
    for by_area in (False, True)
    for by_department in (False, True)
}
