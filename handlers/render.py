"""Jinja2 rendering of every user-visible text, per locale (zh_CN default, en second)."""

from __future__ import annotations

from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

import templates
from workflow.clock import local
from workflow.errors import WorkflowError

TEMPLATES_DIR = Path(templates.__file__).parent
LOCALES = ("zh_CN", "en")
DEFAULT_LOCALE = "zh_CN"


def _local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return local(value).strftime(fmt) if value is not None else "-"


@cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # Chat texts go out in Telegram's HTML parse mode: user text inside them is escaped.
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
    )
    env.filters["local"] = _local_time
    return env


class Renderer:
    """Renders templates of one locale; unknown locales fall back to zh_CN."""

    def __init__(self, locale: str | None = None) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT_LOCALE
        self.env = environment()

    @property
    def labels(self) -> Any:
        return self.env.get_template(f"{self.locale}/labels.j2").module

    def render(self, name: str, **context: Any) -> str:
        template = self.env.get_template(f"{self.locale}/{name}")
        return template.render(labels=self.labels, **context).strip()

    def macro(self, template: str, macro: str, /, **params: Any) -> str:
        """Render one macro of a message file such as cli.j2."""
        module = self.env.get_template(f"{self.locale}/{template}").module
        return str(getattr(module, macro)(**params)).strip()

    def error(self, error: WorkflowError) -> str:
        """The localized one-line reason for a refusal."""
        # A template's macros are attributes made at run time.
        module: Any = self.env.get_template(f"{self.locale}/errors.j2").module
        macro = getattr(module, error.code, None)
        if macro is None:
            return str(module.generic(message=error.message)).strip()
        params = {k: v for k, v in error.params.items() if k in macro.arguments}
        return str(macro(**params)).strip()
