"""Every refusal the code can give has a localized text in every locale."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from handlers.render import LOCALES, Renderer
from workflow import errors
from workflow.errors import WorkflowError
from workflow.model import Action, DeadlineClass, Holder, Rating, Role, State
from workflow.table import TRANSITIONS

ROOT = Path(__file__).resolve().parent.parent
RAISED = re.compile(
    r"(?:NotFound|NotPermitted|GuardFailed|WorkflowError|MediaRefused|IllegalTransition)"
    r"\(\s*\"(\w+)\"",
    re.S,
)


def error_codes() -> set[str]:
    codes = {g.error_code for t in TRANSITIONS for g in t.guards}
    codes |= {
        cls.code
        for cls in vars(errors).values()
        if isinstance(cls, type) and issubclass(cls, WorkflowError) and cls is not WorkflowError
    }
    for package in ("workflow", "storage", "handlers", "bot"):
        for path in (ROOT / package).rglob("*.py"):
            codes |= set(RAISED.findall(path.read_text(encoding="utf-8")))
    return codes


@pytest.mark.parametrize("locale", LOCALES)
def test_every_error_code_has_a_text(locale):
    renderer = Renderer(locale)
    module = renderer.env.get_template("errors.j2").module
    missing = sorted(c for c in error_codes() if c != "workflow_error" and not hasattr(module, c))
    assert missing == []


@pytest.mark.parametrize("locale", LOCALES)
def test_every_label_exists(locale):
    labels = Renderer(locale).labels
    for enum, table in ((State, labels.states), (Action, labels.actions), (Role, labels.roles),
                        (Rating, labels.ratings), (DeadlineClass, labels.deadline_classes),
                        (Holder, labels.holders)):  # fmt: skip
        assert {e.value for e in enum} <= set(table), enum


def test_unknown_locale_falls_back_to_chinese():
    assert Renderer("fr").locale == "zh_CN"


def test_error_parameters_are_rendered():
    from workflow.errors import IllegalTransition

    text = Renderer("en").error(IllegalTransition(action="accept", state="closed"))
    assert text == "The case is closed; it cannot be accepted now."


@pytest.mark.parametrize("locale", LOCALES)
def test_media_refusals_are_localized(locale):
    from storage.media import MAX_PHOTO_BYTES, MediaRefused, MediaStore

    store = MediaStore(Path("/nonexistent"))
    texts = []
    for data in (b"", b"%PDF-1.7 hello", b"x" * (MAX_PHOTO_BYTES + 1)):
        with pytest.raises(MediaRefused) as info:
            store.inspect_photo(data)
        texts.append(Renderer(locale).error(info.value))
    assert len(set(texts)) == 3 and all(texts)
    assert "20" in texts[2]
