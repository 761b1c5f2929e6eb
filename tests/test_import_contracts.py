"""The layer order of docs/design.md is enforced by import-linter (``[tool.importlinter]`` in pyproject.toml).

The contracts pass on this tree, and each fails when an import that breaks it is added to a copy of the
source: an arrow up the layers, one between siblings that must stay apart, and a direct import of
pytest-benchmark outside the adapter.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.paths import REPO

LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")

pytestmark = pytest.mark.skipif(not LINT_IMPORTS.exists(), reason="import-linter is not installed (the dev extra)")


def _lint(source: Path, workdir: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with this project's contracts over the package in ``source`` (a ``src`` folder)."""
    shutil.copy(REPO / "pyproject.toml", workdir / "pyproject.toml")
    env = {**os.environ, "PYTHONPATH": str(source)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache"], cwd=workdir, env=env, capture_output=True, text=True, timeout=120
    )


@pytest.fixture(scope="module")
def source_copy(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A copy of ``src/llmbench`` the tests break one import at a time (restored after each)."""
    src = tmp_path_factory.mktemp("src")
    shutil.copytree(REPO / "src" / "llmbench", src / "llmbench", ignore=shutil.ignore_patterns("__pycache__"))
    return src


def test_the_contracts_hold_on_this_tree(tmp_path: Path) -> None:
    result = _lint(REPO / "src", tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    ("module", "line", "broken"),
    [
        # The gate (a library package) importing a command: an arrow up the layers.
        ("gate/rules.py", "import llmbench.commands.compare", "Layers point one way"),
        # A backend importing measurement: backends sit below measure.
        ("backends/base.py", "import llmbench.measure.probes", "Layers point one way"),
        # The plugin and the commands are siblings that must not import each other.
        ("commands/report.py", "import llmbench.plugin", "Layers point one way"),
        # Measurement reaching for a backend instead of the shared engine types.
        ("measure/speed.py", "import llmbench.backends.base", "never import a backend"),
        # pytest-benchmark reached around the adapter.
        ("runs.py", "import pytest_benchmark.utils", "Only the adapter"),
    ],
)
def test_a_broken_layer_fails_the_contract(
    source_copy: Path, tmp_path: Path, module: str, line: str, broken: str
) -> None:
    path = source_copy / "llmbench" / module
    original = path.read_text(encoding="utf-8")
    path.write_text(original + f"\n{line}  # added by the test\n", encoding="utf-8")
    try:
        result = _lint(source_copy, tmp_path)
    finally:
        path.write_text(original, encoding="utf-8")
    assert result.returncode != 0, result.stdout
    broken_section = result.stdout.split("Broken contracts", 1)[-1]
    assert broken in broken_section, result.stdout
