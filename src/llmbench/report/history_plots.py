"""The report's history plots: each metric of each combination over the saved runs, with the gate's
regressions and the change points of ``llmbench history`` marked (docs/reports.md). Each combination is
drawn in the report's one encoding (:class:`~llmbench.report.figures.Encoding`: colour by model, marker by
precision, line style by device, marker size by batch size), the same as in the run's own plots."""

from __future__ import annotations

from collections.abc import Collection, Sequence

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)
from matplotlib.axes import Axes

from llmbench.history.marks import ChangeMark
from llmbench.metrics import METRIC_FACTS
from llmbench.report.figures import (
    REGRESSION_COLOR,
    Encoding,
    Plot,
    PlotSeries,
    nan_values,
    new_figure,
)
from llmbench.report.frame import PEAK_MEMORY_METRICS, Row, Table, combination_sort_key
from llmbench.runs import SavedRun
from llmbench.units import byte_axis_scale

__all__ = ["HISTORY_METRICS", "history_plots"]

#: The metrics drawn over the saved runs (the tidy CSV has every metric of every run).
HISTORY_METRICS: tuple[str, ...] = (
    "latency_s", "ttft_s", "decode_tok_s_total", "peak_memory", "rougeLsum", "load_s",
)  # fmt: skip


def _history_frame(table: Table, runs: Sequence[SavedRun]) -> pd.DataFrame:
    """The tidy frame's generate rows, ``peak_memory`` added (each row's :attr:`Row.peak_memory_name
    <llmbench.report.frame.Row.peak_memory_name>`: the driver's figure on a GPU, RSS on the CPU) and
    ``position``: the run's place in ``runs``."""
    frame = table.frame[table.frame["batch_size"].notna()]
    chosen = {index: row.peak_memory_name for index, row in enumerate(table.rows)}
    memory = frame[[chosen.get(row) == metric for row, metric in zip(frame["row"], frame["metric"], strict=True)]]
    memory = memory.drop_duplicates("row").assign(metric="peak_memory")
    positions = {id(run): index for index, run in enumerate(runs)}
    position = [positions.get(id(row.run), -1) for row in table.rows]
    frame = pd.concat([frame, memory], ignore_index=True)
    return frame.assign(position=frame["row"].map(lambda row: position[row]))


