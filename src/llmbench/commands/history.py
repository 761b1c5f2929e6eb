"""``llmbench history``: the change points of every combination and metric over the saved runs.

Exit status: 0 no regression change point among the newest ``--since`` runs, 1 one or more (a nightly
job fails on it), 2 unusable input (a missing folder, an unreadable run, a bad option), with one line
naming it, as ``llmbench compare``. The analysis is :mod:`llmbench.history.analyse`; see docs/history.md.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path

from llmbench.commands.arguments import add_storage_argument
from llmbench.config.options import SettingError, parse_comma_list, parse_positive_int
from llmbench.gate.rules import ALIASES
from llmbench.history.analyse import DEFAULT_SINCE, analyse, check_metrics, load_history
from llmbench.history.detect import DetectorMissing
from llmbench.history.series import gated_metrics
from llmbench.job_summary import publish
from llmbench.runs import RunError

__all__ = ["add_history_arguments", "history_main"]


def add_history_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench history``."""
    add_storage_argument(parser, help="pytest-benchmark's storage folder (every machine id in it)")
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
    """The ``--metric`` values as metric names (comma lists split, aliases such as decode_tok_s expanded)."""
    if not values:
        return gated_metrics()
    names: list[str] = []
    for value in values:
        for name in parse_comma_list(value):
            names.extend(ALIASES.get(name, (name,)))
    return tuple(dict.fromkeys(names))


def history_main(args: argparse.Namespace) -> int:
    """``llmbench history``: 0 no recent regression, 1 a regression among the newest runs, 2 bad input."""
    storage = Path(args.storage).expanduser()
    try:
        since = parse_positive_int(args.since, "--since", "the command line")
        metrics = _metrics(args.metric)
        by_machine = load_history(storage)
        check_metrics(metrics, by_machine)
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
    path = Path(args.markdown).expanduser() if args.markdown else None
    problems = publish(history.markdown(), path, what="the markdown", option="--markdown")
    for problem in problems:
        print(f"llmbench history: error: {problem}", file=sys.stderr)
    return 2 if problems else history.exit_status
