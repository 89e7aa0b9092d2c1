"""What every resident dialogue shares: the main menu, button rows, callback data, report steps."""

from __future__ import annotations

from handlers.conversation import Turn
from handlers.messages import Button
from handlers.ports import Place

REPORT_STEPS = ("category", "description", "photos", "location", "contact", "confirm")


def button_rows(buttons: list[Button], per_row: int = 2) -> list[list[Button]]:
    return [buttons[i : i + per_row] for i in range(0, len(buttons), per_row)]


def parse_callback(data: str | None, prefix: str) -> list[str] | None:
    """'cat:ab12cd:safety' -> ['ab12cd', 'safety'] when the prefix matches."""
    if not data or not data.startswith(prefix + ":"):
        return None
    return data.split(":")[1:]


def main_menu(turn: Turn) -> list[list[str]]:
    return [[turn.text("menu_report"), turn.text("menu_my")], [turn.text("menu_sos")]]


def place_name(turn: Turn, place: Place) -> str:
    return place.name_en if turn.r.locale == "en" else place.name_zh
