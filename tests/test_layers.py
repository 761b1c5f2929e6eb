"""Backends and measurement share only :mod:`llmbench.engine_types`, and the old import paths still give
the same objects. That no layer imports one above it is import-linter's contract (every import statement,
those inside functions included: tests/test_import_contracts.py). See docs/design.md.
"""

from __future__ import annotations


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
