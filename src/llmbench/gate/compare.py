"""The regression gate: load saved runs, choose the baseline, decide every metric, give one verdict.

A run is a pytest-benchmark JSON file, ``<storage>/<machine id>/NNNN_*.json``. Each benchmark is matched
between runs by its ``fullname`` (``benchmarks/test_generate.py::test_generate[gemma3-270m-nf4-cpu-bs4]``);
its metrics come from ``extra_info["metrics"]`` (:func:`llmbench.metrics.metrics_of`); a run saved
without them (an older or plain pytest-benchmark run) gives ``latency_s`` from pytest-benchmark's own
stats. Each metric is decided by :func:`llmbench.gate.decision.decide` under its rule: the defaults
(:data:`llmbench.gate.rules.DEFAULT_RULES`), then ``--llmbench-fail``, then the benchmark's
``@pytest.mark.llmbench_fail(...)`` marker, whose text is saved in ``extra_info["llmbench_fail"]`` so
that ``llmbench compare`` applies it too.

Stored runs are only ever opened for reading: nothing here writes, moves or deletes them. Bad input (a
missing, corrupted or foreign file, an empty history, NaN values) gives a :class:`GateError` or a note
with a readable message, never a traceback.

The pytest hooks live in :mod:`llmbench.plugin.gate_hooks`; ``llmbench compare`` is :func:`compare_main`.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import re
import sys
import tempfile
import textwrap
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any, Literal

import pytest

from llmbench.config.options import SettingError, option_named, parse_positive_int, raw_setting
from llmbench.fingerprint import fingerprint_differences
from llmbench.gate.decision import (
    CONFIDENCE,
    DEFAULT_RUN_SPREAD,
    DIFFERENT_ITEMS,
    ROUND_TIME,
    VERDICTS,
    Decision,
    PooledMetric,
    _fmt,
    _scale,
    busy_rounds,
    decide_all,
    pool_baseline,
)
from llmbench.gate.rules import DEFAULT_RULES, FailSpecError, Rule, merge_rules, parse_fail_spec, rule_for
from llmbench.metrics import Metric, metrics_of

__all__ = [
    "FINGERPRINT_MODES",
    "MARKER",
    "MARKER_INFO_KEY",
    "Baseline",
    "BaselineSpec",
    "CombinationResult",
    "GateError",
    "GateSettings",
    "Run",
    "Verdict",
    "add_compare_arguments",
    "benchmark_metrics",
    "choose_baseline",
    "compare_main",
    "compare_runs",
    "gate_settings",
    "list_runs",
    "load_run",
    "parse_baseline",
    "parse_fingerprint_mode",
    "resolve_rules",
    "write_atomically",
]

FingerprintMode = Literal["warn", "strict", "ignore"]
FINGERPRINT_MODES: tuple[FingerprintMode, ...] = ("warn", "strict", "ignore")
#: The per-benchmark marker and where its text is saved in the benchmark's ``extra_info``.
MARKER = "llmbench_fail"
MARKER_INFO_KEY = "llmbench_fail"
#: GitHub rejects pull-request comments over 65,536 characters; keep the markdown under this.
MARKDOWN_LIMIT = 65_000
#: At most this many regression (and noisy) lines in the markdown, so that the table keeps room.
MARKDOWN_BULLETS = 150
#: The terminal table is laid out to fit this many columns.
WIDTH = 120

#: Default of ``--llmbench-drift-history``: saved runs that show the drift between runs of unchanged code.
DEFAULT_DRIFT_HISTORY = int(option_named("--llmbench-drift-history").default or 10)

_RUN_FILE = re.compile(r"^(?P<number>\d{4})_.*\.json$")
_RUN_ID = re.compile(r"^(?P<number>\d{1,4})(?:_.*)?$")


class GateError(Exception):
    """Input the gate cannot use (a missing or corrupted run, a bad value): the message says what and where."""


# ----------------------------------------------------------------------------- settings


@dataclass(frozen=True)
class BaselineSpec:
    """What to compare with: the latest run, a window of runs, or one named run (id or file)."""

    kind: Literal["last", "window", "run"]
    window: int = 1
    #: The run id ("0003") or the file path, for kind "run".
    run: str = ""
    origin: str = "the default"

    def describe(self) -> str:
        if self.kind == "last":
            return "the latest saved run"
        if self.kind == "window":
            return f"the median of the last {self.window} runs with this machine's fingerprint"
        return f"run {self.run}"


_BASELINE_ALLOWED = (
    "allowed: 'last', 'window:N' (N a positive integer), a run id such as 0003, or the path of a run's .json file"
)


def parse_baseline(text: str, origin: str, what: str = "--llmbench-baseline") -> BaselineSpec:
    """Parse ``last``, ``window:N``, a run id (``0003``, ``3``, ``0003_abc``) or a path (``*.json`` or with a /)."""
    value = text.strip()
    if value == "last":
        return BaselineSpec("last", origin=origin)
    if value.startswith("window:"):
        count = value.removeprefix("window:").strip()
        if not count.isdigit() or int(count) < 1:
            raise GateError(f"{what}: {text!r} needs a positive number of runs after 'window:' (from {origin}); "
                            f"{_BASELINE_ALLOWED}")  # fmt: skip
        return BaselineSpec("window", window=int(count), origin=origin)
    match = _RUN_ID.match(value)
    if match:
        return BaselineSpec("run", run=f"{int(match['number']):04d}", origin=origin)
    if value.endswith(".json") or "/" in value or os.sep in value:
        return BaselineSpec("run", run=value, origin=origin)
    raise GateError(f"{what}: {text!r} is not a baseline (from {origin}); {_BASELINE_ALLOWED}")


def parse_fingerprint_mode(text: str, origin: str, what: str = "--llmbench-fingerprint") -> FingerprintMode:
    value = text.strip().lower()
    for mode in FINGERPRINT_MODES:
        if value == mode:
            return mode
    raise GateError(f"{what}: {text!r} is not a mode (from {origin}); allowed: {', '.join(FINGERPRINT_MODES)}")


def resolve_rules(text: str | None, origin: str, what: str = "--llmbench-fail") -> dict[str, Rule]:
    """The default rules with the ``--llmbench-fail`` items in place. Raises :class:`GateError`."""
    if text is None:
        return dict(DEFAULT_RULES)
    try:
        return merge_rules(DEFAULT_RULES, parse_fail_spec(text, origin, what=what))
    except FailSpecError as error:
        raise GateError(str(error)) from None


@dataclass(frozen=True)
class GateSettings:
    """The gate's options, parsed. ``active``: compare at the end of the session."""

    active: bool
    baseline: BaselineSpec
    rules: Mapping[str, Rule]
    fingerprint: FingerprintMode
    verdict_path: Path | None
    #: ``--llmbench-drift-history``: how many same-machine saved runs show the drift between runs.
    drift_history: int
    #: pytest-benchmark's storage folder and this machine's id (``Linux-CPython-3.11-64bit``).
    storage: Path | None
    machine_id: str
    #: Why the gate does not run although asked (a non-file storage), or "".
    inactive_reason: str = ""


