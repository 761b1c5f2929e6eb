"""The regression decision for one metric: baseline against current, under a :class:`~llmbench.gate.rules.Rule`.

What the tools this generalizes do:

- **pytest-benchmark** (``--benchmark-compare-fail=median:5%``; ``pytest_benchmark/utils.py``,
  ``PercentageRegressionCheck`` / ``DifferenceRegressionCheck``): one statistic of one saved run against
  a fixed percentage (``current / compared * 100 - 100 > threshold``) or difference; time only, larger is
  always worse, the raw rounds are not used.
- **asv** (``asv compare``; ``asv/commands/compare.py`` ``_is_result_better`` and
  ``asv/statistics.py`` ``is_different``): worse only when the ratio passes ``--factor`` (default 1.1)
  *and* a two-sided Mann-Whitney U test over the raw samples gives p < 0.002; the test is run only
  where the sample counts can reach that level at all (else non-overlapping 99% intervals decide).

Why both an effect size and significance (DESIGN.md, timing noise on the development machines):
generations in one process vary 1-3%, but the medians of ten separate runs of the same code spread over
5.3%, drifting with time. A fixed ``median:3%`` flags 13% of unchanged pairs and ``median:5%`` 1%: a
percentage alone cannot separate a small slowdown from drift. Significance alone is no better (an
inference from the same figures): with 1% noise inside a run, five rounds against five separate
completely, and so reach p < 0.01, in 38% of pairs on a 2% drift between runs and 77% on a 3% drift
(simulated, normal noise). So a speed metric regresses only when its change in the bad direction
exceeds the threshold (5%) *and* the rank test says p < alpha (0.01) *and* the bootstrap interval of
the ratio of medians excludes 1 *and* the change is beyond the drift between runs (the rank test sees
only the noise within runs; ``_within_run_drift``: beyond the extreme median of the saved runs widened
by the threshold, or beyond DEFAULT_RUN_SPREAD against a single run; else ``noisy``) *and* the current
rounds are not spread like a busy machine's (``_disturbed``; the whole benchmark's round-sampled
metrics follow ``latency_s`` there, see :func:`decide_all`). Memory has no rounds to test: beyond its
thresholds it must also pass them from the most extreme saved run (``_within_history``).

What that buys, measured on synthetic A/A pairs (tests/test_decision.py's docstring has the table):
with noise of at most 2% CV inside a run, unchanged code essentially never regresses (at most about
1e-4 of pairs); from 5% CV on, the noise is large against the threshold and the exact test's level
bounds false alarms (about alpha/2 = 0.5% a side). The threshold filters drift; alpha filters chance.

Verdicts:

``regressed`` / ``improved``
    the change exceeds every threshold of the rule in the bad (good) direction and, where the rule asks
    for it, is significant; or (``regressed``) the current value misses the rule's target.
``noisy``
    cannot tell: too few samples for the test to ever reach alpha (with n1 and n2 samples the smallest
    two-sided Mann-Whitney p is 2 / C(n1 + n2, n1)), or a change beyond the threshold that is not
    significant, or a speed change whose current rounds spread far more than usual (the machine was
    busy while they ran). ``rounds_needed`` then estimates the samples per side that would resolve a change of
    the threshold's size.
``unchanged``
    within the thresholds.
``new`` / ``removed``
    the metric is on one side only.
``n/a``
    a value is missing (None, NaN) or the metric has no better direction; ``reason`` says which.

Nothing here raises on bad data: a missing or non-finite value, empty samples or a zero baseline give
a verdict with a reason.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import TYPE_CHECKING, Literal

import numpy as np
import numpy.typing as npt

from llmbench.gate.rules import DEFAULT_RULES, MiB, Rule, SampleKind, rule_for
from llmbench.metrics import Direction, Metric

if TYPE_CHECKING:
    from scipy.stats import PermutationMethod

__all__ = [
    "CONFIDENCE",
    "DEFAULT_RUN_SPREAD",
    "DIFFERENT_ITEMS",
    "ROUND_TIME",
    "VERDICTS",
    "Decision",
    "PooledMetric",
    "Verdict",
    "bootstrap_ratio_ci",
    "busy_rounds",
    "decide",
    "decide_all",
    "mann_whitney_p",
    "min_attainable_p",
    "paired_bootstrap_ci",
    "pool_baseline",
    "rounds_needed",
]

Verdict = Literal["regressed", "improved", "unchanged", "noisy", "new", "removed", "n/a"]
#: All verdicts, in the order a report lists them (regressions first).
VERDICTS: tuple[Verdict, ...] = ("regressed", "noisy", "removed", "new", "improved", "n/a", "unchanged")

#: Level of the bootstrap intervals shown and used (the ratio of medians, the paired difference).
CONFIDENCE = 0.95
#: Bootstrap resamples; with a fixed seed the same inputs always give the same interval.
RESAMPLES = 2000
SEED = 20240917
#: Power aimed at by ``rounds_needed``.
POWER = 0.8
#: Fewer paired items than this give a percentile-bootstrap interval too narrow to trust.
MIN_PAIRED_ITEMS = 5
#: Asymptotic relative efficiency of the Mann-Whitney test to the t test under normal noise, 3/pi
#: (Lehmann, "Nonparametrics", 1975): the rank test needs about pi/3 times the t test's samples.
_MANN_WHITNEY_EFFICIENCY = 3 / math.pi
#: Up to this many splits of the pooled samples, a tied rank test enumerates them all (exact p).
_EXACT_PERMUTATIONS = 10_000
#: The cap of ``rounds_needed`` (a threshold far inside the noise).
_MAX_ROUNDS = 1_000_000
#: How far the median of one run of unchanged code may move from another's, where the baseline is a single
#: run and so says nothing about the drift between runs (DESIGN.md: the medians of ten separate runs of
#: the same code spread over 5.3%, so any two of them differed by at most 5.3%). A speed change within
#: this (and within the threshold) is ``noisy``, with a pointer to saved history and ``window:N``.
DEFAULT_RUN_SPREAD = 0.053
#: A current run whose rounds spread more than this many times the baseline's (and more than the
#: threshold) was disturbed while it ran: its speed verdict is ``noisy`` (see ``_disturbed``).
DISTURBED_RATIO = 3.0
_BUSY = "the current rounds spread"
#: The metric whose rounds show a busy machine for every round-sampled metric of the benchmark.
ROUND_TIME = "latency_s"
#: How the reason of an item-scored metric compared over different item sets begins (the gate notes it).
DIFFERENT_ITEMS = "scored over different items"
_WINDOW_HINT = (
    "runs saved on this machine will show its drift (--llmbench-drift-history), or use --llmbench-baseline=window:N"
)

Floats = npt.NDArray[np.float64]


@dataclass(frozen=True)
class Decision:
    """The verdict on one metric and the figures behind it (raw numbers; :meth:`sentence` formats)."""

    metric: str
    verdict: Verdict
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
    def fails(self) -> bool:
        """True for a regression under a gating (not informational) rule."""
        return self.verdict == "regressed" and self.rule.gate

    def sentence(self) -> str:
        """One line a reviewer understands, e.g. ``decode 41.8 → 35.2 tok/s (-15.8%, p<0.001)``."""
        return _sentence(self)


@dataclass(frozen=True)
class PooledMetric(Metric):
    """A baseline metric pooled over a window of runs (:func:`pool_baseline`), with each run's own value.

    ``run_values`` (oldest first) is what the speed decision estimates the drift *between* runs from;
    the pooled rounds in ``samples`` only show the noise *within* runs. Never saved: ``to_json`` is
    :class:`~llmbench.metrics.Metric`'s, so the saved JSON is unchanged.
    """

    run_values: tuple[float, ...] = ()


# ----------------------------------------------------------------------------- statistics


def min_attainable_p(n1: int, n2: int) -> float:
    """The smallest two-sided Mann-Whitney U p-value that samples of sizes n1 and n2 can give.

    It is reached when the two samples do not overlap at all: one ordering out of C(n1 + n2, n1), on
    either side. (asv's ``is_different`` makes the same check, one-sided.)
    """
    if n1 < 1 or n2 < 1:
        return 1.0
    return min(1.0, 2 / math.comb(n1 + n2, n1))


def _smallest_balanced_n(alpha: float) -> int:
    n = 1
    while min_attainable_p(n, n) >= alpha:
        n += 1
    return n


def mann_whitney_p(baseline: Sequence[float], current: Sequence[float]) -> float:
    """Two-sided Mann-Whitney U p-value.

    scipy's exact distribution where one side has at most 8 samples and there are no ties; with ties
    and at most 10,000 ways to split the pooled samples, an exact permutation test (every split
    enumerated; scipy's normal approximation is conservative there: 5 rounds against 5 that do not
    overlap but contain a repeated value would give 0.012 instead of 0.0079); otherwise the normal
    approximation with scipy's tie correction. Samples that are all one value give 1.0.
    """
    if not baseline or not current:
        return 1.0
    distinct = len(set(baseline) | set(current))
    if distinct == 1:
        return 1.0
    # Imported here, not at the top: scipy.stats adds about 68 MiB of RSS, and the gate's hooks import this
    # module in every benchmark process, whose peak RSS is a measured (and gated) figure.
    from scipy.stats import PermutationMethod, mannwhitneyu

    method: str | PermutationMethod = "auto"
    # (scipy's permutation test needs two samples a side; with one, its exact distribution is used.)
    splits = math.comb(len(baseline) + len(current), len(baseline))
    if min(len(baseline), len(current)) >= 2 and distinct < len(baseline) + len(current) and splits <= (
        _EXACT_PERMUTATIONS
    ):
        method = PermutationMethod(n_resamples=_EXACT_PERMUTATIONS)
    result = mannwhitneyu(list(baseline), list(current), alternative="two-sided", method=method)
    p = float(result.pvalue)
    return p if math.isfinite(p) else 1.0


def bootstrap_ratio_ci(
    baseline: Sequence[float],
    current: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of median(current) / median(baseline), each side resampled apart.

    None with fewer than 2 samples on a side (a one-sample "interval" would only show the other
    side's spread) or where a resampled baseline median is not positive.
    """
    if len(baseline) < 2 or len(current) < 2:
        return None
    rng = np.random.default_rng(seed)
    base: Floats = np.asarray(baseline, dtype=np.float64)
    cur: Floats = np.asarray(current, dtype=np.float64)
    base_medians = np.median(base[rng.integers(0, base.size, size=(resamples, base.size))], axis=1)
    cur_medians = np.median(cur[rng.integers(0, cur.size, size=(resamples, cur.size))], axis=1)
    if np.any(base_medians <= 0):
        return None
    tail = (1 - confidence) / 2
    low, high = np.quantile(cur_medians / base_medians, [tail, 1 - tail])
    return float(low), float(high)


def paired_bootstrap_ci(
    differences: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """Percentile bootstrap interval of the mean of per-item differences (items resampled together)."""
    if len(differences) < 2:
        return None
    rng = np.random.default_rng(seed)
    diffs: Floats = np.asarray(differences, dtype=np.float64)
    means = diffs[rng.integers(0, diffs.size, size=(resamples, diffs.size))].mean(axis=1)
    tail = (1 - confidence) / 2
    low, high = np.quantile(means, [tail, 1 - tail])
    return float(low), float(high)


def _pooled_cv(*groups: Sequence[float]) -> float | None:
    """Coefficient of variation pooled over groups by degrees of freedom (None with no spread estimate)."""
    weighted, dof = 0.0, 0
    for group in groups:
        if len(group) < 2:
            continue
        mean = statistics.fmean(group)
        if mean == 0:
            continue
        weighted += (len(group) - 1) * statistics.variance(group) / mean**2
        dof += len(group) - 1
    return math.sqrt(weighted / dof) if dof else None


def rounds_needed(
    baseline: Sequence[float],
    current: Sequence[float],
    relative_change: float | None,
    alpha: float,
    power: float = POWER,
) -> int:
    """Samples per side that would resolve a relative change of ``relative_change`` (the threshold).

    Normal approximation for comparing two means with the pooled coefficient of variation ``cv``:
    ``n = 2 (z[1 - alpha/2] + z[power])^2 (cv / change)^2`` per side, divided by the Mann-Whitney
    test's efficiency 3/pi (Noether, JASA 82:645, 1987, for rank-test sample sizes). At least the
    smallest n per side at which the rank test can reach alpha at all, and at least one more than the
    smaller side has now (the present count did not resolve it). Assumes balanced sides; a pooled
    window baseline's spread includes the drift between its runs, which is the noise a comparison
    with it faces.
    """
    at_least = max(_smallest_balanced_n(alpha), min(len(baseline), len(current)) + 1)
    cv = _pooled_cv(baseline, current)
    if cv is None or relative_change is None or relative_change <= 0 or not math.isfinite(relative_change):
        return at_least
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    if cv / relative_change > 1e3:  # a threshold far inside the noise: no practical count resolves it
        return max(at_least, _MAX_ROUNDS)
    n = 2 * (z * cv / relative_change) ** 2 / _MANN_WHITNEY_EFFICIENCY
    return max(at_least, min(_MAX_ROUNDS, math.ceil(n)))


# ----------------------------------------------------------------------------- the decision


def _finite(value: float | None) -> float | None:
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def _samples(metric: Metric) -> tuple[float, ...]:
    return tuple(x for x in (_finite(s) for s in metric.samples) if x is not None)


def _relative(base: float, cur: float) -> float:
    if base == 0:
        return 0.0 if cur == 0 else math.copysign(math.inf, cur)
    return (cur - base) / abs(base)


def _exceeds(rule: Rule, worse_relative: float, worse_absolute: float) -> bool:
    """Whether a change (positive = in the given direction) passes every threshold the rule has."""
    if not rule.has_threshold:
        return False
    if rule.relative is not None and not _beyond(worse_relative, rule.relative):
        return False
    return rule.absolute is None or _beyond(worse_absolute, rule.absolute)


def _beyond(change: float, threshold: float) -> bool:
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
    base_value = _finite(baseline.value) if baseline is not None else None
    cur_value = _finite(current.value) if current is not None else None
    start = Decision(
        metric_name, "n/a", rule, unit=present.unit if present is not None else "",
        baseline=base_value, current=cur_value,
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

    change = _relative(base_value, cur_value)
    difference = cur_value - base_value
    # Positive = in the bad direction.
    sign = 1.0 if rule.direction == "lower" else -1.0
    worse = _exceeds(rule, sign * change, sign * difference)
    better = _exceeds(rule, -sign * change, -sign * difference)
    measured = replace(start, change=change, difference=difference)

    if not rule.significance:
        verdict: Verdict = "regressed" if worse else "improved" if better else "unchanged"
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
    base = _samples(baseline) or (base_value,)
    cur = _samples(current) or (cur_value,)
    p = mann_whitney_p(base, cur)
    interval = bootstrap_ratio_ci(base, cur, confidence, seed=seed)
    figures = replace(
        measured, p_value=p, interval=interval, interval_of="ratio" if interval else None,
        n_baseline=len(base), n_current=len(cur),
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
        drift = _within_run_drift(baseline, base_value, cur_value, threshold, up)
        if drift is not None:
            return replace(figures, verdict="noisy", reason=drift)
        verdict: Verdict = "regressed" if worse else "improved"
        return replace(figures, verdict=verdict, reason="beyond the threshold and significant")
    why = f"p={p:.2g}, not below {rule.alpha:g}" if p >= rule.alpha else "the ratio's interval includes 1"
    return noisy(f"beyond the threshold but not significant ({why})")


def _robust_cv(samples: Sequence[float]) -> float | None:
    """The spread of samples relative to their median: 1.4826 x the median absolute deviation / |median|."""
    if len(samples) < 3:
        return None
    middle = statistics.median(samples)
    if middle == 0:
        return None
    return 1.4826 * statistics.median(abs(x - middle) for x in samples) / abs(middle)


def busy_rounds(samples: Sequence[float], threshold: float | None) -> bool:
    """Whether one run's rounds spread beyond the threshold (robust CV): measured on a busy machine."""
    spread = _robust_cv(samples)
    return spread is not None and threshold is not None and math.isfinite(threshold) and spread > threshold


def _disturbed(base: Sequence[float], cur: Sequence[float], threshold: float | None) -> str | None:
    """Why the current rounds are too spread to judge (the machine was busy while they ran); or None.

    Rounds of one run normally agree within 1-2% (README, A/A figures); a burst of load from elsewhere
    (other jobs on a shared runner, a noisy neighbour of a virtual machine) slows some rounds and not
    others. Measured on the 2-core development VM, an unchanged run's int8 bs4 rounds read 4.15-5.70 s
    against 3.53-3.59 s in the run before (+35% at the median, significant): a change that no drift
    allowance short of missing real 20% slowdowns could absorb, but whose rounds spread 6.5% (robust CV)
    against 0.8%. So where the current rounds spread more than the threshold *and* more than three
    times the baseline's rounds, the verdict is ``noisy`` (re-run to tell). Only the current side is
    checked: a window's pooled rounds include the drift between its runs, so its spread says nothing
    about one run's disturbance. The cost, simulated with normal noise: a 20% slowdown measured with 5
    rounds a side is called noisy in 0.2% of pairs at 2% CV inside a run, 2.4% at 3% (none at 1.5%, the
    noise measured here); a real change that also makes timings erratic is reported as noisy too.
    """
    spread, usual = _robust_cv(cur), _robust_cv(base)
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
    return [v for v in (_finite(x) for x in getattr(baseline, "run_values", ())) if v is not None]


def _within_run_drift(
    baseline: Metric, base_value: float, cur_value: float, threshold: float | None, up: bool
) -> str | None:
    """Why a significant change beyond the threshold may still be drift between runs; None where it is not.

    The rank test compares rounds, and rounds vary far less within a run than run medians do between
    runs: in the A/A measurement behind README.md's table (20 runs of unchanged code on a shared
    2-core machine) rounds varied 1.5% within a run while run medians of latency spread 17.3%
    (consecutive runs moved by 4.6% at the median, up to 10.2%; TTFT up to 16%). So a significant rank
    test says only that the runs differ, not that the code does; the change must also leave the range
    the drift between runs explains:

    - several saved runs (``run_values``: a window's runs from :func:`pool_baseline`, or the gate's
      ``--llmbench-drift-history`` runs with this machine's fingerprint, also behind a ``last``
      baseline, so that the drift this machine has shown is known): the current value must lie beyond
      the window's extreme run median (max for a rise, min for a fall) widened by the threshold. Among
      exchangeable runs, a new unchanged run passes the window's extreme with probability 1/(W+1) (1/6
      for window:5); the extra threshold is what makes that a rare false alarm: measured, it took the
      false alarms of window:5 from 2 of 15 to 0 of 15 while still flagging every 20% slowdown (at a
      cost: 10% slowdowns 6 of 16, was 14; 15%: 10 of 16, was 15; that machine drifts ~10%). A
      range rather than a multiple of a spread estimate: with 5 runs a median absolute deviation is
      itself too noisy to scale by, and the range needs no assumption about the drift's distribution.
    - a single run (the first comparison on a machine, or ``--llmbench-drift-history=1``): nothing is
      known about the drift between runs here, so the
      change must exceed the documented default, :data:`DEFAULT_RUN_SPREAD` (5.3%), as well as the
      threshold; within it the verdict is ``noisy``, pointing at a window. On a machine that drifts
      more than that (17% here), ``last`` cannot be trusted and a window is the remedy.
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
            f"a change beyond {(bound / base_value - 1) * 100:+.1f}% is needed"
        )
    change = abs(_relative(base_value, cur_value))
    needed = max(widen, DEFAULT_RUN_SPREAD)
    if _beyond(change, needed):
        return None
    return (
        f"within run-to-run drift (separate runs of unchanged code differ by up to {DEFAULT_RUN_SPREAD:.1%}, "
        f"and a single baseline run cannot say how much more here); {_WINDOW_HINT}"
    )


def _within_history(baseline: Metric, cur_value: float, rule: Rule, bad: bool) -> str | None:
    """Why a change beyond an unsampled metric's threshold (memory) is within the drift between runs; or None.

    Peak RSS is the whole process's: what earlier models and the allocator left behind moves it between
    runs of unchanged code (measured on the 2-core development VM: int8 bs4 from 4.52 to 5.12 GiB over
    five runs, +8% between consecutive ones). Where the baseline carries several saved runs' values
    (``run_values``, see :func:`_within_run_drift`), the change must also pass every threshold measured
    from the most extreme of them (the highest for a rise). ``bad``: the change is in the bad direction.
    """
    runs = _run_values(baseline)
    if len(runs) < 2:
        return None
    polarity = (1.0 if rule.direction == "lower" else -1.0) * (1.0 if bad else -1.0)
    extreme = max(runs) if polarity > 0 else min(runs)
    if _exceeds(rule, polarity * _relative(extreme, cur_value), polarity * (cur_value - extreme)):
        return None
    divisor, unit = _scale(baseline.unit, runs)
    return (
        f"within the drift between runs: the values of {len(runs)} saved runs lie between "
        f"{_fmt(min(runs) / divisor)} and {_fmt(max(runs) / divisor)} {unit}, and the change must pass "
        f"the threshold from the {'highest' if extreme == max(runs) else 'lowest'} of them"
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
    base_items, cur_items = _samples(baseline), _samples(current)
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
        measured, interval=interval, interval_of="difference" if interval else None,
        n_baseline=len(base_items), n_current=len(cur_items),
    )
    if base_items and cur_items and len(base_items) != len(cur_items):
        # Different texts differ in difficulty: scores over different item sets say nothing about the code.
        return replace(
            figures, verdict="n/a",
            reason=f"{DIFFERENT_ITEMS} ({len(base_items)} in the baseline, {len(cur_items)} now): not compared; "
            "give both runs the same --llmbench-quality-items and --llmbench-data",
        )
    if not (worse or better):
        return replace(figures, verdict="unchanged", reason="within the threshold")
    if interval is None:
        return replace(
            figures, verdict="noisy",
            reason="beyond the threshold, but no per-item scores or intervals on both sides to judge it",
        )
    up = (rule.direction == "lower") == worse
    if interval[0] > 0 if up else interval[1] < 0:
        verdict: Verdict = "regressed" if worse else "improved"
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


# ----------------------------------------------------------------------------- a window of runs


def pool_baseline(metrics: Sequence[Metric], sample_kind: SampleKind = "rounds") -> PooledMetric:
    """One baseline metric from the same metric in several saved runs (oldest first).

    - ``value``: the median of the runs' values (None where no run has one). A median, not a mean, so
      that one disturbed run (a busy runner) does not move the baseline.
    - ``samples``, ``rounds``: all runs' raw samples, concatenated. The rank test then compares the
      current rounds with the spread of the whole window, drift between runs included, which is the
      noise a new run really faces (a single saved run's rounds understate it: 1-3% inside a run
      against 5.3% between runs). Pooled rounds still understate drift against one new run (measured:
      2 of 15 unchanged runs flagged on a shared machine), hence ``run_values``. The bootstrap takes the
      pooled samples' median, which can differ slightly from ``value``.
    - ``samples``, ``items``: per-item scores must stay paired with the current run's items, so where
      every run has per-item scores of the same length, the per-item median over the runs; else the
      latest run's scores.
    - ``ci``: the median of the runs' lower and of their upper bounds, where runs have one.
    - ``run_values``: each run's own value (oldest first, finite ones), from which the speed decision
      judges the drift between runs (the pooled rounds cannot show it).
    - unit, direction and note from the latest run.
    """
    if not metrics:
        raise ValueError("pool_baseline needs at least one metric")
    names = {m.name for m in metrics}
    if len(names) > 1:
        raise ValueError(f"pool_baseline got different metrics: {', '.join(sorted(names))}")
    latest = metrics[-1]
    values = [v for v in (_finite(m.value) for m in metrics) if v is not None]
    value = statistics.median(values) if values else None
    per_run = [_samples(m) for m in metrics]
    samples: tuple[float, ...]
    if sample_kind == "rounds":
        samples = tuple(x for run in per_run for x in run)
    else:
        with_items = [run for run in per_run if run]
        if with_items and len(with_items) == len(per_run) and len({len(run) for run in with_items}) == 1:
            samples = tuple(statistics.median(column) for column in zip(*with_items, strict=True))
        else:
            samples = with_items[-1] if with_items else ()
    intervals = [m.ci for m in metrics if m.ci is not None]
    ci = (
        (statistics.median(c[0] for c in intervals), statistics.median(c[1] for c in intervals))
        if intervals
        else None
    )
    window = f"pooled over {len(metrics)} runs"
    return PooledMetric(
        name=latest.name, value=value, unit=latest.unit, direction=latest.direction, samples=samples, ci=ci,
        note=f"{latest.note}; {window}" if latest.note else window, run_values=tuple(values),
    )


# ----------------------------------------------------------------------------- the sentence

_LABELS: Mapping[str, str] = {
    "latency_s": "latency",
    "ttft_s": "TTFT",
    "prefill_tok_s": "prefill",
    "decode_tok_s_total": "decode",
    "decode_tok_s_per_seq": "decode per sequence",
    "load_s": "load",
    "peak_rss_bytes": "peak RSS",
    "rss_before_bytes": "RSS before",
    "peak_cuda_allocated_bytes": "peak CUDA allocated",
    "peak_cuda_reserved_bytes": "peak CUDA reserved",
    "cuda_allocated_before_bytes": "CUDA allocated before",
    "weight_bytes": "weights",
    "file_bytes": "file size",
    "kv_cache_bytes": "KV cache",
    "rouge1": "ROUGE-1",
    "rouge2": "ROUGE-2",
    "rougeLsum": "ROUGE-Lsum",
    "drift_identical_share": "identical to reference",
    "mbu": "MBU",
}

_SILENT_UNITS = {"ratio", "F1", "count", ""}


def _scale(unit: str, values: Sequence[float]) -> tuple[float, str]:
    """A divisor and the unit text to show, chosen once for both sides of a comparison."""
    largest = max((abs(v) for v in values), default=0.0)
    if unit == "bytes":
        for divisor, name in ((1024 * MiB, "GiB"), (MiB, "MiB"), (1024.0, "KiB")):
            if largest >= divisor:
                return divisor, name
        return 1.0, "B"
    if unit == "s" and 0 < largest < 1:
        return 1e-3, "ms"
    return 1.0, "" if unit in _SILENT_UNITS else unit


def _fmt(value: float) -> str:
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def _p(p: float) -> str:
    return "p<0.001" if p < 0.001 else f"p={p:.2g}"


def _sentence(d: Decision) -> str:
    label = _LABELS.get(d.metric, d.metric)
    shown = [v for v in (d.baseline, d.current) if v is not None]
    divisor, unit = _scale(d.unit, shown)
    suffix = f" {unit}" if unit else ""

    def value(v: float) -> str:
        return _fmt(v / divisor)

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
    if d.verdict == "regressed":
        return f"{text}: {d.reason}" if d.reason.startswith(("below", "above")) else text
    if d.verdict == "noisy":
        needed = f"; about {d.rounds_needed} rounds per side needed" if d.rounds_needed else ""
        return f"{text}: noisy, {d.reason}{needed}"
    return f"{text}: {d.verdict}"
