"""Setting a county up: init, loading the organisation and the working-day calendar."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING

from bot.cli.errors import UserError
from bot.config import Settings
from handlers.render import Renderer
from workflow.clock import SHANGHAI
from workflow.deadlines import Limit, WorkCalendar, deadline

if TYPE_CHECKING:
    from bot.app import App


async def init_command(app: App, renderer: Renderer) -> int:
    loaded = await load_example(app, renderer)
    print(renderer.macro("cli.j2", "init_done", db=app.settings.db_url, loaded=loaded))
    return 0


async def load_example(app: App, renderer: Renderer) -> Path | None:
    """Load the example county when no organisation is loaded; where it came from, if so."""
    if not await app.org_is_empty():
        return None
    example = app.example_county()
    if example is None:
        from bot.app import example_county

        missing = example_county(app.settings)
        print(renderer.macro("cli.j2", "example_missing", path=missing), file=sys.stderr)
        return None
    await org_load(app, example, renderer, quiet=True)
    return example


async def org_load(app: App, path: Path, renderer: Renderer, quiet: bool = False) -> int:
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


def org_generate(args: argparse.Namespace, renderer: Renderer) -> int:
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


async def calendar_load(app: App, path: Path, renderer: Renderer) -> int:
    from storage.calendar import CalendarFileError, parse_schedule, store_schedule

    try:
        schedule = parse_schedule(path)
    except CalendarFileError as exc:
        raise UserError(str(exc)) from None
    async with app.uow() as uow:
        await store_schedule(uow.session, schedule, source=str(path), now=app.clock.now())
        await uow.commit()
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


async def calendar_due(args: argparse.Namespace, settings: Settings, renderer: Renderer) -> int:
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
