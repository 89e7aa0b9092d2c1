"""Writing a validated county file to the database: insert, update, deactivate, and report."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.org_cache import bump
from storage.org_file.identities import sync_wecom_ids
from storage.org_file.parser import KIND_LEVEL, read_org_file
from storage.org_file.spec import AreaSpec, OrgSpec
from storage.rows import (
    AreaRow,
    CategoryRow,
    DepartmentRow,
    PersonRow,
    ResponsibilityRow,
    RoleAssignmentRow,
)

# Keeps IN lists well under the bind-parameter limits of SQLite and asyncpg.
_CHUNK = 500


# ---------------------------------------------------------------------------------------------
# The report


@dataclass
class KindCounts:
    """Rows of one kind; for link rows (responsibilities, roles) deactivated means deleted."""

    created: int = 0
    updated: int = 0
    unchanged: int = 0
    deactivated: int = 0

    @property
    def changed(self) -> bool:
        return bool(self.created or self.updated or self.deactivated)

    def brief(self) -> str:
        return f"+{self.created} ~{self.updated} -{self.deactivated} ={self.unchanged}"


@dataclass
class OrgLoadReport:
    """What a load did, per kind, for the CLI and the audit log."""

    path: Path
    county: str
    areas: KindCounts = field(default_factory=KindCounts)
    categories: KindCounts = field(default_factory=KindCounts)
    departments: KindCounts = field(default_factory=KindCounts)
    responsibilities: KindCounts = field(default_factory=KindCounts)
    people: KindCounts = field(default_factory=KindCounts)
    role_assignments: KindCounts = field(default_factory=KindCounts)

    def kinds(self) -> dict[str, KindCounts]:
        return {
            "areas": self.areas,
            "categories": self.categories,
            "departments": self.departments,
            "responsibilities": self.responsibilities,
            "people": self.people,
            "role_assignments": self.role_assignments,
        }

    @property
    def changed(self) -> bool:
        return any(c.changed for c in self.kinds().values())

    def summary(self) -> str:
        """One line for the operator's terminal."""
        kinds = self.kinds()
        if not self.changed:
            sizes = ", ".join(f"{c.unchanged} {name}" for name, c in kinds.items())
            return f"county {self.county} from {self.path.name}: no changes ({sizes})"
        parts = ", ".join(f"{name} {c.brief()}" for name, c in kinds.items())
        return (
            f"county {self.county} from {self.path.name}: {parts} "
            "(+created ~updated -deactivated =unchanged)"
        )


# ---------------------------------------------------------------------------------------------
# Writing


def _table(row: type[Any]) -> Table:
    return row.__table__


