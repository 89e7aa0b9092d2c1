"""Import direction: bot -> handlers -> workflow <- storage; nothing imports bot."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("bot", "handlers", "workflow", "storage", "templates")
FRAMEWORKS = ("aiogram", "aiohttp", "sqlalchemy", "alembic", "asyncpg", "aiosqlite")

# What each package must never import.
FORBIDDEN: dict[str, tuple[str, ...]] = {
    "workflow": (*FRAMEWORKS, "bot", "handlers", "storage", "jinja2"),
    "handlers": ("aiogram", "sqlalchemy", "alembic", "asyncpg", "aiosqlite", "bot", "storage"),
    "storage": ("aiogram", "aiohttp", "bot", "handlers"),
    "templates": (*FRAMEWORKS, "bot", "handlers", "storage", "workflow"),
    "bot": (),
}


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(package: str) -> list[str]:
    bad = []
    for path in python_files(package):
        for module in imported_modules(path):
            top = module.split(".")[0]
            if top in FORBIDDEN[package] or (package != "bot" and top == "bot"):
                bad.append(f"{path.relative_to(ROOT)} imports {module}")
    return bad


@pytest.mark.parametrize("package", PACKAGES)
def test_import_direction(package):
    assert python_files(package), f"{package}/ has no Python files"
    assert violations(package) == []


def test_the_checker_catches_a_forbidden_import(tmp_path, monkeypatch):
    import sys

    fake = tmp_path / "workflow"
    fake.mkdir()
    (fake / "bad.py").write_text("from sqlalchemy import select\nimport bot.cli\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert sorted(violations("workflow")) == [
        "workflow/bad.py imports bot.cli",
        "workflow/bad.py imports sqlalchemy",
    ]
