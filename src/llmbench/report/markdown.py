"""The report's tables and ``report.md``: the decision table, the hardware guidance, GitHub markdown.

``report.md`` is for a pull-request comment or a job summary: the gate's verdict, the machine, the
matrix and the decision table (:class:`DecisionTable`: which one to pick), kept under GitHub's 65,536-character
limit (regressed combinations first, then as many rows as fit, and a pointer to the full page).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

from llmbench.metrics import metric_label
from llmbench.report.decision import (
    DECISION_COLUMNS,
    FRONTS,
    HOST_MEMORY_METRIC,
    DecisionColumn,
    decision_frame,
    device_memory_metric,
    quality_metric,
    shown_columns,
)
from llmbench.report.frame import Row, combination_sort_key
from llmbench.report.per_item_view import PerItemView
from llmbench.runs import SavedRun
from llmbench.tables import markdown_line, markdown_table
from llmbench.units import format_bytes, format_compact, format_value

if TYPE_CHECKING:
    from llmbench.gate import Verdict

__all__ = [
    "GITHUB_COMMENT_LIMIT",
    "MARKDOWN_BUDGET",
    "DecisionTable",
    "Guidance",
    "build_markdown",
    "guidance",
    "matrix_line",
    "na_notes",
    "run_line",
]

#: GitHub rejects comments (and job summaries beyond 1 MiB) longer than this many characters.
GITHUB_COMMENT_LIMIT = 65_536
#: What report.md aims under, leaving room for a bot's header or footer.
MARKDOWN_BUDGET = 60_000
#: Characters of report.md given to the gate's verdict (the report's own tables need the rest).
VERDICT_MARKDOWN_LIMIT = 20_000

#: The identity columns of the decision table: (title, how a row shows it), then "data set" and "prompt tokens"
#: where a row's test id names them.
_IDENTITY: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("model", lambda row: row.model),
    ("precision", lambda row: str(row.info.get("precision_id") or row.precision)),
    ("device", lambda row: row.device),
    ("batch", lambda row: "n/a" if row.batch_size is None else str(row.batch_size)),
)
_AXES: tuple[tuple[str, Callable[[Row], str]], ...] = (
    ("data set", lambda row: row.dataset),
    ("prompt tokens", lambda row: "n/a" if row.prompt_length is None else str(row.prompt_length)),
)


#: The last column where a run saved it: what the drift columns compare with.
REFERENCE_TITLE = "drift against"
#: The column saying which Pareto fronts a combination is on (after the identity columns, so always in view).
FRONT_TITLE = "Pareto front (against speed)"


@dataclass(frozen=True)
class DecisionTable:
    """The decision table of some rows, laid out for people (docs/reports.md, "Which one to pick"): the
    identity columns, the figures of :data:`~llmbench.report.decision.DECISION_COLUMNS` some row has (the
    optional ones no row has are :attr:`hidden`), and which Pareto fronts each row is on."""

    rows: tuple[Row, ...]
    frame: pd.DataFrame
    identity: tuple[tuple[str, Callable[[Row], str]], ...]
    columns: tuple[DecisionColumn, ...]
    hidden: tuple[DecisionColumn, ...]

    @classmethod
    def of(cls, rows: Sequence[Row]) -> DecisionTable:
        frame = decision_frame(rows)
        shown, hidden = shown_columns(frame)
        present = (any(r.named_dataset for r in rows), any(r.prompt_length for r in rows))
        axes = tuple(column for column, there in zip(_AXES, present, strict=True) if there)
        return cls(tuple(rows), frame, (*_IDENTITY, *axes), tuple(shown), tuple(hidden))

    @property
    def header(self) -> list[str]:
        reference = [REFERENCE_TITLE] if self.shows_reference else []
        return [*(title for title, _ in self.identity), FRONT_TITLE, *(c.title for c in self.columns), *reference]

    @property
    def shows_reference(self) -> bool:
        """Whether some row saved what its drift is against (runs before the reference per comparison did not)."""
        return bool(self.frame["reference"].notna().any())

    def _figure(self, index: int, column: DecisionColumn) -> str:
        """A figure's cell, with its interval where the column keeps one: ``-0.020 [-0.050, 0.010]``."""
        text = _cell(_float(self.frame.at[index, column.metric]), column.unit)
        if not column.interval or text == "n/a":
            return text
        low, high = (_float(self.frame.at[index, f"{column.metric}_ci_{end}"]) for end in ("low", "high"))
        if low is None or high is None:
            return text
        return f"{text} [{_cell(low, column.unit)}, {_cell(high, column.unit)}]"

    def fronts(self, index: int) -> str:
        """What row ``index`` is on the Pareto front of, against speed: ``quality, RAM``; "" where on none."""
        return ", ".join(front.short for front in FRONTS if bool(self.frame.at[index, front.column]))

    def cells(self, index: int) -> list[str]:
        """Row ``index``'s cells, formatted."""
        row = self.rows[index]
        figures = [self._figure(index, c) for c in self.columns]
        reference = self.frame.at[index, "reference"]
        shown = [str(reference) if isinstance(reference, str) else "n/a"] if self.shows_reference else []
        return [*(show(row) for _, show in self.identity), self.fronts(index), *figures, *shown]

    def front_sentences(self) -> list[str]:
        """One line per front with combinations on it: ``Pareto front of quality against speed (ROUGE-Lsum
        against decode tok/s per sequence): a, b``."""
        against = {"front_quality_speed": quality_metric(self.frame), "front_host_memory_speed": HOST_MEMORY_METRIC,
                   "front_device_memory_speed": device_memory_metric(self.frame)}  # fmt: skip
        lines = []
        for front in FRONTS:
            on = [row.combination for index, row in enumerate(self.rows) if bool(self.frame.at[index, front.column])]
            y = against[front.column]
            if on and y is not None:
                what = f"{metric_label(y)} against decode tok/s per sequence"
                lines.append(f"Pareto front of {front.short} against speed ({what}): {', '.join(on)}")
        return lines

    def hidden_line(self) -> str:
        """``Left out (no combination has them): GPU memory peak (driver), ...``; "" where none is."""
        if not self.hidden:
            return ""
        return f"Columns left out (no combination has them): {', '.join(c.title for c in self.hidden)}"


