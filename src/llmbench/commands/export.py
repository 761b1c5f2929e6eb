"""``llmbench export``: saved runs as one CSV or Parquet table, a row per combination and run (with
``--per-item``: a row per item, combination and run, the per-prompt figures).

Exit status 0 when written, 2 on a problem the message explains. See docs/reports.md.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

from llmbench.commands.arguments import add_runs_argument, add_storage_argument
from llmbench.report.frame import ReportError, Table, load_runs
from llmbench.runs import SavedRun

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
    parser.add_argument(
        "--per-item", action="store_true",
        help="write the per-prompt figures instead: one row per item, combination and run (latency, TTFT, "
        "tokens, decode tok/s, peak memory of the item's call; docs/reports.md, Per-prompt figures)",
    )  # fmt: skip
    parser.add_argument(
        "--decision", action="store_true",
        help="write the decision table instead: one row per combination and run, the figures that choose a model, "
        "precision and device, and the Pareto fronts they are on (docs/reports.md, Which one to pick)",
    )  # fmt: skip


def export_main(args: argparse.Namespace) -> int:
    """``llmbench export``: 0 when written, 2 on a problem the message explains."""
    from llmbench.report.export import write_decision_export, write_export

    try:
        if args.per_item and args.decision:
            raise ReportError("--per-item and --decision: give one of them (each writes a table of its own)")
        runs = load_runs(args.storage, args.runs)
        if not runs:
            raise ReportError(f"no saved run in {str(args.storage)!r}")
        if args.per_item:
            return _export_per_item(runs, args.output)
        table = Table.of(runs)
        path = (write_decision_export if args.decision else write_export)(table, args.output)
    except ReportError as error:
        print(f"llmbench export: error: {error}")
        return 2
    print(f"llmbench export: wrote {len(table.rows)} rows ({len(table.runs)} runs) to {path}")
    return 0


def _export_per_item(runs: Sequence[SavedRun], output: Path) -> int:
    """``llmbench export --per-item``: the runs' per-item figures; runs without any are named, not an error."""
    from llmbench.report.export import check_output, write_frame
    from llmbench.report.per_item import per_item_frames, runs_without_per_item

    check_output(output)
    frame = per_item_frames(runs)
    path = write_frame(frame, output)
    without = runs_without_per_item(runs)
    if without:
        names = ", ".join(run.name for run in without)
        print(
            f"llmbench export: {len(without)} of {len(runs)} runs saved no per-item figures ({names}): saved by a "
            "version of pytest-llmbench without them, or with --llmbench-per-item=off or --llmbench-quality-items=0; "
            "they have no rows"
        )
    print(f"llmbench export: wrote {len(frame)} per-item rows ({len(runs) - len(without)} runs) to {path}")
    return 0
