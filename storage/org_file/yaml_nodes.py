"""Reading YAML files an operator edits, keeping each node's line for error messages.

Generic: the county file (storage/org_file/parser.py) and anything else an operator writes by
hand use it, so every problem is reported as `file:line: reason`.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import yaml

# The C parser is several times faster on a Julu-sized file and keeps the same marks.
_Loader: Any = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

STR = "tag:yaml.org,2002:str"
INT = "tag:yaml.org,2002:int"
FLOAT = "tag:yaml.org,2002:float"
BOOL = "tag:yaml.org,2002:bool"
NULL = "tag:yaml.org,2002:null"

CODE_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
CODE_MAX = 64
NAME_MAX = 200


class FileLineError(Exception):
    """A file that cannot be loaded; names the file and line so an operator can fix it."""

    def __init__(self, path: Path | str, line: int, reason: str) -> None:
        super().__init__(path, line, reason)
        self.path = Path(path)
        self.line = line
        self.reason = reason

    def __str__(self) -> str:
        where = f"{self.path}:{self.line}" if self.line else str(self.path)
        return f"{where}: {self.reason}"


def line_of(node: yaml.Node) -> int:
    return node.start_mark.line + 1


def is_null(node: yaml.Node) -> bool:
    return isinstance(node, yaml.ScalarNode) and node.tag == NULL


def describe(node: yaml.Node) -> str:
    if isinstance(node, yaml.MappingNode):
        return "a mapping"
    if isinstance(node, yaml.SequenceNode):
        return "a list"
    if node.tag == NULL:
        return "nothing"
    if node.tag == BOOL:
        return f"true/false ({node.value})"
    if node.tag in (INT, FLOAT):
        return f"a number ({node.value})"
    return f"'{node.value}'"


def read_text(path: Path | str, error: type[FileLineError] = FileLineError) -> str:
    """A hand-edited file's text; unreadable or non-UTF-8 files raise `error` with the line."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error(path, 0, f"cannot read the file: {exc.strerror or exc}") from exc
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data.count(b"\n", 0, exc.start) + 1
        raise error(path, line, "the file is not UTF-8 text") from exc


def compose(
    text: str, path: Path | str, error: type[FileLineError] = FileLineError
) -> yaml.Node | None:
    """The YAML node tree of `text`; a syntax error raises `error` at the line to fix."""
    try:
        return yaml.compose(text, Loader=_Loader)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        # A key without its ':' is only noticed on a later line; the key's own line is the fix.
        if exc.context_mark is not None and (exc.context or "").endswith("simple key"):
            mark = exc.context_mark
        reason = f"YAML syntax error: {exc.problem or exc.context or 'unreadable'}"
        if exc.context and exc.problem and mark is not exc.context_mark:
            context = exc.context
            if exc.context_mark is not None:
                context += f" on line {exc.context_mark.line + 1}"
            reason += f" ({context})"
        raise error(path, mark.line + 1 if mark else 1, reason) from exc
    except yaml.reader.ReaderError as exc:
        # The reader's errors (a control character) carry a position, not a mark.
        line = text.count("\n", 0, exc.position) + 1
        char = exc.character if isinstance(exc.character, str) else chr(exc.character)
        raise error(path, line, f"unacceptable character U+{ord(char):04X} ({exc.reason})") from exc
    except yaml.YAMLError as exc:
        raise error(path, 1, f"YAML error: {exc}".replace("\n", " ")) from exc


Entries = dict[str, tuple[yaml.Node, yaml.Node]]


class YamlNodes:
    """Typed reads of composed nodes; the first problem raises `error` at its line."""

    error: type[FileLineError] = FileLineError

    def __init__(self, path: Path) -> None:
        self.path = path

    def fail(self, where: yaml.Node | int, reason: str) -> NoReturn:
        line = where if isinstance(where, int) else line_of(where)
        raise self.error(self.path, line, reason)

    def mapping(
        self, node: yaml.Node, what: str, allowed: Sequence[str], required: Sequence[str]
    ) -> Entries:
        if not isinstance(node, yaml.MappingNode):
            self.fail(node, f"{what} must be a mapping, got {describe(node)}")
        entries: Entries = {}
        for key, value in node.value:
            if not isinstance(key, yaml.ScalarNode):
                self.fail(key, f"{what} has a key that is not a plain word")
            name = key.value
            if name in entries:
                self.fail(key, f"duplicate key '{name}' in {what}")
            if name not in allowed:
                self.fail(key, f"unknown key '{name}' in {what} (allowed: {', '.join(allowed)})")
            entries[name] = (key, value)
        for name in required:
            if name not in entries:
                self.fail(node, f"missing required key '{name}' in {what}")
        return entries

    def seq(self, node: yaml.Node | None, what: str) -> list[yaml.Node]:
        if node is None or is_null(node):
            return []
        if not isinstance(node, yaml.SequenceNode):
            self.fail(node, f"{what} must be a list, got {describe(node)}")
        return list(node.value)

    def point(self, node: yaml.Node, what: str) -> tuple[float, float]:
        """[latitude, longitude] in degrees (WGS-84, as phones report them)."""
        items = self.seq(node, what)
        try:
            lat, lon = (float(item.value) for item in items)
        except (TypeError, ValueError, AttributeError):
            self.fail(node, f"{what} must be [latitude, longitude], e.g. [37.22, 115.03]")
        if not (-90 <= lat <= 90 and -180 <= lon <= 180):
            self.fail(node, f"{what}: latitude must be -90..90 and longitude -180..180")
        return lat, lon

    def text(self, node: yaml.Node, what: str, max_len: int = NAME_MAX) -> str:
        # Plain numbers are taken as written, so an unquoted phone or code keeps its digits.
        if not isinstance(node, yaml.ScalarNode) or node.tag not in (STR, INT):
            self.fail(node, f"{what} must be text, got {describe(node)}")
        value = node.value.strip()
        if not value:
            self.fail(node, f"{what} must not be empty")
        if len(value) > max_len:
            self.fail(node, f"{what} is longer than {max_len} characters")
        return value

    def code(self, node: yaml.Node, what: str, max_len: int = CODE_MAX) -> str:
        value = self.text(node, what, max_len)
        if not set(value) <= CODE_CHARS:
            self.fail(node, f"{what} '{value}' may use only letters, digits, '-', '_' and '.'")
        return value

    def names(self, node: yaml.Node, owner: str) -> tuple[str, str]:
        entries = self.mapping(node, f"name of {owner}", ("zh_CN", "en"), ("zh_CN",))
        zh = self.text(entries["zh_CN"][1], f"zh_CN name of {owner}")
        en = self.text(entries["en"][1], f"en name of {owner}") if "en" in entries else zh
        return zh, en