def _chunks(items: Sequence[Any], size: int = _CHUNK) -> Iterable[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


async def _insert(
    session: AsyncSession, row: type[Any], rows: list[dict[str, Any]]
) -> dict[str, int]:
    """Batched insert of coded rows; returns code -> new id."""
    if not rows:
        return {}
    table = _table(row)
    result = await session.execute(insert(table).returning(table.c.code, table.c.id), rows)
    return {code: id_ for code, id_ in result.all()}


async def _update_by_id(
    session: AsyncSession, row: type[Any], updates: list[dict[str, Any]]
) -> None:
    """Batched updates by primary key, one executemany per set of changed columns."""
    table = _table(row)
    groups: dict[tuple[str, ...], list[dict[str, Any]]] = defaultdict(list)
    for change in updates:
        columns = tuple(sorted(k for k in change if k != "id"))
        groups[columns].append({f"b_{k}": v for k, v in change.items()})
    for columns, params in groups.items():
        stmt = (
            update(table)
            .where(table.c.id == bindparam("b_id"))
            .values({c: bindparam(f"b_{c}") for c in columns})
        )
        await session.execute(stmt, params)


async def _sync_coded(
    session: AsyncSession,
    row: type[Any],
    desired: dict[str, dict[str, Any]],
    columns: Sequence[str],
    counts: KindCounts,
    defaults: dict[str, Any] | None = None,
) -> dict[str, int]:
    """Match rows by code: insert new, update what differs, deactivate what left the file."""
    table = _table(row)
    query = select(table.c.id, table.c.code, table.c.active, *(table.c[c] for c in columns))
    current = {
        r.code: r._mapping
        for r in (await session.execute(query.where(table.c.code.is_not(None)))).all()
    }
    ids: dict[str, int] = {}
    inserts: list[dict[str, Any]] = []
    updates: list[dict[str, Any]] = []
    for code, values in desired.items():
        want = {**values, "active": True}
        have = current.get(code)
        if have is None:
            inserts.append({"code": code, **(defaults or {}), **want})
            continue
        ids[code] = have["id"]
        diff = {k: v for k, v in want.items() if have[k] != v}
        if diff:
            updates.append({"id": have["id"], **diff})
            counts.updated += 1
        else:
            counts.unchanged += 1
    for code, have in current.items():
        if code not in desired and have["active"]:
            updates.append({"id": have["id"], "active": False})
            counts.deactivated += 1
    await _update_by_id(session, row, updates)
    ids.update(await _insert(session, row, inserts))
    counts.created += len(inserts)
    return ids


async def _sync_areas(
    session: AsyncSession, areas: Sequence[AreaSpec], counts: KindCounts
) -> dict[str, int]:
    """Areas go in level by level so every new row's parent already has an id."""
    table = _table(AreaRow)
    columns = (
        "kind", "name_zh", "name_en", "parent_id", "township_id", "village_id", "active",
        "latitude", "longitude",
    )  # fmt: skip
    query = select(table.c.id, table.c.code, *(table.c[c] for c in columns))
    current = {r.code: r._mapping for r in (await session.execute(query)).all()}
    ids = {code: have["id"] for code, have in current.items()}
    levels: list[list[AreaSpec]] = [[] for _ in range(4)]
    for area in areas:
        levels[KIND_LEVEL[area.kind]].append(area)
    updates: list[dict[str, Any]] = []
    for level in levels:
        inserts: list[dict[str, Any]] = []
        for area in level:
            # A new township/village refers to itself, which only has an id after the insert.
            want = {
                "kind": area.kind,
                "name_zh": area.name_zh,
                "name_en": area.name_en,
                "parent_id": ids[area.parent] if area.parent else None,
                "township_id": ids.get(area.township) if area.township else None,
                "village_id": ids.get(area.village) if area.village else None,
                "active": True,
                "latitude": area.latitude,
                "longitude": area.longitude,
            }
            have = current.get(area.code)
            if have is None:
                inserts.append({"code": area.code, **want})
                continue
            diff = {k: v for k, v in want.items() if have[k] != v}
            if diff:
                updates.append({"id": have["id"], **diff})
                counts.updated += 1
            else:
                counts.unchanged += 1
        ids.update(await _insert(session, AreaRow, inserts))
        counts.created += len(inserts)
        for row in inserts:
            if row["kind"] in ("township", "street"):
                updates.append({"id": ids[row["code"]], "township_id": ids[row["code"]]})
            elif row["kind"] in ("village", "community"):
                updates.append({"id": ids[row["code"]], "village_id": ids[row["code"]]})
    in_file = {a.code for a in areas}
    for code, have in current.items():
        if code not in in_file and have["active"]:
            updates.append({"id": have["id"], "active": False})
            counts.deactivated += 1
    await _update_by_id(session, AreaRow, updates)
    return ids


async def _sync_responsibilities(
    session: AsyncSession,
    spec: OrgSpec,
    departments: dict[str, int],
    categories: dict[str, int],
    counts: KindCounts,
) -> None:
    """The responsibility list is replaced by the file's; rows have no history to keep."""
    table = _table(ResponsibilityRow)
    rows = await session.execute(
        select(table.c.department_id, table.c.category_id, table.c.primary)
    )
    current = {(d, c): bool(p) for d, c, p in rows.all()}
    want = {(departments[d], categories[c]): primary for d, c, primary in spec.responsibilities()}
    inserts = [
        {"department_id": d, "category_id": c, "primary": p}
        for (d, c), p in want.items()
        if (d, c) not in current
    ]
    flips = [
        {"b_d": d, "b_c": c, "b_p": p}
        for (d, c), p in want.items()
        if (d, c) in current and current[d, c] != p
    ]
    gone: dict[int, list[int]] = defaultdict(list)
    for d, c in current:
        if (d, c) not in want:
            gone[d].append(c)
    for dept_id, cats in gone.items():
        await session.execute(
            delete(table).where(table.c.department_id == dept_id, table.c.category_id.in_(cats))
        )
    if flips:
        stmt = (
            update(table)
            .where(table.c.department_id == bindparam("b_d"))
            .where(table.c.category_id == bindparam("b_c"))
            .values(primary=bindparam("b_p"))
        )
        await session.execute(stmt, flips)
    if inserts:
        await session.execute(insert(table), inserts)
    counts.created += len(inserts)
    counts.updated += len(flips)
    counts.deactivated += sum(len(c) for c in gone.values())
    counts.unchanged += len(want) - len(inserts) - len(flips)


async def _sync_roles(
    session: AsyncSession,
    spec: OrgSpec,
    people: dict[str, int],
    areas: dict[str, int],
    departments: dict[str, int],
    counts: KindCounts,
) -> None:
    """Each listed person holds exactly the file's roles; people who left the file hold none."""
    ra = _table(RoleAssignmentRow)
    person = _table(PersonRow)
    query = (
        select(ra.c.id, person.c.code, ra.c.role, ra.c.area_id, ra.c.department_id)
        .join(person, person.c.id == ra.c.person_id)
        # Residents who enrolled in the chat have no code and are not the file's business.
        .where(person.c.code.is_not(None))
        .order_by(ra.c.id)
    )
    current: dict[str, list[tuple[int, tuple[str, int | None, int | None]]]] = defaultdict(list)
    for id_, code, role, area_id, dept_id in (await session.execute(query)).all():
        current[code].append((id_, (role, area_id, dept_id)))
    doomed: list[int] = []
    inserts: list[dict[str, Any]] = []
    for p in spec.people:
        wanted = [
            (
                r.role,
                areas[r.area] if r.area else None,
                departments[r.department] if r.department else None,
            )
            for r in p.roles
        ]
        missing = set(wanted)
        for id_, key in current.pop(p.code, []):
            if key in missing:
                missing.discard(key)
                counts.unchanged += 1
            else:
                doomed.append(id_)
        inserts.extend(
            {"person_id": people[p.code], "role": role, "area_id": area, "department_id": dept}
            for role, area, dept in wanted
            if (role, area, dept) in missing
        )
    for leftovers in current.values():
        doomed.extend(id_ for id_, _ in leftovers)
    for chunk in _chunks(doomed):
        await session.execute(delete(ra).where(ra.c.id.in_(chunk)))
    if inserts:
        await session.execute(insert(ra), inserts)
    counts.created += len(inserts)
    counts.deactivated += len(doomed)


async def apply_org(
    session: AsyncSession, spec: OrgSpec, *, now: datetime | None = None
) -> OrgLoadReport:
    """Write a validated county into the session's transaction; flushes, never commits."""
    await session.flush()
    await bump(session)  # every process rereads grids and categories at its next transaction
    report = OrgLoadReport(path=spec.path, county=spec.county)
    categories = await _sync_coded(
        session,
        CategoryRow,
        {
            c.code: {"name_zh": c.name_zh, "name_en": c.name_en, "deadline_class": c.deadline_class}
            for c in spec.categories
        },
        ("name_zh", "name_en", "deadline_class"),
        report.categories,
    )
    departments = await _sync_coded(
        session,
        DepartmentRow,
        {d.code: {"name_zh": d.name_zh, "name_en": d.name_en} for d in spec.departments},
        ("name_zh", "name_en"),
        report.departments,
    )
    areas = await _sync_areas(session, spec.areas, report.areas)
    await _sync_responsibilities(session, spec, departments, categories, report.responsibilities)
    desired_people: dict[str, dict[str, Any]] = {}
    for p in spec.people:
        values: dict[str, Any] = {"name": p.name}
        if p.phone_given:
            values["phone"] = p.phone
        if p.language is not None:
            values["language"] = p.language
        desired_people[p.code] = values
    people = await _sync_coded(
        session,
        PersonRow,
        desired_people,
        ("name", "phone", "language"),
        report.people,
        defaults={"phone": None, "language": "zh_CN", "created_at": now or datetime.now(UTC)},
    )
    await _sync_roles(session, spec, people, areas, departments, report.role_assignments)
    await sync_wecom_ids(session, spec, people, now or datetime.now(UTC))
    await session.flush()
    return report


async def load_org(session: AsyncSession, path: Path) -> OrgLoadReport:
    """Validate the file, then bring the session's database in line with it; the caller commits."""
    spec = read_org_file(path)
    return await apply_org(session, spec)


async def load_org_file(
    session_factory: async_sessionmaker[AsyncSession], path: Path
) -> OrgLoadReport:
    """Load a county file in one transaction of its own: all of it or, on any error, none."""
    spec = read_org_file(path)
    async with session_factory() as session, session.begin():
        return await apply_org(session, spec)
