"""The county file: loads, reloads idempotently, updates in place, and rejects bad files whole."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import insert, select, update
from sqlalchemy.ext.asyncio import AsyncEngine

from storage.db import session_factory
from storage.org_file import (
    OrgFileError,
    OrgLoadReport,
    load_org,
    load_org_file,
    parse_org_text,
    read_org_file,
)
from storage.org_generate import generate_county
from storage.rows import (
    AreaRow,
    CategoryRow,
    DepartmentRow,
    PersonRow,
    ResponsibilityRow,
    RoleAssignmentRow,
)
from tests.conftest import EXAMPLE_COUNTY
from workflow.model import HUMAN_ROLES

ORG_ROWS = (AreaRow, CategoryRow, DepartmentRow, ResponsibilityRow, PersonRow, RoleAssignmentRow)


async def dump(engine: AsyncEngine) -> dict[str, list[tuple[Any, ...]]]:
    """Every row of every org table, in primary-key order."""
    out = {}
    async with engine.connect() as conn:
        for row in ORG_ROWS:
            table = row.__table__
            result = await conn.execute(select(table).order_by(*table.primary_key.columns))
            out[table.name] = [tuple(r) for r in result.all()]
    return out


async def load(engine: AsyncEngine, path: Path) -> OrgLoadReport:
    return await load_org_file(session_factory(engine), path)


async def ids_by_code(engine: AsyncEngine, row: Any) -> dict[str, int]:
    async with engine.connect() as conn:
        return dict((await conn.execute(select(row.code, row.id))).all())


def write(tmp_path: Path, text: str, name: str = "county.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


# ---------------------------------------------------------------------------------------------
# The example county


async def test_example_county_loads_every_route(engine: AsyncEngine) -> None:
    report = await load(engine, EXAMPLE_COUNTY)

    assert report.county == "JL"
    assert report.changed
    assert report.areas.created == 19
    assert report.people.created == 27
    async with engine.connect() as conn:
        areas = (await conn.execute(select(AreaRow.__table__))).mappings().all()
        categories = (await conn.execute(select(CategoryRow.__table__))).mappings().all()
        departments = (await conn.execute(select(DepartmentRow.code))).scalars().all()
        roles = (await conn.execute(select(RoleAssignmentRow.role))).scalars().all()
        resp = (
            await conn.execute(
                select(DepartmentRow.code, CategoryRow.code, ResponsibilityRow.primary)
                .join(DepartmentRow, DepartmentRow.id == ResponsibilityRow.department_id)
                .join(CategoryRow, CategoryRow.id == ResponsibilityRow.category_id)
            )
        ).all()
    kinds = Counter(a["kind"] for a in areas)
    assert kinds == {
        "county": 1,
        "township": 1,
        "street": 1,
        "village": 2,
        "community": 2,
        "grid": 12,
    }
    assert all(a["active"] for a in areas)
    assert len(departments) == 6
    assert {c["code"]: c["deadline_class"] for c in categories} == {
        "safety": "general",
        "sanitation": "general",
        "illegal_construction": "general",
        "dispute": "general",
        "livelihood": "livelihood",
        "piling": "general",
        "public_security": "general",
        "emergency": "emergency",
    }
    assert set(roles) == set(HUMAN_ROLES)
    assert Counter(roles)["grid_worker"] == 12

    by_id = {a["id"]: a for a in areas}
    by_code = {a["code"]: a for a in areas}
    grid = by_code["JL-CG-02-G3"]
    assert by_id[grid["parent_id"]]["code"] == "JL-CG-02"
    assert by_id[grid["village_id"]]["code"] == "JL-CG-02"
    assert by_id[grid["township_id"]]["code"] == "JL-CG"
    for a in areas:
        if a["kind"] == "grid":
            assert a["township_id"] is not None and a["village_id"] is not None
    village = by_code["JL-XGC-02"]
    assert (village["township_id"], village["village_id"]) == (
        by_code["JL-XGC"]["id"],
        village["id"],
    )
    township = by_code["JL-XGC"]
    assert (township["township_id"], township["village_id"]) == (township["id"], None)
    county = by_code["JL"]
    assert (county["parent_id"], county["township_id"], county["village_id"]) == (None, None, None)

    # housing is listed before water for safety, so it is the primary owner.
    assert ("housing", "safety", True) in resp
    assert ("water", "safety", False) in resp
    assert len(resp) == 9


async def test_loading_twice_changes_nothing(engine: AsyncEngine) -> None:
    await load(engine, EXAMPLE_COUNTY)
    before = await dump(engine)

    report = await load(engine, EXAMPLE_COUNTY)

    assert await dump(engine) == before
    assert not report.changed
    for counts in report.kinds().values():
        assert (counts.created, counts.updated, counts.deactivated) == (0, 0, 0)
    assert report.areas.unchanged == 19
    assert report.role_assignments.unchanged == len(before["role_assignments"])
    assert "no changes" in report.summary()
    assert "\n" not in report.summary()


async def test_load_org_only_flushes_and_the_caller_commits(engine: AsyncEngine) -> None:
    factory = session_factory(engine)
    async with factory() as session:
        report = await load_org(session, EXAMPLE_COUNTY)
        assert report.areas.created == 19
        await session.rollback()
    assert await dump(engine) == {row.__tablename__: [] for row in ORG_ROWS}

    async with factory() as session:
        await load_org(session, EXAMPLE_COUNTY)
        await session.commit()
    assert len((await dump(engine))["areas"]) == 19


async def test_edited_file_updates_in_place_and_deactivates(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    original = EXAMPLE_COUNTY.read_text(encoding="utf-8")
    await load(engine, EXAMPLE_COUNTY)
    area_ids = await ids_by_code(engine, AreaRow)
    person_ids = await ids_by_code(engine, PersonRow)
    dept_ids = await ids_by_code(engine, DepartmentRow)
    category_ids = await ids_by_code(engine, CategoryRow)

    edited = original
    for old, new in [
        # rename a grid
        ("zh_CN: 西郭城村第一网格", "zh_CN: 西郭城村一组网格"),
        # move the township operator to the street
        ("township_operator, areas: [JL-XGC]}", "township_operator, areas: [JL-CG]}"),
        # housing gives up safety; water, which also owns it, becomes primary
        ("categories: [safety]\n  - code: water", "categories: []\n  - code: water"),
        # a grid and its worker leave
        (
            "            - {code: JL-CG-02-G3, kind: grid, name: {zh_CN: 南关村第三网格, "
            "en: Nanguan Grid 3}, location: [37.2410, 115.0540]}\n",
            "",
        ),
        (", JL-CG-02-G3]", "]"),
        (
            '  - {code: P-W-12, name: 孙强, phone: "13803190212", '
            "roles: [{role: grid_worker, areas: [JL-CG-02-G3]}]}\n",
            "",
        ),
    ]:
        assert old in edited, old
        edited = edited.replace(old, new)
    report = await load(engine, write(tmp_path, edited))

    assert report.areas.updated == 1
    assert report.areas.deactivated == 1
    assert report.people.deactivated == 1
    assert (report.responsibilities.updated, report.responsibilities.deactivated) == (1, 1)
    # P-T-01 swaps one assignment; P-W-12 loses one; P-L-02 loses one grid.
    assert report.role_assignments.created == 1
    assert report.role_assignments.deactivated == 3
    assert await ids_by_code(engine, AreaRow) == area_ids
    assert await ids_by_code(engine, PersonRow) == person_ids
    assert await ids_by_code(engine, DepartmentRow) == dept_ids
    assert await ids_by_code(engine, CategoryRow) == category_ids

    async with engine.connect() as conn:
        areas = {r.code: r for r in (await conn.execute(select(AreaRow.__table__))).all()}
        people = {r.code: r for r in (await conn.execute(select(PersonRow.__table__))).all()}
        assignments = (
            await conn.execute(
                select(PersonRow.code, RoleAssignmentRow.role, AreaRow.code)
                .join(PersonRow, PersonRow.id == RoleAssignmentRow.person_id)
                .outerjoin(AreaRow, AreaRow.id == RoleAssignmentRow.area_id)
            )
        ).all()
        resp = dict(
            (
                await conn.execute(
                    select(ResponsibilityRow.department_id, ResponsibilityRow.primary).where(
                        ResponsibilityRow.category_id == category_ids["safety"]
                    )
                )
            ).all()
        )
    assert areas["JL-XGC-01-G1"].name_zh == "西郭城村一组网格"
    assert areas["JL-XGC-01-G1"].name_en == "Xiguocheng Grid 1"
    assert not areas["JL-CG-02-G3"].active  # kept for the cases that point at it
    assert areas["JL-CG-02-G2"].active
    assert not people["P-W-12"].active
    assert people["P-W-11"].active
    assert ("P-T-01", "township_operator", "JL-CG") in assignments
    assert ("P-T-01", "township_operator", "JL-XGC") not in assignments
    assert not [a for a in assignments if a[0] == "P-W-12"]
    assert sorted(a[2] for a in assignments if a[0] == "P-L-02") == [
        "JL-CG-01-G1",
        "JL-CG-01-G2",
        "JL-CG-01-G3",
        "JL-CG-02-G1",
        "JL-CG-02-G2",
    ]
    assert resp == {dept_ids["water"]: True}

    # Restoring the file brings everything back under the same ids.
    report = await load(engine, EXAMPLE_COUNTY)
    assert report.areas.updated == 2 and report.people.updated == 1
    assert await ids_by_code(engine, AreaRow) == area_ids
    assert await ids_by_code(engine, PersonRow) == person_ids
    async with engine.connect() as conn:
        assert all((await conn.execute(select(AreaRow.active))).scalars())
        assert all((await conn.execute(select(PersonRow.active))).scalars())


async def test_reload_keeps_chat_state_the_file_does_not_manage(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await load(engine, EXAMPLE_COUNTY)
    person_ids = await ids_by_code(engine, PersonRow)
    grid_ids = await ids_by_code(engine, AreaRow)
    factory = session_factory(engine)
    async with factory() as session, session.begin():
        # A worker switched the bot to English; a resident enrolled through the chat (no code).
        await session.execute(
            update(PersonRow).where(PersonRow.code == "P-W-01").values(language="en")
        )
        enrolled = (
            await session.execute(
                insert(PersonRow)
                .values(name="微信用户", language="zh_CN", active=True)
                .returning(PersonRow.id)
            )
        ).scalar_one()
        await session.execute(
            insert(RoleAssignmentRow).values(
                person_id=enrolled, role="resident", area_id=grid_ids["JL-XGC-01-G1"]
            )
        )
    before = await dump(engine)

    report = await load(engine, EXAMPLE_COUNTY)

    assert not report.changed
    assert await dump(engine) == before

    # When the file does say the language, the file wins.
    text = EXAMPLE_COUNTY.read_text(encoding="utf-8").replace(
        'name: 张伟, phone: "13803190201",', 'name: 张伟, phone: "13803190201", language: zh_CN,'
    )
    report = await load(engine, write(tmp_path, text))
    assert report.people.updated == 1
    async with engine.connect() as conn:
        language = await conn.scalar(
            select(PersonRow.language).where(PersonRow.id == person_ids["P-W-01"])
        )
        enrolled_roles = (
            await conn.execute(
                select(RoleAssignmentRow.role).where(RoleAssignmentRow.person_id == enrolled)
            )
        ).scalars()
        assert list(enrolled_roles) == ["resident"]
    assert language == "zh_CN"


# ---------------------------------------------------------------------------------------------
# Bad files

BASE = """\
county:
  code: JL
  name: {zh_CN: 巨鹿县, en: Julu County}
  children:
    - code: JL-XZ
      kind: township
      name: {zh_CN: 西郭城镇, en: Xiguocheng Town}
      children:
        - code: JL-XZ-01
          kind: village
          name: {zh_CN: 西郭城村, en: Xiguocheng Village}
          children:
            - {code: JL-XZ-01-G1, kind: grid, name: {zh_CN: 第一网格, en: Grid 1}}
            - {code: JL-XZ-01-G2, kind: grid, name: {zh_CN: 第二网格, en: Grid 2}}
