"""The one bootstrap: seeded percentile intervals (Efron and Tibshirani, 1993, ch. 13).

Used by the gate (ratio of medians, paired differences) and by quality (mean scores, shares of the
reference). With the same inputs and seed, an interval is always the same.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator, Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

__all__ = [
    "CONFIDENCE",
    "RESAMPLES",
    "SEED",
    "bootstrap_ci",
    "bootstrap_statistic",
    "paired_bootstrap_ci",
    "percentile_interval",
    "ratio_of_medians_ci",
    "resampled_rows",
]

Floats = npt.NDArray[np.float64]

#: Level of the intervals shown and used.
CONFIDENCE = 0.95
#: Resamples per interval.
RESAMPLES = 2000
#: The seed of every interval (saved runs' quality notes say "seed 0").
SEED = 0
#: Index matrices are drawn in chunks of at most this many entries, so memory stays flat.
_CHUNK_ENTRIES = 1_000_000


def _check(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")


def resampled_rows(size: int, resamples: int, rng: np.random.Generator) -> Iterator[npt.NDArray[np.int64]]:
    """Bootstrap index rows (``resamples`` rows of ``size`` draws with replacement), in bounded chunks."""
    rows = max(1, _CHUNK_ENTRIES // max(size, 1))
    for begin in range(0, resamples, rows):
        yield rng.integers(0, size, size=(min(rows, resamples - begin), size))


def percentile_interval(estimates: Floats, confidence: float = CONFIDENCE) -> tuple[float, float]:
    """The central ``confidence`` share of bootstrap estimates."""
    tail = (1 - confidence) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_statistic(
    data: Floats, statistic: Callable[[Floats], Floats], resamples: int, rng: np.random.Generator
) -> Floats:
    """``statistic`` (row-wise, e.g. ``lambda m: m.mean(axis=1)``) of every resample of ``data``."""
    return np.concatenate([statistic(data[rows]) for rows in resampled_rows(data.size, resamples, rng)])


def _row_means(matrix: Floats) -> Floats:
    means: Floats = matrix.mean(axis=1)
    return means


def _row_medians(matrix: Floats) -> Floats:
    medians: Floats = np.median(matrix, axis=1)
    return medians


def bootstrap_ci(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
    statistic: Literal["mean", "median"] = "mean",
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean (or the median) of ``values``.

    One value, or values all equal, give ``(v, v)``; no values, or a value that is not finite, raise ValueError.
    """
    _check(confidence, resamples)
    if len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one value, got none")
    data: Floats = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise ValueError(f"bootstrap_ci needs finite values, got {[v for v in values if not math.isfinite(v)]}")
    if data.min() == data.max():
        return float(data[0]), float(data[0])
    rng = np.random.default_rng(seed)
    rows = _row_medians if statistic == "median" else _row_means
    return percentile_interval(bootstrap_statistic(data, rows, resamples, rng), confidence)


def paired_bootstrap_ci(
    differences: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of the mean of per-item differences (None with fewer than 2)."""
    if len(differences) < 2:
        return None
    _check(confidence, resamples)
    rng = np.random.default_rng(seed)
    diffs: Floats = np.asarray(differences, dtype=np.float64)
    return percentile_interval(bootstrap_statistic(diffs, _row_means, resamples, rng), confidence)


def ratio_of_medians_ci(
    baseline: Sequence[float],
    current: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float] | None:
    """Percentile-bootstrap interval of median(current) / median(baseline), each side resampled apart.

    None with fewer than 2 samples on a side (a one-sample "interval" would only show the other side's
    spread) or where a resampled baseline median is not positive.
    """
    if len(baseline) < 2 or len(current) < 2:
        return None
    _check(confidence, resamples)
    rng = np.random.default_rng(seed)
    base: Floats = np.asarray(baseline, dtype=np.float64)
    cur: Floats = np.asarray(current, dtype=np.float64)
    base_medians = bootstrap_statistic(base, _row_medians, resamples, rng)
    cur_medians = bootstrap_statistic(cur, _row_medians, resamples, rng)
    if np.any(base_medians <= 0):
        return None
    ratios: Floats = np.asarray(cur_medians / base_medians, dtype=np.float64)
    return percentile_interval(ratios, confidence)
