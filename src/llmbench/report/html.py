"""The report itself: ``index.html`` (one self-contained page), ``report.md`` and the tables as CSV.

The page needs no network and no other file: plots are embedded as base64 PNG ``data:`` URIs, the
style is inline, links point only inside the page. Sections: summary (the gate's verdict, the
machine fingerprint, the matrix, the key figures), plots, history, side-by-side outputs (words that
differ from the full-precision output marked), and hardware guidance (measured peak memory against
weights + KV cache, and which combinations fit a memory budget). ``report.md`` is GitHub markdown for
a pull-request comment or job summary, kept under GitHub's 65,536-character limit.
"""

from __future__ import annotations

import base64
import difflib
import html
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmbench.report.plots import Plot, history_plots, precision_color, run_plots
from llmbench.report.tables import (
    DEFAULT_MEMORY_BUDGET,
    ReportVerdict,
    Row,
    Run,
    Table,
    combination_sort_key,
    format_bytes,
    format_value,
    parse_size,
    precision_rank,
    write_csv,
)

__all__ = [
    "GITHUB_COMMENT_LIMIT",
    "KEY_COLUMNS",
    "ReportFiles",
    "build_markdown",
    "guidance",
    "markdown_table",
    "marked_differences",
    "side_by_side",
    "write_report",
]

#: GitHub rejects comments (and job summaries beyond 1 MiB) longer than this many characters.
GITHUB_COMMENT_LIMIT = 65_536
#: What report.md aims under, leaving room for a bot's header or footer.
MARKDOWN_BUDGET = 60_000

#: (column title, metric) of the key table; ``peak_memory`` is CUDA allocated on a GPU, RSS on the CPU.
KEY_COLUMNS: tuple[tuple[str, str], ...] = (
    ("latency", "latency_s"),
    ("TTFT", "ttft_s"),
    ("decode/seq", "decode_tok_s_per_seq"),
    ("decode/batch", "decode_tok_s_total"),
    ("MBU", "mbu"),
    ("peak memory", "peak_memory"),
    ("weights", "weight_bytes"),
    ("ROUGE-Lsum", "rougeLsum"),
    ("identical to ref.", "drift_identical_share"),
)


@dataclass(frozen=True)
class ReportFiles:
    """What :func:`write_report` wrote, and the plots behind the page (with their data)."""

    index: Path
    markdown: Path
    csvs: tuple[Path, ...]
    plots: tuple[Plot, ...] = field(default=(), repr=False)


# ----------------------------------------------------------------------------- tables


def _key_value(row: Row, metric: str) -> tuple[float | None, str]:
    if metric == "peak_memory":
        return row.peak_memory, "bytes"
    found = row.metric(metric)
    return (None, "") if found is None else (found.value, found.unit)


def key_records(rows: Sequence[Row]) -> list[dict[str, Any]]:
    """The key table with raw numbers (for summary.csv)."""
    out = []
    for row in rows:
        record: dict[str, Any] = {"combination": row.combination}
        for _, metric in KEY_COLUMNS:
            record[metric] = _key_value(row, metric)[0]
        out.append(record)
    return out


def _key_cells(row: Row) -> list[str]:
    return [format_value(*_key_value(row, metric)) for _, metric in KEY_COLUMNS]


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


def markdown_cell(text: str) -> str:
    return text.replace("\\", "\\\\").replace("|", "\\|").replace("\n", " ")


