"""``llmbench report`` and ``llmbench export``: their arguments and entry points (``cli.py`` dispatches)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from llmbench.report.frame import DEFAULT_HISTORY, ReportError, Table, load_runs, select_runs
from llmbench.runs import SavedRun
from llmbench.units import SizeError, parse_size

if TYPE_CHECKING:
    from llmbench.gate import Verdict

__all__ = [
    "DEFAULT_MEMORY_BUDGET",
    "add_export_arguments",
    "add_report_arguments",
    "export_main",
    "gate_verdict",
    "parse_budget",
    "report_main",
]

DEFAULT_MEMORY_BUDGET = "8GiB"


def parse_budget(text: str) -> float:
    """``--memory-budget``: a memory size such as ``8GiB``, in bytes; :class:`ReportError` if unreadable."""
    try:
        return parse_size(text, "--memory-budget")
    except SizeError as error:
        raise ReportError(str(error)) from None


def gate_verdict(current: SavedRun, history: Sequence[SavedRun]) -> Verdict | None:
    """The gate's verdict on ``current`` against the run before it in ``history`` (the gate's default
    baseline, ``last``, with its default rules), or None where there is no earlier run."""
    from llmbench.gate import Baseline, compare_runs

    earlier = [run for run in history if run is not current and run.datetime <= current.datetime]
    if not earlier:
        return None
    previous = earlier[-1]
    return compare_runs(Baseline((previous,), f"{previous.name} ({previous.source}), the run before"), current)


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="*", metavar="RUN",
        help="saved runs: a run number (0003), a glob or a run file. Default: see above",
    )  # fmt: skip
    parser.add_argument(
        "--storage", metavar="DIR", type=Path, default=Path(".benchmarks"),
        help="pytest-benchmark's storage directory. Default: %(default)s",
    )  # fmt: skip


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench report``."""
    parser.description = (
        "Write DIR/index.html (one self-contained page) and DIR/report.md (for a pull-request comment), "
        "with the tables as CSV files next to them. Default runs: the latest saved run and the history "
        "before it."
    )
    _add_storage(parser)
    parser.add_argument("--output", "-o", metavar="DIR", type=Path, required=True, help="where to write the report")
    parser.add_argument(
        "--memory-budget", metavar="SIZE", default=DEFAULT_MEMORY_BUDGET,
        help="the memory the hardware guidance checks each combination against, e.g. 8GiB, 24GB. "
        "Default: %(default)s",
    )  # fmt: skip
    parser.add_argument(
        "--history", metavar="N", type=int, default=DEFAULT_HISTORY,
        help="saved runs shown in the history, the report's own included. Default: %(default)s",
    )  # fmt: skip
    parser.add_argument(
        "--combination", metavar="PATTERN", action="append", default=[],
        help="only combinations whose id matches this glob (e.g. '*-bf16-*'); repeat for more. Default: all",
    )  # fmt: skip


def report_main(args: argparse.Namespace) -> int:
    """``llmbench report``: 0 when written, 2 on a problem the message explains."""
    from llmbench.report.html import write_report

    try:
        budget = parse_budget(args.memory_budget)
        current, history = select_runs(args.storage, args.runs, args.history)
        files = write_report(
            current, history, args.output, memory_budget=budget, combinations=args.combination,
            verdict=gate_verdict(current, history),
        )  # fmt: skip
    except ReportError as error:
        print(f"llmbench report: error: {error}")
        return 2
    print(f"llmbench report: wrote {files.index} and {files.markdown}")
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench export``."""
    parser.description = (
        "Write saved runs as one table, one row per combination and run, every metric a column "
        "(empty where a run did not save it). Default runs: all saved runs."
    )
    _add_storage(parser)
    parser.add_argument(
        "--output", "-o", metavar="FILE", type=Path, required=True,
        help="FILE.csv, or FILE.parquet (needs pyarrow)",
    )  # fmt: skip


def export_main(args: argparse.Namespace) -> int:
    """``llmbench export``: 0 when written, 2 on a problem the message explains."""
    from llmbench.report.export import write_export

    try:
        runs = load_runs(args.storage, args.runs)
        if not runs:
            raise ReportError(f"no saved run in {str(args.storage)!r}")
        table = Table.of(runs)
        path = write_export(table, args.output)
    except ReportError as error:
        print(f"llmbench export: error: {error}")
        return 2
    print(f"llmbench export: wrote {len(table.rows)} rows ({len(table.runs)} runs) to {path}")
    return 0
