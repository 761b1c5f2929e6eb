"""The decision view's plots: quality against speed and memory against speed, the Pareto fronts marked.

Speed is decode tokens/s per sequence (:data:`~llmbench.report.decision.SPEED_METRIC`, why there), quality
ROUGE-Lsum or else accuracy (:func:`~llmbench.report.decision.quality_metric`), memory the host's RSS and,
in a second panel where a combination measured it, the device's memory: one source per axis. Every point
is labelled with its combination (the parts that differ between the points drawn) and is a
:class:`~llmbench.report.figures.PlotSeries` of its own named by its combination id, so tests read which
point is where; each front is a series too (``Pareto front``).
"""

from __future__ import annotations

from collections.abc import Sequence

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)
from matplotlib.axes import Axes
from matplotlib.figure import Figure
from matplotlib.lines import Line2D

from llmbench.metrics import metric_label
from llmbench.report.decision import (
    FRONTS,
    HOST_MEMORY_METRIC,
    SPEED_METRIC,
    Front,
    decision_frame,
    device_memory_metric,
    front_lines,
    quality_metric,
)
from llmbench.report.figures import Encoding, Plot, PlotSeries, legend_title, no_data
from llmbench.report.frame import Row, combination_sort_key
from llmbench.units import byte_axis_scale

__all__ = ["FRONT_COLOR", "decision_plots", "memory_speed_plot", "point_label", "quality_speed_plot"]

#: The colour of the front's line and of the ring around each point on it.
FRONT_COLOR = "#222222"
_GREY = "#777777"


def _precision(row: Row) -> str:
    return str(row.info.get("precision_id") or row.precision)


def point_label(row: Row, rows: Sequence[Row]) -> str:
    """The parts of ``row``'s combination that differ between ``rows`` (``q4_k_m cpu bs1``), all of them where
    nothing differs: what a point is labelled with."""
    parts: list[tuple[str, set[object]]] = [
        (row.model, {r.model for r in rows}),
        (_precision(row), {_precision(r) for r in rows}),
        (row.device, {r.device for r in rows}),
        (f"bs{row.batch_size}", {r.batch_size for r in rows}),
        (row.named_dataset or "", {r.named_dataset for r in rows}),
        (f"prompt{row.prompt_length}" if row.prompt_length else "", {r.prompt_length for r in rows}),
    ]  # fmt: skip
    varying = [text for text, values in parts if text and len(values) > 1]
    return " ".join(varying) or row.combination


def _legend(axes: Axes, rows: Sequence[Row], encoding: Encoding, fronts: int) -> None:
    """Colour: model; marker: precision (the report's :class:`~llmbench.report.figures.Encoding`); marker size:
    batch size; the front. Entries only for what differs between ``rows``; the title says what they share."""
    handles: list[Line2D] = []
    models = list(dict.fromkeys(r.model for r in rows))
    precisions = list(dict.fromkeys(r.precision for r in rows))
    if len(models) > 1:
        handles += [Line2D([], [], linestyle="", marker="o", color=encoding.color(m), label=m) for m in models]
    if len(precisions) > 1:
        handles += [
            Line2D([], [], linestyle="", marker=encoding.style("", p, "").marker, color=_GREY, label=p)
            for p in precisions
        ]
    if fronts:
        handles.append(Line2D([], [], color=FRONT_COLOR, linestyle="--", marker="o", markerfacecolor="none",
                              label="Pareto front"))  # fmt: skip
    if handles:
        title = ", ".join(
            part for part in ("colour: model; marker: precision; size: batch", legend_title(rows)) if part
        )
        axes.legend(handles=handles, fontsize="small", loc="best", title=title, title_fontsize="small")