def gate_settings(config: pytest.Config) -> GateSettings:
    """Parse the gate's options (always, so a bad value fails at once). Raises :class:`pytest.UsageError`.

    The gate is active when ``--benchmark-compare`` is given or ``--llmbench-baseline`` is set (command
    line or ini). Without ``--llmbench-baseline``, ``--benchmark-compare=NUM`` names the baseline run.
    """
    try:
        raw = raw_setting(config, option_named("--llmbench-baseline"))
        compare = config.getoption("benchmark_compare", default=None)
        if raw is not None:
            baseline = parse_baseline(raw.value, raw.origin)
        elif isinstance(compare, str) and compare:
            baseline = parse_baseline(compare, "--benchmark-compare on the command line", "--benchmark-compare")
        else:
            baseline = BaselineSpec("last")
        fail = raw_setting(config, option_named("--llmbench-fail"))
        rules = resolve_rules(fail.value if fail else None, fail.origin if fail else "the default")
        mode_raw = raw_setting(config, option_named("--llmbench-fingerprint"))
        mode = parse_fingerprint_mode(mode_raw.value, mode_raw.origin) if mode_raw else "warn"
    except GateError as error:
        raise pytest.UsageError(str(error)) from None
    history_raw = raw_setting(config, option_named("--llmbench-drift-history"))
    drift_history = (
        parse_positive_int(history_raw.value, "--llmbench-drift-history", history_raw.origin)
        if history_raw
        else DEFAULT_DRIFT_HISTORY
    )
    verdict_raw = raw_setting(config, option_named("--llmbench-verdict"))
    verdict_path = None
    if verdict_raw is not None:
        verdict_path = Path(verdict_raw.value).expanduser()
        if not verdict_path.is_absolute():
            from_ini = verdict_raw.kind == "ini" and config.inipath
            base = config.inipath.parent if from_ini and config.inipath else config.invocation_params.dir
            verdict_path = base / verdict_path
        if verdict_path.is_dir():
            raise pytest.UsageError(
                f"--llmbench-verdict: {verdict_raw.value!r} is a folder (from {verdict_raw.origin}); "
                "give the path of a markdown file"
            )
    active = bool(compare) or raw is not None
    storage, machine_id, reason = None, "", ""
    if active:
        storage_uri = str(config.getoption("benchmark_storage", default="file://./.benchmarks"))
        if "://" in storage_uri and not storage_uri.startswith("file://"):
            reason = f"the gate reads file storage only, not {storage_uri!r} (--benchmark-storage)"
        else:
            storage = Path(storage_uri.removeprefix("file://")).expanduser()
            if not storage.is_absolute():
                storage = config.invocation_params.dir / storage
            machine_id = machine_id_here()
    return GateSettings(
        active=active and not reason, baseline=baseline, rules=rules, fingerprint=mode,
        verdict_path=verdict_path, drift_history=drift_history, storage=storage, machine_id=machine_id,
        inactive_reason=reason,
    )  # fmt: skip


