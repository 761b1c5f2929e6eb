"""The regression decision for one metric: baseline against current, under a :class:`~llmbench.gate.rules.Rule`.

A timed metric regresses only when its change in the bad direction exceeds the rule's threshold, the
rank test over the raw rounds says p < alpha, the bootstrap interval of the ratio of medians excludes 1,
the change leaves the drift the saved runs have shown, and the current rounds are not spread like a
busy machine's. Memory must also pass its thresholds from the most extreme saved run. Per-item scores
(ROUGE) are compared item by item. Why each condition, with the measurements: see docs/gate.md and
docs/gate-validation.md. Nothing here raises on bad data: a missing or non-finite value, empty samples
or a zero baseline give a verdict with a reason.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Literal

from llmbench.gate.rules import DEFAULT_RULES, Rule, rule_for
from llmbench.gate.statistics import (
    CONFIDENCE,
    POWER,
    SEED,
    bootstrap_ratio_ci,
    change_of,
    finite,
    finite_samples,
    mann_whitney_p,
    min_attainable_p,
    paired_bootstrap_ci,
    robust_cv,
    rounds_needed,
)
from llmbench.metrics import Direction, Metric, metric_label
from llmbench.units import format_number, scale_for

__all__ = [
    "AB_HINT",
    "ASSUMED_DRIFT",
    "DEFAULT_RUN_SPREAD",
    "DIFFERENT_ITEMS",
    "DISTURBED_RATIO",
    "MIN_PAIRED_ITEMS",
    "ROUND_TIME",
    "STATUSES",
    "VERDICTS",
    "Decision",
    "Status",
    "beyond",
    "decide",
    "decide_all",
    "exceeds",
]

#: What a decision says about one metric (see docs/gate.md):
#: ``regressed`` / ``improved``: beyond every threshold of the rule in the bad (good) direction and, where
#: the rule asks for it, significant; or (``regressed``) the current value misses the rule's target.
#: ``noisy``: cannot tell (too few samples, not significant, within the drift between runs, a busy
#: machine); ``unchanged``: within the thresholds; ``new`` / ``removed``: on one side only;
#: ``n/a``: a value is missing or the metric has no better direction.
Status = Literal["regressed", "improved", "unchanged", "noisy", "new", "removed", "n/a"]
#: All statuses, in the order a report lists them (regressions first).
STATUSES: tuple[Status, ...] = ("regressed", "noisy", "removed", "new", "improved", "n/a", "unchanged")
VERDICTS = STATUSES

#: Fewer paired items than this give a percentile-bootstrap interval too narrow to trust.
MIN_PAIRED_ITEMS = 5
#: How far the median of one run of unchanged code moved from another's on a quiet machine (measured:
#: see docs/gate-validation.md); busy machines drift more. Quoted by the gate's note where the saved
#: history cannot show this machine's drift (then a speed change beyond the threshold is ``noisy``).
DEFAULT_RUN_SPREAD = 0.053
#: A current run whose rounds spread more than this many times the baseline's (and more than the
#: threshold) was disturbed while it ran: its speed verdict is ``noisy`` (see ``_disturbed``).
DISTURBED_RATIO = 3.0
_BUSY = "the current rounds spread"
#: The metric whose rounds show a busy machine for every round-sampled metric of the benchmark.
ROUND_TIME = "latency_s"
#: How the reason of an item-scored metric compared over different item sets begins (the gate notes it).
DIFFERENT_ITEMS = "scored over different items"
#: The pointer a speed verdict that history cannot settle ends with.
AB_HINT = "measure base and head side by side with `llmbench ab`"
#: How the reason of a timed verdict decided with the rule's first-baseline allowance begins (its sentence says it).
ASSUMED_DRIFT = "beyond the threshold plus an assumed allowance for the drift between runs"


@dataclass(frozen=True)
class Decision:
    """The verdict on one metric and the figures behind it (raw numbers; :meth:`sentence` formats)."""

    metric: str
    verdict: Status
    rule: Rule
    unit: str = ""
    baseline: float | None = None
    current: float | None = None
    #: (current - baseline) / |baseline|; +-inf from a zero baseline, None where not computable.
    change: float | None = None
    #: current - baseline, in the metric's unit.
    difference: float | None = None
    #: A CONFIDENCE interval of the change: of current/baseline medians (``interval_of == "ratio"``) or of
    #: the difference (``"difference"``, paired items or from the two saved intervals).
    interval: tuple[float, float] | None = None
    interval_of: Literal["ratio", "difference"] | None = None
    #: Two-sided Mann-Whitney U p-value, where that test was run.
    p_value: float | None = None
    n_baseline: int = 0
    n_current: int = 0
    #: Samples per side that would resolve a change of the threshold's size (set when ``noisy``).
    rounds_needed: int | None = None
    #: Why this verdict, one clause.
    reason: str = ""

    @property
    def status(self) -> Status:
        """The verdict on this metric (the same as ``verdict``)."""
        return self.verdict

    @property
    def label(self) -> str:
        """The metric's label for people ("decode", "peak RSS")."""
        return metric_label(self.metric)

    @property
    def fails(self) -> bool:
        """True for a regression under a gating (not informational) rule."""
        return self.verdict == "regressed" and self.rule.gate

    def sentence(self) -> str:
        """One line a reviewer understands, e.g. ``decode 41.8 → 35.2 tok/s (-15.8%, p<0.001)``."""
        return _sentence(self)