def _panel(
    plot: Plot,
    axes: Axes,
    rows: Sequence[Row],
    frame: pd.DataFrame,
    y: str,
    front: Front,
    encoding: Encoding,
    *,
    factor: float = 1.0,
    prefix: str = "",
) -> list[str]:
    """Draw one panel (``y`` / ``factor`` against speed, a point per row of ``rows``, whose figures are the lines of
    ``frame`` in the same order; the front): its series go to ``plot`` (labels ``prefix + combination``).
    Returns the combinations left out (a figure missing)."""
    left_out: list[str] = []
    labels: list[tuple[float, float, str]] = []
    for index, row in enumerate(rows):
        speed, value = frame.at[index, SPEED_METRIC], frame.at[index, y]
        drawn = pd.notna(speed) and pd.notna(value)
        shown = float(value) / factor if pd.notna(value) else None
        style = encoding.style_of(row, batch=True)
        x = float(speed) if pd.notna(speed) else float("nan")
        plot.series.append(PlotSeries(f"{prefix}{row.combination}", (x,), (shown,), **style.fields(), key=row.load_key))
        if not drawn or shown is None:
            left_out.append(row.combination)
            continue
        axes.plot([x], [shown], linestyle="", marker=style.marker, markersize=style.markersize + 2, color=style.color,
                  markeredgecolor="white", markeredgewidth=0.6, zorder=3)  # fmt: skip
        labels.append((x, shown, point_label(row, rows)))
    lines = front_lines(frame, front.column, SPEED_METRIC)
    for number, part in enumerate(lines):
        xs = tuple(float(v) for v in part[SPEED_METRIC])
        ys = tuple(float(v) / factor for v in part[y])
        name = f"{prefix}Pareto front" + (f" {number + 1}" if len(lines) > 1 else "")
        plot.series.append(PlotSeries(name, xs, ys, color=FRONT_COLOR))
        axes.plot(xs, ys, linestyle="--", color=FRONT_COLOR, linewidth=1.0, zorder=2)
        axes.scatter(xs, ys, s=160, facecolors="none", edgecolors=FRONT_COLOR, linewidths=1.2, zorder=4)
    _place_labels(axes, labels)
    axes.set_xlabel(f"{metric_label(SPEED_METRIC)} ({SPEED_METRIC}, tok/s)")
    axes.grid(alpha=0.3)
    _legend(axes, [r for r in rows if r.combination not in left_out], encoding, len(lines))
    return left_out


#: The labels' font size (points) and the side of a point each may go: (dx, dy) in points, alignment.
_LABEL_SIZE = 7.0
_SIDES = ((6, 4, "left", "bottom"), (6, -4, "left", "top"), (-6, 4, "right", "bottom"), (-6, -4, "right", "top"))

_Box = tuple[float, float, float, float]


def _label_box(
    anchor: tuple[float, float], size: tuple[float, float], side: tuple[int, int, str, str], scale: float
) -> _Box:
    """The box (left, bottom, right, top; display units) of a label of ``size`` put on ``side`` of ``anchor``."""
    (px, py), (width, height), (dx, dy, ha, va) = anchor, size, side
    left = px + dx * scale - (width if ha == "right" else 0.0)
    bottom = py + dy * scale - (height if va == "top" else 0.0)
    return (left, bottom, left + width, bottom + height)


def _overlap(box: _Box, others: Sequence[_Box]) -> float:
    return float(sum(
        max(0.0, min(box[2], o[2]) - max(box[0], o[0])) * max(0.0, min(box[3], o[3]) - max(box[1], o[1]))
        for o in others
    ))  # fmt: skip


def _cost(box: _Box, others: Sequence[_Box], frame: _Box) -> float:
    """How bad a label's place is: its overlap with the others, and its area outside the axes (``frame``)."""
    area = (box[2] - box[0]) * (box[3] - box[1])
    return _overlap(box, others) + area - _overlap(box, [frame])


def _place_labels(axes: Axes, labels: Sequence[tuple[float, float, str]]) -> None:
    """Write each label beside its point, on the side (of four) where it overlaps least the labels placed
    before it and the other points: a greedy placement in display units, text width estimated from its length
    (offsets in points, so they hold whatever the final layout)."""
    axes.autoscale_view()
    scale = axes.figure.dpi / 72.0
    extent = axes.get_window_extent()
    frame: _Box = (float(extent.x0), float(extent.y0), float(extent.x1), float(extent.y1))
    anchors = [(float(a), float(b)) for a, b in (axes.transData.transform((x, y)) for x, y, _ in labels)]
    others: list[_Box] = [(px - 5 * scale, py - 5 * scale, px + 5 * scale, py + 5 * scale) for px, py in anchors]
    for (x, y, text), anchor in zip(labels, anchors, strict=True):
        size = (len(text) * _LABEL_SIZE * 0.6 * scale, _LABEL_SIZE * 1.25 * scale)
        side = min(_SIDES, key=lambda s: _cost(_label_box(anchor, size, s, scale), others, frame))
        others.append(_label_box(anchor, size, side, scale))
        axes.annotate(text, (x, y), textcoords="offset points", xytext=side[:2], ha=side[2], va=side[3],
                      fontsize=_LABEL_SIZE)  # fmt: skip


def _figure(panels: int) -> tuple[Figure, list[Axes]]:
    """A wide figure (points need room for their labels), ``panels`` axes one above the other sharing x."""
    figure = Figure(figsize=(11.0, 5.2 * panels), layout="constrained")
    axes = [figure.add_subplot(panels, 1, 1)]
    axes += [figure.add_subplot(panels, 1, i + 1, sharex=axes[0]) for i in range(1, panels)]
    return figure, axes


