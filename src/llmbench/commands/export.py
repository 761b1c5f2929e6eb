"""``llmbench export``: saved runs as one CSV or Parquet table, a row per combination and run.

Exit status 0 when written, 2 on a problem the message explains. See docs/reports.md.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from llmbench.commands.arguments import add_runs_argument, add_storage_argument
from llmbench.report.frame import ReportError, Table, load_runs

__all__ = ["add_export_arguments", "export_main"]


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench export``."""
    parser.description = (
        "Write saved runs as one table, one row per combination and run, every metric a column "
        "(empty where a run did not save it). Default runs: all saved runs."
    )
    add_runs_argument(parser)
    add_storage_argument(parser)
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
