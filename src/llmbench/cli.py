"""The ``llmbench`` command: work on saved runs outside pytest (compare, merge, report, export).

Each subcommand is a module of :mod:`llmbench.commands`; this file only dispatches. The module
``llmbench.commands.<name>`` provides ``add_<name>_arguments(parser)`` and ``<name>_main(args) -> int``
(the exit status). Input the user can fix (a bad run file, a bad option) is one line naming it and
exit status 2, here for all subcommands (:func:`input_errors`); 1 is kept for a regression.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from llmbench import __version__

#: subcommand -> (module, one-line help)
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "compare": ("llmbench.commands.compare", "compare a run with a baseline and give the gate's verdict"),
    "merge": ("llmbench.commands.merge", "merge the saved runs of matrix shards into one run"),
    "report": ("llmbench.commands.report", "write the HTML and markdown report of saved runs"),
    "history": ("llmbench.commands.history", "find the change points in the saved runs and the commits they start at"),
    "ab": ("llmbench.commands.ab", "measure two git revisions side by side, interleaved, and give the gate's verdict"),
    "selfcheck": ("llmbench.commands.selfcheck", "cross-check the harness's figures against independent readings here"),
    "export": ("llmbench.commands.export", "write saved runs as a CSV or Parquet table: a row per combination and run"),
    "runs": ("llmbench.commands.runs", "the latest saved run of a storage folder and the machine id, for scripts"),
}


def build_parser(only: str | None = None) -> argparse.ArgumentParser:
    """The whole command line; with ``only``, just that subcommand's module is imported (and its options
    declared): the others are listed by name and help alone, so ``llmbench runs`` does not import torch."""
    parser = argparse.ArgumentParser(prog="llmbench", description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--version", action="version", version=f"pytest-llmbench {__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = commands.add_parser(name, help=help_text, description=help_text)
        if only is not None and name != only:
            continue
        module = importlib.import_module(module_name)
        getattr(module, f"add_{name}_arguments")(sub)
        sub.set_defaults(handler=getattr(module, f"{name}_main"))
    return parser


def input_errors() -> tuple[type[Exception], ...]:
    """The project's errors that are the user's input (a run file, an option, a data set), never a bug."""
    from llmbench.config.options import SettingError
    from llmbench.data import DataError
    from llmbench.gate.baseline import GateError
    from llmbench.gate.rules import FailSpecError
    from llmbench.report.frame import ReportError
    from llmbench.runs import RunError
    from llmbench.shards.merge import MergeError
    from llmbench.units import SizeError

    return (RunError, SettingError, GateError, FailSpecError, ReportError, MergeError, DataError, SizeError)


def main(argv: Sequence[str] | None = None) -> int:
    arguments = list(sys.argv[1:] if argv is None else argv)
    # The subcommand is the first word that is not an option (the top level has only --help and --version).
    command = next((word for word in arguments if not word.startswith("-")), "")
    args = build_parser(only=command).parse_args(arguments)
    try:
        status: int = args.handler(args)
    except input_errors() as error:
        print(f"llmbench {args.command}: error: {error}", file=sys.stderr)
        return 2
    return status


if __name__ == "__main__":
    sys.exit(main())
