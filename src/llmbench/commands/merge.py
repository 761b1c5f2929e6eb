"""``llmbench merge RUN... -o RUN``: join the saved runs of the shards into one pytest-benchmark run.

Exit status 0 when written, 2 when the runs cannot be merged (the message names the files). The
merging is :mod:`llmbench.shards.merge`, which also compares every combination with its reference again
over the merged run (a reference that ran in another shard included: docs/quality.md, "References and
comparisons"); see docs/ci-and-security.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmbench.runs import write_json_atomically
from llmbench.shards.merge import MergeError, merge_runs, missing_shards

__all__ = ["add_merge_arguments", "merge_main"]


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench merge``."""
    parser.add_argument("runs", nargs="+", metavar="RUN", type=Path, help="saved runs of the shards (JSON files)")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="RUN",
        help="the merged run to write (a JSON file; written atomically)",
    )  # fmt: skip


def merge_main(args: argparse.Namespace) -> int:
    """``llmbench merge RUN... -o RUN``: 0 when written, 2 when the runs cannot be merged."""
    runs: list[Path] = args.runs
    output: Path = args.output
    if any(output.resolve() == run.resolve() for run in runs):
        print(f"llmbench merge: error: the output {output} is one of the runs; choose another file", file=sys.stderr)
        return 2
    try:
        merged = merge_runs(runs)
        missing = missing_shards(runs)
    except MergeError as error:
        print(f"llmbench merge: error: {error}", file=sys.stderr)
        return 2
    write_json_atomically(output, merged)
    if missing:
        print(
            f"llmbench merge: warning: no run of shard(s) {', '.join(map(str, missing))}: "
            "their combinations are missing from the merged run",
            file=sys.stderr,
        )
    print(f"llmbench merge: {len(merged['benchmarks'])} benchmarks from {len(runs)} runs -> {output}")
    return 0
