"""Invite codes: an administrator hands one out, a person redeems it in the chat once.

`enrol` links a chat account to a role (and, for people of the org file, to that person);
`bind_chat` binds a group chat to a unit (a grid group, a township, a department...).
"""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from storage.rows import AreaRow, DepartmentRow, InviteRow, PersonRow, RoleAssignmentRow
from workflow.model import Role

__all__ = [
    "CHAT_PURPOSES",
    "CODE_ALPHABET",
    "CODE_LENGTH",
    "INVITE_PURPOSES",
    "create_invite",
    "describe_invite",
    "new_code",
]

# No 0/O, 1/I/L: a code read aloud or typed from paper comes out right.
CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 8
INVITE_PURPOSES = ("enrol", "bind_chat")
CHAT_PURPOSES = ("grid", "township", "county", "department", "supervisors", "leaders")

_GRID_ROLES = (Role.RESIDENT, Role.GRID_WORKER, Role.GRID_LEADER)
_COUNTY_ROLES = (Role.COUNTY_DISPATCHER, Role.SUPERVISOR, Role.ADMIN)
_TOWNSHIP_KINDS = ("township", "street")


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LENGTH))


async def _area(session: AsyncSession, code: str, kinds: tuple[str, ...], what: str) -> int:
    row = (
        await session.execute(select(AreaRow).where(AreaRow.code == code.strip()))
    ).scalar_one_or_none()
    if row is None or not row.active:
        raise ValueError(f"there is no area with code {code}")
    if row.kind not in kinds:
        raise ValueError(f"{code} is a {row.kind}, not a {what}")
    return row.id


async def _department(session: AsyncSession, code: str) -> int:
    row = (
        await session.execute(select(DepartmentRow).where(DepartmentRow.code == code.strip()))
    ).scalar_one_or_none()
    if row is None or not row.active:
        raise ValueError(f"there is no department with code {code}")
    return row.id


async def _scope(
    session: AsyncSession,
    unit: str,
    area_code: str | None,
    department_code: str | None,
) -> tuple[int | None, int | None]:
    """The area or department a role or a chat serves: unit is grid, township, department or
    county (neither)."""
    needs_area = unit in ("grid", "township")
    if needs_area and not area_code:
        raise ValueError(f"a {unit} invite needs a {unit} code (--area)")
    if unit == "department" and not department_code:
        raise ValueError("a department invite needs a department code (--department)")
    if area_code and not needs_area:
        raise ValueError(f"a {unit} invite takes no area (--area)")
    if department_code and unit != "department":
        raise ValueError(f"a {unit} invite takes no department (--department)")
    if unit == "grid":
        return await _area(session, area_code or "", ("grid",), "grid"), None
    if unit == "township":
        return await _area(session, area_code or "", _TOWNSHIP_KINDS, "township or street"), None
    if unit == "department":
        return None, await _department(session, department_code or "")
    return None, None


def _role_unit(role: Role) -> str:
    if role in _GRID_ROLES:
        return "grid"
    if role is Role.TOWNSHIP_OPERATOR:
        return "township"
    if role is Role.DEPARTMENT_HANDLER:
        return "department"
    return "county"


def _chat_unit(chat_purpose: str) -> str:
    return chat_purpose if chat_purpose in ("grid", "township", "department") else "county"


