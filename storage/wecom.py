"""WeCom's SQL: the cards members were sent (the code that updates each once) and the app
group chats (appchat) bound to units. Each method is a short transaction of its own (the WeCom
channel and `shuoshi wecom` call them outside turns)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.rows import (
    AreaRow,
    ChatBindingRow,
    DepartmentRow,
    IdentityRow,
    PersonRow,
    RoleAssignmentRow,
    WeComCardRow,
)
from storage.sql import upsert
from workflow.model import Role

CHANNEL = "wecom"
APPCHAT_PREFIX = "appchat:"  # a bound group chat's chat id; member userids never hold ":"
# Who is in a unit's group chat: the roles that act for it (a grid's: its leader and workers).
UNIT_ROLES: dict[str, tuple[Role, ...]] = {
    "grid": (Role.GRID_LEADER, Role.GRID_WORKER),
    "township": (Role.TOWNSHIP_OPERATOR,),
    "department": (Role.DEPARTMENT_HANDLER,),
    "county": (Role.COUNTY_DISPATCHER,),
    "supervisors": (Role.SUPERVISOR,),
    "leaders": (Role.SUPERVISOR, Role.ADMIN),
}
_AREA_PURPOSE = {"grid": "grid", "township": "township", "street": "township"}


@dataclass(frozen=True)
class Unit:
    """A unit a group chat can serve: its chat purpose and area or department."""

    code: str
    purpose: str
    name: str
    area_id: int | None = None
    department_id: int | None = None

    @property
    def chatid(self) -> str:
        """The appchat id we give WeCom: at most 32 of 0-9a-zA-Z, the same for the same unit
        (so creating it twice is refused by WeCom, not made twice)."""
        return "ss" + hashlib.sha256(f"{self.purpose}:{self.code}".encode()).hexdigest()[:24]


class WeComStore:
    def __init__(self, sessions: async_sessionmaker[AsyncSession], account: str) -> None:
        self.sessions = sessions
        self.account = account

    # Cards -----------------------------------------------------------------------------------

    async def card_code(self, task_id: str, userid: str, code: str, now: datetime) -> None:
        """A card's newest update code: from sending it, or from a press of its buttons."""
        async with self.sessions() as session:
            values = {"account": self.account, "task_id": task_id[:128], "userid": userid[:64],
                      "response_code": code[:512], "code_at": now}  # fmt: skip
            stmt = upsert(session, WeComCardRow).values(**values)
            stmt = stmt.on_conflict_do_update(
                index_elements=[WeComCardRow.account, WeComCardRow.task_id],
                set_={"response_code": code[:512], "code_at": now},
            )
            await session.execute(stmt)
            await session.commit()

    async def code_of(self, task_id: str) -> tuple[str, str, datetime] | None:
        """(userid, unused code, when it was given) of a card, or None."""
        async with self.sessions() as session:
            row = await session.get(WeComCardRow, (self.account, task_id))
            if row is None or not row.response_code:
                return None
            return row.userid, row.response_code, row.code_at

    async def spend(self, task_id: str, code: str) -> None:
        """The code was used (each updates a card once); a newer one stays."""
        async with self.sessions() as session:
            await session.execute(
                update(WeComCardRow)
                .where(
                    WeComCardRow.account == self.account,
                    WeComCardRow.task_id == task_id,
                    WeComCardRow.response_code == code,
                )
                .values(response_code=None)
            )
            await session.commit()

    # Units and their group chats -------------------------------------------------------------

    async def unit(self, code: str) -> Unit | None:
        """A grid, township/street or department by its code, or county / supervisors /
        leaders by that word; None when there is no such unit."""
        code = code.strip()
        if code in ("county", "supervisors", "leaders"):
            return Unit(code, code, code)
        async with self.sessions() as session:
            area = (
                await session.execute(
                    select(AreaRow).where(AreaRow.code == code, AreaRow.active.is_(True))
                )
            ).scalar_one_or_none()
            if area is not None and area.kind in _AREA_PURPOSE:
                return Unit(code, _AREA_PURPOSE[area.kind], area.name_zh, area_id=area.id)
            dept = (
                await session.execute(
                    select(DepartmentRow).where(
                        DepartmentRow.code == code, DepartmentRow.active.is_(True)
                    )
                )
            ).scalar_one_or_none()
            if dept is not None:
                return Unit(code, "department", dept.name_zh, department_id=dept.id)
        return None

    async def members(self, unit: Unit) -> list[str]:
        """The WeCom userids of the active people acting for the unit, in the file's order."""
        roles = [r.value for r in UNIT_ROLES[unit.purpose]]
        query = (
            select(IdentityRow.external_id)
            .join(PersonRow, PersonRow.id == IdentityRow.person_id)
            .join(RoleAssignmentRow, RoleAssignmentRow.person_id == PersonRow.id)
            .where(
                IdentityRow.channel == CHANNEL,
                PersonRow.active.is_(True),
                RoleAssignmentRow.role.in_(roles),
            )
            .order_by(PersonRow.id)
        )
        if unit.area_id is not None:
            query = query.where(RoleAssignmentRow.area_id == unit.area_id)
        if unit.department_id is not None:
            query = query.where(RoleAssignmentRow.department_id == unit.department_id)
        async with self.sessions() as session:
            found = (await session.execute(query)).scalars().all()
        return list(dict.fromkeys(found))

    async def bind(self, unit: Unit, chat_id: str, now: datetime) -> bool:
        """The group chat serves the unit from now on; False when it already did."""
        async with self.sessions() as session:
            query = select(ChatBindingRow.id).where(
                ChatBindingRow.channel == CHANNEL,
                ChatBindingRow.chat_id == chat_id,
                ChatBindingRow.purpose == unit.purpose,
            )
            if (await session.execute(query)).first() is not None:
                return False
            session.add(
                ChatBindingRow(
                    channel=CHANNEL, chat_id=chat_id, purpose=unit.purpose,
                    area_id=unit.area_id, department_id=unit.department_id, created_at=now,
                )
            )  # fmt: skip
            await session.commit()
        return True
