"""The county file's structure: areas, categories, departments, people and their roles."""

from __future__ import annotations

import re
from pathlib import Path

import yaml

from storage.org_file.spec import (
    AreaSpec,
    CategorySpec,
    DepartmentSpec,
    OrgFileError,
    OrgSpec,
    PersonSpec,
    RoleSpec,
)
from storage.org_file.yaml_nodes import Entries, YamlNodes, compose, is_null, line_of, read_text
from workflow.model import HUMAN_ROLES, DeadlineClass, Role

# Depth in the area tree of each kind; the tree is strictly county -> township -> village -> grid.
KIND_LEVEL = {
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
_PHONE_CHARS = frozenset("0123456789+- ")
# The county code prefixes case numbers (String(32)): prefix-YYYYMMDD-sequence.
_COUNTYCODE_MAX = 12
_PHONE_MAX = 32
# A WeCom member's UserID (通讯录 → 成员 → 账号): 1-64 of letters, digits and _-@., the first
# a letter or digit (WeCom's own rule).
_WECOM_USERID = re.compile(r"[A-Za-z0-9][A-Za-z0-9_@.-]{0,63}")


class _Parser(YamlNodes):
    """Walks the composed YAML nodes; the first problem raises OrgFileError at its line."""

    error = OrgFileError

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
            code = self.code(code_node, "county code", _COUNTYCODE_MAX)
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
            if kind not in KIND_LEVEL:
                self.fail(
                    kind_node,
                    f"unknown area kind '{kind}' for '{code}' (allowed: {', '.join(_CHILD_KINDS)})",
                )
            if KIND_LEVEL[kind] != level:
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
            line=line_of(node),
            latitude=latitude,
            longitude=longitude,
        )
        seen[code] = line_of(code_node)
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
            seen[code] = line_of(code_node)
            name_zh, name_en = self.names(entries["name"][1], f"category '{code}'")
            dc_node = entries["deadline_class"][1]
            deadline_class = self.text(dc_node, f"deadline_class of category '{code}'")
            if deadline_class not in _DEADLINE_CLASSES:
                self.fail(
                    dc_node,
                    f"bad deadline_class '{deadline_class}' for category '{code}' "
                    f"(allowed: {', '.join(_DEADLINE_CLASSES)})",
                )
            out.append(CategorySpec(code, name_zh, name_en, deadline_class, line_of(item)))
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
            seen[code] = line_of(code_node)
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
            out.append(DepartmentSpec(code, name_zh, name_en, tuple(cats), line_of(item)))
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
        wecom_seen: dict[str, str] = {}  # userid (WeCom ignores case) -> person code
        for item in self.seq(node, "people"):
            entries = self.mapping(
                item,
                "person",
                ("code", "name", "phone", "language", "roles", "wecom_userid"),
                ("code", "name"),
            )
            code_node = entries["code"][1]
            code = self.code(code_node, "person code")
            if code in seen:
                self.fail(
                    code_node, f"duplicate person code '{code}' (first used on line {seen[code]})"
                )
            seen[code] = line_of(code_node)
            name = self.text(entries["name"][1], f"name of person '{code}'")
            phone: str | None = None
            if "phone" in entries and not is_null(phone_node := entries["phone"][1]):
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
            wecom = self.wecom_userid(entries, code, wecom_seen)
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
                    line=line_of(item),
                    wecom_userid=wecom,
                    wecom_given="wecom_userid" in entries,
                )
            )
        return out

    def wecom_userid(self, entries: Entries, person: str, seen: dict[str, str]) -> str | None:
        """The person's WeCom UserID (optional; null: none), used by nobody else in the file."""
        if "wecom_userid" not in entries or is_null(node := entries["wecom_userid"][1]):
            return None
        userid = self.text(node, f"wecom_userid of person '{person}'", 64)
        if not _WECOM_USERID.fullmatch(userid):
            self.fail(
                node,
                f"wecom_userid '{userid}' of person '{person}' must be WeCom's UserID: "
                "1-64 letters, digits or _-@. starting with a letter or digit",
            )
        if userid.lower() in seen:
            self.fail(node, f"wecom_userid '{userid}' is also person '{seen[userid.lower()]}''s")
        seen[userid.lower()] = person
        return userid

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
        entries: Entries,
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
    return _Parser(path).document(compose(text, path, OrgFileError))


def read_org_file(path: Path | str) -> OrgSpec:
    """Read and validate a county file without touching any database (a dry run)."""
    return parse_org_text(read_text(path, OrgFileError), path)
