"""Load the county organisation (areas, categories, departments, people, roles) from one YAML file.

The file is the single source of truth an operator edits; loading it again after an edit
updates the database in place. Everything is validated before the first write, so a bad
file leaves the database untouched, and every problem is reported with its line.
"""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, NoReturn

import yaml
from sqlalchemy import Table, bindparam, delete, insert, select, update
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from storage.rows import (
    AreaRow,
    CategoryRow,
    DepartmentRow,
    PersonRow,
    ResponsibilityRow,
    RoleAssignmentRow,
)
from workflow.model import HUMAN_ROLES, DeadlineClass, Role

__all__ = [
    "AreaSpec",
    "CategorySpec",
    "DepartmentSpec",
    "KindCounts",
    "OrgFileError",
    "OrgLoadReport",
    "OrgSpec",
    "PersonSpec",
    "RoleSpec",
    "apply_org",
    "load_org",
    "load_org_file",
    "parse_org_text",
    "read_org_file",
]

# The C parser is several times faster on a Julu-sized file and keeps the same marks.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

_STR = "tag:yaml.org,2002:str"
_INT = "tag:yaml.org,2002:int"
_FLOAT = "tag:yaml.org,2002:float"
_BOOL = "tag:yaml.org,2002:bool"
_NULL = "tag:yaml.org,2002:null"

# Depth in the area tree of each kind; the tree is strictly county -> township -> village -> grid.
_KIND_LEVEL = {
    "county": 0,
    "township": 1,
    "street": 1,
    "village": 2,
    "community": 2,
    "grid": 3,
}
_CHILD_KINDS = ("township", "street", "village", "community", "grid")
_TREE = "the tree is county -> township|street -> village|community -> grid"

_AREA_KEYS = ("code", "kind", "name", "location", "children")
_ROLE_AREA_KINDS: dict[str, tuple[str, ...]] = {
    Role.RESIDENT: ("grid",),
    Role.GRID_WORKER: ("grid",),
    Role.GRID_LEADER: ("grid",),
    Role.TOWNSHIP_OPERATOR: ("township", "street"),
}
_LANGUAGES = ("zh_CN", "en")
_DEADLINE_CLASSES = tuple(d.value for d in DeadlineClass)
_CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
_PHONE_CHARS = frozenset("0123456789+- ")
# The county code prefixes case numbers (String(32)): prefix-YYYYMMDD-sequence.
_COUNTY_CODE_MAX = 12
_CODE_MAX = 64
_NAME_MAX = 200
_PHONE_MAX = 32
# Keeps IN lists well under the bind-parameter limits of SQLite and asyncpg.
_CHUNK = 500


