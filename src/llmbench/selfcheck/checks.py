"""One cross-check: a figure, an independent reading of it, and how far apart they may be.

Each row shows its interval: the reading, the reference, and the readings that agree with that
reference (the tolerance band in the figure's unit). ``ok`` within the tolerance; ``DISAGREES`` beyond
it; ``noisy`` beyond it on an estimate whose interval reaches back within it (the pairs cannot tell;
more pairs would); ``skipped`` where it cannot run here. A check that disagrees prints what to fix
where it knows (``fix``), and each row where its tolerance comes from (``basis``).
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
    #: Where the tolerance comes from: the committed measurement behind it (script, docs section).
    basis: str = ""
    #: With an ``interval``: ``limits``, a reading beyond the limits is ``noisy`` rather than ``DISAGREES``
    #: while its interval reaches back within them (a reading within them is ``ok``); ``undecided``, the
    #: interval decides both ways: ``ok`` only wholly within the limits, ``DISAGREES`` only wholly beyond
    #: them, ``noisy`` while it straddles one (the estimate's noise cannot tell).
    noisy_when: Literal["limits", "undecided"] = "limits"
    #: Why this estimate cannot be decided here whatever it reads (its samples spread too far): ``noisy``.
    undecided: str = ""

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
        if self.undecided:
            return "noisy"
        if self.interval is not None and self.noisy_when == "undecided":
            low, high = (value / self.reference - 1 for value in self.interval)
            if self._within(low) and self._within(high):
                return "ok"
            allowed_low, allowed_high = self.limits()
            return "DISAGREES" if low > allowed_high + 1e-12 or high < allowed_low - 1e-12 else "noisy"
        if self._within(difference):
            return "ok"
        if self.interval is not None:
            low, high = (value / self.reference - 1 for value in self.interval)
            allowed_low, allowed_high = self.limits()
            if low <= allowed_high + 1e-12 and high >= allowed_low - 1e-12:  # the interval reaches them
                return "noisy"
        return "DISAGREES"

    def band(self) -> str:
        """The readings that agree with the reference, in the figure's unit: ``30.8..31.4``, ``<= 1964 ms``."""
        if self.reference is None or not math.isfinite(self.reference):
            return "n/a"
        low, high = (self.reference * (1 + limit) for limit in self.limits())
        if math.isinf(low):
            return f"<= {format_reading(high, self.unit)}"
        if math.isinf(high):
            return f">= {format_reading(low, self.unit)}"
        return f"{format_reading(low, self.unit)}..{format_reading(high, self.unit)}"

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
    """The agreement table, one line per check (the reading, the reference, the band of readings that
    agree with it, the difference and the tolerance), then each check's sides (or why it was skipped)
    and where its tolerance comes from."""
    header = ("check", "harness", "reference", "agrees within", "diff", "tolerance", "status")
    rows = [
        (
            c.name,
            format_reading(c.measured, c.unit),
            format_reading(c.reference, c.unit),
            "" if c.skipped else c.band(),
            "n/a" if c.difference is None else f"{c.difference * 100:+.2f}%",
            c.limit(),
            c.status,
        )
        for c in checks
    ]
    columns = [Column(header[0]), *(Column(title, "right") for title in header[1:])]
    out = [*text_table(columns, rows, gap=1, rule="line"), ""]
    for check in checks:
        basis = f"; tolerance: {check.basis}" if check.basis and not check.skipped else ""
        out.append(f"{check.name}: {check.skipped or check.how}{basis}")
    failing = [check for check in checks if check.status == "DISAGREES"]
    if failing:
        out += ["", "what to fix:"]
        for check in failing:
            out.append(f"- {check.name}: {check.fix or 'no known fix: see docs/metrics.md (selfcheck)'}")
    return out