def _generate_rows(rows: Sequence[Row]) -> list[Row]:
    return sorted((r for r in rows if r.batch_size is not None), key=combination_sort_key)


def quality_speed_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """Quality against decode speed per sequence, a point per combination, the Pareto front (higher quality
    and higher speed) marked. Series: one per combination (its id; x speed, y quality) and ``Pareto front``
    (the front's points by speed; ``Pareto front 1``, ``2`` with several data sets or prompt lengths). Points in
    ``encoding`` (default: that of ``rows``): colour by model, marker by precision, size by batch size."""
    rows = _generate_rows(rows)
    encoding = encoding or Encoding.of(rows)
    frame = decision_frame(rows)
    quality = quality_metric(frame)
    figure, (axes,) = _figure(1)
    what = metric_label(quality) if quality else "quality"
    plot = Plot("quality_vs_speed", f"Quality against speed: {what} against decode tokens/s per sequence", figure,
                xlabel="tok/s", ylabel=quality or "")  # fmt: skip
    if quality is None:
        no_data(axes, "quality figure (ROUGE-Lsum or accuracy)")
        plot.caption = "No combination saved ROUGE-Lsum or accuracy: nothing to weigh speed against."
        return plot
    front = next(f for f in FRONTS if f.column == "front_quality_speed")
    left_out = _panel(plot, axes, rows, frame, quality, front, encoding)
    axes.set_ylabel(f"{what} ({quality})")
    axes.set_title(plot.title)
    plot.caption = (
        f"One point per combination. Up is better quality ({quality}, measured once per model, precision and "
        "device over the quality set), right is faster (decode tokens/s per sequence: what one request sees; "
        "latency would mix speed with how many tokens a model chose to generate). Ringed points joined by the "
        "dashed line are the Pareto front: no other combination is at least as good on both and better on one."
        + (f" Not drawn (a figure missing): {', '.join(left_out)}." if left_out else "")
    )
    return plot


def memory_speed_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """Peak memory against decode speed per sequence, a point per combination, the Pareto front (less memory,
    more speed) marked: host RAM (RSS) on top; device memory below where a combination measured it (the first
    of the driver's figure, torch's CUDA allocated, MPS allocated some combination has). Series:
    ``peak_rss_bytes: <combination>`` and ``peak_rss_bytes: Pareto front`` (in the axis unit), likewise for
    the device memory metric. Points in ``encoding`` as in :func:`quality_speed_plot`."""
    rows = _generate_rows(rows)
    encoding = encoding or Encoding.of(rows)
    frame = decision_frame(rows)
    device = device_memory_metric(frame)
    figure, panels = _figure(2 if device else 1)
    plot = Plot("memory_vs_speed", "Memory against speed: peak memory against decode tokens/s per sequence",
                figure, xlabel="tok/s", ylabel="bytes")  # fmt: skip
    if not rows:
        no_data(panels[0], "generate benchmark")
        plot.caption = "No generate benchmark in this run."
        return plot
    sources = [(HOST_MEMORY_METRIC, "front_host_memory_speed", "host RAM peak")]
    if device:
        sources.append((device, "front_device_memory_speed", "device memory peak"))
    notes = []
    for axes, (metric, column, what) in zip(panels, sources, strict=True):
        front = next(f for f in FRONTS if f.column == column)
        shown = [r for r in rows if metric == HOST_MEMORY_METRIC or r.value(metric) is not None]
        part = frame[[r in shown for r in rows]].reset_index(drop=True)
        factor, unit = byte_axis_scale([float(v) for v in part[metric] if pd.notna(v)])
        left_out = _panel(plot, axes, shown, part, metric, front, encoding, factor=factor, prefix=f"{metric}: ")
        axes.set_ylabel(f"{what} ({metric_label(metric)}, {unit})")
        if left_out:
            notes.append(f"{what}: not drawn (not measured): {', '.join(left_out)}")
    panels[0].set_title(plot.title)
    plot.caption = (
        "One point per combination. Down is less memory, right is faster (decode tokens/s per sequence). Top: the "
        "host's peak resident memory of the process during the timed call (peak_rss_bytes)"
        + (f"; bottom: the device's peak memory ({device}), never mixed with host RSS on one axis" if device else "")
        + ". Ringed points joined by the dashed line are the Pareto front (no other combination uses at most as "
        "much memory at least as fast, and is better on one)." + "".join(f" {note}." for note in notes)
    )
    return plot


def decision_plots(rows: Sequence[Row], encoding: Encoding | None = None) -> list[Plot]:
    """The decision view's plots of one run, in page order, in the report's ``encoding`` (default: that of ``rows``)."""
    encoding = encoding or Encoding.of(rows)
    return [quality_speed_plot(rows, encoding), memory_speed_plot(rows, encoding)]
