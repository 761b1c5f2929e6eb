"""One cross-check: a figure, an independent reading of it, and how far apart they may be.

``ok`` within the tolerance; ``DISAGREES`` beyond it; ``noisy`` beyond it on an estimate whose interval
reaches back within it (the pairs cannot tell; more pairs would); ``skipped`` where it cannot run here.
A check that disagrees prints what to fix where it knows (``fix``).
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
#: (an overhead with a budget, a reading that can only be below the reference by its nature);
#: ``at_least``: measured / reference - 1 >= -tolerance (a reading that can only be above the reference by
#: its nature, such as the driver's GPU memory of a process against torch's allocator: reading below it is
#: a bug); ``range``: measured / reference - 1 within ``Check.allowed`` (a plausibility range).
Bound = Literal["both", "at_most", "at_least", "range"]


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
    #: With ``bound="range"``: the lowest and the highest measured / reference - 1 that agree.
    allowed: tuple[float, float] | None = None
    #: What to do where the check disagrees: printed under the table for each row that fails.
    fix: str = ""

    def __post_init__(self) -> None:
        assert (self.bound == "range") == (self.allowed is not None), "allowed goes with bound='range' only"

    def limits(self) -> tuple[float, float]:
        """The lowest and the highest measured / reference - 1 that agree."""
        if self.allowed is not None:
            return self.allowed
        low = -math.inf if self.bound == "at_most" else -self.tolerance
        high = math.inf if self.bound == "at_least" else self.tolerance
        return low, high

    @property
    def difference(self) -> float | None:
        """measured / reference - 1; None where either is missing or the reference is not positive."""
        if self.measured is None or self.reference is None or not self.reference > 0:
            return None
        if not (math.isfinite(self.measured) and math.isfinite(self.reference)):
            return None
        return self.measured / self.reference - 1

    def _within(self, difference: float) -> bool:
        low, high = self.limits()
        return low - 1e-12 <= difference <= high + 1e-12  # a ratio exactly at the tolerance agrees

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
            allowed_low, allowed_high = self.limits()
            if low <= allowed_high + 1e-12 and high >= allowed_low - 1e-12:  # the interval reaches the limits
                return "noisy"
        return "DISAGREES"

    def limit(self) -> str:
        """The limits as the table shows them: ``±3%``, ``<= +1%``, ``>= 0%``, ``-95%..+10%``."""
        if self.bound == "range":
            low, high = self.limits()
            return f"{low * 100:+g}%..{high * 100:+g}%"
        percent = f"{self.tolerance * 100:g}%"
        if self.bound == "at_least":
            return f">= -{percent}" if self.tolerance else ">= 0%"
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
    failing = [check for check in checks if check.status == "DISAGREES"]
    if failing:
        out += ["", "what to fix:"]
        for check in failing:
            out.append(f"- {check.name}: {check.fix or 'no known fix: see docs/metrics.md (selfcheck)'}")
    return out
