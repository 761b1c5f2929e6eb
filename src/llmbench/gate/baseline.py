"""The baseline: which saved runs a comparison uses (``last``, ``window:N``, a named run), and the drift runs.

Saved runs are only read (:mod:`llmbench.runs`). ``drift_runs`` are the saved runs with the current
machine's fingerprint that show how much this machine drifts between runs of unchanged code. Runs saved
by ``llmbench ab`` (one side of a pair) are neither a one-sided baseline nor drift history.
"""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

from llmbench.config.options import option_named
from llmbench.fingerprint import fingerprint_differences
from llmbench.gate.decision import DEFAULT_RUN_SPREAD
from llmbench.runs import (
    INTERRUPTED_KEY,
    RunError,
    SavedRun,
    find_run,
    list_runs,
    load_run,
    parse_run_id,
    run_number,
)

__all__ = [
    "DEFAULT_DRIFT_HISTORY",
    "Baseline",
    "BaselineSpec",
    "GateError",
    "choose_baseline",
    "drift_note",
    "parse_baseline",
    "same_machine",
    "saved_by_ab",
]

#: Default of ``--llmbench-drift-history``: saved runs that show the drift between runs (docs/gate-validation.md).
DEFAULT_DRIFT_HISTORY = int(option_named("--llmbench-drift-history").default or 10)
#: The machine_info key that marks a run saved by ``llmbench ab`` (:mod:`llmbench.ab.save` writes it).
AB_MARK = "llmbench_ab"


class GateError(Exception):
    """Input the gate cannot use (a missing or corrupted run, a bad value): the message says what and where."""


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
    run_id = parse_run_id(value)
    if run_id is not None:
        return BaselineSpec("run", run=run_id, origin=origin)
    if value.endswith(".json") or "/" in value or os.sep in value:
        return BaselineSpec("run", run=value, origin=origin)
    raise GateError(f"{what}: {text!r} is not a baseline (from {origin}); {_BASELINE_ALLOWED}")


@dataclass(frozen=True)
class Baseline:
    """The runs a comparison uses (one, several for a window, none for an empty history)."""

    runs: tuple[SavedRun, ...]
    description: str
    notes: tuple[str, ...] = ()
    #: Saved runs with the current machine's fingerprint, the baseline's and those before it (oldest
    #: first, at most ``--llmbench-drift-history``): the drift between runs that a speed change must leave.
    drift_runs: tuple[SavedRun, ...] = ()


def saved_by_ab(run: SavedRun) -> bool:
    """Whether ``run`` is one side of an ``llmbench ab`` pair (measured interleaved, not a history run)."""
    return AB_MARK in run.machine_info


def same_machine(run: SavedRun, fingerprint: Mapping[str, Any] | None) -> bool:
    return (
        fingerprint is not None
        and run.fingerprint is not None
        and not fingerprint_differences(run.fingerprint, fingerprint)
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

    ``last`` and ``window:N`` skip unreadable files, runs saved by ``llmbench ab`` and runs saved by an
    interrupted session with a note and give
    an empty baseline for an empty history; a named run (id or file) that cannot be loaded raises
    :class:`GateError`. ``window:N`` takes the newest N runs whose fingerprint equals ``fingerprint``;
    where none does, the newest N runs, with a note (the fingerprint check then reports the differences).

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
    candidates: Sequence[Path], fingerprint: Mapping[str, Any] | None, wanted: int, loaded: Mapping[str, SavedRun]
) -> list[SavedRun]:
    """The newest ``wanted`` readable runs of ``candidates`` with ``fingerprint``, oldest first."""
    found: list[SavedRun] = []
    for path in reversed(candidates):
        if len(found) == wanted:
            break
        run = loaded.get(str(path))
        if run is None:
            try:
                run = load_run(path)
            except RunError:
                continue  # the baseline's choice has already noted the unreadable files it met
        if same_machine(run, fingerprint) and not saved_by_ab(run):
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
        if parse_run_id(spec.run) is not None and not spec.run.endswith(".json"):
            path = next((p for p in reversed(candidates) if run_number(p) == int(spec.run)), None)
            if path is None:
                if storage is None:
                    raise GateError(f"run {spec.run} not found (from {spec.origin})")
                try:
                    path = find_run(storage, spec.run, machine_id, spec.origin)
                except RunError as error:
                    raise GateError(str(error)) from None
        else:
            path = Path(spec.run).expanduser()
        try:
            run = load_run(path)
        except RunError as error:
            raise GateError(f"baseline {error} (from {spec.origin})") from None
        return Baseline((run,), f"{run.name} ({run.source})", run.notes)

    where = f" in {storage}" if storage is not None else ""
    if not candidates:
        return Baseline((), "none", (f"no saved run{where} to compare with: nothing to gate (the first run?)",))
    notes: list[str] = []
    loaded: list[SavedRun] = []
    wanted = 1 if spec.kind == "last" else spec.window
    matching: list[SavedRun] = []
    paired = interrupted = 0
    for path in reversed(candidates):
        try:
            run = load_run(path)
        except RunError as error:
            notes.append(f"skipped {error}")
            continue
        if saved_by_ab(run):
            paired += 1
            continue
        if run.machine_info.get(INTERRUPTED_KEY):
            interrupted += 1
            continue
        loaded.append(run)
        if spec.kind == "last":
            break
        if same_machine(run, fingerprint):
            matching.append(run)
            if len(matching) == wanted:
                break
    if paired:
        notes.append(f"skipped {paired} run(s) saved by llmbench ab (`llmbench compare BASE HEAD` compares a pair)")
    if interrupted:
        notes.append(f"skipped {interrupted} run(s) saved by an interrupted session (they hold only the tests that "
                     "finished; name one as BASELINE to compare with it)")  # fmt: skip
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
                    f"window:{wanted}: only {len(matching)} saved run(s) have this machine's fingerprint; pooled those"
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


def drift_note(baseline: Baseline) -> str:
    runs = baseline.drift_runs
    if len(runs) >= 2:
        names = f"{runs[0].name}..{runs[-1].name}" if len(runs) > 2 else f"{runs[0].name}, {runs[-1].name}"
        return (
            f"speed and memory: a change must also leave the range of {len(runs)} saved runs with this "
            f"machine's fingerprint ({names}), widened by the threshold (--llmbench-drift-history)"
        )
    return (
        "fewer than 2 saved runs with this machine's fingerprint: its drift between runs is unknown (runs of "
        f"unchanged code differ by {DEFAULT_RUN_SPREAD:.1%} on a quiet machine, more on a busy one), so a speed "
        "change fails only beyond its threshold plus an allowance assumed for shared machines "
        "(--llmbench-first-baseline-allowance) and is noisy below it; measure base and head side by side with "
        "`llmbench ab`, or save more "
        "runs here (--llmbench-drift-history)"
    )
