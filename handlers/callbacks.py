"""Typed callback data for the case buttons, in the style of aiogram's `CallbackData`.

A class declares a prefix and its fields; `pack()` makes the string a button carries (checked
against Telegram's 64-byte limit) and `unpack()` reads one back, or raises `ValueError` for
anything else, so a stale or forged button is refused, never half-understood. No aiogram here:
handlers/ stays channel-neutral, and the web chat's buttons carry the same strings.
"""

from __future__ import annotations

import dataclasses
from typing import Any, ClassVar, Self

from workflow.model import Action
from workflow.table import ACTION_OF_CODE, SCREENS

SEP = ":"
MAX_BYTES = 64  # Telegram's limit for callback_data


class CallbackData:
    """Base of the frozen dataclasses below: `prefix:field1:field2...`, every field a str."""

    prefix: ClassVar[str]

    def __init_subclass__(cls, *, prefix: str | None = None, **kwargs: Any) -> None:
        """`prefix` names a kind of button; a class without one is a shape several kinds
        share (CaseChoice, RatingButton), never packed itself."""
        super().__init_subclass__(**kwargs)
        if prefix is None:
            return
        if not prefix or SEP in prefix:
            raise ValueError(f"bad callback prefix {prefix!r}")
        cls.prefix = prefix

    def pack(self) -> str:
        values = [str(getattr(self, f.name)) for f in dataclasses.fields(self)]  # type: ignore[arg-type]
        for value in values:
            if SEP in value:
                raise ValueError(f"{SEP!r} in a callback field: {value!r}")
        data = SEP.join([self.prefix, *values])
        if len(data.encode()) > MAX_BYTES:
            raise ValueError(f"callback data over {MAX_BYTES} bytes: {data!r}")
        return data

    @classmethod
    def unpack(cls, data: str) -> Self:
        parts = data.split(SEP)
        names = [f.name for f in dataclasses.fields(cls)]  # type: ignore[arg-type]
        if parts[0] != cls.prefix or len(parts) != len(names) + 1 or not all(parts[1:]):
            raise ValueError(f"not {cls.__name__} data: {data!r}")
        return cls(**dict(zip(names, parts[1:], strict=True)))

    @classmethod
    def matches(cls, data: str | None) -> bool:
        return bool(data) and (data or "").split(SEP, 1)[0] == cls.prefix


@dataclasses.dataclass(frozen=True)
class CaseAction(CallbackData, prefix="a"):
    """A card button: `a:<screen code>:<case number>` (workflow/table.py SCREENS)."""

    code: str
    number: str

    @classmethod
    def of(cls, action: Action, number: str) -> CaseAction:
        return cls(SCREENS[action].code, number)

    @property
    def action(self) -> Action | None:
        return ACTION_OF_CODE.get(self.code)


@dataclasses.dataclass(frozen=True)
class CaseChoice(CallbackData):
    """A choice a screen offers for a case: `<prefix>:<code of the choice>:<case number>`."""

    choice: str
    number: str


class AssignTo(CaseChoice, prefix="as"):
    """A department choice of the assign screen: `as:<department code>:<case number>`."""

    @property
    def department(self) -> str:
        return self.choice


class ReclassifyTo(CaseChoice, prefix="rc"):
    """A category choice of the reclassify screen: `rc:<category code>:<case number>`."""

    @property
    def category(self) -> str:
        return self.choice


@dataclasses.dataclass(frozen=True)
class RatingButton(CallbackData):
    """A rating button: `<prefix>:<case number>:<s|b|d>`."""

    number: str
    value: str

    @staticmethod
    def read(data: str | None) -> RatingButton | None:
        """The rating a button carries, in today's form or an old one; None: no rating."""
        for kind in (RateAs, LegacyRateAs):
            if kind.matches(data):
                return kind.unpack(data or "")
        return None


class RateAs(RatingButton, prefix="ra"):
    """A rating button: `ra:<case number>:<s|b|d>`."""


class LegacyRateAs(RatingButton, prefix="rt"):
    """Rating buttons sent before the codes were made unique: `rt:<case number>:<s|b|d>`."""


@dataclasses.dataclass(frozen=True)
class SkipComment(CallbackData, prefix="rk"):
    """Skip the comment after a rating: `rk:<case number>`."""

    number: str


@dataclasses.dataclass(frozen=True)
class ConfirmResult(CallbackData, prefix="rz"):
    """Confirm a result (办结) after its text and photos: `rz:<case number>:ok`."""

    number: str
    ok: str = "ok"
