"""`shuoshi user add|link|unlink|list|disable`: the accounts that may open the dashboard (and,
linked to a person, the staff web workspace)."""

from __future__ import annotations

import argparse
import getpass
import sys
import warnings
from typing import TYPE_CHECKING

from bot.cli.errors import UserError
from bot.web.dashboard.users import (
    AccountRefused,
    add_user,
    check_new_password,
    disable_user,
    link_user,
    list_users,
)
from handlers.render import Renderer

if TYPE_CHECKING:
    from bot.app import App


def add_user_parser(sub: argparse._SubParsersAction) -> None:
    """The `user` subcommands, added to the main parser."""
    user = sub.add_parser("user", help="dashboard accounts (the big screen's login)")
    cmds = user.add_subparsers(dest="user_command", required=True, metavar="USER_COMMAND")
    add = cmds.add_parser("add", help="create an account; asks for the password twice")
    add.add_argument("username")
    add.add_argument("--name", help="name shown on the dashboard")
    add.add_argument("--person", help="code of a person in the org file this account belongs to")
    add.add_argument(
        "--password-stdin", action="store_true", help="read the password from stdin (scripts)"
    )
    link = cmds.add_parser(
        "link", help="link an account to a person (their staff web workspace, /dashboard/staff)"
    )
    link.add_argument("username")
    link.add_argument("person", help="code of a person in the org file")
    unlink = cmds.add_parser("unlink", help="an account no longer acts as a person")
    unlink.add_argument("username")
    cmds.add_parser("list", help="every account, active or not")
    disable = cmds.add_parser("disable", help="deactivate an account and sign it out")
    disable.add_argument("username")


def read_password(args: argparse.Namespace, renderer: Renderer) -> str:
    """From stdin for scripts, else typed twice without echo."""
    if args.password_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    first = _typed(renderer.macro("cli.j2", "password_prompt"), renderer)
    _refuse_weak(args.username, first, renderer)
    second = _typed(renderer.macro("cli.j2", "password_again"), renderer)
    if first != second:
        raise UserError(renderer.macro("cli.j2", "password_mismatch"))
    return first


def _typed(prompt: str, renderer: Renderer) -> str:
    """A password typed on the terminal; without one, getpass would read stdin and echo it."""
    with warnings.catch_warnings():
        warnings.simplefilter("error", getpass.GetPassWarning)
        try:
            return getpass.getpass(prompt)
        except getpass.GetPassWarning:
            raise UserError(renderer.macro("cli.j2", "password_no_terminal")) from None
        except EOFError:  # Ctrl-D at the prompt
            raise UserError(renderer.macro("cli.j2", "password_input_ended")) from None


async def user_command(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    """Run one `user` subcommand; refusals become one-line errors (exit 2)."""
    try:
        async with app.uow() as uow:
            if args.user_command == "add":
                password = read_password(args, renderer)
                _refuse_weak(args.username, password, renderer)
                row = await add_user(
                    uow.accounts,
                    args.username,
                    password,
                    now=app.clock.now(),
                    display_name=args.name,
                    person_code=args.person,
                )
                await uow.commit()
                print(renderer.macro("cli.j2", "user_added", username=row.username))
            elif args.user_command in ("link", "unlink"):
                person = args.person if args.user_command == "link" else None
                await link_user(uow.accounts, args.username, person, now=app.clock.now())
                await uow.commit()
                print(renderer.macro("cli.j2", "user_linked", username=args.username,
                                     person=person))  # fmt: skip
            elif args.user_command == "list":
                print(renderer.macro("cli.j2", "user_list", users=await list_users(uow.accounts)))
            else:
                await disable_user(uow.accounts, args.username, now=app.clock.now())
                await uow.commit()
                print(renderer.macro("cli.j2", "user_disabled", username=args.username))
    except AccountRefused as exc:
        raise UserError(renderer.macro("cli.j2", exc.code, **exc.params)) from None
    return 0


def _refuse_weak(username: str, password: str, renderer: Renderer) -> None:
    try:
        check_new_password(username, password)
    except AccountRefused as exc:
        raise UserError(renderer.macro("cli.j2", exc.code, **exc.params)) from None
