"""`shuoshi wecom appchat create --unit CODE`: an app group chat (群聊会话) of the WeCom app for
a unit, with the unit's people who have a `wecom_userid` in the organisation file, bound to
the unit as a Telegram group is with /bind (README, "WeCom").

The unit's messages (case cards as text, reminders) then also go to the group chat; its
members still get their interactive cards in the app, since WeCom's group chats take no
button presses (handlers/units.py NOTICE_ONLY_GROUPS).
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING

from bot.cli.errors import UserError
from handlers.render import Renderer

if TYPE_CHECKING:
    from bot.app import App

TEMPLATE = "wecom.j2"


def add_wecom_parser(sub: argparse._SubParsersAction) -> None:
    wecom = sub.add_parser("wecom", help="set up the WeCom app (app group chats of units)")
    cmd = wecom.add_subparsers(dest="wecom_command", required=True, metavar="WECOM_COMMAND")
    appchat = cmd.add_parser("appchat", help="app group chats (群聊会话) of units")
    act = appchat.add_subparsers(dest="appchat_command", required=True, metavar="ACTION")
    create = act.add_parser("create", help="create a unit's group chat and bind it to the unit")
    create.add_argument(
        "--unit", required=True,
        help="a grid, township or department code, or county / supervisors / leaders",
    )  # fmt: skip


async def wecom_command(app: App, args: argparse.Namespace, renderer: Renderer) -> int:
    def say(macro: str, **params: object) -> str:
        return renderer.macro(TEMPLATE, macro, **params)

    settings = app.settings.wecom
    if not settings.corp_id or settings.agent_id is None or settings.secret is None:
        raise UserError(say("cli_not_configured"))
    from bot.cli.wechat import calling
    from bot.wecom.api import WeComApi
    from storage.wechat import WeChatStore
    from storage.wecom import APPCHAT_PREFIX, CHANNEL, WeComStore

    cards = WeComStore(app.sessions, settings.account)
    unit = await cards.unit(args.unit)
    if unit is None:
        raise UserError(say("cli_unknown_unit", code=args.unit))
    members = await cards.members(unit)
    if len(members) < 2:  # WeCom's own rule for a group chat
        raise UserError(say("cli_too_few", code=unit.code, count=len(members)))
    store = WeChatStore(app.sessions, settings.account, CHANNEL)
    api = WeComApi(settings.api_base, settings.corp_id, settings.agent_id,
                   settings.secret.get_secret_value(), store, app.clock)  # fmt: skip
    async with calling(api, settings.api_base, say):
        chatid = await api.appchat_create(unit.chatid, unit.name, members[0], members)
    if not await cards.bind(unit, APPCHAT_PREFIX + chatid, app.clock.now()):
        print(say("cli_appchat_bound_already", code=unit.code, chatid=chatid))
        return 0
    print(say("cli_appchat_created", code=unit.code, chatid=chatid, count=len(members)))
    return 0
