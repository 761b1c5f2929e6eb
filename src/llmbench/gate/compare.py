"""Comparing runs: every metric of every benchmark of the current run against the baseline, one verdict.

Each benchmark is matched between runs by its ``fullname``; its metrics come from ``extra_info["metrics"]``
(or ``latency_s`` from pytest-benchmark's stats for older runs). Each metric is decided under its rule:
the defaults (:data:`llmbench.gate.rules.DEFAULT_RULES`; ``PAIRED_RULES`` for an ``llmbench ab``
pair), then ``--llmbench-fail``, then the benchmark's ``@pytest.mark.llmbench_fail(...)`` marker,
saved in ``extra_info["llmbench_fail"]`` so that ``llmbench compare`` applies it too. The command
itself is :mod:`llmbench.commands.compare`. See docs/gate.md.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

from llmbench.fingerprint import fingerprint_differences
from llmbench.gate.baseline import Baseline, GateError, drift_note
from llmbench.gate.decision import DIFFERENT_ITEMS, Decision, decide_all
from llmbench.gate.pooling import baseline_metrics, benchmark_metrics, with_drift
from llmbench.gate.rules import DEFAULT_RULES, FailSpecError, Rule, merge_rules, parse_fail_spec
from llmbench.gate.settings import FingerprintMode
from llmbench.gate.verdict import CombinationResult, Verdict
from llmbench.job_summary import publish
from llmbench.metrics import Metric
from llmbench.runs import FAILED_KEY, FINGERPRINT_KEY, SavedRun, benchmark_label, run_from_json

__all__ = [
    "MARKER",
    "MARKER_INFO_KEY",
    "Baseline",
    "Decision",
    "GateError",
    "Verdict",
    "compare_runs",
    "current_run",
    "publish_markdown",
    "run_from_json",
]

#: The per-benchmark marker and where its text is saved in the benchmark's ``extra_info``.
MARKER = "llmbench_fail"
MARKER_INFO_KEY = "llmbench_fail"


def _benchmark_rules(
    bench: Mapping[str, Any] | None, rules: Mapping[str, Rule], notes: list[str]
) -> Mapping[str, Rule]:
    """``rules`` with the benchmark's saved ``llmbench_fail`` marker applied (marker wins)."""
    if bench is None:
        return rules
    extra = bench.get("extra_info")
    text = extra.get(MARKER_INFO_KEY) if isinstance(extra, Mapping) else None
    if not text:
        return rules
    origin = f"the llmbench_fail marker of {bench.get('fullname')}"
    try:
        return merge_rules(rules, parse_fail_spec(str(text), origin, base=rules, what="llmbench_fail"))
    except FailSpecError as error:
        notes.append(f"ignored: {error}")
        return rules


def _machine_differences(baseline: Baseline, current: SavedRun) -> list[str]:
    out: list[str] = []
    several = len(baseline.runs) > 1
    for run in baseline.runs:
        prefix = f"run {run.name}: " if several else ""
        if run.fingerprint is None:
            out.append(f"{prefix}the baseline {run.name} has no machine fingerprint (saved without pytest-llmbench)")
        elif current.fingerprint is None:
            out.append(f"{prefix}the current run {current.name} has no machine fingerprint")
        else:
            out.extend(f"{prefix}{d}" for d in fingerprint_differences(run.fingerprint, current.fingerprint))
    return list(dict.fromkeys(out))


