"""A grid's QR code as an image, for staff to print from the start page: /r/qr?grid=CODE
(PNG; ?format=svg for a drawing that scales). It carries the same link as the printed boards
(`shuoshi qr`, bot/qr/links.py): the start page with the grid chosen."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

from bot.qr.links import qr_png, qr_svg, web_chat_link
from bot.web.chat.constants import GRID_CODE
from bot.web.chat.requests import Refused

if TYPE_CHECKING:
    from bot.web.chat.app import WebChat


def grid_qr_route(chat: WebChat) -> web.RouteDef:
    async def grid_qr(request: web.Request) -> web.StreamResponse:
        code = request.query.get("grid", "")
        place = None
        if GRID_CODE.fullmatch(code):
            async with chat.app.uow.reading() as uow:
                place = await uow.channels.place_by_code(code)
        if place is None or place.kind != "grid":
            return chat._refusal(request, Refused(404, "unknown_grid"))
        # The address residents reach: [web] public_url, else the one this page was asked at.
        link = web_chat_link(chat._public_link(request, "/"), place.code)
        svg = request.query.get("format") == "svg"
        return web.Response(
            body=qr_svg(link) if svg else qr_png(link),
            content_type="image/svg+xml" if svg else "image/png",
            headers={"Cache-Control": "public, max-age=3600", "X-Content-Type-Options": "nosniff",
                     "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'"},
        )  # fmt: skip

    return web.get("/r/qr", grid_qr, name="webchat.qr")
