"""All conversation routes in the order they are tried: the first that takes a message wins."""

from __future__ import annotations

from handlers.conversation import Route
from handlers.resident import route_cancel, route_fallback, route_my, route_sos, route_unsupported
from handlers.resident_enrol import route_pick_grid, route_start
from handlers.resident_report import route_report
from handlers.staff import route_bind, route_card_buttons, route_reply_note, route_staff_input

ALL_ROUTES: list[Route] = [
    route_unsupported,
    route_bind,
    route_start,
    route_cancel,
    route_card_buttons,
    route_staff_input,
    route_reply_note,
    route_pick_grid,
    route_my,
    route_sos,
    route_report,
    route_fallback,
]
