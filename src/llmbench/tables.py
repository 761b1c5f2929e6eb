"""The one text-table renderer, the one markdown-table renderer and its cell escaper.

Every table shown to people (the gate's verdict, ``llmbench history``, ``llmbench selfcheck``, the
end-of-session table, ``report.md``) is laid out here from cells already formatted
(:mod:`llmbench.units` formats the values). Each :class:`Column` has a title and an alignment; the
widths follow the content.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

__all__ = [
    "CUT_FLOOR",
    "Align",
    "Column",
    "markdown_cell",
    "markdown_header",
    "markdown_line",
    "markdown_row",
    "markdown_table",
    "text_table",
]

Align = Literal["left", "right"]
#: A column cut to fit a width keeps at least this many characters (and never less than its title).
CUT_FLOOR = 12


@dataclass(frozen=True)
class Column:
    """One column of a table: its title, how its cells are aligned, and the least width of its text cells."""

    title: str
    align: Align = "left"
    width: int = 0


def _columns(columns: Sequence[Column | str]) -> list[Column]:
    return [Column(c) if isinstance(c, str) else c for c in columns]


def _fit(text: str, size: int) -> str:
    return text if len(text) <= size else text[: size - 1] + "…"


def text_table(
    columns: Sequence[Column | str],
    rows: Sequence[Sequence[str]],
    *,
    gap: int = 2,
    rule: Literal["columns", "line"] = "columns",
    width: int | None = None,
    cut: Sequence[int] = (),
) -> list[str]:
    """A plain-text table: the header line, a rule, one line per row (a string column is left-aligned).

    Each column is as wide as its widest cell or title (at least its :attr:`Column.width`), ``gap``
    spaces apart; lines carry no trailing spaces. ``rule``: ``"columns"`` dashes under each column,
    ``"line"`` one unbroken line of dashes. With ``width``, the columns of ``cut`` (indexes, in the order
    they are shortened) are cut with ``…`` until the table fits, each down to :data:`CUT_FLOOR`
    characters or its title's length. Without rows: the header and the rule.
    """
    cols = _columns(columns)
    widths = [max(col.width, len(col.title), *(len(row[i]) for row in rows)) for i, col in enumerate(cols)]
    if width is not None:
        over = sum(widths) + gap * (len(cols) - 1) - width
        for index in cut:
            if over <= 0:
                break
            floor = max(len(cols[index].title), CUT_FLOOR)
            take = min(over, max(0, widths[index] - floor))
            widths[index] -= take
            over -= take
    spacer = " " * gap

    def line(cells: Sequence[str]) -> str:
        aligned = [
            _fit(cell, size).rjust(size) if col.align == "right" else _fit(cell, size).ljust(size)
            for cell, size, col in zip(cells, widths, cols, strict=True)
        ]
        return spacer.join(aligned).rstrip()

    dashes = spacer.join("-" * w for w in widths) if rule == "columns" else "-" * (sum(widths) + gap * (len(cols) - 1))
    return [line([col.title for col in cols]), dashes, *(line(row) for row in rows)]


def markdown_line(text: str) -> str:
    """Text on one line of GitHub markdown outside a table (a note, a bullet): line breaks as spaces, pipes
    escaped; backticks are kept, so inline code stays code."""
    return text.replace("\r\n", " ").replace("\r", " ").replace("\n", " ").replace("|", "\\|")


def markdown_cell(text: str) -> str:
    """The one escaper of a GitHub table cell: the text shown literally, on one line (backslashes, pipes and
    backticks escaped, line breaks as spaces)."""
    return markdown_line(text.replace("\\", "\\\\").replace("`", "\\`"))


def markdown_row(cells: Sequence[str]) -> str:
    """One row of a GitHub table, its cells escaped with :func:`markdown_cell`."""
    return "| " + " | ".join(markdown_cell(cell) for cell in cells) + " |"


def markdown_header(columns: Sequence[Column | str]) -> list[str]:
    """The header row and the separator row of a GitHub table (``---:`` for right-aligned columns)."""
    cols = _columns(columns)
    separator = "|" + "".join("---:|" if col.align == "right" else "---|" for col in cols)
    return [markdown_row([col.title for col in cols]), separator]


def markdown_table(columns: Sequence[Column | str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A GitHub table's lines: header, separator, one row per row (a string column is left-aligned)."""
    return [*markdown_header(columns), *(markdown_row(row) for row in rows)]
