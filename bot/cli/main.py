"""The `shuoshi` command line: init, org, calendar, case, demo, invite, user, report, qr, wechat,
wecom, run.

The arguments are in parser.py, the commands in county_setup.py, operations.py, users.py,
demo.py, qr.py, wechat.py and wecom.py; here are settings, the one-line errors, the dispatch
and `run`.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

from bot.cli.county_setup import (
    calendar_due,
    calendar_load,
    init_command,
    load_example,
    org_generate,
    org_load,
)
from bot.cli.errors import Unreachable, UserError
from bot.cli.operations import case_command, invite_command, report_command
from bot.cli.parser import build_parser
from bot.config import ConfigError, Settings, load_settings
from handlers.render import Renderer
from workflow.errors import WorkflowError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("shuoshi")


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = load_settings(args.config)
    except ConfigError as exc:
        print(Renderer().macro("cli.j2", "error", message=str(exc)), file=sys.stderr)
        return 2
    logging.basicConfig(
        level=getattr(logging, settings.log_level), format="%(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("alembic").setLevel(logging.WARNING)
    renderer = Renderer(settings.locale)
    try:
        return asyncio.run(_dispatch(args, settings, renderer))
    except WorkflowError as exc:
        print(renderer.macro("cli.j2", "error", message=renderer.error(exc)), file=sys.stderr)
        return 1
    except (UserError, ValueError, OSError) as exc:
        print(renderer.macro("cli.j2", "error", message=str(exc)), file=sys.stderr)
        return exc.exit_code if isinstance(exc, UserError) else 2
    except KeyboardInterrupt:
        return 130


async def _dispatch(args: argparse.Namespace, settings: Settings, renderer: Renderer) -> int:
    if args.command == "calendar" and args.calendar_command == "due":
        return await calendar_due(args, settings, renderer)
    if args.command == "org" and args.org_command == "generate":
        return org_generate(args, renderer)

    from bot.app import open_app

    app = await open_app(settings)
    try:
        if args.command == "init":
            return await init_command(app, renderer)
        if args.command == "org":
            return await org_load(app, args.file, renderer)
        if args.command == "calendar":
            return await calendar_load(app, args.file, renderer)
        if args.command == "case":
            return await case_command(app, args, renderer)
        if args.command == "run":
            return await _run(app, renderer)
        if args.command == "demo":
            from bot.cli.demo import play_demo

            return await play_demo(app, renderer)
        if args.command == "invite":
            return await invite_command(app, args, renderer)
        if args.command == "user":
            from bot.cli.users import user_command

            return await user_command(app, args, renderer)
        if args.command == "report":
            return await report_command(app, args, renderer)
        if args.command == "qr":
            from bot.cli.qr import qr_command

            with _telegram_refusals(app, renderer):
                return await qr_command(app, args, renderer)
        if args.command == "wechat":
            from bot.cli.wechat import wechat_command

            return await wechat_command(app, args, renderer)
        if args.command == "wecom":
            from bot.cli.wecom import wecom_command

            return await wecom_command(app, args, renderer)
    finally:
        await app.close()
    return 2


async def _run(app: App, renderer: Renderer) -> int:
    import faulthandler
    import signal

    from bot.runner import Running, serve

    await load_example(app, renderer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    # `kill -USR1 <pid>` prints every thread's stack to stderr: how to see where a process hangs.
    faulthandler.register(signal.SIGUSR1, all_threads=True)

    def ready(running: Running) -> None:
        print(renderer.macro("cli.j2", "running", r=running), flush=True)

    with _telegram_refusals(app, renderer):
        await serve(app, stop, on_ready=ready)
    print(renderer.macro("cli.j2", "stopped"), flush=True)
    return 0


@contextlib.contextmanager
def _telegram_refusals(app: App, renderer: Renderer) -> Iterator[None]:
    """Telegram's answers when the bot starts become one line saying what to check."""
    if app.settings.telegram.token is None:  # no aiogram to load, nothing to refuse
        yield
        return
    from aiogram.exceptions import (
        TelegramAPIError,
        TelegramNetworkError,
        TelegramUnauthorizedError,
    )

    try:
        yield
    except TelegramUnauthorizedError:
        raise UserError(renderer.macro("cli.j2", "telegram_unauthorized")) from None
    except TelegramNetworkError as exc:
        api_base = app.settings.telegram.api_base or "https://api.telegram.org"
        raise Unreachable(
            renderer.macro("cli.j2", "telegram_unreachable", api_base=api_base, reason=exc.message)
        ) from None
    except TelegramAPIError as exc:
        raise UserError(renderer.macro("cli.j2", "telegram_refused", reason=exc.message)) from None
