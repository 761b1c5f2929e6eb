"""One cross-check: a figure, an independent reading of it, and how far apart they may be.

``ok`` within the tolerance; ``DISAGREES`` beyond it; ``noisy`` beyond it on an estimate whose interval
reaches back within it (the pairs cannot tell; more pairs would); ``skipped`` where it cannot run here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llmbench.metrics import Unit
from llmbench.tables import Column, text_table
from llmbench.units import format_reading

__all__ = ["Bound", "Check", "render_checks"]

#: ``both``: |measured / reference - 1| <= tolerance; ``at_most``: measured / reference - 1 <= tolerance
#: (a reading that can only be above the reference by its nature, or an overhead with a budget).
Bound = Literal["both", "at_most"]


@dataclass(frozen=True)
class Check:
    """The harness's figure (``measured``) against an independent reading (``reference``)."""

    name: str
    measured: float | None
    reference: float | None
    unit: Unit
    tolerance: float
    bound: Bound = "both"
    #: What each side is, in a few words: "harness: ...; reference: ...".
    how: str = ""
    #: Why the check did not run here (then it neither agrees nor disagrees).
    skipped: str = ""
    #: A 95% interval of ``measured`` where it is an estimate from noisy pairs: beyond the tolerance
    #: with an interval that reaches back within it is ``noisy`` (cannot tell), not a disagreement.
    interval: tuple[float, float] | None = None

    @property
    def difference(self) -> float | None:
        """measured / reference - 1; None where either is missing or the reference is not positive."""
        if self.measured is None or self.reference is None or not self.reference > 0:
            return None
        if not (math.isfinite(self.measured) and math.isfinite(self.reference)):
            return None
        return self.measured / self.reference - 1

    def _within(self, difference: float) -> bool:
        limit = self.tolerance + 1e-12  # a ratio exactly at the tolerance agrees
        return difference <= limit if self.bound == "at_most" else abs(difference) <= limit

    @property
    def status(self) -> Literal["ok", "DISAGREES", "noisy", "skipped"]:
        if self.skipped:
            return "skipped"
        difference = self.difference
        if difference is None or self.reference is None:
            return "DISAGREES"  # a figure that could not be read is not an agreement
        if self._within(difference):
            return "ok"
        if self.interval is not None:
            low, high = (value / self.reference - 1 for value in self.interval)
            if self._within(low) or self._within(high) or (self.bound == "both" and low < 0 < high):
                return "noisy"
        return "DISAGREES"

    def limit(self) -> str:
        percent = f"{self.tolerance * 100:g}%"
        return f"<= +{percent}" if self.bound == "at_most" else f"±{percent}"


def render_checks(checks: Sequence[Check]) -> list[str]:
    """The agreement table, one line per check, then each check's sides or why it was skipped."""
    header = ("check", "harness", "reference", "diff", "tolerance", "status")
    rows = [
        (
            c.name,
            format_reading(c.measured, c.unit),
            format_reading(c.reference, c.unit),
            "n/a" if c.difference is None else f"{c.difference * 100:+.2f}%",
            c.limit(),
            c.status,
        )
        for c in checks
    ]
    columns = [Column(header[0]), *(Column(title, "right") for title in header[1:])]
    out = [*text_table(columns, rows, gap=1, rule="line"), ""]
    for check in checks:
        out.append(f"{check.name}: {check.skipped or check.how}")
    return out
