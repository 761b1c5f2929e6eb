"""The per-prompt figures in the report: the notebook's per-prompt table and its pivot (prompt x combination),
for the page's "Per prompt" section and report.md.

:mod:`llmbench.report.per_item` builds the frames from a saved run (:func:`~llmbench.report.per_item.per_item_frame`,
:func:`~llmbench.report.per_item.per_item_pivot`); this module lays them out for people. The pivot shows the
latency of the call that generated each item (the notebook's per-prompt runtime), the tokens it generated and
its decode rate, one pivot per pass (``source``: the quality pass, or each test's own pass) so no item is
shown twice in one cell. A run saved without per-item figures shows a line saying so; a malformed record
shows the error instead of the section (the rest of the report stands).
"""

from __future__ import annotations

import html
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

from llmbench.metrics import metric_label
from llmbench.report.frame import ReportError, Row
from llmbench.report.per_item import per_item_frame, per_item_pivot
from llmbench.runs import SavedRun
from llmbench.tables import markdown_line, markdown_table
from llmbench.units import format_compact, format_value

__all__ = ["MARKDOWN_ITEMS", "PIVOT_VALUES", "TABLE_COLUMNS", "PerItemView"]

#: The pivots shown: (frame column, what it is, unit).
PIVOT_VALUES: tuple[tuple[str, str, str], ...] = (
    ("latency_s", "latency of the call that generated the item", "s"),
    ("generated_tokens", "tokens generated for the item", "tokens"),
    ("decode_tok_s", "the item's decode tokens/s", "tok/s"),
)
#: The per-prompt table's columns (frame column, title, unit; "" for text); the calls' ``peak_*`` columns follow.
TABLE_COLUMNS: tuple[tuple[str, str, str], ...] = (
    ("item", "item", ""), ("combination", "combination", ""), ("source", "pass", ""), ("call", "call", "count"),
    ("call_items", "items in call", "count"), ("latency_s", "latency (call)", "s"), ("ttft_s", "TTFT", "s"),
    ("prompt_tokens", "prompt tokens", "count"), ("generated_tokens", "generated tokens", "count"),
    ("decode_tok_s", "decode tok/s", "tok/s"),
)  # fmt: skip
#: Items of a pivot report.md shows (a pull-request comment has little room); the page and per_item.csv have all.
MARKDOWN_ITEMS = 12

_NO_FIGURES = (
    "No per-item figures were saved with this run (saved by a version without them, or with "
    "--llmbench-per-item=off or --llmbench-quality-items=0)."
)


def _cell(value: Any, unit: str) -> str:
    if unit == "":
        return "" if value is None or (isinstance(value, float) and pd.isna(value)) else str(value)
    if value is None or pd.isna(value):
        return "n/a"
    if unit in ("count", "tokens"):
        return str(int(value))
    return format_value(float(value), unit) if unit == "s" else format_compact(float(value), unit)


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], numeric: Sequence[bool]) -> str:
    head = "".join(f"<th>{html.escape(h)}</th>" for h in header)
    body = "".join(
        "<tr>"
        + "".join(
            f'<td class="{"num na" if text == "n/a" else "num"}">{html.escape(text)}</td>'
            if is_number
            else f"<td>{html.escape(text)}</td>"
            for text, is_number in zip(row, numeric, strict=True)
        )
        + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


@dataclass(frozen=True)
class PerItemView:
    """The per-item figures of one run, limited to the report's models, precisions and devices."""

    frame: pd.DataFrame
    #: Why there is nothing to show ("" where there is): no figures saved, or a malformed record.
    missing: str = ""

    @classmethod
    def of(cls, run: SavedRun, rows: Sequence[Row] = ()) -> PerItemView:
        """``run``'s per-item frame; ``rows``: the report's rows, whose (model, precision, device) are kept
        (all where empty; a pass's batch size need not be one of the rows')."""
        try:
            frame = per_item_frame(run)
        except ReportError as error:
            return cls(pd.DataFrame(), f"Per-item figures not shown: {error}.")
        if rows and not frame.empty:
            keys = {row.load_key for row in rows}
            frame = frame[[k in keys for k in zip(frame["model"], frame["precision"], frame["device"], strict=True)]]
            frame = frame.reset_index(drop=True)
        return cls(frame, _NO_FIGURES if frame.empty else "")

    @property
    def sources(self) -> list[str]:
        return [] if self.frame.empty else list(dict.fromkeys(self.frame["source"]))

    def pivot(self, value: str, source: str) -> pd.DataFrame:
        """The pivot of ``value`` over one pass's lines: one line per item, one column per combination."""
        return per_item_pivot(self.frame[self.frame["source"] == source], value=value)

    def _pivot_rows(
        self, value: str, unit: str, source: str, limit: int | None = None
    ) -> tuple[list[str], list[list[str]]]:
        pivot = self.pivot(value, source)
        rows = [[str(item), *(_cell(v, unit) for v in values)] for item, values in pivot.iterrows()]
        return ["item", *map(str, pivot.columns)], rows[:limit] if limit is not None else rows

    def _table_columns(self) -> list[tuple[str, str, str]]:
        peaks = [(name, metric_label(name), "bytes") for name in self.frame.columns if str(name).startswith("peak_")]
        return [*TABLE_COLUMNS, *peaks]

    def html(self) -> str:
        """The page's section body: per pass, the pivots (latency open, the others folded), then the whole
        per-prompt table folded."""
        if self.missing:
            return f'<p class="muted">{html.escape(self.missing)}</p>'
        parts = [
            '<p class="muted">Every item of the data set timed in the call that generated it (docs/reports.md, '
            "Per-prompt figures): the notebook's pivot, one line per prompt and one column per combination; "
            "latency and peak memory are the call's (shared by the items of one call), tokens and decode "
            "tokens/s the item's own. All figures are in per_item.csv next to this page.</p>"
        ]
        for source in self.sources:
            for index, (value, what, unit) in enumerate(PIVOT_VALUES):
                header, rows = self._pivot_rows(value, unit, source)
                table = _html_table(header, rows, [False] + [True] * (len(header) - 1))
                opened = " open" if index == 0 else ""
                parts.append(
                    f"<details{opened}><summary>{html.escape(what)} ({html.escape(value)}), pass: "
                    f'{html.escape(source)}</summary><div class="wide">{table}</div></details>'
                )
        columns = self._table_columns()
        rows = [[_cell(line[name], unit) for name, _, unit in columns] for _, line in self.frame.iterrows()]
        table = _html_table([title for _, title, _ in columns], rows, [unit != "" for _, _, unit in columns])
        parts.append(
            f"<details><summary>the per-prompt table ({len(rows)} lines: item x combination)</summary>"
            f'<div class="wide">{table}</div></details>'
        )
        return "\n".join(parts)

    def markdown(self, limit: int = MARKDOWN_ITEMS) -> str:
        """report.md's block: the latency pivot of each pass, its first ``limit`` items, folded; "" where there
        are no figures."""
        if self.missing:
            return ""
        value, what, unit = PIVOT_VALUES[0]
        blocks = []
        for source in self.sources:
            header, rows = self._pivot_rows(value, unit, source)
            shown = "\n".join(markdown_table(header, rows[:limit]))
            more = (
                f"\n\n_{len(rows) - limit} more items in the full report and per_item.csv._"
                if len(rows) > limit
                else ""
            )
            blocks.append(
                f"<details><summary>Per prompt: {markdown_line(what)} ({value}), pass {markdown_line(source)}"
                f"</summary>\n\n{shown}{more}\n\n</details>"
            )
        return "\n\n".join(blocks)
