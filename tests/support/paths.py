"""Where the repository and its example county are (tests/conftest.py re-exports both)."""

from __future__ import annotations

from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
EXAMPLE_COUNTY = ROOT / "bot" / "examples" / "county.yaml"
