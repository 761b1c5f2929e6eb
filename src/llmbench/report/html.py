"""The report's page, ``index.html``, and :func:`write_report` (the page, ``report.md`` and the CSV tables).

The page needs no network and no other file: plots are embedded as base64 PNG ``data:`` URIs, the
style is inline, links point only inside the page. Sections: summary (the gate's verdict, rendered
from its objects, the machine fingerprint, the matrix), which one to pick (the decision table and the
quality-against-speed and memory-against-speed plots, :mod:`llmbench.report.decision`), plots, history,
side-by-side outputs (words that differ from the output of each combination's reference marked), and hardware
guidance.
"""

from __future__ import annotations

import base64
import functools
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from matplotlib.markers import MarkerStyle
from matplotlib.path import Path as MarkerPath

from llmbench.fingerprint import describe_gpu_state
from llmbench.gate import Verdict, decision_cells
from llmbench.gate.verdict import TABLE_COLUMNS
from llmbench.history.detect import DetectorMissing
from llmbench.history.marks import change_marks
from llmbench.report.decision_plots import decision_plots
from llmbench.report.export import write_csv
from llmbench.report.figures import Encoding, Plot, Style
from llmbench.report.frame import Row, Table, regressed
from llmbench.report.history_plots import history_plots
from llmbench.report.markdown import (
    GUIDANCE_COLUMNS,
    DecisionTable,
    Guidance,
    build_markdown,
    guidance,
    matrix_line,
    na_notes,
    run_line,
)
from llmbench.report.per_item_view import PerItemView
from llmbench.report.plots import run_plots
from llmbench.report.side_by_side import ItemOutputs, marked_differences, side_by_side
from llmbench.runs import SavedRun
from llmbench.units import GiB, format_bytes, format_value

__all__ = ["DEFAULT_BUDGET_BYTES", "ReportFiles", "marked_differences", "side_by_side", "write_report"]

