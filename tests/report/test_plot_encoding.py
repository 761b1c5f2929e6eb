"""How the report's plots tell models, precisions and devices apart (docs/reports.md, "How plots tell
combinations apart"): colour by model, marker and hatch by precision, line style by device, marker size
by batch size, a legend naming each; a model's colour the same in every report. Read from the plots' data
(series and their styles) and from the matplotlib artists drawn, not from pixels.

The runs are synthetic saved runs (built here), named as the tiny T5 and Gemma 3 twins and a third model.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from matplotlib.lines import Line2D
from matplotlib.patches import Rectangle

from llmbench.metrics import Metric, MetricSet
from llmbench.report.figures import MODEL_COLORS, PRECISION_MARKERS, Encoding, Plot, PlotSeries, Style
from llmbench.report.frame import Row, Table, rows_of
from llmbench.report.history_plots import history_plots
from llmbench.report.html import write_report
from llmbench.report.plots import run_plots
from llmbench.runs import SavedRun, run_from_json
from tests.report.test_report import CHROMIUM, png_size

#: Three models named as the tiny twins: tiny-t5 and tiny-t5gemma fall on one colour of the palette (the
#: CRC-32 of each name modulo its length), so these runs also take the collision path.
MODELS = ("tiny-gemma3", "tiny-t5", "tiny-t5gemma")


def _bench(model: str, precision: str, device: str, batch: int, speed: float = 40.0) -> dict[str, Any]:
    saved = MetricSet()
    saved.extend([
        Metric.of("latency_s", 0.2 + 32 / speed * batch), Metric.of("ttft_s", 0.05 * batch),
        Metric.of("decode_tok_s_per_seq", speed), Metric.of("decode_tok_s_total", speed * batch),
        Metric.of("peak_rss_bytes", 6e8 + 1e7 * batch), Metric.of("weight_bytes", 4e8),
        Metric.of("kv_cache_bytes", 1e6), Metric.of("peak_bandwidth", 26e9),
        Metric.of("itl_p50_s", 1 / speed, [1 / speed * (1 + i / 20) for i in range(9)]),
        Metric.of("rouge1", 0.5, ci=(0.4, 0.6)), Metric.of("rouge2", 0.3, ci=(0.2, 0.4)),
        Metric.of("rougeLsum", 0.45, ci=(0.35, 0.55)), Metric.of("accuracy", 0.5, ci=(0.3, 0.7)),
    ])  # fmt: skip
    name = f"test_generate[{model}-{precision}-{device}-bs{batch}]"
    info = {"model": model, "precision": precision, "device": device, "batch_size": batch, "backend": "transformers",
            "generated_tokens": 32 * batch, "metrics": saved.to_json()}  # fmt: skip
    return {"name": name, "fullname": f"benchmarks/test_generate.py::{name}", "stats": {}, "extra_info": info}


def _run(
    number: int, combinations: Sequence[tuple[str, str, str]], batches: Sequence[int] = (1, 2, 4), outputs: bool = False
) -> SavedRun:
    """A saved run of ``combinations`` at ``batches``; ``outputs``: with two generated texts saved by each."""
    benchmarks = [_bench(m, p, d, b) for m, p, d in combinations for b in batches]
    for bench in benchmarks if outputs else ():
        info = bench["extra_info"]
        info["outputs"] = {"a": f"{info['model']} says a", "b": f"{info['precision']} says b"}
    data = {"machine_info": {}, "commit_info": {"id": f"{number}" * 7}, "benchmarks": benchmarks,
            "datetime": f"2025-01-0{number}T00:00:00"}  # fmt: skip
    return run_from_json(data, f"{number:04d}", f"{number:04d}")


def _combination_series(plot: Plot) -> list[PlotSeries]:
    """The series that are one combination each (not a part of a bar, a mark or a limit)."""
    return [s for s in plot.series if s.key is not None and s.filled]


def _lines_by_label(plot: Plot) -> dict[str, Line2D]:
    return {str(line.get_label()): line for axes in plot.figure.axes for line in axes.get_lines()}


def test_three_models_at_one_precision_are_told_apart_in_every_plot() -> None:
    run = _run(1, [(m, "fp32", "cpu") for m in MODELS])
    rows = rows_of(run)
    plots = {plot.name: plot for plot in run_plots(rows)}
    colours = {m: Encoding.of(rows).color(m) for m in MODELS}
    assert len(set(colours.values())) == 3
    for name in ("latency_ttft", "decode_throughput", "tokens_vs_time", "batch_scaling", "itl_cdf"):
        plot = plots[name]
        series = _combination_series(plot)
        assert {s.key for s in series} == {(m, "fp32", "cpu") for m in MODELS}, name
        for metric in {s.label.split(" ")[0] for s in series} if name in ("latency_ttft", "batch_scaling") else {""}:
            drawn = [s for s in series if s.label.startswith(metric)]
            # No two series of one panel with the same (colour, marker, line style), each named by its model.
            assert len({(s.color, s.marker, s.linestyle) for s in drawn}) == len(drawn) == 3, (name, metric)
            assert {s.color for s in drawn} == set(colours.values())
            assert all(s.key is not None and s.key[0] in s.label for s in drawn), [s.label for s in drawn]
        # The legend names every model, and says what they share (precision and device).
        ((title, entries), *_) = plot.legends()
        assert title == "precision fp32, device cpu", name
        assert all(any(model in entry for entry in entries) for model in MODELS), (name, entries)
    # Bars: one style per model, precision and device (x names the combination), in the model's colour.
    for name in ("rouge", "accuracy", "memory"):
        plot = plots[name]
        styled = next(s for s in plot.series if s.point_styles)
        assert len(styled.x) == (3 if name != "memory" else 9), name
        assert len(set(styled.point_styles)) == 3, name
        separator = "-" if name == "memory" else " "
        for x, style in zip(styled.x, styled.point_styles, strict=True):
            (model,) = [m for m in MODELS if str(x).startswith(m + separator)]
            assert style.color == colours[model], (name, x)
        assert plot.legends(), name
    bars = [p for p in plots["rouge"].figure.axes[0].patches if isinstance(p, Rectangle)]
    assert {_hex(bar.get_facecolor()) for bar in bars} == set(colours.values())


def _hex(rgba: Any) -> str:
    from matplotlib.colors import to_hex

    return to_hex(rgba)


def test_the_artists_drawn_have_the_series_styles() -> None:
    rows = rows_of(_run(1, [(m, "fp32", "cpu") for m in MODELS[:2]] + [(MODELS[0], "q4_k_m", "cuda")]))
    plot = next(p for p in run_plots(rows) if p.name == "decode_throughput")
    lines = _lines_by_label(plot)
    for series in plot.series:
        line = lines[series.label]
        assert (_hex(line.get_color()), line.get_marker()) == (series.color, series.marker)
        assert (line.get_markerfacecolor() == "none") is not series.filled
    assert lines["tiny-gemma3 fp32 cpu"].get_linestyle() == "-"
    assert lines["tiny-gemma3 q4_k_m cuda"].get_linestyle() == "--"


def test_two_precisions_of_one_model_share_its_colour_and_differ_in_marker() -> None:
    rows = rows_of(_run(1, [("tiny-gemma3", "fp32", "cpu"), ("tiny-gemma3", "q4_k_m", "cpu")]))
    for plot in run_plots(rows):
        series = _combination_series(plot)
        fp32 = [s for s in series if s.key == ("tiny-gemma3", "fp32", "cpu")]
        q4 = [s for s in series if s.key == ("tiny-gemma3", "q4_k_m", "cpu")]
        for a, b in zip(fp32, q4, strict=True):
            assert a.color == b.color, plot.name
            assert a.marker != b.marker, plot.name
            assert a.hatch != b.hatch, plot.name
            assert a.linestyle == b.linestyle, plot.name
    rouge = next(p for p in run_plots(rows) if p.name == "rouge").series_named("rouge1")
    assert [s.hatch for s in rouge.point_styles] == ["", "xx"]  # fp32 plain, q4_k_m hatched


def test_two_devices_differ_in_line_style() -> None:
    rows = rows_of(_run(1, [("tiny-t5", "bf16", "cpu"), ("tiny-t5", "bf16", "cuda")]))
    for plot in run_plots(rows):
        series = _combination_series(plot)
        if not series:
            continue
        cpu = [s for s in series if s.key == ("tiny-t5", "bf16", "cpu")]
        cuda = [s for s in series if s.key == ("tiny-t5", "bf16", "cuda")]
        assert [s.linestyle for s in cpu] == ["solid"] * len(cpu), plot.name
        assert [s.linestyle for s in cuda] == ["dashed"] * len(cuda), plot.name
        assert [(s.color, s.marker) for s in cpu] == [(s.color, s.marker) for s in cuda], plot.name
        ((title, entries), *_) = plot.legends()
        assert title == "model tiny-t5, precision bf16", plot.name
        assert any("cuda" in entry for entry in entries), plot.name


def test_a_model_keeps_its_colour_in_reports_of_other_model_sets() -> None:
    first = Encoding.of(rows_of(_run(1, [("tiny-gemma3", "fp32", "cpu"), ("tiny-t5", "fp32", "cpu")])))
    second = Encoding.of(rows_of(_run(2, [("tiny-gemma3", "fp32", "cpu"), ("gemma3-270m", "fp32", "cpu")])))
    alone = Encoding.of(rows_of(_run(3, [("tiny-gemma3", "fp32", "cpu")])))
    assert first.color("tiny-gemma3") == second.color("tiny-gemma3") == alone.color("tiny-gemma3")
    # Two names on one colour: the one that sorts first keeps it, the other takes the next free colour; alone,
    # each has its own.
    both = Encoding.of(rows_of(_run(4, [("tiny-t5", "fp32", "cpu"), ("tiny-t5gemma", "fp32", "cpu")])))
    own = Encoding.of(rows_of(_run(5, [("tiny-t5gemma", "fp32", "cpu")])))
    assert own.color("tiny-t5gemma") == both.color("tiny-t5")
    assert both.color("tiny-t5gemma") == MODEL_COLORS[(MODEL_COLORS.index(both.color("tiny-t5")) + 1) % 10]
    # The same model in plots of two runs: the same colour.
    one = run_plots(rows_of(_run(1, [("tiny-gemma3", "fp32", "cpu"), ("tiny-t5", "fp32", "cpu")])))
    two = run_plots(rows_of(_run(2, [("tiny-gemma3", "fp32", "cpu"), ("t5gemma-s-s", "fp32", "cpu")])))
    assert one[1].series_named("tiny-gemma3 fp32").color == two[1].series_named("tiny-gemma3 fp32").color


def test_history_plots_draw_each_combination_as_the_runs_plots_do() -> None:
    # The older run has a model that falls on the colour of one in the latest run: the latest run's keeps it.
    old = _run(1, [("tiny-t5gemma", "fp32", "cpu"), ("tiny-gemma3", "fp32", "cpu")], batches=(1, 4))
    new = _run(2, [("tiny-t5", "fp32", "cpu"), ("tiny-gemma3", "fp32", "cpu"), ("tiny-gemma3", "q4_k_m", "cpu")],
               batches=(1, 4))  # fmt: skip
    table = Table.of([old, new])
    latest = {s.label: s for s in run_plots(table.of_run(new))[1].series}
    (plot,) = [p for p in history_plots(table, [old, new]) if p.name == "history_latency_s"]
    series = {s.label: s for s in plot.series}
    assert len(series) == 2 * 4
    assert series["tiny-t5-fp32-cpu-bs1"].color == latest["tiny-t5 fp32"].color
    assert series["tiny-t5gemma-fp32-cpu-bs1"].color != series["tiny-t5-fp32-cpu-bs1"].color
    assert series["tiny-gemma3-q4_k_m-cpu-bs4"].marker == latest["tiny-gemma3 q4_k_m"].marker
    # Batch sizes of one combination: the marker size; every series has a style of its own.
    assert series["tiny-gemma3-fp32-cpu-bs4"].markersize > series["tiny-gemma3-fp32-cpu-bs1"].markersize
    assert len({s.style for s in series.values()}) == len(series)
    ((_, entries),) = plot.legends()
    assert entries == list(series)


def test_styles_are_slots_of_fixed_palettes() -> None:
    class Combination:
        def __init__(self, model: str, precision: str, device: str) -> None:
            self.model, self.precision, self.device, self.batch_size = model, precision, device, None

    encoding = Encoding.of([Combination(f"model-{i}", "fp32", "cpu") for i in range(12)])
    colours = [encoding.color(f"model-{i}") for i in range(12)]
    # Ten colours; beyond ten models they repeat (each at most twice here).
    assert set(colours) == set(MODEL_COLORS)
    assert max(colours.count(c) for c in colours) == 2
    assert encoding.style("model-0", "fp32", "cpu") == Style(colours[0], PRECISION_MARKERS[0], "solid", "", 6.0)
    assert encoding.style("model-0", "nf4", "mps", 8).markersize == pytest.approx(11.0)
    assert encoding.style("model-0", "nf4", "mps").linestyle == "dashdot"


def test_rows_of_one_report_share_one_encoding() -> None:
    rows: list[Row] = rows_of(_run(1, [(m, "fp32", "cpu") for m in MODELS]))
    encoding = Encoding.of(rows[:3])  # one model only: the others take their own slots when asked
    plots = run_plots(rows, encoding)
    decode = next(p for p in plots if p.name == "decode_throughput")
    assert decode.series_named("tiny-gemma3 fp32").color == encoding.color("tiny-gemma3")
    assert decode.series_named("tiny-t5 fp32").color == encoding.color("tiny-t5")


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
def test_a_page_of_three_models_renders_in_a_browser_with_every_plot_told_apart(tmp_path: Path) -> None:
    old = _run(1, [("tiny-t5gemma", "fp32", "cpu"), ("tiny-gemma3", "fp32", "cpu")], batches=(1, 4))
    new = _run(2, [(m, "fp32", "cpu") for m in MODELS])
    files = write_report(new, [old, new], tmp_path / "report")
    # The page's plots, run and history: every combination series in a style of its own within its panel.
    for plot in files.plots:
        series = [s for s in plot.series if s.key is not None]
        for metric in (
            {s.label.split(" ")[0] for s in series} if plot.name in ("latency_ttft", "batch_scaling") else {""}
        ):
            drawn = [s for s in series if s.label.startswith(metric)]
            assert len({s.style for s in drawn}) == len(drawn), (plot.name, metric)
    history = {p.name: p for p in files.plots}["history_latency_s"]
    assert {s.key[0] for s in history.series if s.key} == {*MODELS}
    common = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,2000", "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    url = files.index.resolve().as_uri()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    assert dom.stdout.count("<img") == len(files.plots)
    assert "net::ERR_" not in dom.stderr
    # The rendered decision table marks each model in its plots' colour.
    rendered = _Cells()
    rendered.feed(dom.stdout)
    colours = {s.key[0]: s.color for plot in files.plots for s in plot.series if s.key is not None}
    marks = {(model, fill) for (model, fill, _), *_ in (row for row in rendered.sections["decision"] if row)}
    assert marks == set(colours.items())
    shot = tmp_path / "shot.png"
    subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    assert png_size(shot) == (1400, 2000)


class _Cells(HTMLParser):
    """The page's table rows by section (the ``h2`` ids): each cell's text and the swatch in it, if any (its
    fill colour and SVG path)."""

    def __init__(self) -> None:
        super().__init__()
        self.sections: dict[str, list[list[tuple[str, str | None, str | None]]]] = {}
        self._section = ""
        self._cell: list[str] | None = None
        self._swatch: tuple[str | None, str | None] = (None, None)
        self._in_swatch = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        found = dict(attrs)
        if tag == "h2":
            self._section = found.get("id") or ""
        elif tag == "tr":
            self.sections.setdefault(self._section, []).append([])
        elif tag == "td":
            self._cell, self._swatch = [], (None, None)
        elif tag == "svg" and found.get("class") == "swatch":
            self._in_swatch = True
        elif tag == "path" and self._in_swatch:
            self._swatch = (found.get("fill"), found.get("d"))

    def handle_endtag(self, tag: str) -> None:
        if tag == "svg":
            self._in_swatch = False
        elif tag == "td" and self._cell is not None:
            self.sections[self._section][-1].append(("".join(self._cell).strip(), *self._swatch))
            self._cell = None

    def handle_data(self, data: str) -> None:
        if self._cell is not None and not self._in_swatch:
            self._cell.append(data)


def test_the_page_tables_mark_each_combination_as_the_plots_draw_it(tmp_path: Path) -> None:
    # Three models; one also at a second precision. The history's run has a model on the colour of one of
    # the run's (tiny-t5gemma falls on tiny-t5's), so the page's one encoding is what both must follow.
    combinations = [(m, "fp32", "cpu") for m in MODELS] + [("tiny-gemma3", "q4_k_m", "cpu")]
    old = _run(1, [("tiny-t5gemma", "fp32", "cpu")], batches=(1,), outputs=True)
    new = _run(2, combinations, batches=(1, 2), outputs=True)
    files = write_report(new, [old, new], tmp_path / "report")
    drawn = {s.key: s for plot in files.plots for s in plot.series if s.key is not None and s.filled}
    colours = {key[0]: series.color for key, series in drawn.items()}
    markers = {key[1]: series.marker for key, series in drawn.items()}
    assert len(set(colours.values())) == 3  # three models, three colours in the plots
    assert markers == {"fp32": "o", "q4_k_m": "D"}
    page = _Cells()
    page.feed(files.index.read_text(encoding="utf-8"))
    # The decision table: model, precision, device, batch first; each row's mark in its model's plot colour.
    decision = [row for row in page.sections["decision"] if row]
    assert len(decision) == len(combinations) * 2
    paths: dict[str, set[str | None]] = {}
    for (model, fill, path), (precision, _, _), *_ in decision:
        assert fill == colours[model], model
        paths.setdefault(precision, set()).add(path)
    # One mark per precision, its plot marker's outline: fp32 a circle (curves), q4_k_m a diamond (lines).
    assert all(len(found) == 1 for found in paths.values())
    (circle,), (diamond,) = paths["fp32"], paths["q4_k_m"]
    assert circle is not None
    assert "C" in circle
    assert diamond is not None
    assert "C" not in diamond
    assert diamond.count("L") == 3
    # Side by side: each output's mark (its source names model, precision and device).
    sources = [row[0] for row in page.sections["outputs"] if row and row[0][0] != "reference summary"]
    assert len(sources) == 2 * len(combinations)
    for text, fill, path in sources:
        model, precision, _ = text.split(" ")[:3]
        assert (fill, path) == (colours[model], next(iter(paths[precision])))
    # Hardware guidance: the model cell.
    guidance = [row[0] for row in page.sections["guidance"] if row]
    assert guidance
    assert all(fill == colours[model] for model, fill, _ in guidance)
