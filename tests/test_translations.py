"""One template per message, one gettext catalog per locale: the catalogs match the templates,
every zh_CN message is translated, and a new locale is a catalog, not a copy of templates."""

from __future__ import annotations

import re
import shutil
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace as NS

import pytest
from babel.messages.catalog import Catalog
from babel.messages.extract import extract_from_dir
from babel.messages.frontend import parse_mapping_cfg
from babel.messages.pofile import read_po, write_po
from jinja2 import nodes

from handlers import render
from handlers.render import LOCALES, Renderer
from workflow.errors import IllegalTransition, NotFound

ROOT = Path(__file__).resolve().parent.parent
PLACEHOLDER = re.compile(r"%\((\w+)\)")
DUE = datetime(2026, 11, 23, 9, 30, tzinfo=UTC)


def extracted() -> set[tuple[str | None, str]]:
    """What `pybabel extract -F babel.cfg` finds in templates/: (context, msgid)."""
    with (ROOT / "babel.cfg").open() as cfg:
        method_map, options_map = parse_mapping_cfg(cfg)
    found = set()
    for _file, _line, message, _comments, context in extract_from_dir(
        str(ROOT), method_map, options_map
    ):
        assert isinstance(message, str), f"plural forms are not used: {message!r}"
        found.add((context, message))
    return found


def catalog(locale: str) -> Catalog:
    with render._catalog_path(locale).open("rb") as po:
        return read_po(po, locale=locale)


def test_locales_are_the_catalogs_with_chinese_first():
    assert LOCALES == ("zh_CN", "en")
    # no copy of the templates per locale any more
    assert not [p for p in (ROOT / "templates").iterdir() if p.is_dir() and p.name in LOCALES]


@pytest.mark.parametrize("locale", LOCALES)
def test_catalog_holds_exactly_the_messages_of_the_templates(locale):
    ids = {(m.context, m.id) for m in catalog(locale) if m.id}
    in_templates = extracted()
    assert sorted(in_templates - ids, key=str) == [], "missing: run pybabel update (README)"
    assert sorted(ids - in_templates, key=str) == [], "obsolete: run pybabel update (README)"


def parameters() -> dict[tuple[str | None, str], set[str]]:
    """The keyword parameters each _()/pgettext() call in templates/ passes: what a
    translation may use (it may leave some out, or use one the English text does not)."""
    env = render.environment()
    found: dict[tuple[str | None, str], set[str]] = {}
    for name in env.list_templates(extensions=["j2"]):
        tree = env.parse(env.loader.get_source(env, name)[0])
        for call in tree.find_all(nodes.Call):
            if not isinstance(call.node, nodes.Name) or call.node.name not in ("_", "pgettext"):
                continue
            consts = [a.value for a in call.args if isinstance(a, nodes.Const)]
            key = (consts[0], consts[1]) if call.node.name == "pgettext" else (None, consts[0])
            found.setdefault(key, set()).update(k.key for k in call.kwargs)
    return found


def test_every_chinese_message_is_translated_and_formats():
    passed = parameters()
    for m in catalog("zh_CN"):
        if not m.id:
            continue
        where = (m.context, m.id)
        assert m.string, f"untranslated: {where}"
        assert not m.fuzzy, f"fuzzy: {where}"
        names = passed[where]
        assert set(PLACEHOLDER.findall(m.string)) <= names, f"unknown placeholder: {where}"
        # newstyle gettext always %-formats the translation with the template's parameters
        m.string % dict.fromkeys(names, "x")


def test_english_catalog_is_the_identity():
    """msgids are the English texts; the en catalog only exists so en is a locale like others."""
    assert all(not m.string for m in catalog("en") if m.id)


def representative(locale: str) -> dict[str, object]:
    r = Renderer(locale)
    row = NS(
        case=NS(number="JL-20261121-0001", state="closed", created_at=DUE, due_at=DUE),
        category={"zh_CN": "井盖", "en": "manhole"},
        township={"zh_CN": "城关镇", "en": "Chengguan"},
        grid={"zh_CN": "一网格", "en": "Grid 1"},
        department=None,
    )
    running = NS(url="http://127.0.0.1:8080/", demo=True, login=False, telegram="polling",
                 roles=("web", "sender", "sweeper"))  # fmt: skip
    return {
        "submitted": r.macro(
            "chat.html.j2", "submitted", number="JL-1", state="screening", due=DUE, provisional=True
        ),
        "resident_bound": r.macro("chat.html.j2", "resident_bound", grid="<东门>"),
        "illegal": r.error(IllegalTransition(action="accept", state="closed")),
        "running": r.macro("cli.j2", "running", r=running),
        "case_list": r.render("case_list.txt.j2", rows=[row]),
        "duration": r.macro("web/dashboard_parts.html.j2", "duration", seconds=90061),
        "labels": [r.labels.states["closed"], r.labels.actions["close"]],
    }


