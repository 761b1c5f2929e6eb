"""Where the repository and the tests' saved data are, for every test module."""

from __future__ import annotations

from pathlib import Path

#: The repository's root (a checkout of pytest-llmbench).
REPO = Path(__file__).resolve().parents[2]
#: Saved runs and other committed test data (tests/data/).
DATA = REPO / "tests" / "data"
