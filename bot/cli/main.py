"""The `shuoshi` command line: init, org, calendar, case, demo, invite."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
from collections.abc import Iterator, Sequence
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.errors import Unreachable, UserError
from bot.config import ConfigError, Settings, load_settings
from handlers.render import Renderer
from workflow.clock import SHANGHAI
from workflow.deadlines import Limit, WorkCalendar, deadline
from workflow.errors import WorkflowError

if TYPE_CHECKING:
    from bot.app import App

log = logging.getLogger("shuoshi")
CONFIG_HELP = "TOML settings file (default: ./shuoshi.toml if present)"


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="shuoshi", description="说事 shuoshi: grid governance intake and dispatch"
    )
    parser.add_argument("--config", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    sub.add_parser("init", help="create ./data, upgrade the schema, load the example county")

    org = sub.add_parser("org", help="the county's organisation").add_subparsers(
        dest="org_command", required=True, metavar="ORG_COMMAND"
    )
    load = org.add_parser("load", help="load or update the organisation from a YAML file")
    load.add_argument("file", type=Path)
    gen = org.add_parser("generate", help="write a Julu-sized county YAML for benchmarks")
    gen.add_argument("--out", type=Path, default=Path("julu.yaml"))
    gen.add_argument("--townships", type=int, default=11)
    gen.add_argument("--grids", type=int, default=2750)
    gen.add_argument("--departments", type=int, default=63)
    gen.add_argument("--seed", type=int, default=0)

    cal = sub.add_parser("calendar", help="the official working-day calendar").add_subparsers(
        dest="calendar_command", required=True, metavar="CALENDAR_COMMAND"
    )
    cal_load = cal.add_parser("load", help="load a year's official schedule (YAML)")
    cal_load.add_argument("file", type=Path)
    due = cal.add_parser("due", help="print a deadline as ISO 8601")
    due.add_argument("--from", dest="start", required=True, help="e.g. 2026-09-30T10:00+08:00")
    amount = due.add_mutually_exclusive_group(required=True)
    amount.add_argument("--working-days", type=int)
    amount.add_argument("--hours", type=int)

    case = sub.add_parser("case", help="look at cases").add_subparsers(
        dest="case_command", required=True, metavar="CASE_COMMAND"
    )
    lst = case.add_parser("list", help="newest cases first")
    lst.add_argument("--state", default=None)
    lst.add_argument("--limit", type=int, default=50)
    show = case.add_parser("show", help="a case and its full timeline")
    show.add_argument("number")

    sub.add_parser("demo", help="play one case through the whole loop on the example county")
    sub.add_parser(
        "run", help="web chat, dashboard, Telegram (with a token), reminders; until Ctrl-C"
    )

    invite = sub.add_parser("invite", help="one-time codes to enrol people and bind group chats")
    inv = invite.add_subparsers(dest="invite_command", required=True, metavar="INVITE_COMMAND")
    enrol = inv.add_parser("enrol", help="a code that enrols a chat account (/start CODE)")
    enrol.add_argument("--role", help="e.g. grid_worker; may be left out with --person")
    enrol.add_argument("--area", help="grid code (grid roles) or township/street code")
    enrol.add_argument("--department", help="department code (department_handler)")
    enrol.add_argument("--person", help="code of a person in the org file to link the account to")
    enrol.add_argument("--hours", type=int, default=72, help="valid for this many hours")
    chat = inv.add_parser("chat", help="a code that binds a group chat to a unit (/bind CODE)")
    chat.add_argument(
        "--purpose",
        required=True,
        choices=("grid", "township", "county", "department", "supervisors", "leaders"),
    )
    chat.add_argument("--area", help="grid code (grid) or township/street code (township)")
    chat.add_argument("--department", help="department code (department)")
    chat.add_argument("--hours", type=int, default=72, help="valid for this many hours")

    from bot.cli.users import add_user_parser

    add_user_parser(sub)

    report = sub.add_parser("report", help="reports: the weekly analysis (周研判)")
    rep = report.add_subparsers(dest="report_command", required=True, metavar="REPORT_COMMAND")
    weekly = rep.add_parser("weekly", help="a week's rates, top lists, returns and reopenings")
    weekly.add_argument("--week", help="ISO week, e.g. 2026-W47 (default: the last full week)")
    weekly.add_argument("--out", type=Path, help="write the HTML page here instead of a summary")
    _config_after_every_command(parser)
    return parser


def _config_after_every_command(parser: argparse.ArgumentParser) -> None:
    """Accept --config after the (sub)command too: `shuoshi org load F --config X`.

    SUPPRESS keeps a subcommand that was not given --config from overwriting a value given
    before the subcommand.
    """
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for sub in {id(p): p for p in action.choices.values()}.values():
                sub.add_argument("--config", default=argparse.SUPPRESS, help=CONFIG_HELP)
                _config_after_every_command(sub)


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
        return await _calendar_due(args, settings, renderer)
    if args.command == "org" and args.org_command == "generate":
        return _org_generate(args, renderer)

    from bot.app import open_app

    app = await open_app(settings)
    try:
        if args.command == "init":
            return await _init(app, renderer)
        if args.command == "org":
            return await _org_load(app, args.file, renderer)
        if args.command == "calendar":
            return await _calendar_load(app, args.file, renderer)
        if args.command == "case":
            return await _case(app, args, renderer)
        if args.command == "run":
            return await _run(app, renderer)
        if args.command == "demo":
            from bot.cli.demo import play_demo

            return await play_demo(app, renderer)
        if args.command == "invite":
            return await _invite(app, args, renderer)
        if args.command == "user":
            from bot.cli.users import user_command

            return await user_command(app, args, renderer)
        if args.command == "report":
            return await _report(app, args, renderer)
    finally:
        await app.close()
    return 2


async def _run(app: App, renderer: Renderer) -> int:
    import signal

    from bot.runner import Running, serve

    await _load_example(app, renderer)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)

    def ready(running: Running) -> None:
        print(renderer.macro("cli.j2", "running", r=running), flush=True)

    with _telegram_refusals(app, renderer):
        await serve(app, stop, on_ready=ready)
    print(renderer.macro("cli.j2", "stopped"), flush=True)
    return 0


@contextlib.contextmanager
def _telegram_refusals(app: App, renderer: Renderer) -> Iterator[None]:
    """Telegram's answers when the bot starts become one line saying what to check."""
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