class OrgFileError(Exception):
    """A county file that cannot be loaded; names the file and line so an operator can fix it."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(path, line, reason)
        self.path = Path(path)
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.reason}"


# ---------------------------------------------------------------------------------------------
# What the file says, validated


@dataclass(frozen=True, slots=True)
class AreaSpec:
    code: str
    kind: str
    name_zh: str
    name_en: str
    parent: str | None
    # The township/village this area belongs to; an area at that level names itself.
    township: str | None
    village: str | None
    line: int
    # A point inside the area (a grid's centre), so a resident can find their grid by location.
    latitude: float | None = None
    longitude: float | None = None


@dataclass(frozen=True, slots=True)
class CategorySpec:
    code: str
    name_zh: str
    name_en: str
    deadline_class: str
    line: int


@dataclass(frozen=True, slots=True)
class DepartmentSpec:
    code: str
    name_zh: str
    name_en: str
    categories: tuple[str, ...]
    line: int


@dataclass(frozen=True, slots=True)
class RoleSpec:
    role: str
    area: str | None = None
    department: str | None = None


@dataclass(frozen=True, slots=True)
class PersonSpec:
    code: str
    name: str
    # None means the file does not say, so a value the person chose in the chat is kept.
    language: str | None
    phone: str | None
    phone_given: bool
    roles: tuple[RoleSpec, ...]
    line: int


@dataclass(frozen=True)
class OrgSpec:
    """A whole county file after validation; nothing in it can fail to load."""

    path: Path
    county: str
    areas: tuple[AreaSpec, ...]  # parents always before their children
    categories: tuple[CategorySpec, ...]
    departments: tuple[DepartmentSpec, ...]
    people: tuple[PersonSpec, ...]

    def responsibilities(self) -> list[tuple[str, str, bool]]:
        """(department, category, primary): the first department listing a category is primary."""
        seen: set[str] = set()
        out = []
        for dept in self.departments:
            for cat in dept.categories:
                out.append((dept.code, cat, cat not in seen))
                seen.add(cat)
        return out


# ---------------------------------------------------------------------------------------------
# Parsing with line numbers


def _line(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def _is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == _NULL


def _describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == _NULL:
        return "nothing"
    if node.tag == _BOOL:
        return f"true/false ({node.value})"
    if node.tag in (_INT, _FLOAT):
        return f"a number ({node.value})"
    return f"'{node.value}'"


_Entries = dict[str, tuple[yaml.Node, yaml.Node]]


class _Parser:
    """Walks the composed YAML nodes; the first problem raises OrgFileError at its line."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: yaml.Node | int, reason: str) -> NoReturn:
        line = where if isinstance(where, int) else _line(where)
        raise OrgFileError(self.path, line, reason)

    def mapping(
        self, node: yaml.Node, what: str, allowed: Sequence[str], required: Sequence[str]
    ) -> _Entries:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping, got {_describe(node)}")
        entries: _Entries = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.fail(key, f"{what} has a key that is not a plain word")
            name = key.value
            if name in entries:
                self.fail(key, f"duplicate key '{name}' in {what}")
            if name not in allowed:
                self.fail(key, f"unknown key '{name}' in {what} (allowed: {', '.join(allowed)})")
            entries[name] = (key, value)
        for name in required:
            if name not in entries:
                self.fail(node, f"missing required key '{name}' in {what}")
        return entries

    def seq(self, node: yaml.Node | None, what: str) -> list[yaml.Node]:
        if node is None or _is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list, got {_describe(node)}")
        return list(node.value)

    def point(self, node: yaml.Node, what: str) -> tuple[float, float]:
        """[latitude, longitude] in degrees (WGS-84, as phones report them)."""
        items = self.seq(node, what)
        try:
            lat, lon = (float(item.value) for item in items)
        except (TypeError, ValueError, AttributeError):
            self.fail(node, f"{what} must be [latitude, longitude], e.g. [37.22, 115.03]")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            self.fail(node, f"{what}: latitude must be -90..90 and longitude -180..180")
        return lat, lon

    def text(self, node: yaml.Node, what: str, max_len: int = _NAME_MAX) -> str:
        # Plain numbers are taken as written, so an unquoted phone or code keeps its digits.
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (_STR, _INT):
            self.fail(node, f"{what} must be text, got {_describe(node)}")
        value = node.value.strip()
        if not value:
            self.fail(node, f"{what} must not be empty")
        if len(value) > max_len:
            self.fail(node, f"{what} is longer than {max_len} characters")
        return value

    def code(self, node: yaml.Node, what: str, max_len: int = _CODE_MAX) -> str:
        value = self.text(node, what, max_len)
        if not set(value) <= _CODE_CHARS:
            self.fail(node, f"{what} '{value}' may use only letters, digits, '-', '_' and '.'")
        return value

    def names(self, node: yaml.Node, owner: str) -> tuple[str, str]:
        entries = self.mapping(node, f"name of {owner}", ("zh_CN", "en"), ("zh_CN",))
        zh = self.text(entries["zh_CN"][1], f"zh_CN name of {owner}")
        en = self.text(entries["en"][1], f"en name of {owner}") if "en" in entries else zh
        return zh, en

    # -- sections ------------------------------------------------------------------------------

    def document(self, root: yaml.Node | None) -> OrgSpec:
        if root is None:
            self.fail(1, "the file is empty; expected county, categories, departments and people")
        top = self.mapping(
            root,
            "the top level",
            ("county", "categories", "departments", "people"),
            ("county", "categories", "departments"),
        )
        areas: list[AreaSpec] = []
        self.area(top["county"][1], 0, None, areas, {})
        by_code = {a.code: a for a in areas}
        categories = self.categories(top["categories"])
        departments = self.departments(top["departments"][1], categories)
        departments_by_code = {d.code for d in departments}
        people_node = top["people"][1] if "people" in top else None
        people = self.people(people_node, by_code, departments_by_code)
        return OrgSpec(
            path=self.path,
            county=areas[0].code,
            areas=tuple(areas),
            categories=tuple(categories),
            departments=tuple(departments),
            people=tuple(people),
        )

    def area(
        self,
        node: yaml.Node,
        level: int,
        parent: AreaSpec | None,
        out: list[AreaSpec],
        seen: dict[str, int],
    ) -> None:
        what = "county" if parent is None else "area"
        required = ("code", "name") if parent is None else ("code", "kind", "name")
        entries = self.mapping(node, what, _AREA_KEYS, required)
        code_node = entries["code"][1]
        if parent is None:
            code = self.code(code_node, "county code", _COUNTY_CODE_MAX)
        else:
            code = self.code(code_node, "area code")
        if code in seen:
            self.fail(code_node, f"duplicate area code '{code}' (first used on line {seen[code]})")
        if parent is None:
            kind = "county"
            if "kind" in entries:
                kind_node = entries["kind"][1]
                given = self.text(kind_node, "kind of the county")
                if given != "county":
                    self.fail(kind_node, f"the top area '{code}' must be a county, not '{given}'")
        else:
            kind_node = entries["kind"][1]
            kind = self.text(kind_node, f"kind of area '{code}'")
            if kind not in _KIND_LEVEL:
                self.fail(
                    kind_node,
                    f"unknown area kind '{kind}' for '{code}' (allowed: {', '.join(_CHILD_KINDS)})",
                )
            if _KIND_LEVEL[kind] != level:
                self.fail(
                    kind_node,
                    f"{kind} '{code}' cannot be directly under {parent.kind} '{parent.code}'; "
                    + _TREE,
                )
        name_zh, name_en = self.names(entries["name"][1], f"{kind} '{code}'")
        latitude = longitude = None
        if "location" in entries:
            latitude, longitude = self.point(entries["location"][1], f"location of '{code}'")
        township = code if level == 1 else parent.township if parent and level > 1 else None
        village = code if level == 2 else parent.village if parent and level > 2 else None
        spec = AreaSpec(
            code=code,
            kind=kind,
            name_zh=name_zh,
            name_en=name_en,
            parent=parent.code if parent else None,
            township=township,
            village=village,
            line=_line(node),
            latitude=latitude,
            longitude=longitude,
        )
        seen[code] = _line(code_node)
        out.append(spec)
        if "children" not in entries:
            return
        children_key, children_node = entries["children"]
        children = self.seq(children_node, f"children of {kind} '{code}'")
        if kind == "grid" and children:
            self.fail(
                children_key, f"grid '{code}' cannot have children; grids are the smallest areas"
            )
        for child in children:
            self.area(child, level + 1, spec, out, seen)

    def categories(self, entry: tuple[yaml.Node, yaml.Node]) -> list[CategorySpec]:
        items = self.seq(entry[1], "categories")
        if not items:
            self.fail(entry[0], "categories must list at least one category")
        out: list[CategorySpec] = []
        seen: dict[str, int] = {}
        for item in items:
            entries = self.mapping(
                item,
                "category",
                ("code", "name", "deadline_class"),
                ("code", "name", "deadline_class"),
            )
            code_node = entries["code"][1]
            code = self.code(code_node, "category code")
            if code in seen:
                self.fail(
                    code_node, f"duplicate category code '{code}' (first used on line {seen[code]})"
                )
            seen[code] = _line(code_node)
            name_zh, name_en = self.names(entries["name"][1], f"category '{code}'")
            dc_node = entries["deadline_class"][1]
            deadline_class = self.text(dc_node, f"deadline_class of category '{code}'")
            if deadline_class not in _DEADLINE_CLASSES:
                self.fail(
                    dc_node,
                    f"bad deadline_class '{deadline_class}' for category '{code}' "
                    f"(allowed: {', '.join(_DEADLINE_CLASSES)})",
                )
            out.append(CategorySpec(code, name_zh, name_en, deadline_class, _line(item)))
        return out

    def departments(self, node: yaml.Node, categories: list[CategorySpec]) -> list[DepartmentSpec]:
        category_codes = {c.code for c in categories}
        out: list[DepartmentSpec] = []
        seen: dict[str, int] = {}
        owned: set[str] = set()
        for item in self.seq(node, "departments"):
            entries = self.mapping(
                item, "department", ("code", "name", "categories"), ("code", "name")
            )
            code_node = entries["code"][1]
            code = self.code(code_node, "department code")
            if code in seen:
                self.fail(
                    code_node,
                    f"duplicate department code '{code}' (first used on line {seen[code]})",
                )
            seen[code] = _line(code_node)
            name_zh, name_en = self.names(entries["name"][1], f"department '{code}'")
            cats: list[str] = []
            cats_node = entries["categories"][1] if "categories" in entries else None
            for cat_node in self.seq(cats_node, f"categories of department '{code}'"):
                cat = self.text(cat_node, f"category of department '{code}'")
                if cat not in category_codes:
                    self.fail(cat_node, f"department '{code}' lists unknown category '{cat}'")
                if cat in cats:
                    self.fail(cat_node, f"department '{code}' lists category '{cat}' twice")
                cats.append(cat)
            owned.update(cats)
            out.append(DepartmentSpec(code, name_zh, name_en, tuple(cats), _line(item)))
        for spec in categories:
            if spec.code not in owned:
                self.fail(
                    spec.line,
                    f"category '{spec.code}' is owned by no department; "
                    "list it under a department's categories",
                )
        return out

    def people(
        self, node: yaml.Node | None, areas: dict[str, AreaSpec], departments: set[str]
    ) -> list[PersonSpec]:
        out: list[PersonSpec] = []
        seen: dict[str, int] = {}
        for item in self.seq(node, "people"):
            entries = self.mapping(
                item,
                "person",
                ("code", "name", "phone", "language", "roles"),
                ("code", "name"),
            )
            code_node = entries["code"][1]
            code = self.code(code_node, "person code")
            if code in seen:
                self.fail(
                    code_node, f"duplicate person code '{code}' (first used on line {seen[code]})"
                )
            seen[code] = _line(code_node)
            name = self.text(entries["name"][1], f"name of person '{code}'")
            phone: str | None = None
            if "phone" in entries and not _is_null(phone_node := entries["phone"][1]):
                phone = self.text(phone_node, f"phone of person '{code}'", _PHONE_MAX)
                if not set(phone) <= _PHONE_CHARS:
                    self.fail(phone_node, f"phone '{phone}' of person '{code}' must be digits")
            language: str | None = None
            if "language" in entries:
                lang_node = entries["language"][1]
                language = self.text(lang_node, f"language of person '{code}'")
                if language not in _LANGUAGES:
                    self.fail(
                        lang_node,
                        f"bad language '{language}' for person '{code}' "
                        f"(allowed: {', '.join(_LANGUAGES)})",
                    )
            roles_node = entries["roles"][1] if "roles" in entries else None
            roles = self.roles(roles_node, code, areas, departments)
            out.append(
                PersonSpec(
                    code=code,
                    name=name,
                    language=language,
                    phone=phone,
                    phone_given="phone" in entries,
                    roles=tuple(roles),
                    line=_line(item),
                )
            )
        return out

    def roles(
        self,
        node: yaml.Node | None,
        person: str,
        areas: dict[str, AreaSpec],
        departments: set[str],
    ) -> list[RoleSpec]:
        out: list[RoleSpec] = []
        seen: set[str] = set()
        allowed_roles = ", ".join(HUMAN_ROLES)
        for item in self.seq(node, f"roles of person '{person}'"):
            what = f"role of person '{person}'"
            entries = self.mapping(item, what, ("role", "areas", "department"), ("role",))
            role_node = entries["role"][1]
            role = self.text(role_node, what)
            if role == Role.SYSTEM:
                self.fail(role_node, "role 'system' is reserved for the software itself")
            if role not in HUMAN_ROLES:
                self.fail(
                    role_node,
                    f"unknown role '{role}' for person '{person}' (allowed: {allowed_roles})",
                )
            if role in seen:
                self.fail(
                    role_node,
                    f"role {role} is listed twice for person '{person}'; "
                    "give all its areas in one entry",
                )
            seen.add(role)
            if role in _ROLE_AREA_KINDS:
                out.extend(self.area_role(item, entries, role, person, areas))
            elif role == Role.DEPARTMENT_HANDLER:
                if "areas" in entries:
                    self.fail(entries["areas"][0], f"role {role} takes a department, not areas")
                if "department" not in entries:
                    self.fail(item, f"role {role} of person '{person}' needs a department")
                dept_node = entries["department"][1]
                if isinstance(dept_node, yaml.SequenceNode):
                    self.fail(dept_node, f"role {role} takes exactly one department, not a list")
                dept = self.text(dept_node, f"department of {what}")
                if dept not in departments:
                    self.fail(dept_node, f"unknown department '{dept}' in {what}")
                out.append(RoleSpec(role, department=dept))
            else:
                for key in ("areas", "department"):
                    if key in entries:
                        self.fail(entries[key][0], f"role {role} is county-wide and takes no {key}")
                out.append(RoleSpec(role))
        return out

    def area_role(
        self,
        item: yaml.Node,
        entries: _Entries,
        role: str,
        person: str,
        areas: dict[str, AreaSpec],
    ) -> list[RoleSpec]:
        kinds = _ROLE_AREA_KINDS[role]
        wanted = " or ".join(kinds)
        if "department" in entries:
            self.fail(
                entries["department"][0], f"role {role} takes {wanted} areas, not a department"
            )
        if "areas" not in entries:
            self.fail(item, f"role {role} of person '{person}' needs areas ({wanted} codes)")
        area_nodes = self.seq(entries["areas"][1], f"areas of role {role}")
        if not area_nodes:
            self.fail(
                entries["areas"][0], f"role {role} of person '{person}' needs at least one area"
            )
        out: list[RoleSpec] = []
        for area_node in area_nodes:
            code = self.text(area_node, f"area of role {role}")
            area = areas.get(code)
            if area is None:
                self.fail(area_node, f"unknown area '{code}' in role {role} of person '{person}'")
            if area.kind not in kinds:
                self.fail(
                    area_node, f"role {role} needs {wanted} areas, but '{code}' is a {area.kind}"
                )
            spec = RoleSpec(role, area=code)
            if spec in out:
                self.fail(area_node, f"area '{code}' is listed twice in role {role}")
            out.append(spec)
        return out


