"""What the bot says, from the templates: tests compare with these, not with Chinese fragments."""

from __future__ import annotations

from typing import Any

from handlers.render import Renderer

ZH = Renderer("zh_CN")


def said(macro: str, /, **params: Any) -> str:
    """A chat message as templates/chat.html.j2 renders it in zh_CN (HTML, as sent)."""
    return ZH.macro("chat.html.j2", macro, **params)


def refusal(code: str, /, **params: Any) -> str:
    """A refusal's one line as templates/errors.j2 renders it in zh_CN."""
    return ZH.macro("errors.j2", code, **params)


def shown(macro: str, /, **params: Any) -> str:
    """A chat message as a Telegram client shows it: `said` without its HTML markup."""
    from tests.fake_telegram import html_to_text

    return html_to_text(said(macro, **params))


# What the example county's resident sees after /start JL-XGC-01-G1.
BOUND_TO_G1 = shown("resident_bound", grid="西郭城村第一网格")