#: The memory budget of the hardware guidance when none is given (``--memory-budget``'s default, 8 GiB).
DEFAULT_BUDGET_BYTES = 8.0 * GiB


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote, and the plots behind the page (with their data)."""

    index: Path
    markdown: Path
    csvs: tuple[Path, ...]
    plots: tuple[Plot, ...] = field(default=(), repr=False)


# ----------------------------------------------------------------------------- HTML

_STYLE = """
body{font-family:system-ui,-apple-system,"Segoe UI",Roboto,sans-serif;margin:0 auto;max-width:1320px;
padding:0 24px 48px;color:#1b1b1b;line-height:1.45}
h1{margin:24px 0 4px}h2{border-bottom:2px solid #ddd;padding-bottom:4px;margin-top:40px}
nav a{margin-right:14px}table{border-collapse:collapse;margin:8px 0 16px;font-size:14px}
th,td{border:1px solid #d0d0d0;padding:4px 8px;text-align:left;vertical-align:top}
th{background:#f3f3f3}td.num{text-align:right;font-variant-numeric:tabular-nums;white-space:nowrap}
.na{color:#888}.fit-yes{background:#e6f4ea}.fit-no{background:#fde8e8}
.regressed{background:#fde8e8}figure{margin:16px 0 28px}figure img{max-width:100%;border:1px solid #eee}
figcaption{color:#444;font-size:14px;max-width:1000px}mark{background:#ffe27a;padding:0 1px}
mark.gap{background:#f7b3b3}.swatch{width:12px;height:12px;margin-right:5px;vertical-align:middle}
details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.muted{color:#666;font-size:14px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}
dt{font-weight:600}dd{margin:0}.warn{background:#fff4e0;padding:4px 8px}
h4{margin:12px 0 4px}.out td:first-child{white-space:nowrap}.out td:first-child .muted{white-space:normal}
.wide{overflow-x:auto}.wide table{font-size:13px}.wide td:first-child{white-space:nowrap}
.wide th,.wide td{padding:3px 6px}
"""


def _esc(value: object) -> str:
    return html.escape(str(value))


def _html_table(header: Sequence[str], rows: Sequence[Sequence[str]], row_classes: Sequence[str] = ()) -> str:
    """Cells are HTML already (escape before)."""
    head = "".join(f"<th>{h}</th>" for h in header)
    body = []
    for index, row in enumerate(rows):
        css = f' class="{row_classes[index]}"' if index < len(row_classes) and row_classes[index] else ""
        body.append(f"<tr{css}>" + "".join(row) + "</tr>")
    return f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"


def _num(text: str) -> str:
    css = "num na" if text == "n/a" else "num"
    return f'<td class="{css}">{_esc(text)}</td>'


#: SVG path commands of matplotlib's path codes (a marker's outline).
_SVG_COMMANDS = {MarkerPath.MOVETO: "M", MarkerPath.LINETO: "L", MarkerPath.CURVE3: "Q", MarkerPath.CURVE4: "C"}


@functools.cache
def _marker_svg(marker: str) -> str:
    """The outline of matplotlib's ``marker`` (its own path, at the size it draws: about one unit across) as
    an SVG path, y pointing down as in SVG."""
    style = MarkerStyle(marker)
    path = style.get_path().transformed(style.get_transform())
    parts = []
    for vertices, code in path.iter_segments(simplify=False, curves=True):
        if code == MarkerPath.CLOSEPOLY:
            parts.append("Z")
            continue
        points = vertices.reshape(-1, 2)
        parts.append(_SVG_COMMANDS[code] + " ".join(f"{x:.3f},{-y:.3f}" for x, y in points))
    return "".join(parts)


def _swatch(style: Style, what: str) -> str:
    """A combination's mark as the plots draw it (the page's :class:`~llmbench.report.figures.Encoding`):
    its precision's marker in its model's colour; ``what`` names them (its tooltip)."""
    return (
        f'<svg class="swatch" viewBox="-0.75 -0.75 1.5 1.5" role="img" aria-label="{_esc(what)}">'
        f'<path d="{_marker_svg(style.marker)}" fill="{style.color}"/></svg>'
    )


def _row_swatch(encoding: Encoding, row: Row) -> str:
    return _swatch(encoding.style_of(row), f"model {row.model} (colour), precision {row.precision} (marker)")


#: Items of a list in the gate's verdict shown before the rest is folded.
_LIST_SHOWN = 4
#: Rows of the verdict's table above which it starts folded.
_TABLE_OPEN = 12


def _list_html(items: Sequence[str]) -> str:
    """A bullet list of plain-text items: the first few shown, the rest folded."""
    shown, folded = items[:_LIST_SHOWN], items[_LIST_SHOWN:]
    out = "<ul>" + "".join(f"<li>{_esc(item)}</li>" for item in shown) + "</ul>"
    if folded:
        rest = "".join(f"<li>{_esc(item)}</li>" for item in folded)
        out += f"<details><summary>{len(folded)} more</summary><ul>{rest}</ul></details>"
    return out


def _verdict_html(verdict: Verdict | None) -> str:
    """The gate's verdict from its objects: headline, runs, machine, notes, regressions, noisy metrics and
    the table of every compared metric (regressed rows highlighted)."""
    if verdict is None:
        return (
            '<p class="muted">No gate verdict for this run: no comparison was made, or the gate is not available. '
            "Run <code>pytest benchmarks --benchmark-compare</code> to compare with a baseline.</p>"
        )
    title = "FAILED" if verdict.failed else "no regression" if verdict.compared else "nothing to compare with"
    parts = [
        f"<h4>llmbench regression gate: {title}</h4>",
        f"<p>Baseline: {_esc(verdict.baseline)}<br>Current: {_esc(verdict.current)}</p>",
    ]
    if verdict.machine_differences and verdict.fingerprint_mode != "ignore":
        strict = verdict.fingerprint_mode == "strict"
        head = "fails: --llmbench-fingerprint=strict" if strict else "compared anyway"
        parts.append(f'<p class="warn">The machine differs from the baseline\'s ({head}):</p>')
        parts.append(_list_html(verdict.machine_differences))
    if verdict.notes:
        parts.append(_list_html([f"note: {note}" for note in verdict.notes]))
    for title_text, lines in (
        ("Regressions", verdict.regression_lines()),
        ("Noisy, cannot tell", verdict.noisy_lines()),
    ):
        if lines:
            parts.append(f"<p><b>{title_text} ({len(lines)})</b></p>" + _list_html(lines))
    shown = [(result.label, decision) for result in verdict.ordered for decision in result.shown]
    if shown:
        header = [column.title for column in TABLE_COLUMNS]
        rows = [[f"<td>{_esc(cell)}</td>" for cell in (label, *decision_cells(d).as_tuple())] for label, d in shown]
        classes = ["regressed" if d.fails else "" for _, d in shown]
        opened = " open" if len(shown) <= _TABLE_OPEN else ""
        parts.append(
            f"<details{opened}><summary>all {len(shown)} compared metrics</summary>"
            f"{_html_table(header, rows, classes)}</details>"
        )
    if verdict.new:
        parts.append(f"<p>New (not in the baseline): {_esc(', '.join(verdict.new))}</p>")
    if verdict.removed:
        parts.append(f"<p>Removed (not in the current run): {_esc(', '.join(verdict.removed))}</p>")
    parts.append(f"<p><b>{_esc(verdict.summary())}</b></p>")
    return "\n".join(parts)


def _figure_html(plot: Plot) -> str:
    data = base64.b64encode(plot.png()).decode("ascii")
    return (
        f'<figure id="plot-{_esc(plot.name)}"><img alt="{_esc(plot.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_esc(plot.title)}.</b> {_esc(plot.caption)}</figcaption></figure>"
    )


def _fingerprint_html(run: SavedRun) -> str:
    fingerprint = run.fingerprint
    if fingerprint:
        items = dict(fingerprint)
        libraries = items.pop("libraries", None)
        if isinstance(libraries, Mapping):
            items["libraries"] = ", ".join(f"{k} {v}" for k, v in libraries.items() if v)
        if isinstance(items.get("memory_bytes"), int | float):
            items["memory_bytes"] = format_bytes(float(items["memory_bytes"]))
        if isinstance(items.get("gpu_state"), list):
            items["gpu_state"] = "; ".join(describe_gpu_state(s) for s in items["gpu_state"] if isinstance(s, Mapping))
        body = "".join(
            f"<dt>{_esc(k)}</dt><dd>{_esc(v if v not in (None, []) else 'n/a')}</dd>" for k, v in items.items()
        )
        return f"<dl>{body}</dl>"
    info = run.machine_info
    cpu = (info.get("cpu") or {}).get("brand_raw") if isinstance(info.get("cpu"), Mapping) else None
    basics = {"cpu": cpu or info.get("processor") or "n/a", "python": info.get("python_version", "n/a"),
              "system": f"{info.get('system', '')} {info.get('release', '')}".strip() or "n/a"}  # fmt: skip
    body = "".join(f"<dt>{_esc(k)}</dt><dd>{_esc(v)}</dd>" for k, v in basics.items())
    return f'<dl>{body}</dl><p class="muted">No llmbench machine fingerprint was saved with this run.</p>'


def _outputs_html(items: Sequence[ItemOutputs], encoding: Encoding) -> str:
    if not items:
        return '<p class="muted">No generated outputs were saved with this run (quality items: 0).</p>'
    parts = [
        '<p class="muted">For each item of the quality set: the reference summary and each model, precision '
        "and device's output, after its mark in the plots (the model's colour, the precision's marker). "
        "<mark>Marked</mark> words differ from the output of that combination's reference (the one its run "
        "compared it with: another model, precision or device, from this run or a named reference run), as "
        "named under each source; in a run saved before references per comparison, from the full-precision "
        'output of the same model and device. <mark class="gap">&#8230;</mark> stands for missing words (hover '
        "to see them).</p>"
    ]
    for index, item in enumerate(items):
        reference = (
            '<span class="na">none (the data set has no reference texts)</span>'
            if item.reference == ""
            else _esc(item.reference)
            if item.reference is not None
            else '<span class="na">n/a (the outputs file with the references is not on this machine)</span>'
        )
        rows = [["<td><b>reference summary</b></td>", f"<td>{reference}</td>"]]
        for output in item.outputs:
            model, precision, device = output.key
            swatch = _swatch(encoding.style(model, precision, device), f"model {model} (colour), precision "
                             f"{precision} (marker)")  # fmt: skip
            note = f'<br><span class="muted">{_esc(output.against)}</span>'
            if output.reference_for:
                note += f'<br><span class="muted">the reference of: {_esc(", ".join(output.reference_for))}</span>'
            rows.append([f"<td>{swatch}{_esc(output.label)}{note}</td>", f"<td>{output.marked}</td>"])
        opened = " open" if index < 3 else ""
        parts.append(
            f"<details{opened}><summary>{_esc(_item_label(item))}</summary>"
            f'<div class="out">{_html_table(["source", "text"], rows)}</div></details>'
        )
    return "\n".join(parts)


def _item_label(item: ItemOutputs) -> str:
    return f"item {item.id}" if item.dataset is None else f"data set {item.dataset}, item {item.id}"


def _guidance_html(entries: Sequence[Guidance], budget: float, encoding: Encoding) -> str:
    if not entries:
        return '<p class="muted">No generate benchmark in this run.</p>'
    rows, classes = [], []
    for g in entries:
        ratio = "n/a" if g.measured is None or not g.predicted else f"{g.measured / g.predicted:.2f}x"
        rows.append([
            f"<td>{_row_swatch(encoding, g.row)}{_esc(g.row.model)}</td>", f"<td>{_esc(g.row.precision)}</td>",
            f"<td>{_esc(g.row.device)}</td>", _num(str(g.row.batch_size)),
            _num(format_value(g.weights, "bytes")), _num(format_value(g.kv, "bytes")),
            _num(format_value(g.predicted, "bytes")), _num(format_value(g.measured, "bytes")),
            f"<td>{_esc(g.row.peak_memory_name)}</td>", _num(ratio), f"<td>{_esc(g.fits_text)}</td>",
        ])  # fmt: skip
        classes.append("" if g.fits is None else "fit-yes" if g.fits else "fit-no")
    fitting = sorted({(g.row.model, g.row.precision) for g in entries if g.fits})
    summary = ", ".join(f"{m} {p}" for m, p in fitting) or "none"
    header = ["model", "precision", "device", "batch", "weights", "KV cache", "predicted (weights + KV)",
              "measured peak", "measured as", "measured / predicted", f"fits {_esc(format_bytes(budget))}"]  # fmt: skip
    return (
        f"<p>Memory budget: <b>{_esc(format_bytes(budget))}</b> (<code>--memory-budget</code>). Model and precision "
        f"with at least one combination that fits: <b>{_esc(summary)}</b>.</p>"
        '<p class="muted">Predicted: the loaded weights plus the KV cache at the end of generation (what the Gemma 3 '
        "report tabulates). Measured: the peak during the timed call, CUDA allocated memory on a GPU and the "
        "whole process's resident memory on the CPU (which includes the Python runtime and libraries). "
        "A combination fits when its measured peak (else the prediction) is within the budget.</p>"
        + _html_table(header, rows, classes)
    )


#: The plots of the decision view, shown with its table (the others under "Plots").
_DECISION_PLOTS = ("quality_vs_speed", "memory_vs_speed")


def _decision_html(rows: Sequence[Row], regressed_combinations: set[str], encoding: Encoding) -> str:
    """The decision table (docs/reports.md, "Which one to pick"): a row per combination, each column's header
    naming the saved metric it shows (hover), each cell's saved note as its tooltip; rows the gate found
    regressed highlighted."""
    key = DecisionTable.of(rows)
    header = [_esc(title) for title in key.header[: len(key.identity) + 1]]
    header += [f'<span title="{_esc(c.metric)}">{_esc(c.title)}</span>' for c in key.columns]
    header += [_esc(title) for title in key.header[len(header) :]]
    body, classes = [], []
    for index, row in enumerate(key.rows):
        cells = key.cells(index)
        identity = cells[: len(key.identity) + 1]  # and the Pareto front column
        first = f'<td title="{_esc(row.combination)}">{_row_swatch(encoding, row)}{_esc(identity[0])}</td>'
        out = [first, *(f"<td>{_esc(cell)}</td>" for cell in identity[1:])]
        figures = cells[len(identity) : len(identity) + len(key.columns)]
        for column, text in zip(key.columns, figures, strict=True):
            note = getattr(row.metric(column.metric), "note", "")
            css = "num na" if text == "n/a" else "num"
            out.append(f'<td class="{css}"' + (f' title="{_esc(note)}"' if note else "") + f">{_esc(text)}</td>")
        out += [f"<td>{_esc(cell)}</td>" for cell in cells[len(identity) + len(key.columns) :]]
        body.append(out)
        classes.append("regressed" if row.combination in regressed_combinations else "")
    notes = [line for line in (key.hidden_line(), *key.front_sentences()) if line]
    table = _html_table(header, body, classes)
    return f'<div class="wide">{table}</div>' + "".join(f'<p class="muted">{_esc(line)}.</p>' for line in notes)


def build_page(
    current: SavedRun,
    history: Sequence[SavedRun],
    rows: Sequence[Row],
    figures: Sequence[Plot],
    verdict: Verdict | None,
    budget: float,
    root: Path | None,
    csv_names: Sequence[str],
    per_item: PerItemView | None = None,
    encoding: Encoding | None = None,
) -> str:
    """The page of ``current``'s ``rows``; ``figures``: the run's plots, then the history's (``history_*``);
    ``encoding``: the one the figures were drawn in (default: that of ``rows``), for the tables' marks."""
    encoding = encoding or Encoding.of(rows)
    combos = {c for c, _ in regressed(verdict, current)}
    decision_figures = [p for p in figures if p.name in _DECISION_PLOTS]
    plots = [p for p in figures if not p.name.startswith("history_") and p.name not in _DECISION_PLOTS]
    history_figures = [p for p in figures if p.name.startswith("history_")]
    history_html = (
        "\n".join(_figure_html(p) for p in history_figures)
        if len(history) > 1 and history_figures
        else f'<p class="muted">Only one saved run ({_esc(current.label)}): the history starts with the next one.</p>'
    )
    missing = [
        name
        for name in ("ttft_s", "decode_tok_s_per_seq", "rougeLsum", "kv_cache_bytes")
        # n/a with a saved reason (a data set without references) is said below instead
        if all(r.value(name) is None and not getattr(r.metric(name), "note", "") for r in rows)
    ]
    missing_html = (
        f'<p class="muted">Not saved by this run (shown as n/a): {_esc(", ".join(missing))}.</p>' if missing else ""
    ) + "".join(f'<p class="muted">{_esc(line)}.</p>' for line in na_notes(rows))
    sections = [
        ("summary", "Summary"), ("decision", "Which one to pick"), ("plots", "Plots"), ("history", "History"),
        ("outputs", "Side by side"), ("per-item", "Per prompt"), ("guidance", "Hardware guidance"),
    ]  # fmt: skip
    nav = "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in sections)
    history_runs = ", ".join(run.label for run in history)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>llmbench report: {_esc(run_line(current))}</title><style>{_STYLE}</style></head>
<body>
<h1>llmbench report</h1>
<p class="muted">{_esc(run_line(current))}. History: {_esc(history_runs)}.</p>
<nav>{nav}</nav>
<h2 id="summary">Summary</h2>
<h3>Verdict of the last comparison</h3>
{_verdict_html(verdict)}
<h3>Machine</h3>
{_fingerprint_html(current)}
<h3>Matrix</h3>
<p>{_esc(matrix_line(rows))}.</p>
<h2 id="decision">Which one to pick</h2>
<p class="muted">One row per combination: what one call costs, what it needs in memory (host and device in
columns of their own, each named for where it is measured; hover a header for the saved metric, a cell for
how it was measured) and what it gives in quality and drift against the reference. The Pareto front column
says on which plot's front below a combination is: nothing else is as fast and as good (or as small).</p>
{_decision_html(rows, combos, encoding)}
{missing_html}
<p class="muted">Tables as CSV next to this page: {_esc(", ".join(csv_names))}.</p>
{"".join(_figure_html(p) for p in decision_figures)}
<h2 id="plots">Plots</h2>
{"".join(_figure_html(p) for p in plots)}
<h2 id="history">History</h2>
{history_html}
<h2 id="outputs">Side by side</h2>
{_outputs_html(side_by_side(rows, root, history), encoding)}
<h2 id="per-item">Per prompt</h2>
{(per_item or PerItemView.of(current, rows)).html()}
<h2 id="guidance">Hardware guidance</h2>
{_guidance_html(guidance(rows, budget), budget, encoding)}
</body></html>
"""


def write_report(
    current: SavedRun,
    history: Sequence[SavedRun],
    output: Path,
    memory_budget: float | None = None,
    combinations: Sequence[str] = (),
    verdict: Verdict | None = None,
) -> ReportFiles:
    """Write ``index.html``, ``report.md`` and the CSV tables of ``current`` (with ``history``) to ``output``.
    ``verdict``: the gate's verdict on ``current`` (shown, and its regressions marked), if any."""
    budget = memory_budget if memory_budget is not None else DEFAULT_BUDGET_BYTES
    runs = list(history) if current in history else [*history, current]
    table = Table.of(runs, combinations)
    rows = table.of_run(current)
    root = current.path.parent.parent.parent if current.path is not None else None
    output.mkdir(parents=True, exist_ok=True)
    outputs = [
        {"dataset": item.dataset, "item": item.id, "source": label, "text": text}
        for item in side_by_side(rows, root, runs)
        for label, text in ([("reference", item.reference or "")] + [(o.label, o.text) for o in item.outputs])
    ]
    paths = [
        write_csv(output / "results.csv", table.wide()),
        write_csv(output / "summary.csv", DecisionTable.of(rows).frame),
        write_csv(output / "guidance.csv", [g.record() for g in guidance(rows, budget)], GUIDANCE_COLUMNS),
        write_csv(output / "outputs.csv", outputs, ["dataset", "item", "source", "text"]),
    ]
    per_item = PerItemView.of(current, rows)
    if not per_item.frame.empty:
        paths.append(write_csv(output / "per_item.csv", per_item.frame))
    marks = regressed(verdict, current)
    try:
        changes = change_marks(runs)
    except DetectorMissing:  # the history extra is not installed: no change-point marks
        changes = []
    encoding = Encoding.of(rows, table.rows)  # one for the page: the run's combinations first, then its history's
    figures = [*decision_plots(rows, encoding), *run_plots(rows, encoding),
               *history_plots(table, runs, marks, current, changes, encoding)]  # fmt: skip
    names = [path.name for path in paths]
    page = build_page(current, runs, rows, figures, verdict, budget, root, names, per_item, encoding)
    index = output / "index.html"
    index.write_text(page, encoding="utf-8")
    markdown = output / "report.md"
    open_regressions = [change.sentence() for change in changes if change.open]
    text = build_markdown(current, rows, verdict, budget, marks, open_regressions=open_regressions, per_item=per_item)
    markdown.write_text(text, encoding="utf-8")
    return ReportFiles(index, markdown, tuple(paths), tuple(figures))
