"""The template message (模板消息) that stands in for customer-service messages outside the
48-hour window: the case's news in the fields `[wechat] template_fields` names (fields.py),
linking to the resident's web chat."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from bot.wechat.fields import CLASSIC, fit, key_type
from bot.wechat.render import plain
from handlers.messages import Outgoing
from handlers.render import Renderer

SHOWN_ZONE = ZoneInfo("Asia/Shanghai")


def template_message(
    openid: str, template_id: str, message: Outgoing, r: Renderer, url: str | None,
    now: datetime, fields: Mapping[str, str] | None = None,
) -> dict[str, Any]:  # fmt: skip
    """The template message for a case's news when customer-service messages cannot reach the
    follower; `fields` maps the roles to the template's keys (the classic layout if None)."""
    shown = now.astimezone(SHOWN_ZONE)
    values = {
        "first": r.macro("wechat.j2", "template_first", purpose=message.purpose),
        "number": message.case_number or "",
        "summary": plain(message.text),
        "remark": r.macro("wechat.j2", "template_remark", linked=url is not None),
    }
    data: dict[str, Any] = {}
    for role, key in (fields or CLASSIC).items():
        if role == "time":
            pattern = "%Y年%m月%d日" if key_type(key) == "date" else "%Y-%m-%d %H:%M"
            data[key] = {"value": shown.strftime(pattern)}
        else:
            data[key] = {"value": fit(key, values[role])}
    body: dict[str, Any] = {"touser": openid, "template_id": template_id, "data": data}
    if url is not None:
        body["url"] = url
    return body
