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
    "handlers": (*FRAMEWORKS, "bot", "storage"),
    "storage": ("aiogram", "aiohttp", "bot", "handlers"),
    "templates": (*FRAMEWORKS, "bot", "handlers", "storage", "workflow"),
    "bot": ("sqlalchemy",),  # bot/ reaches the database through storage/ only
}


# Calls that import a module named by a string: `__import__("x")`, `importlib.import_module("x")`.
DYNAMIC_IMPORTS = ("__import__", "import_module")


def _absolute(path: Path, module: str | None, level: int) -> str:
    """`from ..storage import rows` in workflow/sub/x.py is `storage.rows` seen from the root."""
    if level == 0:
        return module or ""
    package = list(path.relative_to(ROOT).parent.parts)
    base = package[: len(package) - (level - 1)] if level > 1 else package
    return ".".join([*base, *([module] if module else [])])


def _called_name(node: ast.Call) -> str:
    func = node.func
    if isinstance(func, ast.Name):
        return func.id
    return func.attr if isinstance(func, ast.Attribute) else ""


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            module = _absolute(path, node.module, node.level)
            if node.module is None:  # `from .. import storage` names the modules it imports
                found.update(f"{module}.{alias.name}".lstrip(".") for alias in node.names)
            elif module:
                found.add(module)
        elif isinstance(node, ast.Call) and _called_name(node) in DYNAMIC_IMPORTS:
            first = node.args[0] if node.args else None
            if isinstance(first, ast.Constant) and isinstance(first.value, str):
                found.add(first.value)
            else:  # a computed name cannot be checked: it is not allowed outside bot/
                found.add("<dynamic import>")
    return found


def python_files(package: str) -> list[Path]:
    return sorted((ROOT / package).rglob("*.py"))


def violations(package: str) -> list[str]:
    bad = []
    for path in python_files(package):
        for module in imported_modules(path):
            top = module.split(".")[0]
            dynamic = module == "<dynamic import>" and package != "bot"
            if dynamic or top in FORBIDDEN[package] or (package != "bot" and top == "bot"):
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


@pytest.mark.parametrize(
    ("where", "source", "expected"),
    [
        ("workflow/x.py", "from ..storage import rows\n", "workflow/x.py imports storage"),
        ("workflow/sub/x.py", "from ...storage import rows\n", "workflow/sub/x.py imports storage"),
        (
            "workflow/x.py",
            "from ..storage.rows import CaseRow\n",
            "workflow/x.py imports storage.rows",
        ),
        ("workflow/x.py", "from .. import storage\n", "workflow/x.py imports storage"),
        ("handlers/x.py", "import aiohttp\n", "handlers/x.py imports aiohttp"),
        ("handlers/x.py", "m = __import__('sqlalchemy')\n", "handlers/x.py imports sqlalchemy"),
        (
            "handlers/x.py",
            "import importlib\nm = importlib.import_module('bot.app')\n",
            "handlers/x.py imports bot.app",
        ),
        (
            "workflow/x.py",
            "import importlib\nname = 'aio' + 'gram'\nm = importlib.import_module(name)\n",
            "workflow/x.py imports <dynamic import>",
        ),
    ],
)
def test_the_checker_sees_relative_and_dynamic_imports(
    tmp_path, monkeypatch, where, source, expected
):
    import sys

    target = tmp_path / where
    target.parent.mkdir(parents=True)
    target.write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert expected in violations(where.split("/")[0])


def test_relative_imports_inside_a_package_are_allowed(tmp_path, monkeypatch):
    import sys

    (tmp_path / "workflow").mkdir()
    (tmp_path / "workflow" / "x.py").write_text("from .model import Case\nfrom . import events\n")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert violations("workflow") == []


def imported_test_modules(path: Path) -> set[str]:
    """Every tests.test_* module a file imports, `from tests import test_x` included."""
    found = set()
    for module in imported_modules(path):
        found.add(module)
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module:
            module = _absolute(path, node.module, node.level)
            found.update(f"{module}.{alias.name}" for alias in node.names)
    return {m for m in found if m.startswith("tests.test_")}


def test_no_test_module_imports_another():
    """Shared fixtures and helpers live in tests/support/, so each test module stands alone."""
    files = sorted((ROOT / "tests").glob("test_*.py")) + sorted(
        (ROOT / "tests").rglob("support/*.py")
    )
    bad = [f"{p.relative_to(ROOT)} imports {m}" for p in files for m in imported_test_modules(p)]
    assert bad == []


@pytest.mark.parametrize(
    "source",
    ["from tests.test_notify import world\n", "from tests import test_dashboard\n",
     "import tests.test_runner\n", "from .test_media import encode\n"],
)  # fmt: skip
def test_the_checker_sees_a_test_module_importing_another(tmp_path, monkeypatch, source):
    import sys

    (tmp_path / "tests").mkdir()
    (tmp_path / "tests" / "test_x.py").write_text(source)
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    assert imported_test_modules(tmp_path / "tests" / "test_x.py")


def wait_for_calls() -> list[str]:
    found = []
    for package in ("bot", "handlers", "workflow", "storage"):
        for path in python_files(package):
            for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
                called = (
                    isinstance(node, ast.Attribute)
                    and node.attr == "wait_for"
                    and isinstance(node.value, ast.Name)
                    and node.value.id == "asyncio"
                )
                imported = isinstance(node, ast.ImportFrom) and node.module == "asyncio"
                if called or (imported and any(a.name == "wait_for" for a in node.names)):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    return found


def test_no_asyncio_wait_for_where_a_shutdown_cancels():
    """Bounded waits use asyncio.timeout, which waits in the task itself: on Python 3.11
    asyncio.wait_for may drop a cancellation, and a loop cancelled at shutdown ran on forever
    (bot/runner.py `bounded`, tests/test_stopping.py)."""
    assert wait_for_calls() == []
