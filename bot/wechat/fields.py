"""The layout of a template message's fields (模板消息), checked by the settings
(bot/config_channels.py) and filled by template.py; imports nothing but the standard library.

Templates come in two layouts. The classic one has `first`, `keyword1`..`keywordN`, `remark`;
the newer category templates (类目模板) have typed keys such as `thing1`, `character_string2`,
`time3`, each with WeChat's own limits (a `thing` holds 20 characters, a `character_string`
32 letters, digits or symbols; no field takes a line break), and no first/remark. What we put
in a template is five pieces ("roles"); `[wechat] template_fields` says which key of the
county's template each one goes to (README "WeChat").
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

# What we fill in: the headline, the case number, what happened, when, and the closing line.
ROLES = ("first", "number", "summary", "time", "remark")
CLASSIC = {"first": "first", "number": "keyword1", "summary": "keyword2", "time": "keyword3",
           "remark": "remark"}  # fmt: skip

# A key's type is its name without the trailing digits (`thing1` -> thing). The most
# characters a value of that type takes: past that WeChat refuses the message (new types) or
# cuts it (classic keywords, which stay readable at this length).
LIMITS = {"first": 60, "remark": 60, "keyword": 60, "thing": 20, "character_string": 32,
          "time": 32, "date": 32}  # fmt: skip
# Which types can hold each role: a case number is letters, digits and "-"; words go to
# word fields; a time to a time or date field (or a classic keyword).
WORDS = frozenset({"first", "remark", "keyword", "thing"})
FITS = {
    "first": WORDS,
    "number": WORDS | {"character_string"},
    "summary": WORDS,
    "time": frozenset({"keyword", "time", "date"}),
    "remark": WORDS,
}
_KEY = re.compile(r"(first|remark)|(keyword|thing|character_string|time|date)([1-9][0-9]?)")


def key_type(key: str) -> str:
    match = _KEY.fullmatch(key)
    if match is None:
        raise ValueError(key)
    return match.group(1) or match.group(2)


def check_fields(fields: Mapping[str, Any]) -> dict[str, str]:
    """A `template_fields` mapping (role -> template key) as given, or ValueError saying what
    is wrong with it in one line."""
    if not fields:
        raise ValueError(f"must map at least one of {', '.join(ROLES)} to a template key")
    seen: dict[str, str] = {}
    for role, key in fields.items():
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r} (the roles: {', '.join(ROLES)})")
        if not isinstance(key, str) or _KEY.fullmatch(key) is None:
            raise ValueError(
                f"{role} = {key!r} is no template key WeChat has (e.g. first, keyword1, "
                "thing2, character_string3, time4, date5, remark)"
            )
        kind = key_type(key)
        if kind not in FITS[role]:
            fits = ", ".join(sorted(FITS[role]))
            raise ValueError(f"{role} cannot go to a {kind} field ({key}); it fits: {fits}")
        if key in seen:
            raise ValueError(f"{seen[key]} and {role} both go to {key}")
        seen[key] = role
    return dict(fields)


def fit(key: str, value: str) -> str:
    """`value` as the field `key` takes it: one line, within the type's length."""
    value = " ".join(value.split())
    limit = LIMITS[key_type(key)]
    if len(value) <= limit:
        return value
    if key_type(key) == "character_string":  # letters, digits and symbols only: no "…"
        return value[:limit]
    return value[: limit - 1] + "…"