# ----------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One saved run (or the current session), read-only."""

    #: Where it came from, as shown ("/path/.benchmarks/Linux-.../0003_abc.json", "this session").
    source: str
    #: A short name: the run id ("0003"), else the file name.
    name: str
    #: The run number from the file name (``0003_*.json``), None for other files and the session.
    number: int | None
    machine_info: Mapping[str, Any]
    #: fullname -> the benchmark's JSON object (with ``stats`` and ``extra_info``).
    benchmarks: Mapping[str, Mapping[str, Any]]
    notes: tuple[str, ...] = ()

    @property
    def fingerprint(self) -> Mapping[str, Any] | None:
        value = self.machine_info.get("llmbench")
        return value if isinstance(value, Mapping) else None


def machine_id_here() -> str:
    """pytest-benchmark's id of this machine, its storage subfolder (``Linux-CPython-3.11-64bit``)."""
    from pytest_benchmark.utils import get_machine_id

    return str(get_machine_id())  # type: ignore[no-untyped-call]


def run_number(path: Path) -> int | None:
    match = _RUN_FILE.match(path.name)
    return int(match["number"]) if match else None


def _not_finite_count(value: Any) -> int:
    if isinstance(value, float):
        return 0 if math.isfinite(value) else 1
    if isinstance(value, Mapping):
        return sum(_not_finite_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_not_finite_count(v) for v in value)
    return 0


def run_from_json(data: Any, source: str, name: str, number: int | None = None) -> Run:
    """A :class:`Run` from a parsed pytest-benchmark JSON object. Raises :class:`GateError`."""
    if not isinstance(data, Mapping) or not isinstance(data.get("benchmarks"), list):
        raise GateError(f"{source}: not a pytest-benchmark run (expected a JSON object with a 'benchmarks' list)")
    benchmarks: dict[str, Mapping[str, Any]] = {}
    for index, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, Mapping) or not isinstance(bench.get("fullname"), str):
            raise GateError(f"{source}: benchmark #{index + 1} has no 'fullname' (not a pytest-benchmark run?)")
        benchmarks[bench["fullname"]] = bench
    notes = []
    bad = {
        full: count
        for full, bench in benchmarks.items()
        if (count := _not_finite_count(bench.get("extra_info")) + _not_finite_count(bench.get("stats")))
    }
    if bad:
        where = ", ".join(label_of(benchmarks[full]) for full in bad)
        notes.append(f"{name}: {sum(bad.values())} value(s) are NaN or infinite ({where}): shown as n/a")
    machine_info = data.get("machine_info")
    return Run(
        source=source, name=name, number=number,
        machine_info=machine_info if isinstance(machine_info, Mapping) else {},
        benchmarks=benchmarks, notes=tuple(notes),
    )  # fmt: skip