def exceeds(rule: Rule, worse_relative: float, worse_absolute: float) -> bool:
    """Whether a change (positive = in the given direction) passes every threshold the rule has."""
    if not rule.has_threshold:
        return False
    if rule.relative is not None and not beyond(worse_relative, rule.relative):
        return False
    return rule.absolute is None or beyond(worse_absolute, rule.absolute)


def beyond(change: float, threshold: float) -> bool:
    """Whether ``change`` exceeds ``threshold`` by more than rounding."""
    # A change equal to the threshold up to rounding (1.0 - 0.95 against 0.05) does not exceed it.
    return change > threshold and not math.isclose(change, threshold, rel_tol=1e-9)


def decide(
    metric_name: str,
    baseline: Metric | None,
    current: Metric | None,
    rule: Rule,
    *,
    confidence: float = CONFIDENCE,
    seed: int = SEED,
) -> Decision:
    """The verdict on one metric of one combination. Never raises on missing or bad values."""
    present = current if current is not None else baseline
    base_value = finite(baseline.value) if baseline is not None else None
    cur_value = finite(current.value) if current is not None else None
    start = Decision(
        metric_name,
        "n/a",
        rule,
        unit=present.unit if present is not None else "",
        baseline=base_value,
        current=cur_value,
    )

    if baseline is None and current is None:
        return replace(start, verdict="n/a", reason="missing on both sides")
    if rule.direction == "none":
        return replace(start, verdict="n/a", reason="no better direction: shown, not compared")
    if current is None:
        return replace(start, verdict="removed", reason="not in the current run")
    if cur_value is None:
        return replace(start, verdict="n/a", reason="the current value is n/a")
    if rule.target is not None:
        missed = cur_value < rule.target if rule.direction == "higher" else cur_value > rule.target
        if missed:
            side = "below" if rule.direction == "higher" else "above"
            return replace(start, verdict="regressed", reason=f"{side} the target {rule.target:g}")
    if baseline is None:
        return replace(start, verdict="new", reason="not in the baseline")
    if base_value is None:
        return replace(start, verdict="n/a", reason="the baseline value is n/a")

    change = change_of(base_value, cur_value)
    difference = cur_value - base_value
    # Positive = in the bad direction.
    sign = 1.0 if rule.direction == "lower" else -1.0
    worse = exceeds(rule, sign * change, sign * difference)
    better = exceeds(rule, -sign * change, -sign * difference)
    measured = replace(start, change=change, difference=difference)

    if not rule.significance:
        verdict: Status = "regressed" if worse else "improved" if better else "unchanged"
        reason = {
            "regressed": "beyond the threshold",
            "improved": "beyond the threshold, the good way",
            "unchanged": "within the threshold" if rule.has_threshold else "meets the target",
        }[verdict]
        if worse or better:
            drift = _within_history(baseline, cur_value, rule, bad=worse)
            if drift is not None:
                return replace(measured, verdict="noisy", reason=drift)
        return replace(measured, verdict=verdict, reason=reason)
    if rule.sample_kind == "items":
        return _decide_items(baseline, current, rule, worse, better, measured, confidence, seed)
    return _decide_rounds(baseline, current, rule, worse, better, measured, confidence, seed)


