"""The gate's verdict a report shows: the report's run against the run before it (see docs/reports.md)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from llmbench.runs import SavedRun

if TYPE_CHECKING:
    from llmbench.gate import Verdict

__all__ = ["gate_verdict"]


def gate_verdict(current: SavedRun, history: Sequence[SavedRun]) -> Verdict | None:
    """The gate's verdict on ``current`` against the run before it in ``history`` (the gate's default
    baseline, ``last``, with its default rules), or None where there is no earlier run."""
    from llmbench.gate import Baseline, compare_runs

    earlier = [run for run in history if run is not current and run.datetime <= current.datetime]
    if not earlier:
        return None
    previous = earlier[-1]
    return compare_runs(Baseline((previous,), f"{previous.name} ({previous.source}), the run before"), current)
