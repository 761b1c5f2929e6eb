"""The argparse pieces several ``llmbench`` subcommands share: ``--storage``, the saved runs, ``-v`` and the
integer types (their text read by the option table's own parsers, :mod:`llmbench.config.options`)."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from pathlib import Path

from llmbench.config.options import SettingError, parse_non_negative_int, parse_positive_int

__all__ = [
    "DEFAULT_STORAGE",
    "add_runs_argument",
    "add_storage_argument",
    "add_verbose_argument",
    "non_negative_int",
    "positive_int",
]

#: pytest-benchmark's storage folder where ``--storage`` is not given (its own default, ``.benchmarks``).
DEFAULT_STORAGE = Path(".benchmarks")


def add_storage_argument(parser: argparse.ArgumentParser, help: str = "pytest-benchmark's storage folder") -> None:
    """``--storage DIR`` (a :class:`~pathlib.Path`, default ``.benchmarks``); ``help`` says what the command
    reads there, the default is added to it."""
    parser.add_argument(
        "--storage", metavar="DIR", type=Path, default=DEFAULT_STORAGE, help=f"{help}. Default: %(default)s"
    )


def add_runs_argument(parser: argparse.ArgumentParser) -> None:
    """``RUN...``: saved runs by number, glob or file (``llmbench report`` and ``export``; read by
    :func:`llmbench.report.frame.load_runs`)."""
    parser.add_argument(
        "runs", nargs="*", metavar="RUN",
        help="saved runs: a run number (0003), a glob or a run file. Default: see above",
    )  # fmt: skip


def add_verbose_argument(parser: argparse.ArgumentParser) -> None:
    """``-v``: the verdict's table lists every row, unchanged and n/a ones too (by default one count line)."""
    parser.add_argument(
        "-v", "--verbose", action="store_true",
        help="list every row of the verdict's table (by default unchanged and n/a rows are one count line)",
    )  # fmt: skip


def _argparse_type(parse: Callable[[str, str, str], int]) -> Callable[[str], int]:
    """An argparse ``type=`` from an option-table parser: a bad value is argparse's one line, exit status 2."""

    def parse_argument(text: str) -> int:
        try:
            return parse(text, "value", "the command line")
        except SettingError as error:
            raise argparse.ArgumentTypeError(str(error).removeprefix("value: ")) from None

    return parse_argument


#: argparse ``type=``: a positive integer (``0 is not positive (from the command line); ...``).
positive_int = _argparse_type(parse_positive_int)
#: argparse ``type=``: 0 or more.
non_negative_int = _argparse_type(parse_non_negative_int)
