"""Saved runs as series (:class:`MetricHistory`): one per (machine, fingerprint, combination, metric), in run order.

A run's value of a metric is the one its benchmark saved (``extra_info["metrics"]``, ``latency_s`` from
pytest-benchmark's stats for older runs). A run whose machine fingerprint (the identity fields of
:mod:`llmbench.fingerprint`: CPU, memory, GPUs, drivers, threads, library versions) differs from the run
before it in the same storage folder starts a new series: it is a :class:`KnownStep`, never a change of
the code.
"""

from __future__ import annotations

import hashlib
import itertools
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from llmbench.fingerprint import IDENTITY_FIELDS, fingerprint_differences
from llmbench.gate.rules import DEFAULT_RULES
from llmbench.metrics import METRIC_FACTS, Direction, metrics_of
from llmbench.runs import SavedRun, benchmark_label

__all__ = [
    "KnownStep",
    "MetricHistory",
    "Point",
    "benchmark_values",
    "build_series",
    "commit_of",
    "fingerprint_id",
    "gated_metrics",
]

_FILE_COMMIT = re.compile(r"^\d{4}_(?P<commit>[0-9a-f]{7,40})(?:_|$)")


def gated_metrics() -> tuple[str, ...]:
    """The metrics the gate fails a build on, the default of ``--metric``."""
    return tuple(name for name, rule in DEFAULT_RULES.items() if rule.gate and rule.direction != "none")


@dataclass(frozen=True)
class Point:
    """One run's value in a series."""

    #: The run id ("0012") or the file name.
    run: str
    #: The commit the run measured (12 hex digits, "+" when the tree had uncommitted changes), or "?".
    commit: str
    value: float


@dataclass(frozen=True)
class MetricHistory:
    """The values of one metric of one combination on one machine, oldest run first."""

    #: The storage subfolder (pytest-benchmark's machine id, ``Linux-CPython-3.11-64bit``).
    machine: str
    #: A short hash of the machine fingerprint's identity fields ("none" for runs saved without one).
    fingerprint: str
    fullname: str
    label: str
    metric: str
    unit: str
    direction: Direction
    points: tuple[Point, ...]


@dataclass(frozen=True)
class KnownStep:
    """A run whose machine fingerprint differs from the run before it: a new series starts there."""

    machine: str
    run: str
    commit: str
    previous_run: str
    differences: tuple[str, ...]

    def sentence(self) -> str:
        what = "; ".join(self.differences) if self.differences else "no machine fingerprint saved"
        return (
            f"{self.machine} run {self.run} ({self.commit}): the machine changed since run {self.previous_run} "
            f"({what}): a new series starts, not a change of the code"
        )


def commit_of(run: SavedRun) -> str:
    """The short commit id a run measured ("+" where the tree had uncommitted changes), from its
    ``commit_info`` or else its file name (``0012_<commit>_<date>.json``); "?" where it has none."""
    commit = run.commit
    dirty = run.dirty
    if commit is None and run.path is not None:
        match = _FILE_COMMIT.match(run.path.name)
        commit = match["commit"] if match else None
        dirty = "_uncommitted-changes" in run.path.name
    if commit is None:
        return "?"
    return commit[:12] + ("+" if dirty else "")


def fingerprint_id(fingerprint: Mapping[str, Any] | None) -> str:
    """Eight hex digits naming the identity fields of a fingerprint; "none" without one."""
    if fingerprint is None:
        return "none"
    identity = {name: fingerprint.get(name) for name in IDENTITY_FIELDS}
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:8]


def _direction(saved: Direction, metric: str) -> Direction:
    if saved != "none":
        return saved
    facts = METRIC_FACTS.get(metric)
    return facts.direction if facts is not None else "none"


def benchmark_values(bench: Mapping[str, Any]) -> dict[str, tuple[float, str, Direction]]:
    """Each finite metric value of one saved benchmark with its unit and direction; ``latency_s`` from
    pytest-benchmark's median where the run saved no llmbench metric of that name (older runs)."""
    out = {
        name: (metric.value, str(metric.unit), metric.direction)
        for name, metric in metrics_of(bench).items()
        if metric.value is not None and math.isfinite(metric.value)
    }
    stats = bench.get("stats")
    median = stats.get("median") if isinstance(stats, Mapping) else None
    if "latency_s" not in out and isinstance(median, int | float) and math.isfinite(median):
        out["latency_s"] = (float(median), "s", "lower")
    return out


def known_steps(machine: str, runs: Sequence[tuple[SavedRun, str]]) -> list[KnownStep]:
    """The runs of one storage folder (oldest first, with their commits) where the fingerprint changed."""
    steps = []
    for (before, _), (run, commit) in itertools.pairwise(runs):
        if fingerprint_id(before.fingerprint) == fingerprint_id(run.fingerprint):
            continue
        if before.fingerprint is not None and run.fingerprint is not None:
            differences = tuple(fingerprint_differences(before.fingerprint, run.fingerprint))
        else:
            differences = ()
        steps.append(KnownStep(machine, run.name, commit, before.name, differences))
    return steps


def build_series(
    machine: str, runs: Sequence[tuple[SavedRun, str]], metrics: Iterable[str], combination: str | None = None
) -> list[MetricHistory]:
    """The series of one storage folder's runs (oldest first, each with its commit).

    ``metrics``: the metric names wanted; ``combination``: an ``fnmatch`` pattern matched against each
    benchmark's label (``gemma3-270m q4_k_m cpu bs1``) and fullname, or None for all.
    """
    from fnmatch import fnmatchcase

    wanted = tuple(metrics)
    found: dict[tuple[str, str, str], tuple[str, str, Direction, list[Point]]] = {}
    for run, commit in runs:
        fingerprint = fingerprint_id(run.fingerprint)
        for fullname, bench in run.benchmarks.items():
            label = benchmark_label(bench)
            if combination is not None and not (fnmatchcase(label, combination) or fnmatchcase(fullname, combination)):
                continue
            values = benchmark_values(bench)
            for name in wanted:
                if name not in values:
                    continue
                value, unit, direction = values[name]
                key = (fingerprint, fullname, name)
                if key not in found:
                    found[key] = (label, unit, _direction(direction, name), [])
                found[key][3].append(Point(run.name, commit, value))
    return [
        MetricHistory(machine, fingerprint, fullname, label, name, unit, direction, tuple(points))
        for (fingerprint, fullname, name), (label, unit, direction, points) in found.items()
    ]
