"""Change points of one series with Apache Otava (formerly Hunter), and what each one means.

Otava splits the series over sliding windows with E-Divisive and keeps a split only where a t-test
between the points on either side gives p below :data:`MAX_PVALUE` (deterministic: no permutations) and
the step exceeds :data:`MIN_MAGNITUDE`; see Fleming et al., "Hunter: Using Change Point Detection to Hunt
for Performance Regressions", ICPE 2023. Each change point gets the run and commit where the new level
starts, the run before it, the step as the ratio of the medians after and before (the points up to the
neighbouring change points) with a bootstrap interval (:func:`llmbench.stats.ratio_of_medians_ci`), and
whether it is a regression by the metric's direction. The settings are measured in docs/history.md.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

from llmbench.history.series import MetricHistory, Point
from llmbench.stats import ratio_of_medians_ci

__all__ = ["MAX_PVALUE", "MIN_MAGNITUDE", "WINDOW", "ChangePoint", "DetectorMissing", "change_points"]


class DetectorMissing(RuntimeError):
    """Apache Otava is not installed (it comes with the ``history`` extra)."""


#: Otava's defaults: windows of 50 points, p < 0.001.
WINDOW = 50
MAX_PVALUE = 0.001
#: Steps smaller than this share of the level are not reported: the gate's speed threshold (docs/history.md).
MIN_MAGNITUDE = 0.05

Kind = Literal["regression", "improvement", "change"]


@dataclass(frozen=True)
class ChangePoint:
    """A lasting step in one series: the level changed from run ``previous`` to run ``first``."""

    series: MetricHistory
    #: Index in ``series.points`` of the first run at the new level.
    index: int
    #: Medians of the points between the neighbouring change points, before and after this one.
    before: float
    after: float
    #: ``after / before - 1`` (inf where ``before`` is 0).
    change: float
    #: Bootstrap interval of ``after / before - 1`` (None with fewer than 2 points on a side).
    interval: tuple[float, float] | None
    pvalue: float
    kind: Kind

    @property
    def first(self) -> Point:
        return self.series.points[self.index]

    @property
    def previous(self) -> Point:
        return self.series.points[self.index - 1]


def _kind(series: MetricHistory, change: float) -> Kind:
    if series.direction == "none" or change == 0:
        return "change"
    worse = change > 0 if series.direction == "lower" else change < 0
    return "regression" if worse else "improvement"


def _median(values: Sequence[float]) -> float:
    ordered = sorted(values)
    middle = len(ordered) // 2
    return ordered[middle] if len(ordered) % 2 else (ordered[middle - 1] + ordered[middle]) / 2


def change_points(
    series: MetricHistory, window: int = WINDOW, max_pvalue: float = MAX_PVALUE, min_magnitude: float = MIN_MAGNITUDE
) -> list[ChangePoint]:
    """The change points of ``series``, oldest first."""
    values = [point.value for point in series.points]
    if len(values) < 2:
        return []
    try:
        from otava.analysis import compute_change_points
    except ImportError as error:
        raise DetectorMissing(
            f"change points need Apache Otava ({error}): pip install 'pytest-llmbench[history]'"
        ) from None
    with warnings.catch_warnings():
        # A constant stretch (weights, file sizes) gives zero variances: scipy warns, Otava still decides.
        warnings.simplefilter("ignore", RuntimeWarning)
        found, _ = compute_change_points(values, window_len=window, max_pvalue=max_pvalue,
                                         min_magnitude=min_magnitude)  # fmt: skip
    indexes = [int(point.index) for point in found]
    pvalues = [float(point.stats.pvalue) for point in found]
    bounds = [0, *indexes, len(values)]
    out = []
    for position, index in enumerate(indexes):
        left = values[bounds[position] : index]
        right = values[index : bounds[position + 2]]
        before, after = _median(left), _median(right)
        change = after / before - 1 if before else math.inf if after else 0.0
        ratio = ratio_of_medians_ci(left, right)
        interval = (ratio[0] - 1, ratio[1] - 1) if ratio is not None else None
        out.append(ChangePoint(series, index, before, after, change, interval, pvalues[position],
                               _kind(series, change)))  # fmt: skip
    return out
