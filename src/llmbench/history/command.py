"""``llmbench history``: the change points of every combination and metric over the saved runs.

Exit status: 0 no regression change point among the newest ``--since`` runs, 1 one or more (a nightly
job fails on it), 2 unusable input (a missing folder, an unreadable run, a bad option), with one line
naming it, as ``llmbench compare``.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from llmbench.config.options import SettingError, parse_comma_list, parse_positive_int
from llmbench.gate.rules import ALIASES, DEFAULT_RULES
from llmbench.history.detect import DetectorMissing, change_points
from llmbench.history.series import Series, benchmark_values, build_series, commit_of, gated_metrics, known_steps
from llmbench.history.table import History
from llmbench.metrics import METRIC_FACTS
from llmbench.runs import RunError, SavedRun, list_runs, load_run, write_text_atomically

__all__ = ["DEFAULT_SINCE", "add_history_arguments", "analyse", "history_main"]

#: Default of ``--since``: a regression among this many newest runs fails the command.
DEFAULT_SINCE = 10


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench history``."""
    parser.add_argument(
        "--storage",
        metavar="DIR",
        default=".benchmarks",
        help="pytest-benchmark's storage folder (every machine id in it). Default: %(default)r",
    )
    parser.add_argument("--metric", metavar="NAMES", action="append", default=None,
                        help="metrics to analyse, repeatable or a comma list (decode_tok_s and rouge name their "
                        "variants). Default: the metrics the gate fails on")  # fmt: skip
    parser.add_argument("--combination", metavar="GLOB", default=None,
                        help="only combinations whose label ('gemma3-270m q4_k_m cpu bs1') or test id matches "
                        "GLOB, e.g. '*q4_k_m*'. Default: all")  # fmt: skip
    parser.add_argument("--since", metavar="N", default=str(DEFAULT_SINCE),
                        help="fail (exit status 1) on a regression change point among the newest N runs of its "
                        "storage folder. Default: %(default)s")  # fmt: skip
    parser.add_argument("--markdown", metavar="PATH", default=None,
                        help="also write the table as markdown to PATH (and to $GITHUB_STEP_SUMMARY where set). "
                        "Default: none")  # fmt: skip


def _metrics(values: Sequence[str] | None) -> tuple[str, ...]:
    if not values:
        return gated_metrics()
    names: list[str] = []
    for value in values:
        for name in parse_comma_list(value):
            names.extend(ALIASES.get(name, (name,)))
    return tuple(dict.fromkeys(names))


def _load(storage: Path) -> dict[str, list[tuple[SavedRun, str]]]:
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
    series: list[Series] = []
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


def _check_metrics(metrics: Sequence[str], by_machine: Mapping[str, Sequence[tuple[SavedRun, str]]]) -> None:
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


def history_main(args: argparse.Namespace) -> int:
    """``llmbench history``: 0 no recent regression, 1 a regression among the newest runs, 2 bad input."""
    storage = Path(args.storage).expanduser()
    try:
        since = parse_positive_int(args.since, "--since", "the command line")
        metrics = _metrics(args.metric)
        by_machine = _load(storage)
        _check_metrics(metrics, by_machine)
    except (RunError, SettingError) as error:
        print(f"llmbench history: error: {error}", file=sys.stderr)
        return 2
    try:
        history = analyse(by_machine, metrics, args.combination, since, str(storage))
    except DetectorMissing as error:
        print(f"llmbench history: error: {error}", file=sys.stderr)
        return 2
    for line in history.lines():
        print(line)
    text = history.markdown()
    try:
        if args.markdown:
            write_text_atomically(Path(args.markdown).expanduser(), text)
        summary = os.environ.get("GITHUB_STEP_SUMMARY")
        if summary:
            with open(summary, "a", encoding="utf-8") as out:
                out.write(text)
    except OSError as error:
        print(f"llmbench history: error: could not write the markdown: {error}", file=sys.stderr)
        return 2
    return history.exit_status
