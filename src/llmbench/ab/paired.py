"""The paired statistic of an A/B run: per-load ratios head/base, the load as the unit.

Each load pair (a fresh worker per side, their rounds interleaved) gives one ratio per metric: the
head's value over that load's rounds divided by the base's (medians for timed figures, peaks for
memory). Drift during the run hits both sides of a pair alike and cancels in the ratio. The estimate
is the median of the per-load ratios (one load in a slow mode of its own does not move it). The
interval: with fewer than 6 loads, Student's t interval of the mean log-ratio over the loads, honest
with 3 loads where a percentile bootstrap over loads is only their range; from 6 loads on, the
Wilcoxon signed-rank interval of the median log-ratio (Hodges-Lehmann), which one load in a mode of
its own cannot widen the way it widens a t interval (docs/ab.md). The rules are the gate's.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import replace

import numpy as np
from scipy.stats import t as student_t

from llmbench.gate.decision import Decision, Status, exceeds
from llmbench.gate.rules import Rule
from llmbench.metrics import Metric
from llmbench.stats import CONFIDENCE

__all__ = ["MIN_LOADS", "RANK_INTERVAL_LOADS", "PairedChange", "decide_paired", "paired_change", "signed_rank_interval"]

#: Fewer load pairs than this cannot tell a change from one load's own mode: the verdict is ``noisy``.
MIN_LOADS = 2
#: From this many load pairs on the interval is the signed-rank one: the fewest loads whose exact
#: signed-rank interval reaches 95% (with 6, all 64 sign patterns: 2/64 < 5%).
RANK_INTERVAL_LOADS = 6


class PairedChange:
    """The per-load ratios of one metric, their median, and the t interval of their geometric mean."""

    def __init__(self, base: Sequence[float], head: Sequence[float], confidence: float = CONFIDENCE) -> None:
        pairs = [(b, h) for b, h in zip(base, head, strict=False) if _usable(b) and _usable(h) and h / b > 0]
        #: head / base of each load pair with finite values on both sides (a zero base is left out).
        self.ratios: tuple[float, ...] = tuple(h / b for b, h in pairs)
        #: head - base of the same pairs, in the metric's unit.
        self.differences: tuple[float, ...] = tuple(h - b for b, h in pairs)
        self.loads = len(self.ratios)
        self.ratio: float | None = float(np.median(self.ratios)) if self.ratios else None
        self.difference: float | None = float(np.median(self.differences)) if self.differences else None
        self.interval: tuple[float, float] | None = None
        if self.loads >= RANK_INTERVAL_LOADS:
            self.interval = signed_rank_interval(self.ratios, confidence)
        elif self.loads >= MIN_LOADS:
            logs = np.log(np.asarray(self.ratios, dtype=np.float64))
            # Student's t over the loads (Gosset, 1908): with 3 loads the 95% factor is 4.30, not 1.96.
            half = float(student_t.ppf((1 + confidence) / 2, self.loads - 1)) * float(logs.std(ddof=1))
            half /= math.sqrt(self.loads)
            centre = float(logs.mean())
            self.interval = (math.exp(centre - half), math.exp(centre + half))


def signed_rank_interval(ratios: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The exact Wilcoxon signed-rank interval of the median of ``ratios`` (on their logs).

    The Walsh averages of the log-ratios (every pair's mean, each with itself too), sorted; the
    interval leaves out the ``k`` lowest and highest, ``k`` the largest count whose one-sided chance
    under no change (the exact signed-rank distribution) stays within ``(1 - confidence) / 2``
    (Hollander & Wolfe, *Nonparametric Statistical Methods*, 3.2). Needs 6 ratios for 95%.
    """
    logs = np.log(np.asarray(ratios, dtype=np.float64))
    n = len(logs)
    walsh = np.sort(np.concatenate([(logs[i] + logs[i:]) / 2 for i in range(n)]))
    # counts[s]: sign patterns of ranks 1..n whose positive ranks sum to s
    counts = np.zeros(n * (n + 1) // 2 + 1, dtype=np.float64)
    counts[0] = 1.0
    for rank in range(1, n + 1):
        counts[rank:] = counts[rank:] + counts[:-rank].copy()
    tail = np.cumsum(counts) / 2.0**n  # P(T <= s)
    # k: the interval is the k-th lowest to the k-th highest Walsh average; its coverage is
    # 1 - 2 P(T <= k - 1), so k - 1 is the largest sum whose tail stays within (1 - confidence) / 2.
    k = int(np.searchsorted(tail, (1 - confidence) / 2, side="right"))
    if k == 0:  # too few ratios for this confidence: no interval excludes anything
        return 0.0, math.inf
    return math.exp(float(walsh[k - 1])), math.exp(float(walsh[len(walsh) - k]))


def _usable(value: float | None) -> bool:
    return value is not None and math.isfinite(value) and value != 0


def paired_change(base: Sequence[float], head: Sequence[float]) -> PairedChange:
    """The per-load ratios of ``head`` over ``base`` (aligned by load index) with their interval."""
    return PairedChange(base, head)


def decide_paired(
    name: str,
    base: Metric,
    head: Metric,
    base_loads: Sequence[float],
    head_loads: Sequence[float],
    rule: Rule,
) -> Decision:
    """The verdict on one metric from its per-load values on both sides, under the gate's ``rule``.

    ``regressed`` (``improved``): the median per-load change passes every threshold of the rule in the
    bad (good) direction and the interval over loads lies wholly on that side of no change. Beyond
    the thresholds but with an interval that includes no change: ``noisy`` (the loads disagree).
    ``base`` and ``head`` are each side's figure over all its rounds, shown next to the change.
    """
    paired = paired_change(base_loads, head_loads)
    shown = Decision(
        name, "n/a", rule, unit=head.unit or base.unit, baseline=base.value, current=head.value,
        n_baseline=len(base_loads), n_current=len(head_loads),
    )  # fmt: skip
    if rule.target is not None and head.value is not None:
        missed = head.value < rule.target if rule.direction == "higher" else head.value > rule.target
        if missed:
            side = "below" if rule.direction == "higher" else "above"
            return replace(shown, verdict="regressed", reason=f"{side} the target {rule.target:g}")
    if paired.ratio is None or paired.difference is None:
        return replace(shown, reason="no load has a value on both sides")
    change = paired.ratio - 1
    measured = replace(
        shown, change=change, difference=paired.difference, interval=paired.interval,
        interval_of="ratio" if paired.interval else None, n_baseline=paired.loads, n_current=paired.loads,
    )  # fmt: skip
    sign = 1.0 if rule.direction == "lower" else -1.0
    worse = exceeds(rule, sign * change, sign * paired.difference)
    better = exceeds(rule, -sign * change, -sign * paired.difference)
    spread = f"per-load changes {_percent(min(paired.ratios))}..{_percent(max(paired.ratios))}"
    if not (worse or better):
        return replace(measured, verdict="unchanged", reason=f"within the threshold, paired over {paired.loads} "
                                                             f"loads ({spread})")  # fmt: skip
    if paired.interval is None:
        return replace(
            measured, verdict="noisy",
            reason=f"{paired.loads} load pair(s) cannot tell a change from one load's own mode; "
            f"use --loads 3 or more",
        )  # fmt: skip
    up = (rule.direction == "lower") == worse
    low, high = paired.interval
    if low > 1 if up else high < 1:
        verdict: Status = "regressed" if worse else "improved"
        return replace(measured, verdict=verdict, reason=f"beyond the threshold in the loads' interval, paired over "
                                                         f"{paired.loads} loads ({spread})")  # fmt: skip
    return replace(
        measured, verdict="noisy",
        reason=f"beyond the threshold but the loads disagree ({spread}, the interval includes no change); "
        "more loads (--loads) would tell",
    )  # fmt: skip


def _percent(ratio: float) -> str:
    return f"{(ratio - 1) * 100:+.1f}%"
