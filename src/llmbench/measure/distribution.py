"""The latency distribution users compare: ITL, TPOT and TTFT percentiles over all timed rounds.

Definitions as in vLLM's serving benchmark: ITL (inter-token latency) is the time between two
consecutive tokens of one sequence, over every token after the first of every sequence of every
round; TPOT (time per output token) is one sequence's decode time over its tokens after the first;
TTFT the time to a sequence's first token. A percentile is saved only where there are enough
samples for it to be more than the largest one (``1 / (1 - q)``: 10 for p90, 100 for p99), with a
seeded bootstrap interval (:mod:`llmbench.stats`). Why they are informational: docs/metrics.md.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable, Sequence

import numpy as np

from llmbench.engine_types import Generation
from llmbench.metrics import Metric
from llmbench.stats import CONFIDENCE, RESAMPLES, SEED, Floats, bootstrap_statistic, percentile_interval

__all__ = [
    "PERCENTILES",
    "distribution_metrics",
    "inter_token_latencies",
    "minimum_samples",
    "percentile_metric",
    "time_per_output_token",
    "times_to_first_token",
]

#: (figure, percentiles) saved per combination; TTFT's median is ``ttft_s`` already.
PERCENTILES: tuple[tuple[str, tuple[int, ...]], ...] = (
    ("itl", (50, 90, 99)),
    ("tpot", (50, 90, 99)),
    ("ttft", (90, 99)),
)
_WHAT = {
    "itl": "time between consecutive tokens of a sequence, every token after the first of all timed rounds",
    "tpot": "per sequence and round: decode time / (tokens - 1)",
    "ttft": "per sequence and round: time to the first token",
}


def _sequences(generation: Generation) -> list[tuple[int, Sequence[float]]]:
    """(generated tokens, step times) of each sequence that has step times."""
    if generation.batch_mode == "sequential":
        pairs = zip(generation.generated_tokens, generation.sequence_step_times_s, strict=False)
        return [(g, times[:g]) for g, times in pairs if g > 0 and times]
    if not generation.step_times_s:
        return []
    return [(g, generation.step_times_s[:g]) for g in generation.generated_tokens if g > 0]


def inter_token_latencies(generation: Generation) -> list[float]:
    """Every gap between consecutive tokens of every sequence of one round (a batch row counts its own)."""
    return [later - earlier for _, times in _sequences(generation) for earlier, later in itertools.pairwise(times)]


def time_per_output_token(generation: Generation) -> list[float]:
    """Per sequence with at least two tokens: (last token time - first) / (tokens - 1)."""
    return [(times[g - 1] - times[0]) / (g - 1) for g, times in _sequences(generation) if g >= 2 and len(times) >= g]


def times_to_first_token(generation: Generation) -> list[float]:
    """Per sequence: the time of its first token (for a padded batch, one value: the batch's first step)."""
    sequences = _sequences(generation)
    if generation.batch_mode != "sequential":
        sequences = sequences[:1]
    return [times[0] for _, times in sequences]


def minimum_samples(percentile: int) -> int:
    """Samples needed before the ``percentile`` is more than the largest sample: ``1 / (1 - q)``."""
    return math.ceil(1 / (1 - percentile / 100) - 1e-9)


def _row_quantiles(q: float) -> Callable[[Floats], Floats]:
    def statistic(matrix: Floats) -> Floats:
        out: Floats = np.quantile(matrix, q, axis=1)
        return out

    return statistic


def percentile_metric(figure: str, percentile: int, values: Sequence[float], note: str = "") -> Metric:
    """``<figure>_p<percentile>_s``: the percentile (linear interpolation) of ``values``, seconds, lower is
    better, with a seeded percentile-bootstrap interval; n/a with fewer than :func:`minimum_samples`."""
    name = f"{figure}_p{percentile}_s"
    data = [v for v in values if math.isfinite(v)]
    needed = minimum_samples(percentile)
    if len(data) < needed:
        why = f"n/a: p{percentile} needs at least {needed} samples, got {len(data)}"
        return Metric.of(name, None, data, note=why)
    array: Floats = np.asarray(data, dtype=np.float64)
    q = percentile / 100
    value = float(np.quantile(array, q))
    ci: tuple[float, float] | None = (value, value)
    if array.min() != array.max():
        estimates = bootstrap_statistic(array, _row_quantiles(q), RESAMPLES, np.random.default_rng(SEED))
        ci = percentile_interval(estimates, CONFIDENCE)
    text = f"p{percentile} of {len(data)} samples: {note}" if note else f"p{percentile} of {len(data)} samples"
    return Metric.of(name, value, data, ci=ci, note=text)


def distribution_metrics(generations: Sequence[Generation]) -> list[Metric]:
    """ITL and TPOT p50/p90/p99 and TTFT p90/p99 over all the timed rounds' sequences."""
    pools = {
        "itl": [v for g in generations for v in inter_token_latencies(g)],
        "tpot": [v for g in generations for v in time_per_output_token(g)],
        "ttft": [v for g in generations for v in times_to_first_token(g)],
    }
    return [
        percentile_metric(figure, p, pools[figure], _WHAT[figure])
        for figure, percentiles in PERCENTILES
        for p in percentiles
    ]