def _decide_rounds(
    baseline: Metric,
    current: Metric,
    rule: Rule,
    worse: bool,
    better: bool,
    measured: Decision,
    confidence: float,
    seed: int,
) -> Decision:
    """Repeated measurements: rank test over the raw rounds plus the bootstrap ratio of medians."""
    base_value, cur_value = measured.baseline, measured.current
    assert base_value is not None
    assert cur_value is not None
    # Without saved rounds the value is the only sample (older runs): the test cannot reach alpha.
    base = finite_samples(baseline.samples) or (base_value,)
    cur = finite_samples(current.samples) or (cur_value,)
    p = mann_whitney_p(base, cur)
    interval = bootstrap_ratio_ci(base, cur, confidence, seed=seed)
    figures = replace(
        measured,
        p_value=p,
        interval=interval,
        interval_of="ratio" if interval else None,
        n_baseline=len(base),
        n_current=len(cur),
    )
    threshold = rule.relative
    if threshold is None and rule.absolute is not None and base_value != 0:
        threshold = rule.absolute / abs(base_value)

    def noisy(reason: str) -> Decision:
        needed = rounds_needed(base, cur, threshold, rule.alpha)
        return replace(figures, verdict="noisy", rounds_needed=needed, reason=reason)

    smallest = min_attainable_p(len(base), len(cur))
    if smallest >= rule.alpha:
        return noisy(
            f"too few samples ({len(base)} baseline, {len(cur)} current): the smallest p a rank test can "
            f"give is {smallest:.2g}, not below {rule.alpha:g}"
        )
    if not (worse or better):
        return replace(figures, verdict="unchanged", reason="within the threshold")
    # The interval of current/baseline must lie wholly on the side of the change.
    up = (rule.direction == "lower") == worse
    excludes_one = interval is not None and (interval[0] > 1 if up else interval[1] < 1)
    if p < rule.alpha and excludes_one:
        disturbed = _disturbed(base, cur, threshold)
        if disturbed is not None:
            return noisy(disturbed)
        allowance = rule.first_baseline_allowance
        drift = _within_run_drift(baseline, base_value, cur_value, threshold, up, allowance)
        if drift is not None:
            return replace(figures, verdict="noisy", reason=drift)
        verdict: Status = "regressed" if worse else "improved"
        reason = "beyond the threshold and significant"
        if len(_run_values(baseline)) < 2 and allowance is not None:
            widen = (threshold or 0.0) * 100
            reason = (f"{ASSUMED_DRIFT} ({widen:.0f}% + {allowance:.0%}): no saved runs show this machine's drift "
                      "(a first baseline)")  # fmt: skip
        return replace(figures, verdict=verdict, reason=reason)
    why = f"p={p:.2g}, not below {rule.alpha:g}" if p >= rule.alpha else "the ratio's interval includes 1"
    return noisy(f"beyond the threshold but not significant ({why})")


