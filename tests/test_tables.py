"""The one text-table renderer and the one markdown-table renderer (:mod:`llmbench.tables`)."""

from __future__ import annotations

import ast
import inspect
from pathlib import Path

import llmbench.tables
import llmbench.units
from llmbench.tables import (
    Column,
    markdown_cell,
    markdown_header,
    markdown_line,
    markdown_row,
    markdown_table,
    text_table,
)


def test_text_table_aligns_columns_and_sizes_them_to_the_content() -> None:
    columns = [Column("name"), Column("value", "right")]
    lines = text_table(columns, [("a", "1"), ("longer name", "12,345")])
    assert lines == [
        "name          value",
        "-----------  ------",
        "a                 1",
        "longer name  12,345",
    ]


def test_text_table_strings_are_left_aligned_columns_and_lines_carry_no_trailing_spaces() -> None:
    lines = text_table(["a", "b"], [("x", ""), ("yyy", "z")])
    assert lines == ["a    b", "---  -", "x", "yyy  z"]
    assert all(line == line.rstrip() for line in lines)


def test_text_table_gap_least_width_and_one_unbroken_rule() -> None:
    columns = [Column("combination"), Column("TTFT", "right", 8), Column("MBU", "right", 6)]
    lines = text_table(columns, [("m q4 cpu bs1", "12 ms", "45.1%")], gap=1, rule="line")
    assert lines == [
        "combination      TTFT    MBU",
        "----------------------------",
        "m q4 cpu bs1    12 ms  45.1%",
    ]


def test_text_table_without_rows_is_the_header_and_the_rule() -> None:
    assert text_table([Column("check"), Column("status", "right")], [], gap=1, rule="line") == [
        "check status",
        "------------",
    ]
    assert text_table(["a", "bb"], []) == ["a  bb", "-  --"]


def test_text_table_cuts_the_named_columns_in_order_to_fit_the_width() -> None:
    columns = [Column("combination"), Column("metric"), Column("value", "right")]
    rows = [("c" * 30, "m" * 30, "1")]
    # 30 + 30 + 5 + 2 * 2 = 69 columns, 19 too many for 50: the metric column gives 18 (down to 12), then
    # the combination column the last one.
    lines = text_table(columns, rows, width=50, cut=(1, 0))
    assert lines[2] == "c" * 28 + "…" + "  " + "m" * 11 + "…" + "  " + "    1"
    assert max(len(line) for line in lines) == 50
    # Wide enough: nothing is cut.
    assert text_table(columns, rows, width=120, cut=(1, 0))[2] == "c" * 30 + "  " + "m" * 30 + "      1"


def test_a_cut_column_keeps_its_title_and_at_least_twelve_characters() -> None:
    columns = [Column("a rather long title"), Column("v", "right")]
    lines = text_table(columns, [("x" * 40, "1")], width=10, cut=(0,))
    assert lines[0].startswith("a rather long title")
    assert lines[2] == "x" * 18 + "…" + "  1"


def test_markdown_cell_escapes_backslashes_pipes_and_backticks_and_joins_lines() -> None:
    assert markdown_cell("a|b") == "a\\|b"
    assert markdown_cell("run `x`") == "run \\`x\\`"
    # A backslash before a pipe stays a backslash: GitHub would otherwise read "\\|" as an escaped pipe.
    assert markdown_cell("C:\\runs\\|x") == "C:\\\\runs\\\\\\|x"
    assert markdown_cell("one\ntwo\r\nthree\rfour") == "one two three four"
    assert markdown_cell("gemma3-270m nf4 cpu bs4") == "gemma3-270m nf4 cpu bs4"


def test_markdown_line_keeps_inline_code_and_escapes_pipes_and_line_breaks() -> None:
    assert markdown_line("measure with `llmbench ab` | or\nsave more runs") == (
        "measure with `llmbench ab` \\| or save more runs"
    )


def test_markdown_table_aligns_columns_and_escapes_every_cell() -> None:
    columns: list[Column | str] = [Column("combination"), Column("change", "right"), "verdict"]
    lines = markdown_table(columns, [("a|b", "+5.0%", "line\nbreak"), ("`code`", "", "ok")])
    assert lines == [
        "| combination | change | verdict |",
        "|---|---:|---|",
        "| a\\|b | +5.0% | line break |",
        "| \\`code\\` |  | ok |",
    ]
    assert markdown_header(columns) == lines[:2]
    assert markdown_row(("a|b", "+5.0%", "line\nbreak")) == lines[2]


def test_an_empty_markdown_table_is_its_header_and_separator() -> None:
    assert markdown_table(["a", Column("b|c", "right")], []) == ["| a | b\\|c |", "|---|---:|"]


def test_tables_and_units_sit_at_the_bottom_of_the_layers() -> None:
    """Every renderer imports them, so they import nothing of llmbench (docs/design.md)."""
    for module in (llmbench.tables, llmbench.units):
        source = Path(inspect.getfile(module)).read_text(encoding="utf-8")
        imported = [
            node.module if isinstance(node, ast.ImportFrom) else alias.name
            for node in ast.walk(ast.parse(source))
            if isinstance(node, ast.Import | ast.ImportFrom)
            for alias in node.names
        ]
        assert not [name for name in imported if name and name.split(".")[0] == "llmbench"], module.__name__