# Rendered by the per-locale templates before they were merged: the merge changed no text.
BEFORE = {
    "zh_CN": {
        "submitted": "✅ 已受理，案件编号 <b>JL-1</b>。\n当前：网格长初筛\n"
        "办理时限：2026-11-23 17:30（暂定）\n每一步进展都会通知您。",
        "resident_bound": "已登记到 <b>&lt;东门&gt;</b>。有事请点“📝 我要说事”，"
        "我们会转给负责的单位并告诉您办理进展。",
        "illegal": "案件当前状态为「已结案」，不能执行「签收」。",
        "running": "说事已启动：请在浏览器打开 http://127.0.0.1:8080/（本机演示：网页聊天可扮演"
        "各种角色，大屏无需登录）；Telegram 机器人已接入（长轮询）。按 Ctrl-C 停止。",
        "case_list": "JL-20261121-0001  已结案       井盖  城关镇/一网格  上报 11-23 17:30  "
        "时限 11-23 17:30\n共 1 件",
        "duration": "1 天 1 小时",
        "labels": ["已结案", "结案"],
    },
    "en": {
        "submitted": "✅ Received as case <b>JL-1</b>.\nNow: grid leader screening\n"
        "Due: 2026-11-23 17:30 (provisional)\nYou will hear of every step.",
        "resident_bound": 'You are registered in <b>&lt;东门&gt;</b>. Tap "📝 Report a problem"'
        " whenever something needs fixing; we pass it to the responsible unit and keep you"
        " informed.",
        "illegal": "The case is closed; it cannot be accepted now.",
        "running": "shuoshi is running: open http://127.0.0.1:8080/ in a browser (local demo: the"
        " web chat lets you play every role, the dashboard needs no login); the Telegram bot is"
        " connected (polling). Press Ctrl-C to stop.",
        "case_list": "JL-20261121-0001  closed  manhole  Chengguan/Grid 1  reported 11-23 17:30"
        "  due 11-23 17:30\n1 case(s)",
        "duration": "1 d 1 h",
        "labels": ["closed", "closed"],
    },
}


@pytest.mark.parametrize("locale", LOCALES)
def test_representative_texts_are_unchanged_by_the_merge(locale):
    assert representative(locale) == BEFORE[locale]


@pytest.fixture
def french(tmp_path, monkeypatch):
    """A third locale made of nothing but a catalog next to the two shipped ones."""
    for code in LOCALES:
        target = tmp_path / code / "LC_MESSAGES"
        target.mkdir(parents=True)
        shutil.copy(render._catalog_path(code), target / "messages.po")
    fr = Catalog(locale="fr")
    fr.add("Not found.", "Introuvable.")
    fr.add("%(count)s case(s)", "%(count)s dossier(s)")
    (tmp_path / "fr" / "LC_MESSAGES").mkdir(parents=True)
    with (tmp_path / "fr" / "LC_MESSAGES" / "messages.po").open("wb") as po:
        write_po(po, fr)
    monkeypatch.setattr(render, "LOCALE_DIR", tmp_path)
    monkeypatch.setattr(render, "LOCALES", render._available_locales())
    render.translations.cache_clear()
    render.environment.cache_clear()
    yield
    render.translations.cache_clear()
    render.environment.cache_clear()


def test_a_new_locale_is_only_a_catalog(french):
    assert render.LOCALES == ("zh_CN", "en", "fr")
    r = Renderer("fr")
    assert r.locale == "fr"
    assert r.error(NotFound("not_found", "x")) == "Introuvable."
    assert r.render("case_list.txt.j2", rows=[]) == "No cases yet."  # untranslated: English
    # the organisation's names exist in Chinese and English only: other locales show Chinese
    assert r.macro("web/dashboard_parts.html.j2", "name", unit={"zh_CN": "城关镇", "en": "C"}) == (
        "城关镇"
    )


def test_configured_locale_must_have_a_catalog():
    from pydantic import ValidationError

    from bot.config import Settings

    assert Settings(locale="en").locale == "en"
    with pytest.raises(ValidationError, match="must be one of zh_CN, en"):
        Settings(locale="fr")


def test_telegram_language_codes_map_to_a_catalog(monkeypatch):
    from handlers import conversation

    assert conversation._locale_of("en-US", "zh_CN") == "en"
    assert conversation._locale_of("zh-hans", "en") == "zh_CN"
    assert conversation._locale_of("fr-FR", "en") == "zh_CN"  # no French catalog shipped
    assert conversation._locale_of(None, "en") == "en"
    monkeypatch.setattr(conversation, "LOCALES", ("zh_CN", "en", "fr"))
    assert conversation._locale_of("fr-FR", "en") == "fr"
