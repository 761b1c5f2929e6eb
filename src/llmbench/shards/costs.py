"""What each test of the matrix costs, for balancing the shards (:mod:`llmbench.shards.plan`).

A test skipped at collection (a ``skip`` mark: fp16 on Gemma 3, no CUDA here, a library missing) costs
nothing. Any other test costs, in this order of preference:

- **measured**: the seconds its setup, call and teardown took in saved runs (``machine_info
  ["llmbench_durations"]``, test id -> seconds, written by :mod:`llmbench.plugin.shard_hooks` in every
  session of the matrix). The first test of a model also holds the model's load and its quality pass;
  a group of tests stays together on one shard, so the group's sum is what counts. The median over the
  saved runs read that have the test (the newest :data:`COST_RUNS` of a storage folder, or one run file).
- **estimated** where no saved run has the test: :func:`llmbench.shards.plan.expected_cost` (precision
  factor x model size x batch size x new tokens; the model's size from the same saved runs' ``weight_bytes``,
  else ``file_bytes``, where any of its combinations has one), in seconds through the median ratio of
  measured to estimated over the tests that have both (with none, the relative units as they are).

Every shard reads the same saved runs and collects the same tests, so every shard computes the same
costs (docs/ci-and-security.md, "Sharding and merging").
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmbench.config.precisions import precision_facts
from llmbench.runs import RunError, SavedRun, list_runs, load_run
from llmbench.shards.plan import Work, expected_cost

__all__ = [
    "COST_RUNS",
    "DURATIONS_KEY",
    "Candidate",
    "CostError",
    "CostHistory",
    "CostKind",
    "cost_work",
    "durations_of",
    "read_cost_history",
]

#: The machine_info key of a run's test durations: test id -> seconds (setup, call and teardown).
DURATIONS_KEY = "llmbench_durations"
#: How many of a storage folder's newest saved runs give the measured costs.
COST_RUNS = 5
CostKind = Literal["measured", "estimated", "skipped"]


class CostError(ValueError):
    """A cost source that cannot be read; the message names the file."""


@dataclass(frozen=True)
class Candidate:
    """One collected test of the matrix, before it has a cost."""

    name: str
    model: str
    precision: str
    device: str
    #: None for a test without a batch (a load test).
    batch_size: int | None
    max_new_tokens: int
    #: Skipped at collection (a ``skip`` mark): it costs nothing.
    skipped: bool = False


@dataclass(frozen=True)
class CostHistory:
    """What the saved runs say of the costs."""

    #: test id -> the median measured seconds.
    durations: Mapping[str, float]
    #: model name -> its weights' bytes at fp32 (inferred from a quantized size where needed).
    model_bytes: Mapping[str, float]
    #: The run files read, oldest first.
    runs: tuple[str, ...] = ()
    #: What was left out, for the session's header (runs that could not be read).
    notes: tuple[str, ...] = ()


def durations_of(machine_info: Mapping[str, Any]) -> dict[str, float]:
    """The test durations a run saved (finite, non-negative numbers only)."""
    saved = machine_info.get(DURATIONS_KEY)
    if not isinstance(saved, Mapping):
        return {}
    numbers = {name: v for name, v in saved.items() if isinstance(v, int | float) and not isinstance(v, bool)}
    return {str(name): float(value) for name, value in numbers.items() if math.isfinite(value) and value >= 0}


def _fp32_bytes(bench: Mapping[str, Any]) -> tuple[str, float] | None:
    """(model, its fp32 weight bytes) from one benchmark's ``weight_bytes`` (else ``file_bytes``)."""
    extra = bench.get("extra_info")
    if not isinstance(extra, Mapping) or not isinstance(extra.get("model"), str):
        return None
    facts = precision_facts(str(extra.get("precision")))
    metrics = extra.get("metrics")
    if facts is None or not isinstance(metrics, Mapping):
        return None
    for name in ("weight_bytes", "file_bytes"):
        metric = metrics.get(name)
        value = metric.get("value") if isinstance(metric, Mapping) else None
        if isinstance(value, int | float) and math.isfinite(value) and value > 0:
            return extra["model"], float(value) / facts.bytes_per_weight * 4.0
    return None


def _history(runs: Sequence[SavedRun], notes: Sequence[str]) -> CostHistory:
    seconds: dict[str, list[float]] = {}
    sizes: dict[str, list[float]] = {}
    for run in runs:
        for name, value in durations_of(run.machine_info).items():
            seconds.setdefault(name, []).append(value)
        for bench in run.benchmarks.values():
            size = _fp32_bytes(bench)
            if size is not None:
                sizes.setdefault(size[0], []).append(size[1])
    return CostHistory(
        durations={name: statistics.median(values) for name, values in sorted(seconds.items())},
        model_bytes={name: statistics.median(values) for name, values in sorted(sizes.items())},
        runs=tuple(run.source for run in runs),
        notes=tuple(notes),
    )


def read_cost_history(path: Path) -> CostHistory:
    """The costs in a saved run file, or in the newest :data:`COST_RUNS` saved runs of a storage folder.

    A folder that does not exist or holds no saved runs gives no costs (every test estimated); a run in a
    folder that cannot be read is left out with a note. Raises :class:`CostError` for a run file that
    cannot be read.
    """
    if path.is_file():
        try:
            return _history([load_run(path)], ())
        except RunError as error:
            raise CostError(str(error)) from None
    runs: list[SavedRun] = []
    notes: list[str] = []
    for file in list_runs(path)[-COST_RUNS:] if path.is_dir() else []:
        try:
            runs.append(load_run(file))
        except RunError as error:
            notes.append(f"left out: {error}")
    return _history(runs, notes)


def _estimate(test: Candidate, history: CostHistory | None) -> float:
    size = history.model_bytes.get(test.model) if history is not None else None
    return expected_cost(test.precision, test.batch_size, test.max_new_tokens, size)


def cost_work(candidates: Iterable[Candidate], history: CostHistory | None) -> tuple[list[Work], dict[str, CostKind]]:
    """Each test as :class:`~llmbench.shards.plan.Work` with its cost, and where each cost came from."""
    tests = sorted(candidates, key=lambda test: test.name)
    measured = history.durations if history is not None else {}
    estimates = {test.name: _estimate(test, history) for test in tests}
    ratios = [
        measured[test.name] / estimates[test.name]
        for test in tests
        if not test.skipped and test.name in measured and estimates[test.name] > 0
    ]
    scale = statistics.median(ratios) if ratios else 1.0
    work: list[Work] = []
    kinds: dict[str, CostKind] = {}
    for test in tests:
        if test.skipped:
            kinds[test.name], cost = "skipped", 0.0
        elif test.name in measured:
            kinds[test.name], cost = "measured", measured[test.name]
        else:
            kinds[test.name], cost = "estimated", estimates[test.name] * scale
        work.append(Work(test.name, test.model, test.precision, test.device, test.batch_size, cost))
    return work, kinds
