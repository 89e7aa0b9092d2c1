"""Day-to-day commands: list and show cases, make invite codes, write the weekly report."""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.cli.errors import UserError
from handlers.render import Renderer

if TYPE_CHECKING:
    from bot.app import App


async def case_command(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    from storage.queries import case_list, case_view

    async with app.uow.reading() as uow:
        if args.case_command == "list":
            _check_state(args.state, renderer)
            rows = await case_list(uow.session, state=args.state, limit=args.limit)
            print(renderer.render("case_list.txt.j2", rows=rows))
        else:
            view = await case_view(uow.session, args.number)
            print(renderer.render("case_show.txt.j2", view=view))
    return 0


def _check_state(state: str | None, renderer: Renderer) -> None:
    from workflow.model import State

    stored = [s.value for s in State if s is not State.NEW]
    if state is not None and state not in stored:
        raise UserError(renderer.macro("cli.j2", "unknown_state", value=state, states=stored))


async def invite_command(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    from storage.invites import create_invite, describe_invite

    async with app.uow() as uow:
        invite = await create_invite(
            uow.session,
            purpose="enrol" if args.invite_command == "enrol" else "bind_chat",
            role=getattr(args, "role", None),
            area_code=args.area,
            department_code=args.department,
            person_code=getattr(args, "person", None),
            chat_purpose=getattr(args, "purpose", None),
            valid_hours=args.hours,
            now=app.clock.now(),
        )
        info = await describe_invite(uow.session, invite)
        await uow.commit()
    macro = "invite_enrol" if info["purpose"] == "enrol" else "invite_chat"
    print(renderer.macro("cli.j2", macro, invite=info))
    return 0


async def report_command(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
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