def _cell(value: float | None, unit: str) -> str:
    """A decision-table cell: seconds as ``2.10 s`` / ``861.9 ms``, the rest compact (``16.0``, ``1.60 GiB``,
    ``50.0%``): the column titles carry tok/s."""
    return format_value(value, unit) if unit == "s" else format_compact(value, unit)


def _float(value: Any) -> float | None:
    return None if value is None or pd.isna(value) else float(value)


def na_notes(rows: Sequence[Row]) -> list[str]:
    """Why decision-table figures are n/a, where the run saved a reason (a data set without references: no
    ROUGE), one line per metric and reason: ``ROUGE-Lsum n/a for tiny-fp32-cpu-bs1-prompts: the data set ...``."""
    found: dict[tuple[str, str], list[str]] = {}
    for column in DECISION_COLUMNS:
        for row in rows:
            saved = row.metric(column.metric)
            if saved is not None and saved.value is None and saved.note:
                found.setdefault((column.title, saved.note.removeprefix("n/a: ")), []).append(row.combination)
    return [f"{title} n/a for {', '.join(combos)}: {reason}" for (title, reason), combos in found.items()]


@dataclass(frozen=True)
class Guidance:
    """Hardware guidance for one combination: memory predicted by weights + KV cache against measured."""

    row: Row
    weights: float | None
    kv: float | None
    predicted: float | None
    measured: float | None
    budget: float

    @property
    def fits(self) -> bool | None:
        """Whether the measured peak (else the prediction) fits the budget; None where neither is known."""
        basis = self.measured if self.measured is not None else self.predicted
        return None if basis is None else basis <= self.budget

    @property
    def fits_text(self) -> str:
        if self.fits is None:
            return "n/a"
        text = "yes" if self.fits else "no"
        return text if self.measured is not None else f"{text} (predicted)"

    def record(self) -> dict[str, Any]:
        return {
            "combination": self.row.combination, "model": self.row.model, "precision": self.row.precision,
            "device": self.row.device, "batch_size": self.row.batch_size, "weight_bytes": self.weights,
            "kv_cache_bytes": self.kv, "predicted_bytes": self.predicted, "measured_peak_bytes": self.measured,
            "measured_metric": self.row.peak_memory_name, "budget_bytes": self.budget,
            "fits": "" if self.fits is None else self.fits,
        }  # fmt: skip


#: The columns of guidance.csv.
GUIDANCE_COLUMNS: tuple[str, ...] = (
    "combination", "model", "precision", "device", "batch_size", "weight_bytes", "kv_cache_bytes",
    "predicted_bytes", "measured_peak_bytes", "measured_metric", "budget_bytes", "fits",
)  # fmt: skip


def guidance(rows: Sequence[Row], budget: float) -> list[Guidance]:
    """Per combination: weights + KV cache (the Gemma 3 report's prediction) against the measured peak."""
    out = []
    for row in rows:
        if row.batch_size is None:
            continue
        weights, kv = row.value("weight_bytes"), row.value("kv_cache_bytes")
        predicted = None if weights is None else weights + (kv or 0.0)
        out.append(Guidance(row, weights, kv, predicted, row.peak_memory, budget))
    return out


def matrix_line(rows: Sequence[Row]) -> str:
    """``6 combinations: models ...; precisions ...; devices ...; batch sizes ...`` (``; data sets ...`` where
    the rows' test ids name them)."""

    def listed(values: Sequence[object]) -> str:
        return ", ".join(str(v) for v in dict.fromkeys(values))

    ordered = sorted(rows, key=combination_sort_key)
    return (
        f"{len(rows)} combinations: models {listed([r.model for r in ordered])}; precisions "
        f"{listed([r.precision for r in ordered])}; devices {listed([r.device for r in ordered])}; batch sizes "
        f"{listed(sorted({r.batch_size for r in ordered if r.batch_size is not None}))}"
        + (f"; data sets {listed([r.dataset for r in ordered])}" if any(r.named_dataset for r in rows) else "")
    )


