"""The Bot API answers' classes are made once per process (bot/telegram/responses.py)."""

from __future__ import annotations

import gc
from typing import Any

from aiogram.methods.base import Response
from pydantic._internal import _generics

from bot.telegram.responses import CALLED


def test_an_answer_class_is_not_made_again_after_a_garbage_collection(monkeypatch):
    made: list[str] = []
    make = _generics.create_generic_submodel

    def counted(name: str, *args: Any, **kwargs: Any) -> Any:
        made.append(name)
        return make(name, *args, **kwargs)

    monkeypatch.setattr(_generics, "create_generic_submodel", counted)
    gc.collect()
    for method in CALLED:  # as aiogram's session does for every answer it parses
        Response[method.__returning__]  # type: ignore[name-defined]
    assert made == []