categories:
  - {code: safety, name: {zh_CN: 安全隐患, en: Safety hazards}, deadline_class: general}
  - {code: emergency, name: {zh_CN: 疫情及突发, en: Emergencies}, deadline_class: emergency}
departments:
  - code: water
    name: {zh_CN: 水利局, en: Water Bureau}
    categories: [safety, emergency]
people:
  - code: P-0001
    name: 张伟
    phone: "13800000001"
    roles:
      - {role: grid_worker, areas: [JL-XZ-01-G1]}
      - {role: department_handler, department: water}
"""

GRID_2 = "            - {code: JL-XZ-01-G2, kind: grid, name: {zh_CN: 第二网格, en: Grid 2}}"
VILLAGE_NAME = "          name: {zh_CN: 西郭城村, en: Xiguocheng Village}"
WORKER = "      - {role: grid_worker, areas: [JL-XZ-01-G1]}"
HANDLER = "      - {role: department_handler, department: water}"
SAFETY = "  - {code: safety, name: {zh_CN: 安全隐患, en: Safety hazards}, deadline_class: general}"
PHONE = '    phone: "13800000001"'

# (id, text to replace in BASE, replacement with "#!" on the line the error must name, reason)
BAD_CASES = [
    (
        "unknown-key-area",
        VILLAGE_NAME,
        "          nmae: {zh_CN: 西郭城村}  #!",
        "unknown key 'nmae' in area (allowed: code, kind, name, location, children)",
    ),
    ("unknown-key-top", "people:\n", "extra: 1  #!\npeople:\n", "unknown key 'extra' in the top"),
    (
        "bad-location",
        "name: {zh_CN: 第二网格, en: Grid 2}}",
        "name: {zh_CN: 第二网格, en: Grid 2}, location: [97.3, 114.9]}  #!",
        "latitude must be -90..90",
    ),
    (
        "location-not-a-pair",
        "name: {zh_CN: 第二网格, en: Grid 2}}",
        "name: {zh_CN: 第二网格, en: Grid 2}, location: [37.3]}  #!",
        "must be [latitude, longitude]",
    ),
    (
        "unknown-key-person",
        PHONE,
        PHONE + "\n    email: a@b.cn  #!",
        "unknown key 'email' in person",
    ),
    (
        "unknown-key-role",
        WORKER,
        "      - {role: grid_worker, grid: JL-XZ-01-G1}  #!",
        "unknown key 'grid' in role of person 'P-0001'",
    ),
    (
        "unknown-key-name",
        VILLAGE_NAME,
        "          name: {zh_CN: 西郭城村, english: X}  #!",
        "unknown key 'english' in name of village 'JL-XZ-01'",
    ),
    ("duplicate-key", PHONE, PHONE + '\n    phone: "1"  #!', "duplicate key 'phone' in person"),
    (
        "missing-deadline-class",
        SAFETY,
        "  - {code: safety, name: {zh_CN: 安全隐患}}  #!",
        "missing required key 'deadline_class' in category",
    ),
    (
        "missing-kind",
        "        - code: JL-XZ-01\n          kind: village\n",
        "        - code: JL-XZ-01  #!\n",
        "missing required key 'kind' in area",
    ),
    (
        "missing-person-name",
        "  - code: P-0001\n    name: 张伟\n",
        "  - code: P-0001  #!\n",
        "missing required key 'name' in person",
    ),
    (
        "missing-zh-name",
        VILLAGE_NAME,
        "          name: {en: Xiguocheng Village}  #!",
        "missing required key 'zh_CN' in name of village 'JL-XZ-01'",
    ),
    (
        "missing-categories",
        "categories:\n" + SAFETY + "\n  - {code: emergency, name: {zh_CN: 疫情及突发, "
        "en: Emergencies}, deadline_class: emergency}\n",
        "",
        "missing required key 'categories' in the top level",
    ),
    (
        "wrong-type-list",
        "    categories: [safety, emergency]",
        "    categories: safety  #!",
        "categories of department 'water' must be a list, got 'safety'",
    ),
    (
        "wrong-type-mapping",
        VILLAGE_NAME,
        "          name: 西郭城村  #!",
        "name of village 'JL-XZ-01' must be a mapping",
    ),
    (
        "wrong-type-text",
        "    name: 张伟",
        "    name: [张, 伟]  #!",
        "name of person 'P-0001' must be text, got a list",
    ),
    (
        "wrong-type-bool",
        "  code: JL\n",
        "  code: yes  #!\n",
        "county code must be text, got true/false",
    ),
    (
        "wrong-type-roles",
        "    roles:\n" + WORKER + "\n" + HANDLER + "\n",
        "    roles: {role: admin}  #!\n",
        "roles of person 'P-0001' must be a list, got a mapping",
    ),
    (
        "yaml-syntax-indent",
        "    name: 张伟",
        "    name: 张伟\n     language: en  #!",
        "YAML syntax error",
    ),
    (
        "yaml-syntax-missing-colon",
        "    name: 张伟",
        "    name  #!",
        "YAML syntax error: could not find expected ':'",
    ),
    (
        "grid-under-township",
        "        - code: JL-XZ-01\n",
        "        - {code: JL-XZ-G9, kind: grid, name: {zh_CN: 错}}  #!\n        - code: JL-XZ-01\n",
        "grid 'JL-XZ-G9' cannot be directly under township 'JL-XZ'",
    ),
    (
        "village-under-village",
        GRID_2,
        "            - {code: JL-XZ-01-02, kind: village, name: {zh_CN: 错}}  #!",
        "village 'JL-XZ-01-02' cannot be directly under village 'JL-XZ-01'",
    ),
    (
        "village-under-county",
        "      kind: township",
        "      kind: village  #!",
        "village 'JL-XZ' cannot be directly under county 'JL'",
    ),
    (
        "unknown-kind",
        "      kind: township",
        "      kind: town  #!",
        "unknown area kind 'town' for 'JL-XZ'",
    ),
    (
        "grid-with-children",
        GRID_2,
        GRID_2[:-1] + ", children: [{code: X, kind: grid, name: {zh_CN: 错}}]}  #!",
        "grid 'JL-XZ-01-G2' cannot have children",
    ),
    (
        "duplicate-area-code",
        GRID_2,
        GRID_2.replace("G2", "G1") + "  #!",
        "duplicate area code 'JL-XZ-01-G1' (first used on line 13)",
    ),
    (
        "duplicate-area-code-across-levels",
        "        - code: JL-XZ-01\n",
        "        - code: JL-XZ  #!\n",
        "duplicate area code 'JL-XZ' (first used on line 5)",
    ),
    (
        "duplicate-category",
        SAFETY,
        SAFETY + "\n" + SAFETY + "  #!",
        "duplicate category code 'safety' (first used on line 16)",
    ),
    (
        "duplicate-department",
        "people:\n",
        "  - code: water  #!\n    name: {zh_CN: 水务局}\npeople:\n",
        "duplicate department code 'water' (first used on line 19)",
    ),
    (
        "duplicate-person",
        HANDLER,
        HANDLER + "\n  - {code: P-0001, name: 李娜}  #!",
        "duplicate person code 'P-0001' (first used on line 23)",
    ),
    (
        "category-without-owner",
        SAFETY,
        SAFETY + "\n  - {code: piling, name: {zh_CN: 乱堆乱放}, deadline_class: general}  #!",
        "category 'piling' is owned by no department",
    ),
    (
        "department-unknown-category",
        "    categories: [safety, emergency]",
        "    categories: [safety, emergency, fire]  #!",
        "department 'water' lists unknown category 'fire'",
    ),
    (
        "bad-deadline-class",
        "deadline_class: general}",
        "deadline_class: urgent}  #!",
        "bad deadline_class 'urgent' for category 'safety' "
        "(allowed: emergency, livelihood, general)",
    ),
    (
        "bad-language",
        PHONE,
        PHONE + "\n    language: fr  #!",
        "bad language 'fr' for person 'P-0001' (allowed: zh_CN, en)",
    ),
    (
        "unknown-role",
        WORKER,
        "      - {role: mayor}  #!",
        "unknown role 'mayor' for person 'P-0001'",
    ),
    (
        "system-role",
        WORKER,
        "      - {role: system}  #!",
        "role 'system' is reserved",
    ),
    (
        "role-listed-twice",
        HANDLER,
        HANDLER + "\n      - {role: grid_worker, areas: [JL-XZ-01-G2]}  #!",
        "role grid_worker is listed twice for person 'P-0001'",
    ),
    (
        "role-unknown-area",
        WORKER,
        "      - {role: grid_worker, areas: [JL-XZ-01-G9]}  #!",
        "unknown area 'JL-XZ-01-G9' in role grid_worker of person 'P-0001'",
    ),
    (
        "role-area-not-a-grid",
        WORKER,
        "      - {role: grid_leader, areas: [JL-XZ-01-G1, JL-XZ-01]}  #!",
        "role grid_leader needs grid areas, but 'JL-XZ-01' is a village",
    ),
    (
        "operator-on-a-grid",
        WORKER,
        "      - {role: township_operator, areas: [JL-XZ-01-G1]}  #!",
        "role township_operator needs township or street areas, but 'JL-XZ-01-G1' is a grid",
    ),
    (
        "resident-without-areas",
        WORKER,
        "      - {role: resident}  #!",
        "role resident of person 'P-0001' needs areas",
    ),
    (
        "role-unknown-department",
        HANDLER,
        "      - {role: department_handler, department: fire}  #!",
        "unknown department 'fire' in role of person 'P-0001'",
    ),
    (
        "handler-without-department",
        HANDLER,
        "      - {role: department_handler}  #!",
        "role department_handler of person 'P-0001' needs a department",
    ),
    (
        "handler-with-two-departments",
        HANDLER,
        "      - {role: department_handler, department: [water, fire]}  #!",
        "role department_handler takes exactly one department",
    ),
    (
        "supervisor-with-areas",
        HANDLER,
        "      - {role: supervisor, areas: [JL-XZ]}  #!",
        "role supervisor is county-wide and takes no areas",
    ),
    (
        "bad-code-characters",
        "    - code: JL-XZ\n",
        "    - code: JL XZ  #!\n",
        "area code 'JL XZ' may use only letters, digits",
    ),
    ("empty-file", BASE, "#! nothing here\n", "the file is empty"),
]


async def test_moved_grid_follows_its_new_village_and_township(
    engine: AsyncEngine, tmp_path: Path
) -> None:
    await load(engine, write(tmp_path, BASE, "base.yaml"))
    grid_id = (await ids_by_code(engine, AreaRow))["JL-XZ-01-G2"]
    street = (
        "    - code: JL-CG\n"
        "      kind: street\n"
        "      name: {zh_CN: 城关街道}\n"
        "      children:\n"
        "        - code: JL-CG-01\n"
        "          kind: community\n"
        "          name: {zh_CN: 东关社区}\n"
        "          children:\n" + GRID_2 + "\n"
    )
    moved = BASE.replace(GRID_2 + "\n", "").replace("categories:\n", street + "categories:\n", 1)

    report = await load(engine, write(tmp_path, moved, "moved.yaml"))

    assert (report.areas.created, report.areas.updated) == (2, 1)
    ids = await ids_by_code(engine, AreaRow)
    assert ids["JL-XZ-01-G2"] == grid_id
    async with engine.connect() as conn:
        rows = {r.code: r for r in (await conn.execute(select(AreaRow.__table__))).all()}
    grid, community, street_row = rows["JL-XZ-01-G2"], rows["JL-CG-01"], rows["JL-CG"]
    assert (grid.parent_id, grid.village_id, grid.township_id) == (
        community.id,
        community.id,
        street_row.id,
    )
    assert (community.township_id, community.village_id) == (street_row.id, community.id)
    assert (street_row.township_id, street_row.name_en) == (street_row.id, "城关街道")


def bad_text(old: str, new: str) -> tuple[str, int]:
    """BASE with one edit, and the line the error must point at (the "#!" line)."""
    assert old in BASE, old
    text = BASE.replace(old, new, 1)
    marked = [n for n, line in enumerate(text.splitlines(), 1) if "#!" in line]
    if not marked:  # a missing top-level key is reported on the document's first line
        return text, 1
    assert len(marked) == 1
    return text, marked[0]


def test_base_file_is_valid() -> None:
    spec = parse_org_text(BASE)
    assert [a.code for a in spec.areas] == ["JL", "JL-XZ", "JL-XZ-01", "JL-XZ-01-G1", "JL-XZ-01-G2"]
    assert spec.responsibilities() == [("water", "safety", True), ("water", "emergency", True)]


@pytest.mark.parametrize(
    ("old", "new", "reason"), [c[1:] for c in BAD_CASES], ids=[c[0] for c in BAD_CASES]
)
def test_bad_file_names_line_and_reason(tmp_path: Path, old: str, new: str, reason: str) -> None:
    text, line = bad_text(old, new)
    path = write(tmp_path, text)

    with pytest.raises(OrgFileError) as info:
        read_org_file(path)

    err = info.value
    assert reason in err.reason
    assert (err.path, err.line) == (path, line), err
    assert str(err) == f"{path}:{line}: {err.reason}"


def test_error_message_format() -> None:
    text, line = bad_text(BAD_CASES[0][1], BAD_CASES[0][2])
    with pytest.raises(OrgFileError) as info:
        parse_org_text(text, "county.yaml")
    assert line == 11
    assert str(info.value) == (
        "county.yaml:11: unknown key 'nmae' in area (allowed: code, kind, name, location, children)"
    )


def test_unreadable_files(tmp_path: Path) -> None:
    with pytest.raises(OrgFileError, match="cannot read the file"):
        read_org_file(tmp_path / "missing.yaml")
    path = tmp_path / "latin1.yaml"
    path.write_bytes(b"county:\n  code: JL\n  name: {zh_CN: \xe9}\n")
    with pytest.raises(OrgFileError) as info:
        read_org_file(path)
    assert (info.value.line, info.value.reason) == (3, "the file is not UTF-8 text")


async def test_bad_files_leave_the_database_untouched(engine: AsyncEngine, tmp_path: Path) -> None:
    # Against an empty database, then against one that holds a county.
    for loaded in (False, True):
        if loaded:
            await load(engine, write(tmp_path, BASE, "base.yaml"))
        before = await dump(engine)
        assert bool(before["areas"]) is loaded
        for case_id, old, new, reason in BAD_CASES:
            path = write(tmp_path, bad_text(old, new)[0], f"{case_id}.yaml")
            with pytest.raises(OrgFileError) as info:
                await load(engine, path)
            assert reason in info.value.reason
        # A caller's session sees the same: nothing is written, nothing is pending.
        async with session_factory(engine)() as session:
            with pytest.raises(OrgFileError):
                await load_org(session, tmp_path / "unknown-role.yaml")
            assert not session.new and not session.dirty
            await session.commit()
        assert await dump(engine) == before


# ---------------------------------------------------------------------------------------------
# The generated, Julu-sized county


def test_generate_is_deterministic_and_sized_like_julu() -> None:
    text = generate_county()
    assert text == generate_county(seed=0)
    assert text != generate_county(seed=1)
    spec = parse_org_text(text, "generated.yaml")

    kinds = Counter(a.kind for a in spec.areas)
    assert kinds["township"] + kinds["street"] == 11
    assert kinds["township"] and kinds["street"]
    assert kinds["grid"] == 2750
    assert 250 <= kinds["village"] + kinds["community"] <= 300
    assert len(spec.departments) == 63
    assert [c.code for c in spec.categories] == [
        "safety",
        "sanitation",
        "illegal_construction",
        "dispute",
        "livelihood",
        "piling",
        "public_security",
        "emergency",
    ]
    # People per role (a grid leader's role spans ten grids but is one person).
    roles = Counter(role for p in spec.people for role in {r.role for r in p.roles})
    assert roles["grid_worker"] == 2750
    assert 275 <= roles["grid_leader"] <= 290  # one per ten grids, counted per township
    assert roles["township_operator"] == 22
    assert roles["county_dispatcher"] == 3
    assert roles["department_handler"] == 126
    assert roles["supervisor"] == 3
    assert roles["admin"] == 1
    assert roles["resident"] > 0
    assert 3000 <= len(spec.people) <= 3500


def test_generate_small_county_covers_every_category() -> None:
    spec = parse_org_text(generate_county(townships=2, grids=25, departments=3, seed=7))
    assert Counter(a.kind for a in spec.areas)["grid"] == 25
    assert len(spec.departments) == 3
    owned = {cat for _, cat, _ in spec.responsibilities()}
    assert owned == {c.code for c in spec.categories}


async def test_generated_county_loads_and_reloads(engine: AsyncEngine, tmp_path: Path) -> None:
    path = write(tmp_path, generate_county(), "julu.yaml")

    report = await load(engine, path)

    async with engine.connect() as conn:
        kinds = Counter((await conn.execute(select(AreaRow.kind))).scalars())
        departments = (await conn.execute(select(DepartmentRow.code))).scalars().all()
        orphans = (
            await conn.execute(
                select(AreaRow.code).where(
                    AreaRow.kind == "grid",
                    (AreaRow.township_id.is_(None)) | (AreaRow.village_id.is_(None)),
                )
            )
        ).all()
    assert kinds["grid"] == 2750
    assert kinds["township"] + kinds["street"] == 11
    assert report.areas.created == sum(kinds.values())
    assert report.departments.created == len(departments) == 63
    assert report.role_assignments.created > 5000
    assert orphans == []

    again = await load(engine, path)
    assert not again.changed
    assert again.areas.unchanged == report.areas.created
