"""Jinja2 rendering of every user-visible text: one template per message, one catalog per locale.

Templates are written once, with English msgids marked by `_("...")` (newstyle gettext:
`%(name)s` keyword parameters, escaped in HTML templates) or `pgettext("context", "...")`
where one English word has several meanings. templates/locale/<locale>/LC_MESSAGES/messages.po
holds each locale's words; zh_CN is the default locale, en's catalog is the identity (empty
msgstr: the msgid is the English text). The catalogs are read as .po at first use, so a fresh
clone and an installed wheel work alike with nothing to compile.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from functools import cache
from io import BytesIO
from pathlib import Path
from typing import Any

from babel import Locale
from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import Translations
from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

import templates
from workflow.clock import local
from workflow.errors import WorkflowError
from workflow.model import State
from workflow.states import STATES, Phase, reporter_state

TEMPLATES_DIR = Path(templates.__file__).parent
LOCALE_DIR = TEMPLATES_DIR / "locale"
DOMAIN = "messages"
DEFAULT_LOCALE = "zh_CN"


def _catalog_path(locale: str) -> Path:
    return LOCALE_DIR / locale / "LC_MESSAGES" / f"{DOMAIN}.po"


def _available_locales() -> tuple[str, ...]:
    """The default locale first, then every other locale that has a catalog."""
    found = sorted(p.parent.parent.name for p in LOCALE_DIR.glob(f"*/LC_MESSAGES/{DOMAIN}.po"))
    return (DEFAULT_LOCALE, *(code for code in found if code != DEFAULT_LOCALE))


LOCALES = _available_locales()


def _local_time(value: datetime | None, fmt: str = "%Y-%m-%d %H:%M:%S") -> str:
    return local(value).strftime(fmt) if value is not None else "-"


def name_language(locale: str) -> str:
    """Which of the organisation's names (zh, en) a locale shows; the data holds only these two."""
    return "en" if locale.split("_")[0] == "en" else "zh"


def _named_filter(locale: str) -> Any:
    lang = name_language(locale)
    key = "en" if lang == "en" else "zh_CN"

    def named(obj: Any, field: str | None = None, default: Any = None) -> Any:
        """A unit's name in the locale's language: `{{ unit | named }}` reads unit["zh_CN"] or
        unit["en"]; `{{ row | named("name") }}` reads row.name_zh or row.name_en."""
        attr = f"{field}_{lang}" if field else key
        if isinstance(obj, Mapping):
            return obj.get(attr, default)
        return getattr(obj, attr, default)

    return named


def shown_to_reporter(state: str) -> str:
    """The state a reporter is shown: internal steps (a return) appear as the step they are in."""
    return reporter_state(State(state)).value


def what_happens_now(state: str) -> str:
    """Which "what happens now" line the reporter sees (templates/chat.html.j2 `now_line`):
    who holds the case as the reporter sees it, or how it ended."""
    info = STATES[reporter_state(State(state))]
    return info.holder.value if info.phase is Phase.OPEN else info.phase.value


def language_name(locale: str) -> str:
    """A locale's name in its own language, for language switchers: 中文, English."""
    parsed = Locale.parse(locale)
    return (parsed.get_language_name(locale) or locale).capitalize()


@cache
def translations(locale: str) -> Translations:
    """The locale's catalog, read from its .po (fuzzy and untranslated entries left out)."""
    with _catalog_path(locale).open("rb") as po:
        catalog = read_po(po, locale=locale, domain=DOMAIN)
    compiled = BytesIO()
    write_mo(compiled, catalog)
    compiled.seek(0)
    return Translations(compiled, domain=DOMAIN)


@cache
def environment(locale: str = DEFAULT_LOCALE) -> Environment:
    """One environment per locale: template modules (labels, macros) are cached per language."""
    env = Environment(
        loader=FileSystemLoader(str(TEMPLATES_DIR)),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=False,
        # Chat texts go out in Telegram's HTML parse mode: user text inside them is escaped.
        autoescape=select_autoescape(enabled_extensions=("html.j2",), default=False),
        extensions=["jinja2.ext.i18n"],
        # Templates ship with the code: no stat() of the file on every render.
        auto_reload=False,
    )
    env.install_gettext_translations(translations(locale), newstyle=True)  # type: ignore[attr-defined]
    env.filters["local"] = _local_time
    env.filters["named"] = _named_filter(locale)
    env.filters["language_name"] = language_name
    env.globals["locale"] = locale
    env.globals["html_lang"] = locale.replace("_", "-")
    env.globals["locales"] = LOCALES
    env.globals["reporter_state"] = shown_to_reporter
    env.globals["now_of"] = what_happens_now
    return env


_CONSTANTS: dict[tuple[str, str, str], str] = {}


def _constant(locale: str, template: str, macro: str) -> str:
    """A macro called without arguments, such as a button's label: a macro that takes none
    says the same every time in a language (the templates ship with the code), so it is
    rendered once; every update compares its text with the menu's labels."""
    key = (locale, template, macro)
    text = _CONSTANTS.get(key)
    if text is None:
        found = getattr(environment(locale).get_template(template).module, macro)
        text = str(found()).strip()
        if not found.arguments and not found.catch_kwargs and not found.catch_varargs:
            _CONSTANTS[key] = text
    return text


class Renderer:
    """Renders templates in one locale; unknown locales fall back to zh_CN."""

    def __init__(self, locale: str | None = None) -> None:
        self.locale = locale if locale in LOCALES else DEFAULT_LOCALE
        self.env = environment(self.locale)

    @property
    def labels(self) -> Any:
        return self.env.get_template("labels.j2").module

    def render(self, name: str, **context: Any) -> str:
        template = self.env.get_template(name)
        return template.render(labels=self.labels, **context).strip()

    def macro(self, template: str, macro: str, /, **params: Any) -> str:
        """Render one macro of a message file such as cli.j2."""
        if not params:
            return _constant(self.locale, template, macro)
        module = self.env.get_template(template).module
        return str(getattr(module, macro)(**params)).strip()

    def error(self, error: WorkflowError) -> str:
        """The localized one-line reason for a refusal."""
        # A template's macros are attributes made at run time.
        module: Any = self.env.get_template("errors.j2").module
        macro = getattr(module, error.code, None)
        if macro is None:
            return str(module.generic(message=error.message)).strip()
        params = {k: v for k, v in error.params.items() if k in macro.arguments}
        return str(macro(**params)).strip()
