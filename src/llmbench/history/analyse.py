"""The change points of every combination and metric over the saved runs: what ``llmbench history`` finds.

:func:`load_history` reads a storage folder's runs (every machine id in it), :func:`analyse` finds
their change points; the command is :mod:`llmbench.commands.history`. See docs/history.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

from llmbench.gate.rules import ALIASES, DEFAULT_RULES
from llmbench.history.detect import change_points
from llmbench.history.series import MetricHistory, benchmark_values, build_series, commit_of, known_steps
from llmbench.history.table import History
from llmbench.metrics import METRIC_FACTS
from llmbench.runs import RunError, SavedRun, list_runs, load_run

__all__ = ["DEFAULT_SINCE", "analyse", "check_metrics", "load_history"]

#: Default of ``--since``: a regression among this many newest runs fails the command.
DEFAULT_SINCE = 10


def load_history(storage: Path) -> dict[str, list[tuple[SavedRun, str]]]:
    """The runs of every machine folder of ``storage``, oldest first, with their commits. Raises RunError."""
    if not storage.is_dir():
        raise RunError(f"{storage}: no such folder (--storage)")
    by_machine: dict[str, list[tuple[SavedRun, str]]] = {}
    for path in list_runs(storage):
        run = load_run(path)
        by_machine.setdefault(path.parent.name, []).append((run, commit_of(run)))
    return by_machine


def analyse(
    by_machine: Mapping[str, Sequence[tuple[SavedRun, str]]],
    metrics: Sequence[str],
    combination: str | None = None,
    since: int = DEFAULT_SINCE,
    storage: str = "",
) -> History:
    """Find the change points of every series in the runs of each machine folder (oldest first)."""
    series: list[MetricHistory] = []
    steps = []
    recent_runs: set[tuple[str, str]] = set()
    for machine, runs in by_machine.items():
        series.extend(build_series(machine, runs, metrics, combination))
        steps.extend(known_steps(machine, runs))
        recent_runs.update((machine, run.name) for run, _ in runs[-since:])
    found = [point for one in series for point in change_points(one)]
    recent = tuple((c.series.machine, c.first.run) in recent_runs for c in found)
    notes = []
    if combination is not None and not series:
        notes.append(f"--combination {combination!r} matches no saved combination with these metrics")
    return History(storage, len(series), sum(len(r) for r in by_machine.values()), tuple(found), recent, since,
                   tuple(steps), tuple(notes))  # fmt: skip


def check_metrics(metrics: Sequence[str], by_machine: Mapping[str, Sequence[tuple[SavedRun, str]]]) -> None:
    """Raise RunError naming the ``--metric`` names that are neither known metrics nor saved in the runs."""
    known = set(DEFAULT_RULES) | set(METRIC_FACTS)
    unknown = [name for name in metrics if name not in known]
    if not unknown:
        return
    saved = {name for runs in by_machine.values() for run, _ in runs for bench in run.benchmarks.values()
             for name in benchmark_values(bench)}  # fmt: skip
    missing = [name for name in unknown if name not in saved]
    if missing:
        allowed = sorted(known | saved | set(ALIASES))
        raise RunError(f"--metric: {', '.join(missing)} is not a metric of the saved runs (from the command line); "
                        f"allowed: {', '.join(allowed)}")  # fmt: skip
