"""``llmbench runs``: the saved runs of a storage folder and the machine id, for scripts (scripts/ci/).

- ``llmbench runs latest [--storage DIR] [--count N] [--machine-id ID]``: the newest saved run(s) of a
  pytest-benchmark storage folder (highest ``NNNN_`` number, every machine's folder unless one is named),
  one path a line, oldest first; nothing (exit status 0) where there is none.
- ``llmbench runs machine-id [RUN]``: this machine's id (pytest-benchmark's storage subfolder,
  ``Linux-CPython-3.12-64bit``), or that of the machine a saved run was made on.
- ``llmbench runs commit RUN``: the commit a saved run was made at (``unknown`` where it has none).

It needs the standard library only: the ``record`` job, which installs nothing, runs it from the checkout
as ``python -m llmbench.commands.runs`` (scripts/ci/record-history.sh, docs/ci-and-security.md). That is
why its ``--storage`` is its own (same name, type and default as :func:`llmbench.commands.arguments.
add_storage_argument`, which imports pytest through the option table).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from llmbench import benchmark_storage
from llmbench.runs import RunError, read_json

__all__ = ["add_runs_arguments", "runs_main"]


def _count(text: str) -> int:
    if not text.isdigit() or int(text) < 1:
        raise argparse.ArgumentTypeError(f"{text!r} is not a positive number of runs")
    return int(text)


def add_runs_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench runs``."""
    actions = parser.add_subparsers(dest="runs_action", metavar="ACTION", required=True)
    latest = actions.add_parser(
        "latest", help="print the newest saved run of a storage folder (nothing where there is none)",
        description="Print the newest saved run(s) of a pytest-benchmark storage folder (highest NNNN_ "
                    "number), one path a line, oldest first; nothing, and exit status 0, where there is none.",
    )  # fmt: skip
    latest.add_argument(
        "--storage", metavar="DIR", type=Path, default=Path(".benchmarks"),
        help="pytest-benchmark's storage directory. Default: %(default)s",
    )  # fmt: skip
    latest.add_argument("--count", metavar="N", type=_count, default=1, help="the newest N runs. Default: 1")
    latest.add_argument(
        "--machine-id", metavar="ID", default=None,
        help="only the runs of this machine id's folder. Default: every machine's",
    )  # fmt: skip
    machine = actions.add_parser(
        "machine-id", help="print this machine's id (pytest-benchmark's storage subfolder), or RUN's",
        description="Print this machine's id, pytest-benchmark's storage subfolder (Linux-CPython-3.12-64bit), "
                    "or, given RUN, the id of the machine that saved run was made on.",
    )  # fmt: skip
    machine.add_argument("run", metavar="RUN", nargs="?", type=Path, help="a saved run's .json file")
    commit = actions.add_parser(
        "commit", help="print the commit a saved run was made at ('unknown' where it has none)",
        description="Print the commit id a saved run was made at ('unknown' where it has none).",
    )  # fmt: skip
    commit.add_argument("run", metavar="RUN", type=Path, help="a saved run's .json file")


def _saved_run(path: Path) -> Mapping[str, object]:
    data = read_json(path)
    if not isinstance(data, Mapping) or not isinstance(data.get("machine_info", {}), Mapping):
        raise RunError(f"{path}: not a pytest-benchmark run (expected a JSON object with a 'machine_info' object)")
    return data


def runs_main(args: argparse.Namespace) -> int:
    """Run ``llmbench runs ACTION``; the output is for scripts: bare values, one a line."""
    if args.runs_action == "latest":
        for path in benchmark_storage.latest_runs(args.storage, args.machine_id, args.count):
            print(path)
    elif args.runs_action == "machine-id":
        if args.run is None:
            print(benchmark_storage.machine_id())
        else:
            info = _saved_run(args.run).get("machine_info") or {}
            assert isinstance(info, Mapping)
            print(benchmark_storage.machine_id_of(info))
    else:
        info = _saved_run(args.run).get("commit_info") or {}
        commit = info.get("id") if isinstance(info, Mapping) else None
        print(commit or "unknown")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m llmbench.commands.runs ...``: the same, without the ``llmbench`` command's other imports."""
    parser = argparse.ArgumentParser(prog="llmbench runs", description=__doc__.splitlines()[0] if __doc__ else None)
    add_runs_arguments(parser)
    args = parser.parse_args(argv)
    try:
        return runs_main(args)
    except RunError as error:
        print(f"llmbench runs: error: {error}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
