"""The ``llmbench`` subcommands' modules (``llmbench.commands``): where they sit, what they share.

``--storage`` and the integer options are declared once; the job summary has one writer. Where the commands
sit in the layers (the library never imports them, they never import the plugin) is import-linter's
contract (tests/test_import_contracts.py). See docs/design.md.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

import pytest

from llmbench.cli import SUBCOMMANDS, build_parser
from llmbench.commands.arguments import add_storage_argument, non_negative_int, positive_int
from llmbench.job_summary import publish


def test_every_subcommand_is_a_module_of_commands() -> None:
    assert {module for module, _ in SUBCOMMANDS.values()} == {f"llmbench.commands.{name}" for name in SUBCOMMANDS}
    build_parser()  # every module has its add_<name>_arguments and <name>_main


@pytest.mark.parametrize("command", ["compare", "history", "report", "export"])
def test_storage_is_one_option_with_one_default(command: str) -> None:
    args = build_parser().parse_args([command, *{"compare": ["last", "0001"], "report": ["-o", "x"],
                                                 "export": ["-o", "x.csv"]}.get(command, [])])  # fmt: skip
    assert args.storage == Path(".benchmarks")


def test_the_integer_types_say_what_is_wrong() -> None:
    parser = argparse.ArgumentParser()
    add_storage_argument(parser, help="where the runs are")
    assert "where the runs are. Default: .benchmarks" in parser.format_help().replace("\n", " ").replace("  ", " ")
    assert positive_int("3") == 3
    assert non_negative_int("0") == 0
    with pytest.raises(argparse.ArgumentTypeError, match=r"^0 is not positive \(from the command line\)"):
        positive_int("0")
    with pytest.raises(argparse.ArgumentTypeError, match=r"^'x' is not an integer"):
        non_negative_int("x")


def test_publish_writes_the_file_and_appends_to_the_job_summary(tmp_path: Path) -> None:
    summary = tmp_path / "summary.md"
    summary.write_text("before\n")
    assert publish("# table\n", tmp_path / "out.md", {"GITHUB_STEP_SUMMARY": str(summary)}) == []
    assert (tmp_path / "out.md").read_text() == "# table\n"
    assert summary.read_text() == "before\n# table\n"
    assert publish("# again\n", None, {}) == []


def test_publish_names_each_write_that_failed(tmp_path: Path) -> None:
    blocked = tmp_path / "a-file"  # a file where a folder should be: neither can be written
    blocked.write_text("")
    problems = publish("x", blocked / "v.md", {"GITHUB_STEP_SUMMARY": str(blocked / "s.md")}, what="the verdict",
                       option="--llmbench-verdict")  # fmt: skip
    assert len(problems) == 2
    assert problems[0].startswith(f"could not write the verdict to {blocked / 'v.md'} (--llmbench-verdict): ")
    assert problems[1].startswith(f"could not append the verdict to $GITHUB_STEP_SUMMARY ({blocked / 's.md'}): ")


def test_a_subcommand_imports_only_its_own_module() -> None:
    # A fresh interpreter: `llmbench runs` (the CI scripts' call) and `llmbench --help` never import torch,
    # pandas or another subcommand's module; `llmbench selfcheck --help` does import its own.
    code = (
        "import contextlib, io, sys\n"
        "from llmbench.cli import main\n"
        "for argv in (['runs', 'machine-id'], ['--help']):\n"
        "    with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "        main(argv)\n"
        "tops = {m.split('.')[0] for m in sys.modules} & {'torch', 'pandas', 'scipy'}\n"
        "others = {m for m in sys.modules if m.startswith('llmbench.commands.')} - {'llmbench.commands.runs'}\n"
        "heavy = sorted(tops | others)\n"
        "print(heavy)\n"
        "with contextlib.redirect_stdout(io.StringIO()), contextlib.suppress(SystemExit):\n"
        "    main(['selfcheck', '--help'])\n"
        "print('llmbench.commands.selfcheck' in sys.modules)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120, check=True)
    assert result.stdout.splitlines() == ["[]", "True"], result.stdout + result.stderr
