"""What a county file says, validated: the specs the parser produces and the loader writes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from storage.org_file.yaml_nodes import FileLineError


class OrgFileError(FileLineError):
    """A county file that cannot be loaded (file, line and reason)."""


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
    # The person's WeCom UserID (cards reach them in the WeCom app); wecom_given False: the
    # file does not say, so an identity linked otherwise is kept.
    wecom_userid: str | None = None
    wecom_given: bool = False


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