async def _init(app: App, renderer: Renderer) -> int:
    loaded = await _load_example(app, renderer)
    print(renderer.macro("cli.j2", "init_done", db=app.settings.db_url, loaded=loaded))
    return 0


async def _load_example(app: App, renderer: Renderer) -> Path | None:
    """Load the example county when no organisation is loaded; where it came from, if so."""
    if not await app.org_is_empty():
        return None
    example = app.example_county()
    if example is None:
        from bot.app import example_county

        missing = example_county(app.settings)
        print(renderer.macro("cli.j2", "example_missing", path=missing), file=sys.stderr)
        return None
    await _org_load(app, example, renderer, quiet=True)
    return example


async def _org_load(app: App, path: Path, renderer: Renderer, quiet: bool = False) -> int:
    from storage.org_file import OrgFileError, load_org_file

    try:
        report = await load_org_file(app.sessions, path)
    except OrgFileError as exc:
        raise UserError(str(exc)) from None
    if not quiet:
        if report.changed:
            print(renderer.macro("cli.j2", "org_loaded", path=path, summary=report.summary()))
        else:
            print(renderer.macro("cli.j2", "org_unchanged", path=path))
    return 0


def _org_generate(args: argparse.Namespace, renderer: Renderer) -> int:
    from storage.org_generate import generate_county

    if args.townships < 1 or args.grids < args.townships or args.departments < 1:
        raise UserError("need at least 1 township, 1 grid per township and 1 department")
    text = generate_county(
        townships=args.townships, grids=args.grids, departments=args.departments, seed=args.seed
    )
    args.out.write_text(text, encoding="utf-8")
    print(
        renderer.macro(
            "cli.j2", "org_generated", path=args.out, grids=args.grids, departments=args.departments
        )
    )
    return 0


async def _calendar_load(app: App, path: Path, renderer: Renderer) -> int:
    from storage.calendar import CalendarFileError, parse_schedule, store_schedule

    try:
        schedule = parse_schedule(path)
    except CalendarFileError as exc:
        raise UserError(str(exc)) from None
    async with app.sessions() as session:
        await store_schedule(session, schedule, source=str(path), now=app.clock.now())
        await session.commit()
    app.uow.calendar_cache.invalidate()
    recomputed = await app.workflow.recompute_deadlines(app.uow())
    print(
        renderer.macro(
            "cli.j2",
            "calendar_loaded",
            year=schedule.year,
            holidays=len(schedule.holidays),
            workdays=len(schedule.workdays),
            recomputed=recomputed,
        )
    )
    return 0