def history_plots(
    table: Table,
    runs: Sequence[SavedRun],
    regressed: Collection[tuple[str, str]] = (),
    last: SavedRun | None = None,
    changes: Sequence[ChangeMark] = (),
    encoding: Encoding | None = None,
) -> list[Plot]:
    """One plot per metric of :data:`HISTORY_METRICS` with data: the value of each combination over the
    runs (x: run labels, oldest first). ``regressed`` holds the (combination, metric) pairs the gate
    found regressed in ``last`` (default: the last run); those points get a red cross. ``changes``: the
    change points (``llmbench history``), each a dotted line before its first run, labelled with its
    commit. ``encoding``: the report's (default: the last run's combinations placed first, then the rest of
    the table's, so they are drawn as in the run's own plots). Series: one per combination, labelled with
    its id; ``regressions`` and ``change points`` (if any)."""
    last = last if last is not None else (runs[-1] if runs else None)
    encoding = encoding or Encoding.of([r for r in table.rows if r.run is last], table.rows)
    labels = tuple(run.label for run in runs)
    samples: dict[str, Row] = {}
    for row in sorted((r for r in table.rows if r.batch_size is not None), key=combination_sort_key):
        samples.setdefault(row.combination, row)
    frame = _history_frame(table, runs)
    plots = []
    for metric in HISTORY_METRICS:
        data = frame[(frame["metric"] == metric) & frame["value"].notna() & (frame["position"] >= 0)]
        if data.empty:
            continue
        grid = data.pivot_table(index="combination", columns="position", values="value", aggfunc="first")
        grid = grid.reindex(index=[c for c in samples if c in grid.index], columns=range(len(runs)))
        facts = METRIC_FACTS.get(metric)
        factor, unit = 1.0, str(facts.unit if facts else "")
        if metric == "peak_memory":
            factor, unit = byte_axis_scale(list(data["value"]))
        figure, (axes,) = new_figure(len(runs), height=3.6, per_item=0.5)
        name = "peak memory" if metric == "peak_memory" else metric
        plot = Plot(f"history_{metric}", f"{name} over the saved runs", figure, xlabel="run", ylabel=unit,
                    caption=f"{name} ({unit}) of each combination in each saved run, oldest first; "
                    "a red cross marks a regression found by the gate in the latest run; a dotted line, "
                    "a change point in the history (llmbench history) and its commit.")  # fmt: skip
        crosses_x: list[str] = []
        crosses_y: list[float | None] = []
        names = PEAK_MEMORY_METRICS if metric == "peak_memory" else (metric,)
        for combination, values_row in grid.iterrows():
            sample = samples[str(combination)]
            values = tuple(None if pd.isna(v) else float(v) / factor for v in values_row)
            style = encoding.style_of(sample, batch=True)
            plot.series.append(PlotSeries(str(combination), labels, values, **style.fields(), key=sample.load_key))
            axes.plot(range(len(runs)), nan_values(values), label=combination, **style.line())
            if last is not None and last in runs and any((combination, n) in regressed for n in names):
                index = list(runs).index(last)
                crosses_x.append(labels[index])
                crosses_y.append(values[index])
                axes.plot([index], nan_values([values[index]]), marker="x", markersize=14, markeredgewidth=3,
                          color=REGRESSION_COLOR, linestyle="none")  # fmt: skip
        if crosses_x:
            plot.series.append(PlotSeries("regressions", tuple(crosses_x), tuple(crosses_y), color=REGRESSION_COLOR,
                                          marker="x", linestyle="none"))  # fmt: skip
        _mark_changes(axes, plot, grid, runs, [c for c in changes if c.metric in names], factor)
        axes.set_xticks(range(len(runs)), labels, rotation=30, ha="right", fontsize="small")
        axes.set_ylabel(f"{name} ({unit})")
        axes.grid(alpha=0.3)
        # Every combination named, in columns of 16 beside the plot (the ids name model, precision, device, batch).
        axes.legend(fontsize="x-small", loc="center left", bbox_to_anchor=(1.01, 0.5), ncols=-(-len(grid.index) // 16))
        axes.set_title(plot.title)
        plots.append(plot)
    return plots


def _mark_changes(
    axes: Axes, plot: Plot, grid: pd.DataFrame, runs: Sequence[SavedRun], changes: Sequence[ChangeMark], factor: float
) -> None:
    """A dotted line before the first run of each change point, its commit on top (regressions in red)."""
    index = {run.source: position for position, run in enumerate(runs)}
    shown = [(c, index[c.run]) for c in changes if c.run in index and c.combination in grid.index]
    for position in sorted({at for _, at in shown}):
        here = [c for c, at in shown if at == position]
        bad = any(c.kind == "regression" for c in here)
        color = REGRESSION_COLOR if bad else "#555555"
        axes.axvline(position - 0.5, color=color, linestyle=":", linewidth=1.5)
        commits = ", ".join(dict.fromkeys(c.commit[:7] for c in here))
        axes.annotate(commits, xy=(position - 0.5, 1.0), xycoords=("data", "axes fraction"), rotation=90,
                      va="top", ha="right", fontsize="x-small", color=color)  # fmt: skip
    if shown:
        labels = tuple(runs[at].label for _, at in shown)
        values = tuple(
            None if pd.isna(v := grid.loc[c.combination, at]) else float(v) / factor for c, at in shown
        )  # fmt: skip
        plot.series.append(PlotSeries("change points", labels, values, color=REGRESSION_COLOR))
