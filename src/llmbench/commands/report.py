"""``llmbench report``: the HTML page and the markdown of saved runs (see docs/reports.md).

Exit status 0 when written, 2 on a problem the message explains.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmbench.commands.arguments import add_runs_argument, add_storage_argument
from llmbench.report.frame import DEFAULT_HISTORY, ReportError, select_runs
from llmbench.report.verdict import gate_verdict
from llmbench.units import SizeError, parse_size

__all__ = ["DEFAULT_MEMORY_BUDGET", "add_report_arguments", "parse_budget", "report_main"]

DEFAULT_MEMORY_BUDGET = "8GiB"


def parse_budget(text: str) -> float:
    """``--memory-budget``: a memory size such as ``8GiB``, in bytes; :class:`ReportError` if unreadable."""
    try:
        return parse_size(text, "--memory-budget")
    except SizeError as error:
        raise ReportError(str(error)) from None


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench report``."""
    parser.description = (
        "Write DIR/index.html (one self-contained page) and DIR/report.md (for a pull-request comment), "
        "with the tables as CSV files next to them. Default runs: the latest saved run and the history "
        "before it."
    )
    add_runs_argument(parser)
    add_storage_argument(
        parser, help="pytest-benchmark's storage folder, read for run numbers, globs and the default runs (runs "
        "given as files need none)",
    )  # fmt: skip
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