def run_line(run: SavedRun) -> str:
    """``run 0003 (2026-11-15T10:00:00, commit 3333333ccccc)``."""
    commit = f", commit {run.commit[:12]}{' (dirty)' if run.dirty else ''}" if run.commit else ""
    return f"run {run.name} ({run.datetime or 'no date'}{commit})"


def _verdict_markdown(verdict: Verdict | None, limit: int) -> str:
    if verdict is None:
        return "_No gate verdict for this run (no comparison was made, or the gate is not available)._"
    text = verdict.markdown(limit=VERDICT_MARKDOWN_LIMIT).strip()
    if len(text) > limit:
        cut = text[:limit].rsplit("\n", 1)[0]
        text = f"{cut}\n\n_(verdict truncated: the full verdict is in index.html)_"
    return text


def build_markdown(
    current: SavedRun,
    rows: Sequence[Row],
    verdict: Verdict | None,
    budget: float,
    regressed: frozenset[tuple[str, str]] = frozenset(),
    page: str = "index.html",
    open_regressions: Sequence[str] = (),
    per_item: PerItemView | None = None,
) -> str:
    """GitHub markdown: verdict, machine, matrix, the decision table (and guidance), under :data:`MARKDOWN_BUDGET`
    characters. ``regressed``: the (combination, metric) pairs the verdict found regressed, listed first.
    ``open_regressions``: one line per regression change point of the runs shown that no improvement
    followed (:func:`llmbench.history.marks.change_marks`). ``per_item``: the run's per-item figures, whose
    latency pivot (its first items, folded) follows the table where it fits (default: read from ``current``)."""
    rows = sorted(rows, key=combination_sort_key)
    combos = {c for c, _ in regressed}
    rows = [r for r in rows if r.combination in combos] + [r for r in rows if r.combination not in combos]
    fingerprint = current.fingerprint or {}
    machine = fingerprint.get("cpu") or (current.machine_info.get("cpu") or {}).get("brand_raw") or "n/a"
    gpus = fingerprint.get("gpus")
    head = [
        f"## llmbench report: {run_line(current)}",
        "",
        _verdict_markdown(verdict, MARKDOWN_BUDGET // 3),
        "",
        f"**Machine:** {machine}" + (f"; GPUs: {', '.join(map(str, gpus))}" if gpus else ""),
        "",
        f"**Matrix:** {matrix_line(rows)}",
        "",
    ]
    if open_regressions:
        shown = [f"- {line}" for line in open_regressions[:20]]
        more = [f"- and {len(open_regressions) - 20} more (`llmbench history`)"] if len(open_regressions) > 20 else []
        head += [f"**Open regressions in the history ({len(open_regressions)}):**", "", *shown, *more, ""]
    fitting = [g for g in guidance(rows, budget) if g.fits]
    tail = [
        "",
        f"**Memory budget {format_bytes(budget)}:** {len(fitting)} of {len(rows)} combinations fit "
        "(measured peak; see the hardware guidance in the full report).",
        "",
        f"Full report with plots, history and side-by-side outputs: `{page}` (in the report directory "
        "or the job's artifacts).",
    ]
    key = DecisionTable.of(rows)
    fronts = "".join(f"\n\n{markdown_line(line)}" for line in key.front_sentences())
    hidden = f"\n\n{markdown_line(key.hidden_line())}." if key.hidden else ""

    items = (per_item or PerItemView.of(current, rows)).markdown()

    def render(count: int, with_items: bool = True) -> str:
        table = "**Which one to pick** (docs/reports.md):\n\n"
        table += "\n".join(markdown_table(key.header, [key.cells(index) for index in range(count)]))
        table += "".join(f"\n\nNote: {markdown_line(line)}" for line in na_notes(rows[:count])) + hidden + fronts
        more = (
            f"\n\n_{len(rows) - count} more combinations not shown (GitHub's comment limit): see the full report._"
            if count < len(rows)
            else ""
        )
        pivot = f"\n\n{items}" if items and with_items else ""
        return "\n".join(head) + "\n" + table + more + pivot + "\n" + "\n".join(tail) + "\n"

    for with_items in (True, False):  # the per-prompt pivot is the first thing left out
        text = render(len(rows), with_items)
        if len(text) <= MARKDOWN_BUDGET:
            return text
    fits, too_many = 0, len(rows)  # the most rows that fit: binary search (the text grows with each row)
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        fits, too_many = (middle, too_many) if len(render(middle, False)) <= MARKDOWN_BUDGET else (fits, middle)
    return render(fits, False)
