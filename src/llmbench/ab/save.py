"""Both sides of an A/B run saved as ordinary pytest-benchmark runs, marked as a pair.

Each side's run has the JSON shape the plugin saves (pytest-benchmark's stats over the timed
rounds, the figures in ``extra_info["metrics"]`` built by the plugin's own
:meth:`~llmbench.measure.generate.GenerateBenchmark.record`), so ``pytest-benchmark compare``,
``llmbench compare``, ``report`` and ``export`` read it. The pair marks: ``machine_info["llmbench_ab"]``
(pair id, side, refs, loads, rounds, seed, whether one side was resident at a time) and, per
benchmark, ``extra_info["llmbench_ab"]`` (the load pair of each round and each figure per load pair,
which the paired verdict reads).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from llmbench.ab.collect import Benchmark, Plan
from llmbench.ab.interleave import Measured, Schedule, SideRecord, generations
from llmbench.ab.sides import Side
from llmbench.ab.verdict import AB_KEY
from llmbench.benchmark_storage import commit_info_at, run_json, stats_json
from llmbench.measure.generate import GenerateBenchmark
from llmbench.measure.probes import probes_for
from llmbench.measure.speed import load_s_metric
from llmbench.metrics import Metric
from llmbench.runs import list_runs, run_number, write_json_atomically

__all__ = ["AB_KEY", "BEST_ROUND_METRICS", "benchmark_json", "load_value", "pair_id", "save_pair", "side_json"]


@dataclass
class _Recorder:
    """Stands in for pytest-benchmark's fixture where :class:`GenerateBenchmark` writes its figures."""

    extra_info: dict[str, Any] = field(default_factory=dict)


def pair_id(now: datetime | None = None) -> str:
    return (now or datetime.now(UTC)).strftime("%Y%m%dT%H%M%SZ")


def _figures(bench: Benchmark, record: SideRecord, load_s: float | None, bandwidth: Metric | None,
             schedule: Schedule, load: int | None) -> GenerateBenchmark:  # fmt: skip
    assert record.model is not None
    keep = [k for k in record.round_loads if load is None or k == load]
    rounds = [r for r, k in zip(record.rounds, record.round_loads, strict=True) if load is None or k == load]
    figures = GenerateBenchmark(
        benchmark=_Recorder(), combination=bench.combination, probes=probes_for(bench.combination.device),
        peak_bandwidth=bandwidth, load_s=load_s, rounds=len(keep), warmup_rounds=schedule.warmup_rounds,
    )  # fmt: skip
    figures.record(record.model, generations(record, load), [r.seconds for r in rounds], [r.memory for r in rounds],
                   bench.max_new_tokens)  # fmt: skip
    return figures


#: The timed figures whose per-load value ``--per-load=best`` takes from the load pair's best round (one value
#: per round; percentiles, memory and sizes keep their own aggregation).
BEST_ROUND_METRICS = frozenset({
    "latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_per_seq", "decode_tok_s_total", "engine_decode_tok_s", "mbu",
})  # fmt: skip


def load_value(name: str, metric: Metric, rounds: int, per_load: str) -> float | None:
    """One load pair's figure of ``metric`` over its ``rounds`` rounds: the metric's own value (the median of
    the rounds for timed figures, the peak for memory), or under ``best`` the best round of a timed figure."""
    samples = metric.samples
    if per_load != "best" or name not in BEST_ROUND_METRICS or not samples or len(samples) != rounds:
        return metric.value
    return float(min(samples) if metric.direction == "lower" else max(samples))


def benchmark_json(bench: Benchmark, record: SideRecord, side: Side, pair: str, schedule: Schedule,
                   bandwidth: Metric | None) -> dict[str, Any]:  # fmt: skip
    """One side's figures of ``bench`` as pytest-benchmark saves a benchmark, with the pair marks."""
    figures = _figures(bench, record, record.load_s[0] if record.load_s else None, bandwidth, schedule, None)
    note = f"{len(record.load_s)} loads, each a fresh worker, alternating with the other side's"
    figures.add([load_s_metric(record.load_s, note=note)])
    if record.quality is not None:
        figures.add_quality(record.quality)
    per_load = []
    for load, seconds in enumerate(record.load_s):
        one = _figures(bench, record, seconds, bandwidth, schedule, load)
        rounds = record.round_loads.count(load)
        per_load.append({
            name: load_value(name, metric, rounds, schedule.per_load) for name, metric in one.metrics.metrics.items()
        })  # fmt: skip
    extra = figures.benchmark.extra_info
    extra[AB_KEY] = {"pair": pair, "side": side.name, "round_loads": list(record.round_loads), "loads": per_load}
    if record.round_cpus:
        extra[AB_KEY]["round_cpus"] = [list(cpus) for cpus in record.round_cpus]
    param = bench.combination.id
    return {
        "group": None, "name": bench.name, "fullname": bench.fullname, "params": {"llm_combination": param},
        "param": param, "extra_info": extra,
        "options": {"disable_gc": False, "timer": "perf_counter (in the model's worker)", "min_rounds": schedule.rounds,
                    "max_time": None, "min_time": None, "warmup": schedule.warmup_rounds > 0},
        "stats": stats_json([r.seconds for r in record.rounds]),
    }  # fmt: skip


def _commit_info(side: Side) -> dict[str, Any]:
    info = commit_info_at(side.root)
    # A worktree of a ref is the commit itself; the working tree may carry changes (``dirty``).
    info.update(id=side.commit, dirty=side.dirty)
    return info


def side_json(
    side: Side, other: Side, plan: Plan, measured: Measured, schedule: Schedule, pair: str,
    bandwidths: Mapping[str, Metric | None],
) -> dict[str, Any]:  # fmt: skip
    """One side's run as pytest-benchmark saves it, with the pair marks."""
    records = measured.records[side.name]
    benchmarks = [
        benchmark_json(bench, records[bench.fullname], side, pair, schedule, bandwidths.get(bench.combination.device))
        for bench in plan.benchmarks
        if bench.fullname in records and records[bench.fullname].rounds
    ]
    machine_info = dict(plan.machine_info)
    machine_info[AB_KEY] = {
        "pair": pair, "side": side.name, "ref": side.ref, "commit": side.commit, "dirty": side.dirty,
        "other_ref": other.ref, "other_commit": other.commit, "python": side.python,
        # The names only: a value may be a secret, and saved runs get published.
        "env": [key for key, _ in side.env],
        "loads": schedule.loads, "max_loads": schedule.load_limit, "rounds": schedule.rounds,
        "warmup_rounds": schedule.warmup_rounds, "seed": schedule.seed,
        "one_side_at_a_time": schedule.one_side_at_a_time, "per_load": schedule.per_load,
        "duet": schedule.duet, "duet_cpus": sorted(schedule.duet_cpus),
    }  # fmt: skip
    return run_json(machine_info, _commit_info(side), benchmarks, datetime.now(UTC).isoformat())


def save_pair(storage: Path, machine_id: str, pair: str, data: Mapping[str, Mapping[str, Any]]) -> dict[str, Path]:
    """Write each side's run as the next saved runs of ``machine_id`` (base first); returns side -> file."""
    folder = storage / machine_id
    numbers = [run_number(p) or 0 for p in list_runs(storage, machine_id)]
    number = max(numbers, default=0)
    paths = {}
    for side in ("base", "head"):
        number += 1
        path = folder / f"{number:04d}_ab-{pair}-{side}.json"
        write_json_atomically(path, data[side])
        paths[side] = path
    return paths