def parse_org_text(text: str, path: Path | str = "<text>") -> OrgSpec:
    """Validate a county file's text completely; raises OrgFileError at the first problem."""
    path = Path(path)
    try:
        root = yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # A key without its ':' is only noticed on a later line; the key's own line is the fix.
        if exc.context_mark is not None and (exc.context or "").endswith("simple key"):
            mark = exc.context_mark
        reason = f"YAML syntax error: {exc.problem or exc.context or 'unreadable'}"
        if exc.context and exc.problem and mark is not exc.context_mark:
            context = exc.context
            if exc.context_mark is not None:
                context += f" on line {exc.context_mark.line + 1}"
            reason += f" ({context})"
        raise OrgFileError(path, mark.line + 1 if mark else 1, reason) from exc
    except yaml.reader.ReaderError as exc:
        # The reader's errors (a control character) carry a position, not a mark.
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise OrgFileError(
            path, line, f"unacceptable character U+{ord(char):04X} ({exc.reason})"
        ) from exc
    except yaml.YAMLError as exc:
        raise OrgFileError(path, 1, f"YAML error: {exc}".replace("\n", " ")) from exc
    return _Parser(path).document(root)


def read_org_file(path: Path | str) -> OrgSpec:
    """Read and validate a county file without touching any database (a dry run)."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise OrgFileError(path, 0, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise OrgFileError(path, line, "the file is not UTF-8 text") from exc
    return parse_org_text(text, path)


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
        levels[_KIND_LEVEL[area.kind]].append(area)
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