def compare_runs(
    baseline: Baseline,
    current: SavedRun,
    rules: Mapping[str, Rule] = DEFAULT_RULES,
    fingerprint_mode: FingerprintMode = "warn",
) -> Verdict:
    """Decide every metric of every benchmark of ``current`` against ``baseline``. Never raises on bad data."""
    current_desc = current.source if current.source == current.name else f"{current.name} ({current.source})"
    notes = list(baseline.notes) + list(current.notes)
    if not baseline.runs:
        return Verdict(baseline.description, current_desc, notes=tuple(notes), compared=False,
                       fingerprint_mode=fingerprint_mode)  # fmt: skip
    base_names: dict[str, None] = {}
    for run in baseline.runs:
        base_names.update(dict.fromkeys(run.benchmarks))
    results = []
    data_notes: dict[str, list[str]] = {}
    for fullname, bench in current.benchmarks.items():
        if fullname not in base_names:
            continue
        label = benchmark_label(bench)
        cur_metrics, cur_notes = benchmark_metrics(bench)
        per_run: list[dict[str, Metric]] = []
        for run in baseline.runs:
            if fullname in run.benchmarks:
                metrics, run_notes = benchmark_metrics(run.benchmarks[fullname])
                per_run.append(metrics)
                for note in run_notes:
                    data_notes.setdefault(f"baseline {run.name}: {note}", []).append(label)
        for note in cur_notes:
            data_notes.setdefault(f"current: {note}", []).append(label)
        bench_rules = _benchmark_rules(bench, rules, notes)
        base_metrics = with_drift(baseline_metrics(per_run, cur_metrics, bench_rules), baseline.drift_runs, fullname,
                                   bench_rules)  # fmt: skip
        decisions = decide_all(base_metrics, cur_metrics, bench_rules)
        unpaired = (d.reason for d in decisions if d.verdict == "n/a" and d.reason.startswith(DIFFERENT_ITEMS))
        for reason in dict.fromkeys(unpaired):
            data_notes.setdefault(f"quality: {reason}", []).append(label)
        # A quality figure saved n/a with its reason (a data set without references): the verdict says why.
        unscored = [cur_metrics.get(d.metric) for d in decisions
                    if d.verdict == "n/a" and d.rule.sample_kind == "items"]  # fmt: skip
        for reason in dict.fromkeys(m.note for m in unscored if m is not None and m.value is None and m.note):
            data_notes.setdefault(f"quality {reason}", []).append(label)
        results.append(CombinationResult(fullname, label, tuple(decisions)))
    for note, labels in data_notes.items():
        notes.append(f"{note} [{_short_list(labels)}]")
    new = tuple(benchmark_label(b) for name, b in current.benchmarks.items() if name not in base_names)
    failed = dict(current.failed)
    removed_names = [name for name in base_names if name not in current.benchmarks and name not in failed]
    removed = tuple(benchmark_label(_latest_entry(baseline, name)) for name in removed_names)
    failed_lines = tuple(
        f"{benchmark_label(_latest_entry(baseline, name))}: {reason}" for name, reason in failed.items()
    )
    differences = _machine_differences(baseline, current) if fingerprint_mode != "ignore" else []
    notes.append(drift_note(baseline))
    return Verdict(
        baseline=baseline.description, current=current_desc, results=tuple(results), new=new, removed=removed,
        machine_differences=tuple(differences), fingerprint_mode=fingerprint_mode, notes=tuple(notes),
        failed_combinations=failed_lines,
    )  # fmt: skip


def _short_list(labels: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")


def _latest_entry(baseline: Baseline, fullname: str) -> Mapping[str, Any]:
    for run in reversed(baseline.runs):
        if fullname in run.benchmarks:
            return run.benchmarks[fullname]
    return {"fullname": fullname}


def publish_markdown(verdict: Verdict, verdict_path: Path | None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Write the verdict's markdown to ``verdict_path`` (atomically) and append it to ``$GITHUB_STEP_SUMMARY``
    (:func:`llmbench.job_summary.publish`).

    Returns problems as readable lines (a write that failed), never raises ``OSError``.
    """
    return publish(verdict.markdown(), verdict_path, environ, what="the verdict", option="--llmbench-verdict")


def current_run(
    benchmarks: Iterable[Mapping[str, Any]],
    fingerprint: Mapping[str, Any] | None,
    failed: Mapping[str, str] | None = None,
) -> SavedRun:
    """The current pytest session as a saved run would read (benchmarks as pytest-benchmark saves them;
    ``failed``: the test id and reason of each benchmark whose test failed)."""
    machine_info: dict[str, Any] = {FINGERPRINT_KEY: dict(fingerprint)} if fingerprint is not None else {}
    if failed:
        machine_info[FAILED_KEY] = dict(failed)
    data = {"machine_info": machine_info, "benchmarks": list(benchmarks)}
    return run_from_json(data, "this session", "this session")
