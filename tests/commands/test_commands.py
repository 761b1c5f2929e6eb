"""The ``llmbench`` subcommands' modules (``llmbench.commands``): where they sit, what they share.

The library packages never import the commands or the plugin (read from the source, imports inside
functions included), the gate never imports ``llmbench ab``; ``--storage`` and the integer options are
declared once; the job summary has one writer. See docs/design.md.
"""

from __future__ import annotations

import argparse
import ast
from pathlib import Path

import pytest

from llmbench.cli import SUBCOMMANDS, build_parser
from llmbench.commands.arguments import add_storage_argument, non_negative_int, positive_int
from llmbench.job_summary import publish
from tests.support.paths import REPO

SRC = REPO / "src" / "llmbench"
LIBRARY = ("gate", "ab", "history", "report", "shards", "selfcheck", "measure", "quality", "backends", "config",
           "workers", "data")  # fmt: skip


def imported(path: Path) -> set[str]:
    """The ``llmbench`` modules a source file imports, anywhere in it."""
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            found.add(node.module)
            found.update(f"{node.module}.{alias.name}" for alias in node.names)
    return {name for name in found if name.startswith("llmbench.")}


def _importers(packages: tuple[str, ...], forbidden: tuple[str, ...], top_level: bool = False) -> list[str]:
    """``file: module`` for each import of a ``forbidden`` module in ``packages`` (and the top-level modules)."""
    files = [path for package in packages for path in sorted((SRC / package).rglob("*.py"))]
    if top_level:
        files += [path for path in sorted(SRC.glob("*.py")) if path.stem not in ("cli", "__init__")]
    return sorted(
        f"{path.relative_to(SRC)}: {name}"
        for path in files
        for name in imported(path)
        if any(name == f or name.startswith(f"{f}.") for f in forbidden)
    )


def test_the_library_never_imports_the_commands() -> None:
    assert _importers(LIBRARY, ("llmbench.commands", "llmbench.cli"), top_level=True) == []


def test_the_gate_never_imports_ab() -> None:
    assert _importers(("gate",), ("llmbench.ab",)) == []


def test_the_commands_never_import_the_plugin() -> None:
    assert _importers(("commands",), ("llmbench.plugin",)) == []


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
