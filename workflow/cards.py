"""What chats show of a case: the card the unit holding it acts on (storage reads it)."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime


@dataclass(frozen=True)
class ProposedDepartment:
    """A department responsible for the case's category: one assign button on the card."""

    code: str
    name: str  # Chinese
    name_en: str


@dataclass(frozen=True)
class CaseCard:
    """A case as chat messages show it. Places and names are {"name": zh, "name_en": en}
    dicts, as the templates' `named` filter reads them; the state and class are their values.
    A card about an anonymous report carries neither the reporter's name nor their phone."""

    number: str
    state: str
    category: dict[str, str]
    deadline_class: str
    grid: dict[str, str]
    village: dict[str, str]
    township: dict[str, str]
    grid_id: int
    township_id: int
    department_id: int | None
    department: dict[str, str]  # empty until a department is assigned
    handled_by_township: bool
    description: str
    location_text: str | None
    latitude: float | None
    longitude: float | None
    anonymous: bool
    contact_phone: str | None
    reporter_name: str | None
    reporter_id: int | None
    created_at: datetime
    due_at: datetime | None
    stage_due_at: datetime | None
    due_provisional: bool
    report_photos: list[str]  # sha256 of the public copies
    result_photos: list[str]
    result_text: str | None
    last_comment: str | None
    rating: str | None
    proposed_departments: list[ProposedDepartment]
    last_photos: list[str] = field(default_factory=list)  # of the newest trail entry (a note)
    reporter_role: str | None = None  # the role the reporter reported in (staff cannot rate)
