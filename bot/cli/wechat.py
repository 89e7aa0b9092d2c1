"""`shuoshi wechat menu` and `shuoshi wechat qr`: what a county does once in its Official
Account, done through the API with the [wechat] settings (README, "WeChat").

- menu: the three click buttons the channel understands (report, my, sos);
- qr: a permanent QR code per grid whose scene string is the grid code, written as CSV (grid,
  names, the URL the code encodes, the address of WeChat's image of it) to print or to paint
  on the boards; following through one registers the resident in that grid.
"""

from __future__ import annotations

import argparse
import csv
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import quote

from bot.cli.errors import Unreachable, UserError
from handlers.render import Renderer
from storage.grid_boards import UnknownArea

if TYPE_CHECKING:
    from bot.app import App
    from bot.wechat.api import OfficialAccountApi

TEMPLATE = "wechat.j2"
SHOW_QR = "https://mp.weixin.qq.com/cgi-bin/showqrcode?ticket="


def add_wechat_parser(sub: argparse._SubParsersAction) -> None:
    wechat = sub.add_parser("wechat", help="set up the WeChat Official Account (menu, QR codes)")
    cmd = wechat.add_subparsers(dest="wechat_command", required=True, metavar="WECHAT_COMMAND")
    cmd.add_parser("menu", help="create the account's menu: 我要说事 / 我的事项 / 一键呼叫")
    qr = cmd.add_parser("qr", help="a permanent QR code per grid (scene = grid code), as CSV")
    which = qr.add_mutually_exclusive_group(required=True)
    which.add_argument("area", nargs="?", help="a grid's code, or a township's (or village's)")
    which.add_argument("--all", action="store_true", help="every grid of the county")
    qr.add_argument("--out", type=Path, default=Path("wechat-qr.csv"), help="the CSV file")


def menu(r: Renderer) -> dict[str, Any]:
    """The menu the channel's click keys expect (bot/wechat/inbound.py MENU_COMMANDS)."""
    return {
        "button": [
            {"type": "click", "name": r.macro(TEMPLATE, f"menu_{key}"), "key": key}
            for key in ("report", "my", "sos")
        ]
    }


async def wechat_command(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    def say(macro: str, **params: object) -> str:
        return renderer.macro(TEMPLATE, macro, **params)

    settings = app.settings.wechat
    if not settings.app_id or settings.app_secret is None:
        raise UserError(say("cli_not_configured"))
    from bot.wechat.api import OfficialAccountApi
    from storage.wechat import WeChatStore

    store = WeChatStore(app.sessions, f"mp:{settings.app_id}", "wechat")
    api = OfficialAccountApi(settings.api_base, settings.app_id,
                             settings.app_secret.get_secret_value(), store, app.clock)  # fmt: skip
    async with calling(api, settings.api_base, say):
        if args.wechat_command == "menu":
            await api.create_menu(menu(renderer))
            print(say("cli_menu_created"))
            return 0
        return await _qr_codes(app, api, args, say)


@asynccontextmanager
async def calling(api: Any, api_base: str, say: Any) -> AsyncIterator[None]:
    """Calls to WeChat's or WeCom's API from a command: a refusal or an unreachable server is
    one line that says so (in the command's own words), and the client is closed after."""
    import aiohttp

    from bot.wechat.client import WeChatError

    try:
        yield
    except WeChatError as exc:
        raise UserError(say("cli_refused", code=exc.errcode, reason=exc.errmsg)) from None
    except (aiohttp.ClientError, TimeoutError) as exc:
        reason = str(exc) or type(exc).__name__
        raise Unreachable(say("cli_unreachable", api_base=api_base, reason=reason)) from None
    finally:
        await api.close()


async def _qr_codes(app: App, api: OfficialAccountApi, args: argparse.Namespace, say: Any) -> int:
    async with app.uow.reading() as uow:
        try:
            boards = await uow.boards.boards(None if args.all else args.area)
        except UnknownArea as exc:
            raise UserError(say("cli_unknown_area", code=exc.code)) from None
    if not boards:
        raise UserError(say("cli_no_grids"))
    out: Path = args.out
    progress = sys.stderr.isatty()
    try:
        with out.open("w", newline="", encoding="utf-8") as file:
            rows = csv.writer(file)
            rows.writerow(["grid", "name_zh", "name_en", "township", "qr_url", "qr_image"])
            for done, board in enumerate(boards, 1):
                ticket, url = await api.create_qr(board.code)
                rows.writerow([board.code, board.name_zh, board.name_en, board.township_zh, url,
                               SHOW_QR + quote(ticket, safe="")])  # fmt: skip
                if progress:
                    print(f"\r{done}/{len(boards)}", end="", file=sys.stderr, flush=True)
    except OSError as exc:
        raise UserError(say("cli_cannot_write", path=out, reason=exc.strerror or exc)) from None
    finally:
        if progress:
            print(file=sys.stderr)
    print(say("cli_qr_written", count=len(boards), path=out))
    return 0
