"""Measured figures as values with units, direction and raw samples, and their place in saved runs.

Each benchmark's ``extra_info`` in the pytest-benchmark JSON holds, next to the identifying fields
(model, precision, device, batch_size, backend), a ``metrics`` object::

    "metrics": {
        "decode_tok_s_total": {"value": 41.8, "unit": "tok/s", "direction": "higher",
                               "samples": [41.2, 41.9, ...]},
        "rouge1": {"value": 0.61, "unit": "F1", "direction": "higher", "ci": [0.57, 0.65],
                   "samples": [...per item...]},
        ...
    }

``value`` is null where a figure cannot be computed (zero generated tokens, no KV cache in the
config, ...): reports show it as n/a. Only reporting code formats these values.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

Direction = Literal["higher", "lower", "none"]
Unit = Literal["s", "tok/s", "bytes", "tokens", "ratio", "F1", "count", "bytes/s", "%", "J/tok", "W"]

METRICS_KEY = "metrics"
SCHEMA_VERSION = 1


@dataclass(frozen=True)
class MetricFacts:
    """What is known of a metric before it is measured: its unit, which way is better, its label."""

    name: str
    unit: Unit
    direction: Direction
    #: A short label for people ("decode", "peak RSS").
    label: str


def _facts(*rows: tuple[str, Unit, Direction, str]) -> dict[str, MetricFacts]:
    return {name: MetricFacts(name, unit, direction, label) for name, unit, direction, label in rows}


#: The ONE table of metric facts, keyed by the names saved in runs, in reading order (reports list
#: metrics in this order, then any other saved metric by name). See docs/metrics.md.
METRIC_FACTS: Mapping[str, MetricFacts] = _facts(
    ("latency_s", "s", "lower", "latency"),
    ("ttft_s", "s", "lower", "TTFT"),
    ("prefill_tok_s", "tok/s", "higher", "prefill"),
    ("decode_tok_s_per_seq", "tok/s", "higher", "decode per sequence"),
    ("decode_tok_s_total", "tok/s", "higher", "decode"),
    ("engine_decode_tok_s", "tok/s", "higher", "engine decode per sequence"),
    ("itl_p50_s", "s", "lower", "ITL p50"),
    ("itl_p90_s", "s", "lower", "ITL p90"),
    ("itl_p99_s", "s", "lower", "ITL p99"),
    ("tpot_p50_s", "s", "lower", "TPOT p50"),
    ("tpot_p90_s", "s", "lower", "TPOT p90"),
    ("tpot_p99_s", "s", "lower", "TPOT p99"),
    ("ttft_p90_s", "s", "lower", "TTFT p90"),
    ("ttft_p99_s", "s", "lower", "TTFT p99"),
    ("harness_overhead", "ratio", "lower", "harness overhead"),
    ("mbu", "ratio", "higher", "MBU"),
    ("peak_rss_bytes", "bytes", "lower", "peak RSS"),
    ("peak_gpu_process_bytes", "bytes", "lower", "peak GPU process (driver)"),
    ("peak_cuda_allocated_bytes", "bytes", "lower", "peak CUDA allocated"),
    ("peak_cuda_reserved_bytes", "bytes", "lower", "peak CUDA reserved"),
    ("peak_mps_allocated_bytes", "bytes", "lower", "peak MPS allocated"),
    ("peak_mps_driver_bytes", "bytes", "lower", "peak MPS driver"),
    ("peak_gpu_used_bytes", "bytes", "lower", "peak GPU used (all processes)"),
    ("energy_per_token_j", "J/tok", "lower", "energy per token"),
    ("mean_power_w", "W", "none", "mean power"),
    ("weight_bytes", "bytes", "lower", "weights"),
    ("kv_cache_bytes", "bytes", "lower", "KV cache"),
    ("file_bytes", "bytes", "lower", "file size"),
    ("load_s", "s", "lower", "load"),
    ("load_added_bytes", "bytes", "lower", "memory added by loading"),
    ("rouge1", "F1", "higher", "ROUGE-1"),
    ("rouge2", "F1", "higher", "ROUGE-2"),
    ("rougeLsum", "F1", "higher", "ROUGE-Lsum"),
    ("semantic_sim", "ratio", "higher", "semantic similarity"),
    ("accuracy", "ratio", "higher", "accuracy"),
    ("drift_identical_share", "ratio", "higher", "identical to reference"),
    ("drift_first_diff_token", "tokens", "higher", "first differing token"),
    ("rouge1_share", "ratio", "higher", "ROUGE-1 share of reference"),
    ("rouge2_share", "ratio", "higher", "ROUGE-2 share of reference"),
    ("rougeLsum_share", "ratio", "higher", "ROUGE-Lsum share of reference"),
    ("accuracy_share", "ratio", "higher", "accuracy share of reference"),
    ("quality_target_met", "ratio", "higher", "quality target met"),
    ("rouge1_diff", "F1", "higher", "ROUGE-1 minus reference"),
    ("rouge2_diff", "F1", "higher", "ROUGE-2 minus reference"),
    ("rougeLsum_diff", "F1", "higher", "ROUGE-Lsum minus reference"),
    ("semantic_sim_diff", "ratio", "higher", "semantic similarity minus reference"),
    ("peak_bandwidth", "bytes/s", "none", "peak bandwidth"),
    ("rss_before_bytes", "bytes", "lower", "RSS before"),
    ("cuda_allocated_before_bytes", "bytes", "lower", "CUDA allocated before"),
    ("gpu_process_before_bytes", "bytes", "lower", "GPU process before"),
    ("mps_allocated_before_bytes", "bytes", "lower", "MPS allocated before"),
)
#: The metric names in reading order.
METRIC_ORDER: tuple[str, ...] = tuple(METRIC_FACTS)


def metric_label(name: str) -> str:
    """The label of a metric for people; the name itself for a metric not in :data:`METRIC_FACTS`."""
    facts = METRIC_FACTS.get(name)
    return facts.label if facts is not None else name


def reading_order(name: str) -> tuple[int, str]:
    """Sort key: :data:`METRIC_FACTS` order first, then any other metric by name."""
    return (METRIC_ORDER.index(name), "") if name in METRIC_FACTS else (len(METRIC_ORDER), name)


@dataclass(frozen=True)
class Metric:
    """One figure of one combination: the value, its unit, which way is better, and raw samples."""

    name: str
    value: float | None
    unit: Unit
    direction: Direction
    samples: tuple[float, ...] = ()
    #: A confidence interval of ``value`` (e.g. a bootstrap 95% interval), where one was computed.
    ci: tuple[float, float] | None = None
    #: One line on how it was measured, where that is not obvious from the name.
    note: str = ""

    @classmethod
    def of(
        cls,
        name: str,
        value: float | None,
        samples: Iterable[float] = (),
        *,
        ci: tuple[float, float] | None = None,
        note: str = "",
    ) -> Metric:
        """The metric ``name`` of :data:`METRIC_FACTS`, its unit and direction taken from there.

        Raises ValueError for a name outside the table: every metric the harness measures has its facts.
        """
        facts = METRIC_FACTS.get(name)
        if facts is None:
            raise ValueError(f"metric {name!r} has no entry in METRIC_FACTS (llmbench.metrics); add one there")
        return cls(name, value, facts.unit, facts.direction, tuple(samples), ci, note)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "value": _finite_or_none(self.value),
            "unit": self.unit,
            "direction": self.direction,
        }
        if self.samples:
            out["samples"] = [_finite_or_none(s) for s in self.samples]
        if self.ci is not None:
            out["ci"] = [_finite_or_none(self.ci[0]), _finite_or_none(self.ci[1])]
        if self.note:
            out["note"] = self.note
        return out

    @classmethod
    def from_json(cls, name: str, data: Mapping[str, Any]) -> Metric:
        """Read a saved metric; tolerant of older runs (missing fields become defaults)."""
        ci = data.get("ci")
        return cls(
            name=name,
            value=_float_or_none(data.get("value")),
            unit=data.get("unit", "count"),
            direction=data.get("direction", "none"),
            samples=tuple(x for x in (_float_or_none(s) for s in data.get("samples", ()) or ()) if x is not None),
            ci=(float(ci[0]), float(ci[1])) if ci and None not in ci else None,
            note=str(data.get("note", "")),
        )


def _finite_or_none(value: float | None) -> float | None:
    if value is None or not math.isfinite(value):
        return None
    return float(value)


def _float_or_none(value: Any) -> float | None:
    try:
        result = float(value)
    except (TypeError, ValueError):
        return None
    return result if math.isfinite(result) else None


@dataclass
class MetricSet:
    """The metrics of one benchmark, in the order they were added."""

    metrics: dict[str, Metric] = field(default_factory=dict)

    def add(self, metric: Metric) -> None:
        self.metrics[metric.name] = metric

    def extend(self, metrics: Iterable[Metric]) -> None:
        for metric in metrics:
            self.add(metric)

    def to_json(self) -> dict[str, Any]:
        return {name: metric.to_json() for name, metric in self.metrics.items()}


def metrics_of(benchmark_json: Mapping[str, Any]) -> dict[str, Metric]:
    """The metrics saved in one benchmark entry of a pytest-benchmark run (empty for older runs)."""
    extra = benchmark_json.get("extra_info") or {}
    saved = extra.get(METRICS_KEY) or {}
    if not isinstance(saved, Mapping):
        return {}
    return {name: Metric.from_json(name, data) for name, data in saved.items() if isinstance(data, Mapping)}


def median(values: Sequence[float]) -> float | None:
    ordered = sorted(v for v in values if math.isfinite(v))
    if not ordered:
        return None
    mid = len(ordered) // 2
    return ordered[mid] if len(ordered) % 2 else (ordered[mid - 1] + ordered[mid]) / 2
