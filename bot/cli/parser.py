"""The `shuoshi` command line's arguments: every command, its options and their help.

Commands: init, org (load, generate), calendar (load, due), case (list, show), demo, run,
invite (enrol, chat), user (users.py), report (weekly), qr (qr.py), wechat (menu, qr;
wechat.py: the Official Account's menu and per-grid QR codes) and wecom (appchat create;
wecom.py: a unit's WeCom app group chat). The commands with a module of their own add their
arguments there, beside the code that runs them.
"""

from __future__ import annotations

import argparse
from pathlib import Path

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
        "run",
        help="web chat, dashboard, Telegram, WeChat and WeCom (as configured), reminders; "
        "until Ctrl-C",
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
    from bot.cli.qr import add_qr_parser

    add_qr_parser(sub)
    from bot.cli.wechat import add_wechat_parser

    add_wechat_parser(sub)
    from bot.cli.wecom import add_wecom_parser

    add_wecom_parser(sub)
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
