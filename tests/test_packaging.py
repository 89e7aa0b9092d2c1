"""What `pip install .` (not editable) installs: the program must find its data files there too.

An editable install reads everything from the source tree, so a file left out of the package
data goes unnoticed until someone installs a wheel; these tests look at the package itself.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

import bot
from bot.app import example_county, packaged_example
from bot.config import Settings
from storage.calendar import parse_schedule
from storage.org_file import read_org_file

ROOT = Path(__file__).resolve().parent.parent
# The packages of pyproject.toml's [tool.setuptools]; their data files must be in the wheel.
PACKAGES = ("bot", "handlers", "workflow", "storage", "templates")
NOT_SOURCE = shutil.ignore_patterns(
    ".*", "data", "build", "dist", "*.egg-info", "__pycache__", "artifacts", "*.pyc"
)


def test_the_example_county_and_calendar_are_found_in_the_package():
    county = example_county(Settings(example_county=None))
    assert county == packaged_example("county.yaml")
    assert county.is_relative_to(Path(bot.__file__).parent) and county.is_file()
    assert read_org_file(county).areas  # a county that loads as is
    assert parse_schedule(packaged_example("calendar-2026.yaml")).year == 2026


def test_the_setting_still_names_another_county(tmp_path):
    other = tmp_path / "mine.yaml"
    assert example_county(Settings(example_county=other)) == other


def data_files() -> list[str]:
    """Every file in the packages' directories that is not Python source, as wheel paths."""
    found = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*"):
            relative = path.relative_to(ROOT)
            if (
                path.is_file()
                and path.suffix not in (".py", ".pyc")
                and not any(
                    part == "__pycache__" or part.startswith(".") for part in relative.parts
                )
            ):
                found.append(relative.as_posix())
    return sorted(found)


def test_a_wheel_holds_every_data_file_of_the_packages(tmp_path):
    source = tmp_path / "source"
    shutil.copytree(ROOT, source, ignore=NOT_SOURCE)  # never build inside the working tree
    build = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "-q", "-w", str(tmp_path), "."],
        cwd=source, capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    if build.returncode != 0 and "No matching distribution" in build.stderr:
        # pip could not fetch the build backend (offline, no local index): nothing to inspect.
        pytest.skip("cannot fetch setuptools to build a wheel: " + build.stderr.strip()[-200:])
    assert build.returncode == 0, build.stderr
    (wheel,) = tmp_path.glob("shuoshi-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    expected = data_files()
    assert "bot/examples/county.yaml" in expected and "bot/examples/calendar-2026.yaml" in expected
    assert [name for name in expected if name not in names] == []
