"""The statistics the decision uses: the rank test, bootstrap intervals, the spread of rounds, rounds needed.

Pure functions of samples; nothing here knows about rules or runs. The bootstrap is :mod:`llmbench.stats`.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence
from statistics import NormalDist
from typing import TYPE_CHECKING

from llmbench.stats import CONFIDENCE, RESAMPLES, SEED, paired_bootstrap_ci, ratio_of_medians_ci

if TYPE_CHECKING:
    from scipy.stats import PermutationMethod

__all__ = [
    "CONFIDENCE",
    "POWER",
    "RESAMPLES",
    "SEED",
    "bootstrap_ratio_ci",
    "busy_rounds",
    "change_of",
    "finite",
    "finite_samples",
    "mann_whitney_p",
    "min_attainable_p",
    "paired_bootstrap_ci",
    "pooled_cv",
    "robust_cv",
    "rounds_needed",
]

#: Power aimed at by ``rounds_needed``.
POWER = 0.8
#: Asymptotic relative efficiency of the Mann-Whitney test to the t test under normal noise, 3/pi
#: (Lehmann, "Nonparametrics", 1975): the rank test needs about pi/3 times the t test's samples.
_MANN_WHITNEY_EFFICIENCY = 3 / math.pi
#: Up to this many splits of the pooled samples, a tied rank test enumerates them all (exact p).
_EXACT_PERMUTATIONS = 10_000
#: The cap of ``rounds_needed`` (a threshold far inside the noise).
_MAX_ROUNDS = 1_000_000

#: The bootstrap interval of median(current) / median(baseline) (see :func:`llmbench.stats.ratio_of_medians_ci`).
bootstrap_ratio_ci = ratio_of_medians_ci


def finite(value: float | None) -> float | None:
    """``value`` as a float where it is a finite number, else None."""
    if value is None:
        return None
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def finite_samples(samples: Sequence[float]) -> tuple[float, ...]:
    return tuple(x for x in (finite(s) for s in samples) if x is not None)


def change_of(base: float, cur: float) -> float:
    """(cur - base) / |base|; +-inf from a zero baseline (0 where both are 0)."""
    if base == 0:
        return 0.0 if cur == 0 else math.copysign(math.inf, cur)
    return (cur - base) / abs(base)


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
    and at most 10,000 ways to split the pooled samples, an exact permutation test (scipy's normal
    approximation is conservative there: 5 rounds against 5 that do not overlap but contain a repeated
    value would give 0.012 instead of 0.0079); otherwise the normal approximation with scipy's tie
    correction. Samples that are all one value give 1.0.
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
    if (
        min(len(baseline), len(current)) >= 2
        and distinct < len(baseline) + len(current)
        and splits <= (_EXACT_PERMUTATIONS)
    ):
        method = PermutationMethod(n_resamples=_EXACT_PERMUTATIONS)
    result = mannwhitneyu(list(baseline), list(current), alternative="two-sided", method=method)
    p = float(result.pvalue)
    return p if math.isfinite(p) else 1.0


def pooled_cv(*groups: Sequence[float]) -> float | None:
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
    smaller side has now (the present count did not resolve it). Assumes balanced sides.
    """
    at_least = max(_smallest_balanced_n(alpha), min(len(baseline), len(current)) + 1)
    cv = pooled_cv(baseline, current)
    if cv is None or relative_change is None or relative_change <= 0 or not math.isfinite(relative_change):
        return at_least
    z = NormalDist().inv_cdf(1 - alpha / 2) + NormalDist().inv_cdf(power)
    if cv / relative_change > 1e3:  # a threshold far inside the noise: no practical count resolves it
        return max(at_least, _MAX_ROUNDS)
    n = 2 * (z * cv / relative_change) ** 2 / _MANN_WHITNEY_EFFICIENCY
    return max(at_least, min(_MAX_ROUNDS, math.ceil(n)))


def robust_cv(samples: Sequence[float]) -> float | None:
    """The spread of samples relative to their median: 1.4826 x the median absolute deviation / |median|."""
    if len(samples) < 3:
        return None
    middle = statistics.median(samples)
    if middle == 0:
        return None
    return 1.4826 * statistics.median(abs(x - middle) for x in samples) / abs(middle)


def busy_rounds(samples: Sequence[float], threshold: float | None) -> bool:
    """Whether one run's rounds spread beyond the threshold (robust CV): measured on a busy machine."""
    spread = robust_cv(samples)
    return spread is not None and threshold is not None and math.isfinite(threshold) and spread > threshold