async def create_invite(
    session: AsyncSession,
    *,
    purpose: str,
    role: str | None = None,
    area_code: str | None = None,
    department_code: str | None = None,
    person_code: str | None = None,
    chat_purpose: str | None = None,
    valid_hours: int = 72,
    now: datetime,
) -> InviteRow:
    """Validate the combination, then add an unused invite to the session (flushed, not
    committed). Mistakes raise ValueError with a one-line English reason."""
    if purpose not in INVITE_PURPOSES:
        raise ValueError(f"unknown invite purpose {purpose!r}: use enrol or bind_chat")
    if valid_hours < 1:
        raise ValueError("an invite must be valid for at least 1 hour")
    area_id: int | None = None
    department_id: int | None = None
    person_id: int | None = None
    if purpose == "enrol":
        if chat_purpose:
            raise ValueError("an enrol invite takes no chat purpose")
        if role is None and person_code is None:
            raise ValueError("an enrol invite needs a role (--role) or a person (--person)")
        role_value: Role | None = None
        if role is not None:
            try:
                role_value = Role(role)
            except ValueError:
                raise ValueError(
                    f"unknown role {role!r}: use one of "
                    + ", ".join(r.value for r in Role if r is not Role.SYSTEM)
                ) from None
            if role_value is Role.SYSTEM:
                raise ValueError("nobody can be enrolled as system")
            area_id, department_id = await _scope(
                session, _role_unit(role_value), area_code, department_code
            )
        elif area_code or department_code:
            raise ValueError("give the role (--role) the area or department is for")
        if person_code is not None:
            person_id = await _person(session, person_code, role_value, area_id, department_id)
        role = role_value.value if role_value else None
    else:
        if role is not None or person_code is not None:
            raise ValueError("a chat invite takes no role and no person")
        if chat_purpose not in CHAT_PURPOSES:
            raise ValueError(
                f"a chat invite needs a purpose, one of {', '.join(CHAT_PURPOSES)}"
                + (f" (not {chat_purpose!r})" if chat_purpose else "")
            )
        area_id, department_id = await _scope(
            session, _chat_unit(chat_purpose), area_code, department_code
        )
    code = new_code()
    while await session.get(InviteRow, code) is not None:
        code = new_code()
    invite = InviteRow(
        code=code,
        purpose=purpose,
        role=role,
        chat_purpose=chat_purpose if purpose == "bind_chat" else None,
        area_id=area_id,
        department_id=department_id,
        person_id=person_id,
        created_at=now,
        expires_at=now + timedelta(hours=valid_hours),
        used_at=None,
        used_by=None,
    )
    session.add(invite)
    await session.flush()
    return invite


async def _person(
    session: AsyncSession,
    code: str,
    role: Role | None,
    area_id: int | None,
    department_id: int | None,
) -> int:
    """An active person of the org file; when a role is named, they must hold it there."""
    person = (
        await session.execute(select(PersonRow).where(PersonRow.code == code.strip()))
    ).scalar_one_or_none()
    if person is None or not person.active:
        raise ValueError(f"there is no person with code {code} in the organisation")
    if role is not None:
        query = select(RoleAssignmentRow.id).where(
            RoleAssignmentRow.person_id == person.id, RoleAssignmentRow.role == role.value
        )
        if area_id is not None:
            query = query.where(RoleAssignmentRow.area_id == area_id)
        if department_id is not None:
            query = query.where(RoleAssignmentRow.department_id == department_id)
        if (await session.execute(query)).first() is None:
            raise ValueError(
                f"{code} does not hold the role {role.value} there in the org file; "
                "add it to the file and load it first"
            )
    return person.id


async def describe_invite(session: AsyncSession, invite: InviteRow) -> dict[str, Any]:
    """What an invite is for, with the names of its area, department and person, for display."""

    def named(row: AreaRow | DepartmentRow | None) -> dict[str, str] | None:
        if row is None:
            return None
        return {"code": row.code, "name_zh": row.name_zh, "name_en": row.name_en}

    area = await session.get(AreaRow, invite.area_id) if invite.area_id else None
    department = (
        await session.get(DepartmentRow, invite.department_id) if invite.department_id else None
    )
    person = await session.get(PersonRow, invite.person_id) if invite.person_id else None
    return {
        "code": invite.code,
        "purpose": invite.purpose,
        "role": invite.role,
        "chat_purpose": invite.chat_purpose,
        "area": named(area),
        "department": named(department),
        "person": {"code": person.code, "name": person.name} if person else None,
        "expires_at": invite.expires_at,
    }