def _disturbed(base: Sequence[float], cur: Sequence[float], threshold: float | None) -> str | None:
    """Why the current rounds are too spread to judge (the machine was busy while they ran); or None.

    A burst of load from elsewhere slows some rounds and not others. Where the current rounds spread
    (robust CV) more than the threshold *and* more than DISTURBED_RATIO times the baseline's rounds, the
    verdict is ``noisy`` (re-run to tell). Only the current side is checked: a window's pooled rounds
    include the drift between its runs. Measurements and the cost in missed changes: docs/gate-validation.md.
    """
    spread, usual = robust_cv(cur), robust_cv(base)
    if spread is None or usual is None or threshold is None or not math.isfinite(threshold):
        return None
    if spread > threshold and spread > DISTURBED_RATIO * usual:
        return (
            f"{_BUSY} {spread:.1%} (robust CV), the baseline's {usual:.1%}: the machine was busy while they ran; "
            "re-run to tell"
        )
    return None


def _run_values(baseline: Metric) -> list[float]:
    """The finite values of the saved runs a baseline carries (``PooledMetric.run_values``), oldest first."""
    return [v for v in (finite(x) for x in getattr(baseline, "run_values", ())) if v is not None]


def _within_run_drift(
    baseline: Metric, base_value: float, cur_value: float, threshold: float | None, up: bool, allowance: float | None
) -> str | None:
    """Why a significant change beyond the threshold may still be drift between runs; None where it is not.

    Rounds vary far less within a run than run medians do between runs, so a significant rank test says
    only that the runs differ, not that the code does (docs/gate-validation.md). The change must also
    leave the range the drift between runs explains:

    - several saved runs (``run_values``: a window's runs, or the ``--llmbench-drift-history`` runs with
      this machine's fingerprint): beyond the extreme run median (max for a rise, min for a fall)
      widened by the threshold. A range, not a multiple of a spread estimate: with 5 runs a median
      absolute deviation is itself too noisy to scale by.
    - fewer than 2 (a first baseline): this machine's drift is unknown, so the rule's
      ``first_baseline_allowance`` (measured on shared machines, docs/gate.md) is assumed: the change must
      pass the threshold plus it. Below that, or without an allowance, it is ``noisy``, pointing at
      ``llmbench ab``, which measures both sides interleaved and needs no history.
    """
    widen = threshold if threshold is not None and math.isfinite(threshold) else 0.0
    runs = _run_values(baseline)
    scale = abs(base_value)
    if len(runs) >= 2 and scale > 0:
        low, high = min(runs), max(runs)
        bound = high + widen * abs(high) if up else low - widen * abs(low)
        if (cur_value > bound if up else cur_value < bound) and not math.isclose(cur_value, bound, rel_tol=1e-9):
            return None
        return (
            f"within the drift between runs: the medians of {len(runs)} saved runs lie "
            f"{(low / base_value - 1) * 100:+.1f}%..{(high / base_value - 1) * 100:+.1f}% around its median, so "
            f"a change beyond {(bound / base_value - 1) * 100:+.1f}% is needed; {AB_HINT}"
        )
    unknown = "the drift between runs on this machine is unknown (fewer than 2 steady saved runs with its fingerprint)"
    if allowance is None or scale == 0:
        return f"{unknown}; {AB_HINT}"
    if beyond(abs(cur_value / base_value - 1), widen + allowance):
        return None
    return (
        f"{unknown}: a change beyond {'+' if up else '-'}{(widen + allowance) * 100:.0f}% is needed, the threshold "
        f"plus an assumed allowance of {allowance:.0%} for the drift between runs on shared machines; {AB_HINT}"
    )


