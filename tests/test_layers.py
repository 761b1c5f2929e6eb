"""The layers point one way: backends and measurement share only :mod:`llmbench.engine_types`.

Read from the source (every import statement, those inside functions and ``TYPE_CHECKING`` blocks
included), so a lazy import cannot slip a cycle back in. See docs/design.md.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from tests.support.paths import REPO

SRC = REPO / "src" / "llmbench"


def imported_modules(path: Path) -> set[str]:
    """The ``llmbench`` modules a source file imports (``from a import b`` counts as ``a`` and ``a.b``)."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name == "llmbench" or name.startswith("llmbench.")}


def _files(package: str) -> list[Path]:
    where = SRC / package
    return sorted(where.rglob("*.py")) if where.is_dir() else [where.with_suffix(".py")]


@pytest.mark.parametrize(
    ("package", "forbidden"),
    [
        ("backends", ("llmbench.measure", "llmbench.workers", "llmbench.quality", "llmbench.plugin")),
        ("measure", ("llmbench.backends", "llmbench.workers", "llmbench.plugin")),
        ("quality", ("llmbench.backends", "llmbench.measure", "llmbench.workers", "llmbench.plugin")),
        ("engine_types", ("llmbench",)),
    ],
)
def test_a_lower_layer_imports_nothing_above_it(package: str, forbidden: tuple[str, ...]) -> None:
    wrong = {
        f"{path.relative_to(SRC)}: {name}"
        for path in _files(package)
        for name in imported_modules(path)
        if any(name == f or name.startswith(f"{f}.") for f in forbidden)
    }
    assert not wrong, sorted(wrong)


def test_the_shared_types_are_the_same_objects_from_every_old_import_path() -> None:
    import llmbench.backends as backends
    import llmbench.backends.base as base
    import llmbench.engine_types as engine_types
    import llmbench.measure.timers as timers

    assert backends.Generation is base.Generation is engine_types.Generation
    assert backends.LoadedModel is base.LoadedModel is engine_types.LoadedModel
    assert base.KVLayout is engine_types.KVLayout
    assert timers.Timer is engine_types.Timer
    assert timers.TimeReading is engine_types.TimeReading
    assert timers.ReadingNotFinished is engine_types.ReadingNotFinished
