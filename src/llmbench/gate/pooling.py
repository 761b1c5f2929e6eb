"""The baseline side of one benchmark: its metrics from a saved run, pooled over a window, with the drift.

A window's runs are pooled into one :class:`PooledMetric` per metric (:func:`pool_baseline`); every
baseline metric also carries the values of the saved runs that show this machine's drift between
runs (``run_values``, :func:`with_drift`), which the decision checks a change against.
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from llmbench.gate.decision import ROUND_TIME
from llmbench.gate.rules import Rule, SampleKind, rule_for
from llmbench.gate.statistics import busy_rounds, finite, finite_samples
from llmbench.gpu_driver import THROTTLE_INFO_KEY, throttle_note
from llmbench.metrics import Metric, metrics_of
from llmbench.runs import SavedRun
from llmbench.units import format_number

__all__ = ["PooledMetric", "baseline_metrics", "benchmark_metrics", "pool_baseline", "with_drift"]


@dataclass(frozen=True)
class PooledMetric(Metric):
    """A baseline metric pooled over a window of runs (:func:`pool_baseline`), with each run's own value.

    ``run_values`` (oldest first) is what the speed decision estimates the drift *between* runs from;
    the pooled rounds in ``samples`` only show the noise *within* runs. Never saved: ``to_json`` is
    :class:`~llmbench.metrics.Metric`'s, so the saved JSON is unchanged.
    """

    run_values: tuple[float, ...] = ()


def _stats_latency(bench: Mapping[str, Any]) -> tuple[Metric | None, str]:
    stats = bench.get("stats")
    if not isinstance(stats, Mapping):
        return None, ""
    data = stats.get("data")
    samples: tuple[float, ...] = ()
    if isinstance(data, list):
        samples = tuple(float(x) for x in data if isinstance(x, int | float) and math.isfinite(x))
    median = stats.get("median")
    value = float(median) if isinstance(median, int | float) and math.isfinite(median) else None
    if samples:
        return Metric("latency_s", value, "s", "lower", samples, note="from pytest-benchmark's stats"), ""
    spread = ", ".join(
        f"{key} {format_number(float(stats[key]) * 1e3)} ms"
        for key in ("median", "min", "max")
        if isinstance(stats.get(key), int | float) and math.isfinite(stats[key])
    )
    return (
        Metric("latency_s", value, "s", "lower", note="from pytest-benchmark's stats, no raw rounds"),
        f"no raw rounds saved ({spread}; save with --benchmark-save-data): its latency can only be 'noisy'",
    )


def benchmark_metrics(bench: Mapping[str, Any]) -> tuple[dict[str, Metric], list[str]]:
    """The metrics of one benchmark entry and notes on what was missing or disturbed it.

    ``extra_info["metrics"]`` where present; ``latency_s`` from pytest-benchmark's stats where the
    metrics lack it (older runs, plain pytest-benchmark tests). A GPU that throttled during the timed
    rounds (``extra_info["gpu_clock_events"]``, :mod:`llmbench.measure.throttle`) is a note: the verdict
    warns of it.
    """
    notes = []
    metrics = metrics_of(bench)
    extra = bench.get("extra_info")
    throttled = throttle_note(extra.get(THROTTLE_INFO_KEY)) if isinstance(extra, Mapping) else None
    if throttled:
        notes.append(throttled)
    if "latency_s" not in metrics:
        latency, note = _stats_latency(bench)
        if latency is not None:
            if not metrics:
                notes.append("no llmbench metrics (an older or plain pytest-benchmark run): latency only")
            if note:
                notes.append(note)
            metrics = {"latency_s": latency, **metrics}
    return metrics, notes


def pool_baseline(metrics: Sequence[Metric], sample_kind: SampleKind = "rounds") -> PooledMetric:
    """One baseline metric from the same metric in several saved runs (oldest first).

    - ``value``: the median of the runs' values (None where no run has one). A median, not a mean, so
      that one disturbed run (a busy runner) does not move the baseline.
    - ``samples``, ``rounds``: all runs' raw samples, concatenated. The rank test then compares the
      current rounds with the spread of the whole window, drift between runs included, which is the
      noise a new run really faces (docs/gate-validation.md). Pooled rounds still understate drift
      against one new run, hence ``run_values``. The bootstrap takes the pooled samples' median, which
      can differ slightly from ``value``.
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
    values = [v for v in (finite(m.value) for m in metrics) if v is not None]
    value = statistics.median(values) if values else None
    per_run = [finite_samples(m.samples) for m in metrics]
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
    ci = (statistics.median(c[0] for c in intervals), statistics.median(c[1] for c in intervals)) if intervals else None
    window = f"pooled over {len(metrics)} runs"
    return PooledMetric(
        name=latest.name,
        value=value,
        unit=latest.unit,
        direction=latest.direction,
        samples=samples,
        ci=ci,
        note=f"{latest.note}; {window}" if latest.note else window,
        run_values=tuple(values),
    )


def baseline_metrics(
    per_run: Sequence[Mapping[str, Metric]], current: Mapping[str, Metric], rules: Mapping[str, Rule]
) -> dict[str, Metric]:
    """One baseline metric per name: the run's own for one run, :func:`pool_baseline` over a window."""
    if len(per_run) == 1:
        return dict(per_run[0])
    names = list(dict.fromkeys(name for metrics in per_run for name in metrics))
    out = {}
    for name in names:
        metrics = [m[name] for m in per_run if name in m]
        present = current.get(name, metrics[-1])
        rule = rule_for(name, rules, present.direction)
        out[name] = metrics[0] if len(metrics) == 1 else pool_baseline(metrics, rule.sample_kind)
    return out


def with_drift(
    metrics: Mapping[str, Metric], drift_runs: Sequence[SavedRun], fullname: str, rules: Mapping[str, Rule]
) -> dict[str, Metric]:
    """The baseline metrics with each run's value in ``drift_runs`` as ``run_values`` (where 2 or more).

    A run whose round times (``latency_s``) spread beyond their threshold was measured on a busy machine
    (:func:`~llmbench.gate.statistics.busy_rounds`): its timed figures would widen the drift range for every
    later comparison, so they are left out of it (its memory figures stay).
    """
    per_run = [benchmark_metrics(run.benchmarks[fullname])[0] for run in drift_runs if fullname in run.benchmarks]
    threshold = rule_for(ROUND_TIME, rules, "lower").relative
    busy = [ROUND_TIME in m and busy_rounds(m[ROUND_TIME].samples, threshold) for m in per_run]
    out = dict(metrics)
    for name, metric in metrics.items():
        rule = rule_for(name, rules, metric.direction)
        timed = rule.significance and rule.sample_kind == "rounds"
        values = tuple(
            v
            for m, disturbed in zip(per_run, busy, strict=True)
            if name in m and (v := m[name].value) is not None and math.isfinite(v) and not (timed and disturbed)
        )
        if len(values) < 2:
            continue
        own = {f.name: getattr(metric, f.name) for f in fields(Metric)}
        out[name] = PooledMetric(**own, run_values=values)
    return out
