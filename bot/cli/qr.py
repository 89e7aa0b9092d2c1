"""`shuoshi qr`: the printable QR boards of one grid, of the grids under an area, or of all.

Each board carries the web chat's start link for its grid (from [web] public_url or
--base-url) and, when Telegram is configured, the bot's deep link: both end in the same
`/start GRIDCODE` residents enrol with (bot/qr/links.py).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.errors import UserError
from bot.qr.files import FORMATS, BoardFiles
from bot.qr.fonts import FontMissing, find_font
from bot.qr.links import (
    BOT_USERNAME,
    telegram_link,
    valid_base_url,
    web_chat_link,
)
from bot.qr.sheet import BoardTexts, SheetPainter
from handlers.render import Renderer
from storage.grid_boards import GridBoard, UnknownArea

if TYPE_CHECKING:
    from bot.app import App

TEMPLATE = "qr.j2"
DEFAULT_DPI = 200


def add_qr_parser(sub: argparse._SubParsersAction) -> None:
    qr = sub.add_parser("qr", help="printable QR boards for the grids (PDF or PNG, one per grid)")
    which = qr.add_mutually_exclusive_group(required=True)
    which.add_argument("area", nargs="?", help="a grid's code, or a township's (or village's)")
    which.add_argument("--all", action="store_true", help="every grid of the county")
    qr.add_argument("--out", type=Path, default=Path("qr"), help="directory (default: ./qr)")
    qr.add_argument("--format", choices=FORMATS, default="pdf", help="pdf (default) or png")
    qr.add_argument(
        "--township-pdf", action="store_true", help="also one PDF per township, a page per grid"
    )
    qr.add_argument("--base-url", help="the web chat's public address (default: [web] public_url)")
    qr.add_argument(
        "--bot-username", help="the Telegram bot's username (default: asked from Telegram)"
    )
    qr.add_argument("--font", type=Path, help="font file with Chinese (default: [qr] font)")
    qr.add_argument("--dpi", type=int, default=DEFAULT_DPI, choices=(150, 200, 300, 600))


async def qr_command(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    def say(macro: str, **params: object) -> str:
        return renderer.macro(TEMPLATE, macro, **params)

    base_url = args.base_url or app.settings.web.public_url
    if not base_url:
        raise UserError(say("no_public_url"))
    if not valid_base_url(base_url):
        raise UserError(say("bad_base_url", value=base_url))
    configured = args.font or app.settings.qr.font
    try:
        font = find_font(configured)
    except FileNotFoundError:
        raise UserError(say("font_not_found", path=configured)) from None
    bot = await _bot_username(app, args.bot_username, say)

    async with app.uow.reading() as uow:
        try:
            boards = await uow.boards.boards(None if args.all else args.area)
        except UnknownArea as exc:
            raise UserError(say("unknown_area", code=exc.code)) from None
    if not boards:
        raise UserError(say("no_grids", code=args.area) if args.area else say("no_grids_loaded"))

    return write_boards(boards, args, renderer, font, base_url, bot)


def write_boards(
    boards: list[GridBoard],
    args: argparse.Namespace,
    renderer: Renderer,
    font: Path | None,
    base_url: str,
    bot: str | None,
) -> int:
    """Paint and write each board in turn (a county's thousands never sit in memory at once);
    a progress line on a terminal, a summary at the end."""

    def say(macro: str, **params: object) -> str:
        return renderer.macro(TEMPLATE, macro, **params)

    out: Path = args.out
    painter = SheetPainter(font, args.dpi)
    files = BoardFiles(out, args.format, args.dpi, args.township_pdf)
    no_telegram = 0
    progress = sys.stderr.isatty()
    try:
        out.mkdir(parents=True, exist_ok=True)
        for board in boards:
            texts = board_texts(renderer, board, base_url, bot)
            no_telegram += bool(bot) and texts.telegram_link is None
            files.add(board.code, board.township_code, painter.paint(texts))
            if progress:
                print("\r" + say("progress", done=files.boards, total=len(boards)),
                      end="", file=sys.stderr, flush=True)  # fmt: skip
        files.close()
    except FontMissing as exc:
        raise UserError(say("font_missing", text=exc.text)) from None
    except OSError as exc:
        raise UserError(say("cannot_write", path=out, reason=exc.strerror or exc)) from None
    finally:
        if progress:
            print(file=sys.stderr)
    print(say("written", count=files.boards, format=args.format.upper(), path=out))
    if files.townships:
        print(say("written_townships", count=len(files.townships)))
    if bot:
        print(say("with_telegram", bot=bot))
    if no_telegram:
        print(say("without_telegram", count=no_telegram))
    return 0


def board_texts(renderer: Renderer, board: GridBoard, base_url: str, bot: str | None) -> BoardTexts:
    def say(macro: str, **params: object) -> str:
        return renderer.macro(TEMPLATE, macro, **params)

    named = renderer.env.filters["named"]
    tg_link = telegram_link(bot, board.code) if bot else None
    return BoardTexts(
        title=named(board, "name"),
        places=say("board_places", board=board),
        heading=say("board_heading"),
        intro=say("board_intro"),
        web_caption=say("board_web_caption"),
        web_link=web_chat_link(base_url, board.code),
        telegram_caption=say("board_telegram_caption") if tg_link else None,
        telegram_link=tg_link,
        footer=say("board_footer", code=board.code),
    )


async def _bot_username(app: App, given: str | None, say: Callable[..., str]) -> str | None:
    """The bot's username: as given, else Telegram's answer to getMe when a token is set
    (refusals and an unreachable Telegram become one line in main.py), else no bot."""
    if given:
        name = given.removeprefix("@")
        if not BOT_USERNAME.fullmatch(name):
            raise UserError(say("bad_bot_username", value=given))
        return name
    token = app.settings.telegram.token
    if token is None:
        return None
    from bot.telegram.adapter import make_bot

    telegram = make_bot(token.get_secret_value(), app.settings.telegram.api_base)
    try:
        me = await telegram.get_me()
    finally:
        await telegram.session.close()
    return me.username
