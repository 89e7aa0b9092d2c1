"""CSV export of cases with every stage's time: UTF-8 with BOM for Excel, formula-safe cells."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from storage.dashboard.lists import STAGE_COLUMNS, ExportedCase
from workflow.clock import local

BOM = "\ufeff"  # without it Excel reads the file as the local ANSI code page and garbles Chinese
# A cell starting with one of these is run as a formula by Excel, LibreOffice and Sheets.
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")

COLUMNS: tuple[str, ...] = (
    "number", "state", "category", "deadline_class", "township", "village", "grid",
    "department", "handled_by_township", "description", "location", "reporter", "contact_phone",
    "created_at", *(name for name, _ in STAGE_COLUMNS), "first_response_at", "closed_at",
    "due_at", "original_due_at", "overdue", "rating", "rating_comment", "reopen_count",
    "supervise_count", "delivery_failed",
)  # fmt: skip


def safe_cell(value: Any) -> str:
    """Text as a spreadsheet shows it, never as a formula: a leading apostrophe defuses it."""
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(FORMULA_START) else text


def _time(value: datetime | None) -> str:
    return local(value).strftime("%Y-%m-%d %H:%M:%S") if value is not None else ""


def row_values(item: ExportedCase, locale: str, labels: Any, words: dict[str, str]) -> list[str]:
    """One line, in COLUMNS order; names in the page's language. `overdue` is the rates' rule
    (storage/analytics/timeliness.py), read with the case, never worked out here."""
    case = item.case
    values: dict[str, Any] = {
        "number": case.number,
        "state": labels.states.get(case.state, case.state),
        "category": case.category[locale],
        "deadline_class": labels.deadline_classes.get(item.deadline_class, item.deadline_class),
        "township": case.township[locale],
        "village": item.village[locale],
        "grid": case.grid[locale],
        "department": case.department[locale] if case.department else "",
        "handled_by_township": words["yes"] if item.handled_by_township else "",
        "description": case.description,
        "location": item.location_text,
        "reporter": words["anonymous"] if item.anonymous else item.reporter_name,
        "contact_phone": item.contact_phone,
        "created_at": _time(case.created_at),
        **{name: _time(item.stages.get(name)) for name, _ in STAGE_COLUMNS},
        "first_response_at": _time(item.first_response_at),
        "closed_at": _time(case.closed_at),
        "due_at": _time(case.due_at),
        # What `overdue` is judged against: a reopened case's due_at is its fresh limit.
        "original_due_at": _time(item.original_due_at),
        "overdue": words["yes"] if item.overdue else "",
        "rating": labels.ratings.get(case.rating, case.rating) if case.rating else "",
        "rating_comment": item.rating_comment,
        "reopen_count": item.reopen_count,
        "supervise_count": item.supervise_count,
        "delivery_failed": words["yes"] if case.delivery_failed else "",
    }
    return [safe_cell(values[name]) for name in COLUMNS]


def encode_lines(rows: Iterable[list[str]]) -> bytes:
    """Rows as CSV bytes (RFC 4180 quoting, CRLF line ends, as Excel expects)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")