def load_run(path: Path) -> Run:
    """Read one saved run (opened read-only). Raises :class:`GateError` with the file and the problem."""
    try:
        with path.open("rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise GateError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise GateError(f"{path}: is a folder, not a run's .json file") from None
    except OSError as error:
        raise GateError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        data = json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise GateError(f"{path}: not a JSON file (not UTF-8 text)") from None
    except json.JSONDecodeError as error:
        raise GateError(f"{path}: corrupted JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None
    number = run_number(path)
    return run_from_json(data, str(path), f"{number:04d}" if number is not None else path.name, number)


def list_runs(storage: Path, machine_id: str | None = None) -> list[Path]:
    """The saved runs ``NNNN_*.json`` of one machine id (all machine ids with None), oldest first.

    Uses pytest-benchmark's own :class:`FileStorage` query, constructed only on an existing folder (its
    constructor would create a missing one; nothing is ever written).
    """
    if not storage.is_dir():
        return []
    from pytest_benchmark.storage.file import FileStorage

    query = FileStorage(storage, logger=None, default_machine_id=machine_id).query  # type: ignore[no-untyped-call]
    files = query("[0-9][0-9][0-9][0-9]_")  # type: ignore[no-untyped-call]
    paths = [Path(file) for file in files if run_number(Path(file)) is not None]
    return sorted(paths, key=lambda p: (run_number(p), str(p)))


def find_run(storage: Path, run_id: str, machine_id: str | None, origin: str) -> Path:
    """The file of run ``run_id`` ("0003"): this machine id's folder first, then any. Raises GateError."""
    where = f"(from {origin})"
    if not storage.is_dir():
        raise GateError(f"run {run_id}: the storage folder {storage} does not exist {where}")
    for scope in (machine_id, None) if machine_id else (None,):
        matches = [p for p in list_runs(storage, scope) if run_number(p) == int(run_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = ", ".join(str(p) for p in matches)
            raise GateError(f"run {run_id} is ambiguous in {storage} {where}: {listed}; give the file's path")
    saved = [f"{run_number(p):04d}" for p in list_runs(storage, None)]
    have = f"saved runs: {', '.join(saved)}" if saved else "it holds no saved runs"
    raise GateError(f"run {run_id} not found in {storage} {where}; {have}")


# ----------------------------------------------------------------------------- the baseline


@dataclass(frozen=True)
class Baseline:
    """The runs a comparison uses (one, several for a window, none for an empty history)."""

    runs: tuple[Run, ...]
    description: str
    notes: tuple[str, ...] = ()
    #: Saved runs with the current machine's fingerprint, the baseline's and those before it (oldest
    #: first, at most ``--llmbench-drift-history``): the drift between runs that a speed change must leave.
    drift_runs: tuple[Run, ...] = ()


def _same_machine(run: Run, fingerprint: Mapping[str, Any] | None) -> bool:
    return fingerprint is not None and run.fingerprint is not None and not fingerprint_differences(
        run.fingerprint, fingerprint
    )


def choose_baseline(
    spec: BaselineSpec,
    candidates: Sequence[Path],
    fingerprint: Mapping[str, Any] | None,
    *,
    storage: Path | None = None,
    machine_id: str | None = None,
    drift_history: int = DEFAULT_DRIFT_HISTORY,
) -> Baseline:
    """Load the baseline ``spec`` names from ``candidates`` (saved runs, oldest first).

    ``last`` and ``window:N`` skip unreadable files with a note and give an empty baseline for an empty
    history; a named run (id or file) that cannot be loaded raises :class:`GateError`. ``window:N`` takes
    the newest N runs whose fingerprint equals ``fingerprint``; where none does, the newest N runs, with
    a note (the fingerprint check then reports the differences).

    ``drift_runs``: the newest ``max(drift_history, N)`` runs with ``fingerprint`` among the baseline and
    the runs saved before it (for a named run: the runs of its storage folder numbered up to it).
    """
    baseline = _choose_baseline_runs(spec, candidates, fingerprint, storage=storage, machine_id=machine_id)
    if not baseline.runs:
        return baseline
    newest = baseline.runs[-1]
    if spec.kind == "run":
        path = Path(newest.source)
        number = newest.number
        candidates = (
            [p for p in list_runs(path.parent.parent, path.parent.name) if (run_number(p) or 0) <= number]
            if number is not None
            else [path]
        )
    wanted = max(drift_history, spec.window if spec.kind == "window" else 1)
    drift = _drift_runs(candidates, fingerprint, wanted, {run.source: run for run in baseline.runs})
    return replace(baseline, drift_runs=tuple(drift))


def _drift_runs(
    candidates: Sequence[Path], fingerprint: Mapping[str, Any] | None, wanted: int, loaded: Mapping[str, Run]
) -> list[Run]:
    """The newest ``wanted`` readable runs of ``candidates`` with ``fingerprint``, oldest first."""
    found: list[Run] = []
    for path in reversed(candidates):
        if len(found) == wanted:
            break
        run = loaded.get(str(path))
        if run is None:
            try:
                run = load_run(path)
            except GateError:
                continue  # the baseline's choice has already noted the unreadable files it met
        if _same_machine(run, fingerprint):
            found.append(run)
    return found[::-1]


def _choose_baseline_runs(
    spec: BaselineSpec,
    candidates: Sequence[Path],
    fingerprint: Mapping[str, Any] | None,
    *,
    storage: Path | None,
    machine_id: str | None,
) -> Baseline:
    if spec.kind == "run":
        if _RUN_ID.match(spec.run) and not spec.run.endswith(".json"):
            path = next((p for p in reversed(candidates) if run_number(p) == int(spec.run)), None)
            if path is None:
                if storage is None:
                    raise GateError(f"run {spec.run} not found (from {spec.origin})")
                path = find_run(storage, spec.run, machine_id, spec.origin)
        else:
            path = Path(spec.run).expanduser()
        try:
            run = load_run(path)
        except GateError as error:
            raise GateError(f"baseline {error} (from {spec.origin})") from None
        return Baseline((run,), f"{run.name} ({run.source})", run.notes)

    where = f" in {storage}" if storage is not None else ""
    if not candidates:
        return Baseline((), "none", (f"no saved run{where} to compare with: nothing to gate (the first run?)",))
    notes: list[str] = []
    loaded: list[Run] = []
    wanted = 1 if spec.kind == "last" else spec.window
    matching: list[Run] = []
    for path in reversed(candidates):
        try:
            run = load_run(path)
        except GateError as error:
            notes.append(f"skipped {error}")
            continue
        loaded.append(run)
        if spec.kind == "last":
            break
        if _same_machine(run, fingerprint):
            matching.append(run)
            if len(matching) == wanted:
                break
    if not loaded:
        return Baseline((), "none", (*notes, f"no readable saved run{where} to compare with"))
    if spec.kind == "last":
        runs = loaded[:1]
        description = f"{runs[0].name} ({runs[0].source}), the latest saved run"
    else:
        if matching:
            runs = matching
            if len(matching) < wanted:
                notes.append(
                    f"window:{wanted}: only {len(matching)} saved run(s) have this machine's fingerprint; "
                    "pooled those"
                )
        else:
            runs = loaded[:wanted]
            notes.append(f"window:{wanted}: no saved run has this machine's fingerprint; pooled the latest {len(runs)}")
        runs = list(reversed(runs))  # oldest first, for pool_baseline
        names = ", ".join(run.name for run in runs)
        description = f"median of {len(runs)} run(s) {names}"
    for run in runs:
        notes.extend(run.notes)
    return Baseline(tuple(runs), description, tuple(notes))


# ----------------------------------------------------------------------------- metrics of one benchmark


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
        f"{key} {_fmt(float(stats[key]) * 1e3)} ms"
        for key in ("median", "min", "max")
        if isinstance(stats.get(key), int | float) and math.isfinite(stats[key])
    )
    return (
        Metric("latency_s", value, "s", "lower", note="from pytest-benchmark's stats, no raw rounds"),
        f"no raw rounds saved ({spread}; save with --benchmark-save-data): its latency can only be 'noisy'",
    )


def benchmark_metrics(bench: Mapping[str, Any]) -> tuple[dict[str, Metric], list[str]]:
    """The metrics of one benchmark entry and notes on what was missing.

    ``extra_info["metrics"]`` where present; ``latency_s`` from pytest-benchmark's stats where the
    metrics lack it (older runs, plain pytest-benchmark tests).
    """
    notes = []
    metrics = metrics_of(bench)
    if "latency_s" not in metrics:
        latency, note = _stats_latency(bench)
        if latency is not None:
            if not metrics:
                notes.append("no llmbench metrics (an older or plain pytest-benchmark run): latency only")
            if note:
                notes.append(note)
            metrics = {"latency_s": latency, **metrics}
    return metrics, notes


def label_of(bench: Mapping[str, Any]) -> str:
    """``gemma3-270m nf4 cpu bs4`` for test_generate; other tests get their name first
    (``load gemma3-270m q4_k_m cpu``); the fullname where the combination fields are missing."""
    extra = bench.get("extra_info")
    fullname = str(bench.get("fullname", "?"))
    if not isinstance(extra, Mapping) or "model" not in extra:
        return fullname
    words = [str(extra[key]) for key in ("model", "precision", "device") if key in extra]
    if "batch_size" in extra:
        words.append(f"bs{extra['batch_size']}")
    function = fullname.split("::")[-1].split("[")[0]
    if function != "test_generate":
        words.insert(0, function.removeprefix("test_"))
    return " ".join(words)


# ----------------------------------------------------------------------------- comparing


@dataclass(frozen=True)
class CombinationResult:
    """The decisions of one benchmark (one combination of the matrix)."""

    fullname: str
    label: str
    decisions: tuple[Decision, ...]

    @property
    def regressions(self) -> list[Decision]:
        return [d for d in self.decisions if d.fails]

    @property
    def shown(self) -> list[Decision]:
        """The decisions in the table: regressions first, then by verdict; metrics with no better
        direction (peak_bandwidth) are left out."""
        rows = [d for d in self.decisions if d.rule.direction != "none"]
        return sorted(rows, key=lambda d: (not d.fails, VERDICTS.index(d.verdict)))


@dataclass(frozen=True)
class Verdict:
    """The gate's verdict on one comparison: per combination and metric, plus what could not be compared."""

    baseline: str
    current: str
    results: tuple[CombinationResult, ...] = ()
    new: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    machine_differences: tuple[str, ...] = ()
    fingerprint_mode: FingerprintMode = "warn"
    notes: tuple[str, ...] = ()
    #: False when there was nothing to compare with (an empty history).
    compared: bool = True

    @property
    def regressions(self) -> list[tuple[str, Decision]]:
        return [(result.label, d) for result in self.ordered for d in result.regressions]

    @property
    def ordered(self) -> list[CombinationResult]:
        """Combinations with regressions first, then noisy ones, then the rest, each in run order."""

        def rank(result: CombinationResult) -> int:
            if result.regressions:
                return 0
            return 1 if any(d.verdict == "noisy" for d in result.decisions) else 2

        return sorted(self.results, key=rank)

    @property
    def machine_failed(self) -> bool:
        return self.fingerprint_mode == "strict" and bool(self.machine_differences)

    @property
    def failed(self) -> bool:
        return bool(self.regressions) or self.machine_failed

    @property
    def exit_status(self) -> int:
        return int(pytest.ExitCode.TESTS_FAILED) if self.failed else int(pytest.ExitCode.OK)

    def regression_lines(self) -> list[str]:
        """One line per regression, e.g. ``gemma3-270m nf4 cpu bs4: decode 41.8 → 35.2 tok/s (-15.8%, p<0.001)``."""
        return [f"{label}: {d.sentence()}" for label, d in self.regressions]

    def noisy_lines(self) -> list[str]:
        return [
            f"{result.label}: {d.sentence()}"
            for result in self.ordered
            for d in result.decisions
            if d.verdict == "noisy" and d.rule.gate
        ]

    def summary(self) -> str:
        if not self.compared:
            return "llmbench gate: nothing to compare with"
        metrics = sum(len(r.shown) for r in self.results)
        if self.failed:
            parts = []
            count = len(self.regressions)
            if count:
                combos = sum(1 for r in self.results if r.regressions)
                parts.append(f"{count} regression{'s' if count != 1 else ''} in {combos} of {len(self.results)} "
                             f"combination{'s' if len(self.results) != 1 else ''}")  # fmt: skip
            if self.machine_failed:
                parts.append("the machine differs from the baseline's (--llmbench-fingerprint=strict)")
            return "llmbench gate: FAILED: " + "; ".join(parts)
        return (
            f"llmbench gate: no regression ({len(self.results)} combination{'s' if len(self.results) != 1 else ''}, "
            f"{metrics} metrics compared)"
        )

    def _machine_lines(self) -> list[str]:
        if not self.machine_differences or self.fingerprint_mode == "ignore":
            return []
        head = (
            "the machine differs from the baseline's (fails: --llmbench-fingerprint=strict):"
            if self.fingerprint_mode == "strict"
            else "warning: the machine differs from the baseline's (compared anyway):"
        )
        return [head, *(f"  {d}" for d in self.machine_differences)]

    def lines(self, width: int = WIDTH) -> list[str]:
        """The terminal report: header, table, new/removed, regressions, noisy, the summary line."""
        out = [f"baseline: {self.baseline}", f"current:  {self.current}"]
        out.extend(self._machine_lines())
        for note in self.notes:
            out.extend(textwrap.wrap(f"note: {note}", width, subsequent_indent="  ", break_long_words=False,
                                     break_on_hyphens=False))  # fmt: skip
        rows = [(r.label, *_cells(d)) for r in self.ordered for d in r.shown]
        if rows:
            out.append("")
            out.extend(_table(("combination", "metric", "baseline", "current", "change",
                               f"interval ({CONFIDENCE:.0%})", "verdict"), rows, width))  # fmt: skip
        if self.new:
            out.append(f"new (not in the baseline): {', '.join(self.new)}")
        if self.removed:
            out.append(f"removed (not in the current run): {', '.join(self.removed)}")
        regressions = self.regression_lines()
        if regressions:
            out.append("")
            out.append(f"regressions ({len(regressions)}):")
            out.extend(f"  {line}" for line in regressions)
        noisy = self.noisy_lines()
        if noisy:
            out.append("")
            out.append(f"noisy, cannot tell ({len(noisy)}):")
            out.extend(f"  {line}" for line in noisy)
        out.append("")
        out.append(self.summary())
        return out

    def markdown(self, limit: int = MARKDOWN_LIMIT) -> str:
        """The verdict as GitHub markdown, under ``limit`` characters: unchanged rows are summarized first,
        then rows are cut from the end (regressions come first, so they stay)."""
        title = "FAILED" if self.failed else "no regression" if self.compared else "nothing to compare with"
        head = [f"## llmbench regression gate: {title}", "",
                f"Baseline: {_md(self.baseline)}  ", f"Current: {_md(self.current)}", ""]  # fmt: skip
        machine = self._machine_lines()
        if machine:
            head += [f"> {_md(machine[0])}", *(f"> - {_md(line.strip())}" for line in machine[1:]), ""]
        head += [f"- note: {_md(note)}" for note in self.notes]
        if self.notes:
            head.append("")
        sections = (("Regressions", self.regression_lines()), ("Noisy, cannot tell", self.noisy_lines()))
        for title_text, bullets in sections:
            if bullets:
                shown = [f"- {_md(line)}" for line in bullets[:MARKDOWN_BULLETS]]
                if len(bullets) > MARKDOWN_BULLETS:
                    shown.append(f"- … and {len(bullets) - MARKDOWN_BULLETS} more (the terminal output has them all)")
                head += [f"**{title_text} ({len(bullets)})**", "", *shown, ""]
        tail = [""]
        if self.new:
            tail.append(f"New (not in the baseline): {_md(', '.join(self.new))}  ")
        if self.removed:
            tail.append(f"Removed (not in the current run): {_md(', '.join(self.removed))}  ")
        tail.append(f"**{_md(self.summary())}**")
        header = ["| combination | metric | baseline | current | change | interval (95%) | verdict |",
                  "|---|---|---:|---:|---:|---:|---|"]  # fmt: skip
        rows = [(d, "| " + " | ".join(_md(c) for c in (r.label, *_cells(d))) + " |")
                for r in self.ordered for d in r.shown]  # fmt: skip

        def render(table_rows: list[str], extra: list[str]) -> str:
            table = header + table_rows if table_rows else []
            return "\n".join(head + table + extra + tail) + "\n"

        text = render([row for _, row in rows], [])
        if len(text) <= limit:
            return text
        kept = [row for d, row in rows if d.verdict != "unchanged"]
        unchanged = len(rows) - len(kept)
        note = ["", f"{unchanged} unchanged rows not listed (the terminal output has them all)."]
        while kept and len(render(kept, note)) > limit:
            cut = max(1, len(kept) // 10)
            kept = kept[:-cut]
            note = ["", f"{len(rows) - len(kept)} rows not listed, {unchanged} of them unchanged "
                        "(the terminal output has them all)."]  # fmt: skip
        return render(kept, note)


def _md(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _cells(d: Decision) -> tuple[str, str, str, str, str, str]:
    shown = [v for v in (d.baseline, d.current) if v is not None]
    divisor, unit = _scale(d.unit, shown)

    def value(v: float | None) -> str:
        if v is None:
            return "n/a"
        return f"{_fmt(v / divisor)} {unit}".rstrip()

    change = ""
    if d.change is not None and d.difference is not None:
        if math.isinf(d.change):
            change = "from 0"
        elif d.rule.sample_kind == "items" and d.rule.relative is None:
            change = f"{d.difference:+.3g}"
        else:
            change = f"{d.change * 100:+.1f}%"
    interval = ""
    if d.interval is not None:
        low, high = d.interval
        if d.interval_of == "ratio":
            interval = f"{(low - 1) * 100:+.1f}%..{(high - 1) * 100:+.1f}%"
        else:
            interval = f"{low:+.3g}..{high:+.3g}"
    verdict: str = d.verdict
    if d.verdict == "regressed" and not d.rule.gate:
        verdict = "worse (info)"
    elif d.verdict == "noisy" and d.rounds_needed:
        verdict = f"noisy (~{d.rounds_needed} rounds)" if d.rounds_needed < 10_000 else "noisy"
    return d.metric, value(d.baseline), value(d.current), change, interval, verdict


def _table(header: Sequence[str], rows: Sequence[Sequence[str]], width: int) -> list[str]:
    """Plain columns, two spaces apart; the first two columns are cut with '…' to fit ``width``."""
    columns = len(header)
    widths = [max(len(str(row[i])) for row in [header, *rows]) for i in range(columns)]
    over = sum(widths) + 2 * (columns - 1) - width
    for index in (1, 0):  # shorten the metric, then the combination column
        if over <= 0:
            break
        floor = max(len(header[index]), 12)
        take = min(over, max(0, widths[index] - floor))
        widths[index] -= take
        over -= take
    right = {2, 3, 4, 5}

    def fit(text: str, size: int) -> str:
        return text if len(text) <= size else text[: size - 1] + "…"

    def line(row: Sequence[str]) -> str:
        cells = [
            fit(str(cell), widths[i]).rjust(widths[i]) if i in right else fit(str(cell), widths[i]).ljust(widths[i])
            for i, cell in enumerate(row)
        ]
        return "  ".join(cells).rstrip()

    rule = "  ".join("-" * w for w in widths)
    return [line(header), rule, *(line(row) for row in rows)]


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


def _machine_differences(baseline: Baseline, current: Run) -> list[str]:
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
    current: Run,
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
        label = label_of(bench)
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
        base_metrics = _with_drift(_pooled(per_run, cur_metrics, bench_rules), baseline.drift_runs, fullname,
                                   bench_rules)  # fmt: skip
        decisions = decide_all(base_metrics, cur_metrics, bench_rules)
        unpaired = (d.reason for d in decisions if d.verdict == "n/a" and d.reason.startswith(DIFFERENT_ITEMS))
        for reason in dict.fromkeys(unpaired):
            data_notes.setdefault(f"quality: {reason}", []).append(label)
        results.append(CombinationResult(fullname, label, tuple(decisions)))
    for note, labels in data_notes.items():
        notes.append(f"{note} [{_short_list(labels)}]")
    new = tuple(label_of(b) for name, b in current.benchmarks.items() if name not in base_names)
    removed_names = [name for name in base_names if name not in current.benchmarks]
    removed = tuple(label_of(_latest_entry(baseline, name)) for name in removed_names)
    differences = _machine_differences(baseline, current) if fingerprint_mode != "ignore" else []
    notes.append(_drift_note(baseline))
    return Verdict(
        baseline=baseline.description, current=current_desc, results=tuple(results), new=new, removed=removed,
        machine_differences=tuple(differences), fingerprint_mode=fingerprint_mode, notes=tuple(notes),
    )  # fmt: skip


def _short_list(labels: Sequence[str], most: int = 4) -> str:
    shown = ", ".join(labels[:most])
    return shown + (f" and {len(labels) - most} more" if len(labels) > most else "")


def _latest_entry(baseline: Baseline, fullname: str) -> Mapping[str, Any]:
    for run in reversed(baseline.runs):
        if fullname in run.benchmarks:
            return run.benchmarks[fullname]
    return {"fullname": fullname}


def _pooled(
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


def _with_drift(
    metrics: Mapping[str, Metric], drift_runs: Sequence[Run], fullname: str, rules: Mapping[str, Rule]
) -> dict[str, Metric]:
    """The baseline metrics with each run's value in ``drift_runs`` as ``run_values`` (where 2 or more).

    A run whose round times (``latency_s``) spread beyond their threshold was measured on a busy machine
    (:func:`~llmbench.gate.decision.busy_rounds`): its timed figures would widen the drift range for every
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


def _drift_note(baseline: Baseline) -> str:
    runs = baseline.drift_runs
    if len(runs) >= 2:
        names = f"{runs[0].name}..{runs[-1].name}" if len(runs) > 2 else f"{runs[0].name}, {runs[-1].name}"
        return (
            f"speed and memory: a change must also leave the range of {len(runs)} saved runs with this "
            f"machine's fingerprint ({names}), widened by the threshold (--llmbench-drift-history)"
        )
    return (
        f"fewer than 2 saved runs with this machine's fingerprint: a speed change must also exceed the "
        f"documented drift between runs ({DEFAULT_RUN_SPREAD:.1%}); each run saved here makes the gate know "
        "this machine's drift better (--llmbench-drift-history)"
    )


# ----------------------------------------------------------------------------- writing the verdict


def write_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through a temporary file in the same folder and a rename."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def publish_markdown(verdict: Verdict, verdict_path: Path | None, environ: Mapping[str, str] = os.environ) -> list[str]:
    """Write the markdown to ``verdict_path`` (atomically) and append it to ``$GITHUB_STEP_SUMMARY``.

    Returns problems as readable lines (a write that failed), never raises ``OSError``.
    """
    problems = []
    text = verdict.markdown()
    if verdict_path is not None:
        try:
            write_atomically(verdict_path, text)
        except OSError as error:
            problems.append(f"could not write the verdict to {verdict_path} (--llmbench-verdict): {error}")
    summary = environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        try:
            with open(summary, "a", encoding="utf-8") as out:
                out.write(text)
        except OSError as error:
            problems.append(f"could not append the verdict to $GITHUB_STEP_SUMMARY ({summary}): {error}")
    return problems


# ----------------------------------------------------------------------------- llmbench compare


def add_compare_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench compare BASELINE CURRENT``."""
    parser.add_argument(
        "baseline", metavar="BASELINE",
        help="a run file, a run id (e.g. 0003, looked up in --storage), 'last' (the run saved before CURRENT) "
        "or 'window:N' (the N runs saved before CURRENT with its machine fingerprint, per-metric medians)",
    )  # fmt: skip
    parser.add_argument("current", metavar="CURRENT", help="a run file or a run id (e.g. 0004)")
    parser.add_argument("--fail", metavar="RULES", default=None,
                        help="per-metric rules overriding the defaults, as --llmbench-fail, e.g. "
                        "decode_tok_s:-5%%,peak_rss_bytes:+10%%. Default: the built-in rules")  # fmt: skip
    parser.add_argument("--fingerprint", metavar="MODE", default="warn",
                        help="when the machines differ: warn, strict (fail) or ignore. Default: %(default)r")
    parser.add_argument("--verdict", metavar="PATH", default=None,
                        help="also write the verdict as markdown to PATH. Default: none")
    parser.add_argument("--drift-history", metavar="N", default=str(DEFAULT_DRIFT_HISTORY),
                        help="as --llmbench-drift-history: how many saved runs with CURRENT's machine fingerprint "
                        "(the baseline and those before it) show the drift between runs. Default: %(default)s")
    parser.add_argument("--storage", metavar="DIR", default=".benchmarks",
                        help="pytest-benchmark's storage folder, for run ids. Default: %(default)r")


def _resolve_current(text: str, storage: Path, machine_id: str) -> Path:
    match = _RUN_ID.match(text)
    if match and not text.endswith(".json"):
        return find_run(storage, f"{int(match['number']):04d}", machine_id, "CURRENT")
    return Path(text).expanduser()


def compare_main(args: argparse.Namespace) -> int:
    """``llmbench compare``: 0 no regression, 1 a regression (or strict machine mismatch), 2 bad input."""
    storage = Path(args.storage).expanduser()
    machine_id = machine_id_here()
    try:
        rules = resolve_rules(args.fail, "--fail on the command line", "--fail")
        mode = parse_fingerprint_mode(args.fingerprint, "--fingerprint on the command line", "--fingerprint")
        spec = parse_baseline(args.baseline, "BASELINE on the command line", "BASELINE")
        drift_history = parse_positive_int(args.drift_history, "--drift-history", "the command line")
        current_path = _resolve_current(args.current, storage, machine_id)
        try:
            current = load_run(current_path)
        except GateError as error:
            raise GateError(f"current run {error}") from None
        candidates: list[Path] = []
        if spec.kind != "run":
            if current.number is not None:
                folder = current_path.parent
                candidates = [p for p in list_runs(folder.parent, folder.name) if (run_number(p) or 0) < current.number]
            else:
                candidates = list_runs(storage, machine_id)
        baseline = choose_baseline(
            spec, candidates, current.fingerprint, storage=storage, machine_id=machine_id, drift_history=drift_history
        )
    except (GateError, SettingError) as error:
        print(f"llmbench compare: error: {error}", file=sys.stderr)
        return 2
    verdict = compare_runs(baseline, current, rules, mode)
    for line in verdict.lines():
        print(line)
    verdict_path = Path(args.verdict).expanduser() if args.verdict else None
    for problem in publish_markdown(verdict, verdict_path):
        print(f"llmbench compare: error: {problem}", file=sys.stderr)
        return 2
    return verdict.exit_status


def current_run(benchmarks: Iterable[Mapping[str, Any]], fingerprint: Mapping[str, Any] | None) -> Run:
    """The current pytest session as a :class:`Run` (benchmarks as pytest-benchmark would save them)."""
    data = {"machine_info": {"llmbench": dict(fingerprint)} if fingerprint is not None else {},
            "benchmarks": list(benchmarks)}  # fmt: skip
    return run_from_json(data, "this session", "this session")


@dataclass
class GateState:
    """What the hooks keep between configure and the end of the session."""

    settings: GateSettings
    baseline: Baseline | None = None
    verdict: Verdict | None = None
    messages: list[str] = field(default_factory=list)