def _within_history(baseline: Metric, cur_value: float, rule: Rule, bad: bool) -> str | None:
    """Why a change beyond an unsampled metric's threshold (memory) is within the drift between runs; or None.

    Peak RSS is the whole process's, and what earlier models and the allocator left behind moves it
    between runs of unchanged code (docs/gate-validation.md). Where the baseline carries several saved
    runs' values (``run_values``), the change must also pass every threshold measured from the most
    extreme of them (the highest for a rise). ``bad``: the change is in the bad direction.
    """
    runs = _run_values(baseline)
    if len(runs) < 2:
        return None
    polarity = (1.0 if rule.direction == "lower" else -1.0) * (1.0 if bad else -1.0)
    extreme = max(runs) if polarity > 0 else min(runs)
    if exceeds(rule, polarity * change_of(extreme, cur_value), polarity * (cur_value - extreme)):
        return None
    divisor, unit = scale_for(baseline.unit, runs)
    return (
        f"within the drift between runs: the values of {len(runs)} saved runs lie between "
        f"{format_number(min(runs) / divisor)} and {format_number(max(runs) / divisor)} {unit}, and the change "
        f"must pass the threshold from the {'highest' if extreme == max(runs) else 'lowest'} of them"
    )


def _decide_items(
    baseline: Metric,
    current: Metric,
    rule: Rule,
    worse: bool,
    better: bool,
    measured: Decision,
    confidence: float,
    seed: int,
) -> Decision:
    """Per-item scores (ROUGE, agreement): paired bootstrap of the differences, else the saved intervals.

    Both runs score the same items in the same order, so item-to-item variation (some texts are simply
    harder to summarize) cancels in the per-item differences: the paired interval is far narrower than
    the two runs' own intervals, and non-overlap of two 95% intervals is a conservative test (about
    p < 0.006 for equal widths). So pair when both sides have per-item scores of the same length (at
    least MIN_PAIRED_ITEMS); else fall back to the saved intervals not overlapping; else the change
    cannot be judged.
    """
    base_items, cur_items = finite_samples(baseline.samples), finite_samples(current.samples)
    paired = len(base_items) == len(cur_items) >= MIN_PAIRED_ITEMS
    interval: tuple[float, float] | None = None
    if paired:
        differences = [c - b for b, c in zip(base_items, cur_items, strict=True)]
        interval = paired_bootstrap_ci(differences, confidence, seed=seed)
        how = f"paired over {len(differences)} items"
    elif baseline.ci is not None and current.ci is not None:
        # The widest difference the two intervals allow (they do not overlap iff it excludes 0).
        interval = (current.ci[0] - baseline.ci[1], current.ci[1] - baseline.ci[0])
        how = "from the saved intervals"
    figures = replace(
        measured,
        interval=interval,
        interval_of="difference" if interval else None,
        n_baseline=len(base_items),
        n_current=len(cur_items),
    )
    if base_items and cur_items and len(base_items) != len(cur_items):
        # Different texts differ in difficulty: scores over different item sets say nothing about the code.
        return replace(
            figures,
            verdict="n/a",
            reason=f"{DIFFERENT_ITEMS} ({len(base_items)} in the baseline, {len(cur_items)} now): not compared; "
            "give both runs the same --llmbench-quality-items and --llmbench-data",
        )
    if not (worse or better):
        return replace(figures, verdict="unchanged", reason="within the threshold")
    if interval is None:
        return replace(
            figures,
            verdict="noisy",
            reason="beyond the threshold, but no per-item scores or intervals on both sides to judge it",
        )
    up = (rule.direction == "lower") == worse
    if interval[0] > 0 if up else interval[1] < 0:
        verdict: Status = "regressed" if worse else "improved"
        return replace(figures, verdict=verdict, reason=f"beyond the threshold and significant ({how})")
    reason = f"beyond the threshold but the interval of the difference includes 0 ({how})"
    if paired and rule.absolute:
        sd = statistics.stdev([c - b for b, c in zip(base_items, cur_items, strict=True)])
        z = NormalDist().inv_cdf(1 - rule.alpha / 2) + NormalDist().inv_cdf(POWER)
        items = max(len(base_items) + 1, math.ceil((z * sd / rule.absolute) ** 2))
        reason += f"; about {items} items would resolve it"
    return replace(figures, verdict="noisy", reason=reason)


