"""The change points of the runs a report shows, as marks for its history plots and its summary."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from llmbench.history.analyse import analyse
from llmbench.history.detect import Kind
from llmbench.history.series import commit_of, gated_metrics
from llmbench.runs import SavedRun

__all__ = ["ChangeMark", "change_marks"]


@dataclass(frozen=True)
class ChangeMark:
    """One change point: where it starts (run and commit), the metric, which way, and whether it is open."""

    #: The benchmark's parametrize id (``gemma3-270m-q4_k_m-cpu-bs1``), as the report names combinations.
    combination: str
    label: str
    metric: str
    #: ``source`` of the first run at the new level, its name and commit, and the commit before.
    run: str
    run_name: str
    commit: str
    previous_commit: str
    change: float
    kind: Kind
    #: A regression that no later improvement of the same series followed.
    open: bool

    def sentence(self) -> str:
        return (f"{self.label}: {self.metric} {self.change * 100:+.1f}% from run {self.run_name} "
                f"(commit {self.commit}, after {self.previous_commit})")  # fmt: skip


def change_marks(runs: Sequence[SavedRun], metrics: Sequence[str] | None = None) -> list[ChangeMark]:
    """The change points in ``runs`` (oldest first; the runs of each machine folder are analysed apart)."""
    by_machine: dict[str, list[tuple[SavedRun, str]]] = {}
    machine = ""
    for run in runs:
        machine = run.machine_id or machine  # a session's run (not saved yet) joins the runs before it
        by_machine.setdefault(machine, []).append((run, commit_of(run)))
    history = analyse(by_machine, tuple(metrics) if metrics is not None else gated_metrics())
    open_ones = {id(point) for point in history.open_regressions}
    sources = {(machine, run.name): run.source for machine, pairs in by_machine.items() for run, _ in pairs}
    marks = []
    for point in history.change_points:
        fullname = point.series.fullname
        combination = fullname[fullname.index("[") + 1 : -1] if fullname.endswith("]") and "[" in fullname else fullname
        marks.append(ChangeMark(
            combination, point.series.label, point.series.metric, sources[(point.series.machine, point.first.run)],
            point.first.run, point.first.commit, point.previous.commit, point.change, point.kind,
            id(point) in open_ones,
        ))  # fmt: skip
    return marks