def markdown_table(header: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    """A GitHub table: header, separator with one cell per column, rows (pipes escaped)."""
    lines = ["| " + " | ".join(markdown_cell(h) for h in header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(markdown_cell(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


# ----------------------------------------------------------------------------- side by side


@dataclass(frozen=True)
class ItemOutputs:
    """One quality item: its reference summary and each combination's output (marked against the
    full-precision output of the same model and device)."""

    id: str
    reference: str | None
    #: (label, output text, marked HTML, whether this is the full-precision output itself)
    outputs: tuple[tuple[str, str, str, bool], ...]


def marked_differences(text: str, reference: str) -> str:
    """``text`` as HTML with the words that differ from ``reference`` in ``<mark>`` (difflib on words);
    where words of the reference are missing, a marked gap says which."""
    words, reference_words = text.split(), reference.split()
    matcher = difflib.SequenceMatcher(a=reference_words, b=words, autojunk=False)
    parts: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            parts.append(html.escape(" ".join(words[j1:j2])))
        elif tag in ("replace", "insert"):
            parts.append(f"<mark>{html.escape(' '.join(words[j1:j2]))}</mark>")
        else:  # delete: words of the reference that this output lacks
            missing = html.escape(" ".join(reference_words[i1:i2]), quote=True)
            parts.append(f'<mark class="gap" title="missing: {missing}">&#8230;</mark>')
    return " ".join(part for part in parts if part)


def _references(rows: Sequence[Row], root: Path | None) -> dict[str, str]:
    """Reference summaries per item, from the outputs files the runs point to (where still on disk)."""
    from llmbench.quality.scores import read_outputs

    found: dict[str, str] = {}
    for row in rows:
        if not row.outputs_file:
            continue
        candidates = [Path(row.outputs_file)]
        if root is not None and not Path(row.outputs_file).is_absolute():
            candidates.append(root / row.outputs_file)
        for path in candidates:
            if path.is_file():
                try:
                    records = read_outputs(path)
                except ValueError:
                    break
                for record in records:
                    found.setdefault(record.id, record.reference)
                break
    return found


def side_by_side(rows: Sequence[Row], root: Path | None = None) -> list[ItemOutputs]:
    """Every quality item of the rows with the reference and one output per model, precision and device."""
    per_key: dict[tuple[str, str, str], Row] = {}
    for row in sorted(rows, key=combination_sort_key):
        if row.outputs:
            per_key.setdefault(row.load_key, row)
    if not per_key:
        return []
    references = _references(list(per_key.values()), root)
    # The full-precision output of each (model, device): fp32 where it ran, else the highest precision.
    full: dict[tuple[str, str], Row] = {}
    for row in sorted(per_key.values(), key=lambda r: precision_rank(r.precision)):
        full.setdefault((row.model, row.device), row)
    ids = list(dict.fromkeys(item for row in per_key.values() for item in row.outputs))
    items = []
    for item in ids:
        outputs = []
        for key, row in per_key.items():
            text = row.outputs.get(item)
            if text is None:
                continue
            base = full[(row.model, row.device)]
            is_base = base is row
            base_text = base.outputs.get(item)
            marked = html.escape(text) if is_base or base_text is None else marked_differences(text, base_text)
            outputs.append((" ".join(key), text, marked, is_base))
        items.append(ItemOutputs(item, references.get(item), tuple(outputs)))
    return items


# ----------------------------------------------------------------------------- markdown


def _verdict_markdown(verdict: ReportVerdict | None, limit: int) -> str:
    if verdict is None:
        return "_No gate verdict for this run (no comparison was made, or the gate is not available)._"
    text = (verdict.short_markdown or verdict.markdown).strip()
    if len(text) > limit:
        cut = text[:limit].rsplit("\n", 1)[0]
        text = f"{cut}\n\n_(verdict truncated: the full verdict is in index.html)_"
    return text


def _matrix_line(rows: Sequence[Row]) -> str:
    def listed(values: Sequence[object]) -> str:
        return ", ".join(str(v) for v in dict.fromkeys(values))

    ordered = sorted(rows, key=combination_sort_key)
    return (
        f"{len(rows)} combinations: models {listed([r.model for r in ordered])}; precisions "
        f"{listed([r.precision for r in ordered])}; devices {listed([r.device for r in ordered])}; batch sizes "
        f"{listed(sorted({r.batch_size for r in ordered if r.batch_size is not None}))}"
    )


def _run_line(run: Run) -> str:
    commit = f", commit {run.commit[:12]}{' (dirty)' if run.dirty else ''}" if run.commit else ""
    return f"run {run.id} ({run.datetime or 'no date'}{commit})"


def build_markdown(
    current: Run, rows: Sequence[Row], verdict: ReportVerdict | None, budget: float, page: str = "index.html"
) -> str:
    """GitHub markdown: verdict, machine, matrix, key table (and guidance), under :data:`MARKDOWN_BUDGET`
    characters: with a large matrix, regressed combinations first, then as many rows as fit, and a
    pointer to the full page."""
    rows = sorted(rows, key=combination_sort_key)
    regressed = {c for c, _ in verdict.regressed} if verdict else set()
    rows = [r for r in rows if r.combination in regressed] + [r for r in rows if r.combination not in regressed]
    fingerprint = current.fingerprint or {}
    machine = fingerprint.get("cpu") or (current.machine_info.get("cpu") or {}).get("brand_raw") or "n/a"
    gpus = fingerprint.get("gpus")
    head = [
        f"## llmbench report: {_run_line(current)}",
        "",
        _verdict_markdown(verdict, MARKDOWN_BUDGET // 3),
        "",
        f"**Machine:** {machine}" + (f"; GPUs: {', '.join(map(str, gpus))}" if gpus else ""),
        "",
        f"**Matrix:** {_matrix_line(rows)}",
        "",
    ]
    fitting = [g for g in guidance(rows, budget) if g.fits]
    tail = [
        "",
        f"**Memory budget {format_bytes(budget)}:** {len(fitting)} of {len(rows)} combinations fit "
        "(measured peak; see the hardware guidance in the full report).",
        "",
        f"Full report with plots, history and side-by-side outputs: `{page}` (in the report directory "
        "or the job's artifacts).",
    ]
    header = ["combination", *(title for title, _ in KEY_COLUMNS)]

    def render(count: int) -> str:
        table = markdown_table(header, [[r.combination, *_key_cells(r)] for r in rows[:count]])
        more = (
            f"\n\n_{len(rows) - count} more combinations not shown (GitHub's comment limit): see the full report._"
            if count < len(rows)
            else ""
        )
        return "\n".join(head) + "\n" + table + more + "\n" + "\n".join(tail) + "\n"

    text = render(len(rows))
    if len(text) <= MARKDOWN_BUDGET:
        return text
    fits, too_many = 0, len(rows)  # the most rows that fit: binary search (the text grows with each row)
    while too_many - fits > 1:
        middle = (fits + too_many) // 2
        fits, too_many = (middle, too_many) if len(render(middle)) <= MARKDOWN_BUDGET else (fits, middle)
    return render(fits)


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
mark.gap{background:#f7b3b3}.swatch{display:inline-block;width:11px;height:11px;margin-right:5px;
border-radius:2px;vertical-align:middle}details{margin:6px 0}summary{cursor:pointer;font-weight:600}
.muted{color:#666;font-size:14px}dl{display:grid;grid-template-columns:max-content auto;gap:2px 16px}
dt{font-weight:600}dd{margin:0}.warn{background:#fff4e0;padding:4px 8px}
h4{margin:12px 0 4px}.out td:first-child{white-space:nowrap}
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


def _swatch(precision: str) -> str:
    return f'<span class="swatch" style="background:{precision_color(precision)}"></span>'


def _inline(text: str) -> str:
    """Escaped text with markdown's **bold** and `code` kept as such."""
    escaped = _esc(text.replace("\\|", "|"))
    escaped = re.sub(r"\*\*(.+?)\*\*", r"<b>\1</b>", escaped)
    return re.sub(r"`([^`]+)`", r"<code>\1</code>", escaped)


#: Items of a list in the gate's verdict shown before the rest is folded.
_LIST_SHOWN = 4


def _markdown_to_html(text: str) -> str:
    """The gate's markdown, minimally: headings, paragraphs, bullet lists, quotes and pipe tables (a long
    table folded into a ``<details>``, regressed rows highlighted)."""
    blocks: list[str] = []
    table: list[list[str]] = []
    items: list[str] = []

    def flush() -> None:
        if items:
            # A long list (notes, noisy metrics): the first few shown, the rest folded.
            shown, folded = items[:_LIST_SHOWN], items[_LIST_SHOWN:]
            blocks.append("<ul>" + "".join(f"<li>{item}</li>" for item in shown) + "</ul>")
            if folded:
                rest = "".join(f"<li>{item}</li>" for item in folded)
                blocks.append(f"<details><summary>{len(folded)} more</summary><ul>{rest}</ul></details>")
            items.clear()
        if table:
            header, *body = table
            classes = ["regressed" if any(c.strip() == "regressed" for c in r) else "" for r in body]
            rendered = _html_table(
                [_inline(c) for c in header], [[f"<td>{_inline(c)}</td>" for c in r] for r in body], classes
            )
            opened = " open" if len(body) <= 12 else ""
            blocks.append(f"<details{opened}><summary>all {len(body)} compared metrics</summary>{rendered}</details>")
            table.clear()

    for line in text.splitlines():
        stripped = line.strip()
        if stripped.startswith("|"):
            cells = [c.strip() for c in re.split(r"(?<!\\)\|", stripped.strip("|"))]
            if not all(re.fullmatch(r":?-+:?", c) for c in cells if c):
                table.append(cells)
            continue
        if stripped.startswith(("- ", "> - ")):
            items.append(_inline(stripped.removeprefix("> ").removeprefix("- ")))
            continue
        flush()
        if stripped.startswith("#"):
            blocks.append(f"<h4>{_inline(stripped.lstrip('#').strip())}</h4>")
        elif stripped.startswith(">"):
            blocks.append(f'<p class="warn">{_inline(stripped.lstrip("> "))}</p>')
        elif stripped:
            blocks.append(f"<p>{_inline(stripped)}</p>")
    flush()
    return "\n".join(blocks)


def _figure_html(plot: Plot) -> str:
    data = base64.b64encode(plot.png()).decode("ascii")
    return (
        f'<figure id="plot-{_esc(plot.name)}"><img alt="{_esc(plot.title)}" src="data:image/png;base64,{data}">'
        f"<figcaption><b>{_esc(plot.title)}.</b> {_esc(plot.caption)}</figcaption></figure>"
    )


def _fingerprint_html(run: Run) -> str:
    fingerprint = run.fingerprint
    if fingerprint:
        items = dict(fingerprint)
        libraries = items.pop("libraries", None)
        if isinstance(libraries, Mapping):
            items["libraries"] = ", ".join(f"{k} {v}" for k, v in libraries.items() if v)
        if isinstance(items.get("memory_bytes"), int | float):
            items["memory_bytes"] = format_bytes(float(items["memory_bytes"]))
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


def _outputs_html(items: Sequence[ItemOutputs]) -> str:
    if not items:
        return '<p class="muted">No generated outputs were saved with this run (quality items: 0).</p>'
    parts = [
        '<p class="muted">For each item of the quality set: the reference summary and each model, precision '
        "and device's output. <mark>Marked</mark> words differ from the full-precision output of the same model "
        'and device (the row marked "reference for differences"); <mark class="gap">&#8230;</mark> stands for '
        "missing words (hover to see them).</p>"
    ]
    for index, item in enumerate(items):
        reference = (
            _esc(item.reference)
            if item.reference is not None
            else '<span class="na">n/a (the outputs file with the references is not on this machine)</span>'
        )
        rows = [["<td><b>reference summary</b></td>", f"<td>{reference}</td>"]]
        for label, _, marked, is_base in item.outputs:
            precision = label.split(" ")[1] if " " in label else label
            note = ' <span class="muted">(reference for differences)</span>' if is_base else ""
            rows.append([f"<td>{_swatch(precision)}{_esc(label)}{note}</td>", f"<td>{marked}</td>"])
        opened = " open" if index < 3 else ""
        parts.append(
            f"<details{opened}><summary>item {_esc(item.id)}</summary>"
            f'<div class="out">{_html_table(["source", "text"], rows)}</div></details>'
        )
    return "\n".join(parts)


def _guidance_html(entries: Sequence[Guidance], budget: float) -> str:
    if not entries:
        return '<p class="muted">No generate benchmark in this run.</p>'
    rows, classes = [], []
    for g in entries:
        ratio = "n/a" if g.measured is None or not g.predicted else f"{g.measured / g.predicted:.2f}x"
        rows.append([
            f"<td>{_swatch(g.row.precision)}{_esc(g.row.model)}</td>", f"<td>{_esc(g.row.precision)}</td>",
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


def build_page(
    current: Run,
    history: Sequence[Run],
    table: Table,
    plots: Sequence[Plot],
    history_figures: Sequence[Plot],
    verdict: ReportVerdict | None,
    budget: float,
    root: Path | None,
    csv_names: Sequence[str],
) -> str:
    rows = table.of_run(current)
    regressed = {c for c, _ in verdict.regressed} if verdict else set()
    key_rows = [
        [f"<td>{_swatch(r.precision)}{_esc(r.combination)}</td>", *(_num(c) for c in _key_cells(r))] for r in rows
    ]
    key_classes = ["regressed" if r.combination in regressed else "" for r in rows]
    verdict_html = (
        _markdown_to_html(verdict.markdown)
        if verdict is not None
        else '<p class="muted">No gate verdict for this run: no comparison was made, or the gate is not available. '
        "Run <code>pytest benchmarks --benchmark-compare</code> to compare with a baseline.</p>"
    )
    history_html = (
        "\n".join(_figure_html(p) for p in history_figures)
        if len(history) > 1 and history_figures
        else f'<p class="muted">Only one saved run ({_esc(current.label)}): the history starts with the next one.</p>'
    )
    missing = [
        name
        for name in ("ttft_s", "decode_tok_s_per_seq", "rougeLsum", "kv_cache_bytes")
        if all(r.value(name) is None for r in rows)
    ]
    missing_html = (
        f'<p class="muted">Not saved by this run (shown as n/a): {_esc(", ".join(missing))}.</p>' if missing else ""
    )
    sections = [
        ("summary", "Summary"), ("plots", "Plots"), ("history", "History"),
        ("outputs", "Side by side"), ("guidance", "Hardware guidance"),
    ]  # fmt: skip
    nav = "".join(f'<a href="#{anchor}">{title}</a>' for anchor, title in sections)
    history_runs = ", ".join(run.label for run in history)
    return f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width, initial-scale=1">
<title>llmbench report: {_esc(_run_line(current))}</title><style>{_STYLE}</style></head>
<body>
<h1>llmbench report</h1>
<p class="muted">{_esc(_run_line(current))}. History: {_esc(history_runs)}.</p>
<nav>{nav}</nav>
<h2 id="summary">Summary</h2>
<h3>Verdict of the last comparison</h3>
{verdict_html}
<h3>Machine</h3>
{_fingerprint_html(current)}
<h3>Matrix</h3>
<p>{_esc(_matrix_line(rows))}.</p>
{_html_table(["combination", *(_esc(t) for t, _ in KEY_COLUMNS)], key_rows, key_classes)}
{missing_html}
<p class="muted">Tables as CSV next to this page: {_esc(", ".join(csv_names))}.</p>
<h2 id="plots">Plots</h2>
{"".join(_figure_html(p) for p in plots)}
<h2 id="history">History</h2>
{history_html}
<h2 id="outputs">Side by side</h2>
{_outputs_html(side_by_side(rows, root))}
<h2 id="guidance">Hardware guidance</h2>
{_guidance_html(guidance(rows, budget), budget)}
</body></html>
"""


def write_report(
    current: Run,
    history: Sequence[Run],
    output: Path,
    memory_budget: float | None = None,
    combinations: Sequence[str] = (),
    verdict: ReportVerdict | None = None,
) -> ReportFiles:
    """Write ``index.html``, ``report.md`` and the CSV tables of ``current`` (with ``history``) to ``output``."""
    budget = memory_budget if memory_budget is not None else parse_size(DEFAULT_MEMORY_BUDGET)
    runs = list(history) if current in history else [*history, current]
    table = Table.of(runs, combinations)
    rows = table.of_run(current)
    root = current.path.parent.parent.parent if current.path is not None else None
    output.mkdir(parents=True, exist_ok=True)
    csvs = {
        "results.csv": table.records(),
        "summary.csv": key_records(rows),
        "guidance.csv": [g.record() for g in guidance(rows, budget)],
        "outputs.csv": [
            {"item": item.id, "source": label, "text": text}
            for item in side_by_side(rows, root)
            for label, text in ([("reference", item.reference or "")] + [(o[0], o[1]) for o in item.outputs])
        ],
    }
    columns = {
        "summary.csv": ["combination", *(m for _, m in KEY_COLUMNS)],
        "guidance.csv": list(Guidance(rows[0], None, None, None, None, budget).record()) if rows else ["combination"],
        "outputs.csv": ["item", "source", "text"],
    }
    paths = []
    for name, records in csvs.items():
        path = output / name
        write_csv(path, records, columns.get(name))
        paths.append(path)
    plots = run_plots(rows)
    figures = history_plots(table, runs, verdict.regressed if verdict else (), current)
    page = build_page(current, runs, table, plots, figures, verdict, budget, root, list(csvs))
    index = output / "index.html"
    index.write_text(page, encoding="utf-8")
    markdown = output / "report.md"
    markdown.write_text(build_markdown(current, rows, verdict, budget), encoding="utf-8")
    return ReportFiles(index, markdown, tuple(paths), tuple([*plots, *figures]))