async def _calendar_due(args: argparse.Namespace, settings: Settings, renderer: Renderer) -> int:
    try:
        start = datetime.fromisoformat(args.start)
    except ValueError:
        raise UserError(f"--from {args.start!r} is not an ISO 8601 time") from None
    if start.tzinfo is None:
        start = start.replace(tzinfo=SHANGHAI)
    amount = args.working_days if args.working_days is not None else args.hours
    if amount is None or amount < 1:
        raise UserError("the limit must be a positive number")
    limit = Limit(amount, "working_days" if args.working_days is not None else "hours")
    calendar = await _calendar(settings)
    result = deadline(start, limit, calendar)
    at = result.at.astimezone(start.tzinfo)
    print(at.isoformat())
    if result.provisional:
        year = next(y for y in range(start.year, at.year + 1) if not calendar.has_year(y))
        print(renderer.macro("cli.j2", "provisional", year=year), file=sys.stderr)
    return 0


async def _calendar(settings: Settings) -> WorkCalendar:
    """The database's calendar when there is one, else the bundled chinesecalendar data."""
    from storage.calendar import chinesecalendar_schedules, read_calendar
    from storage.db import create_engine

    db_file = settings.data_dir / "shuoshi.db"
    if settings.database_url is not None or db_file.exists():
        from storage.calendar import seed_calendar
        from storage.db import session_factory, upgrade_schema

        engine = create_engine(settings.db_url)
        try:
            await upgrade_schema(engine)
            async with session_factory(engine)() as session:
                await seed_calendar(session, datetime.now(SHANGHAI))
                await session.commit()
                return await read_calendar(session)
        finally:
            await engine.dispose()
    calendar = WorkCalendar()
    for schedule in chinesecalendar_schedules():
        calendar.load_year(schedule.year, schedule.holidays, schedule.workdays)
    return calendar


async def _case(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    from storage.queries import case_list, case_view

    async with app.sessions() as session:
        if args.case_command == "list":
            _check_state(args.state, renderer)
            rows = await case_list(session, state=args.state, limit=args.limit)
            print(renderer.render("case_list.txt.j2", rows=rows))
        else:
            view = await case_view(session, args.number)
            print(renderer.render("case_show.txt.j2", view=view))
    return 0


def _check_state(state: str | None, renderer: Renderer) -> None:
    from workflow.model import State

    stored = [s.value for s in State if s is not State.NEW]
    if state is not None and state not in stored:
        raise UserError(renderer.macro("cli.j2", "unknown_state", value=state, states=stored))


async def _invite(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    from storage.invites import create_invite, describe_invite

    async with app.sessions() as session:
        invite = await create_invite(
            session,
            purpose="enrol" if args.invite_command == "enrol" else "bind_chat",
            role=getattr(args, "role", None),
            area_code=args.area,
            department_code=args.department,
            person_code=getattr(args, "person", None),
            chat_purpose=getattr(args, "purpose", None),
            valid_hours=args.hours,
            now=app.clock.now(),
        )
        info = await describe_invite(session, invite)
        await session.commit()
    macro = "invite_enrol" if info["purpose"] == "enrol" else "invite_chat"
    print(renderer.macro("cli.j2", macro, invite=info))
    return 0


async def _report(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    from handlers.weekly import (
        build_weekly,
        parse_week,
        previous_week,
        render_weekly_page,
        render_weekly_text,
    )

    now = app.clock.now()
    if args.week is None:
        period = previous_week(now)
    else:
        try:
            period = parse_week(args.week)
        except ValueError:
            raise UserError(renderer.macro("cli.j2", "report_bad_week", value=args.week)) from None
        if period.start > now:
            raise UserError(renderer.macro("cli.j2", "report_future_week", week=period.iso_week))
    async with app.uow() as uow:
        report = await build_weekly(uow, period, now)
    if args.out is None:
        print(render_weekly_text(report, renderer.locale))
    else:
        args.out.write_text(render_weekly_page(report, renderer.locale), encoding="utf-8")
        print(renderer.macro("cli.j2", "report_written", path=args.out, week=report.week))
    return 0