def decide_all(
    baseline: Mapping[str, Metric],
    current: Mapping[str, Metric],
    rules: Mapping[str, Rule] = DEFAULT_RULES,
    *,
    seed: int = SEED,
) -> list[Decision]:
    """A decision for every metric on either side: the current run's order, then the baseline's others.

    Every round-sampled metric of a benchmark comes from the same rounds, so where the rounds of its
    round time (``latency_s``) show that the machine was busy (``_disturbed``), a significant change of
    any of them is ``noisy`` too: a burst of load slows TTFT and decode along with the whole call.
    """
    names = list(current) + [name for name in baseline if name not in current]
    decisions = []
    for name in names:
        base, cur = baseline.get(name), current.get(name)
        present = cur if cur is not None else base
        direction: Direction = present.direction if present is not None else "none"
        decisions.append(decide(name, base, cur, rule_for(name, rules, direction), seed=seed))
    busy = next((d.reason for d in decisions if d.metric == ROUND_TIME and d.reason.startswith(_BUSY)), None)
    if busy is None:
        return decisions
    return [
        replace(d, verdict="noisy", reason=f"{busy} (seen in {ROUND_TIME})")
        if d.verdict in ("regressed", "improved") and d.rule.significance and d.rule.sample_kind == "rounds"
        else d
        for d in decisions
    ]


# ----------------------------------------------------------------------------- the sentence


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def _sentence(d: Decision) -> str:
    label = metric_label(d.metric)
    shown = [v for v in (d.baseline, d.current) if v is not None]
    divisor, unit = scale_for(d.unit, shown)
    suffix = f" {unit}" if unit else ""

    def value(v: float) -> str:
        return format_number(v / divisor)

    if d.verdict == "new":
        return f"{label} new: {value(d.current)}{suffix}" if d.current is not None else f"{label} new"
    if d.verdict == "removed":
        was = f" (was {value(d.baseline)}{suffix})" if d.baseline is not None else ""
        return f"{label} removed{was}"
    if d.verdict == "n/a":
        return f"{label} n/a: {d.reason}"
    if d.baseline is None or d.current is None or d.change is None or d.difference is None:
        # A target missed with no baseline to compare with.
        now = f" {value(d.current)}{suffix}" if d.current is not None else ""
        return f"{label}{now}: {d.reason}"

    details: list[str] = []
    if math.isinf(d.change):
        details.append("from 0")
    elif d.rule.sample_kind == "items" and d.rule.relative is None:
        details.append(f"{d.difference:+.3g}")
    else:
        details.append(f"{d.change * 100:+.1f}%")
    if d.unit == "bytes" and d.difference != 0:
        details.append(f"{'+' if d.difference > 0 else '-'}{value(abs(d.difference))}{suffix}")
    if d.p_value is not None:
        details.append(_p(d.p_value))
    if d.interval is not None and d.interval_of == "difference":
        level = f"{CONFIDENCE:.0%}"
        details.append(f"{level} CI {d.interval[0]:+.3g} to {d.interval[1]:+.3g}")
    text = f"{label} {value(d.baseline)} → {value(d.current)}{suffix} ({', '.join(details)})"
    if d.reason.startswith(ASSUMED_DRIFT):
        return f"{text}: {d.reason}" if d.verdict == "regressed" else f"{text}: {d.verdict}, {d.reason}"
    if d.verdict == "regressed":
        return f"{text}: {d.reason}" if d.reason.startswith(("below", "above")) else text
    if d.verdict == "noisy":
        needed = f"; about {d.rounds_needed} rounds per side needed" if d.rounds_needed else ""
        return f"{text}: noisy, {d.reason}{needed}"
    return f"{text}: {d.verdict}"
