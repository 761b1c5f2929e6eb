"""The report's plots of one run: one function per plot, each returning the Figure and the data drawn in it.

Every :class:`~llmbench.report.figures.Plot` carries its series (the exact numbers drawn and how each is
drawn), so tests check the data rather than pixels. One encoding in every plot and every report
(:class:`~llmbench.report.figures.Encoding`): colour by model, marker and bar hatch by precision, line
style and bar edge by device, marker size by batch size where batch size is not the x axis; each plot
function takes the report's encoding (default: the encoding of its rows). The plots over the saved runs:
:mod:`llmbench.report.history_plots`.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.patches import Patch

from llmbench.metrics import Metric
from llmbench.report.figures import (
    Encoding,
    Plot,
    PlotSeries,
    Style,
    legend_title,
    nan_values,
    new_figure,
    no_data,
    scaled,
)
from llmbench.report.frame import Row, combination_sort_key
from llmbench.units import byte_axis_scale

__all__ = [
    "accuracy_plot",
    "batch_scaling_plot",
    "decode_throughput_plot",
    "itl_cdf_plot",
    "latency_ttft_plot",
    "memory_breakdown_plot",
    "prompt_length_plot",
    "rouge_plot",
    "run_plots",
    "tokens_vs_time_plot",
]


def _legend(axes: Axes, rows: Sequence[Row], handles: Sequence[Artist] | None = None) -> None:
    """The plot's legend (``handles``: its entries, default: the labelled artists) beside the axes, where it
    hides no data, titled with what every row shares (which its entries leave out)."""
    options: dict[str, Any] = {"title": legend_title(rows) or None, "fontsize": "small", "title_fontsize": "small",
                               "loc": "upper left", "bbox_to_anchor": (1.01, 1.0)}  # fmt: skip
    if handles is not None:
        options["handles"] = list(handles)
    axes.legend(**options)


def _combination_axis(axes: Axes, rows: Sequence[Row], positions: Sequence[float], encoding: Encoding) -> None:
    """Combination ids under the bars, each in its model's colour."""
    axes.set_xticks(list(positions), [r.combination for r in rows], rotation=45, ha="right", fontsize="small")
    for label, row in zip(axes.get_xticklabels(), rows, strict=True):
        label.set_color(encoding.color(row.model))


def _one_per_load_key(rows: Sequence[Row]) -> list[Row]:
    """The first row of each (model, precision, device): quality is measured once for all batch sizes."""
    seen: dict[tuple[str, str, str], Row] = {}
    for row in rows:
        seen.setdefault(row.load_key, row)
    return list(seen.values())


def _with_batch(rows: Sequence[Row]) -> list[Row]:
    return sorted((r for r in rows if r.batch_size is not None), key=combination_sort_key)


def _group_label(row: Row, rows: Sequence[Row]) -> str:
    """``bf16`` where every row shares model and device, else ``gemma3-270m bf16 cuda``."""
    parts = []
    if len({r.model for r in rows}) > 1:
        parts.append(row.model)
    parts.append(row.precision)
    if len({r.device for r in rows}) > 1:
        parts.append(row.device)
    return " ".join(parts)


def _groups(rows: Sequence[Row]) -> dict[str, list[Row]]:
    groups: dict[str, list[Row]] = {}
    for row in rows:
        groups.setdefault(_group_label(row, rows), []).append(row)
    return groups


def _interval(metrics: Sequence[Metric | None]) -> tuple[tuple[float | None, ...], ...]:
    """Values, interval ends and the error bars of ``metrics`` (a bar per metric; None: n/a, no error bar)."""
    values = tuple(None if m is None else m.value for m in metrics)
    low = tuple(None if m is None or m.ci is None else m.ci[0] for m in metrics)
    high = tuple(None if m is None or m.ci is None else m.ci[1] for m in metrics)
    below = tuple(0.0 if v is None or lo is None else max(v - lo, 0.0) for v, lo in zip(values, low, strict=True))
    above = tuple(0.0 if v is None or hi is None else max(hi - v, 0.0) for v, hi in zip(values, high, strict=True))
    return values, low, high, below, above


def _styled_bars(
    axes: Axes,
    xs: Sequence[float],
    values: Sequence[float | None],
    styles: Sequence[Style],
    errors: tuple[Sequence[float | None], ...] = (),
    **common: object,
) -> None:
    """One bar per x in its combination's style (n/a: no bar), with error bars where given."""
    for index, (x, value, style) in enumerate(zip(xs, values, styles, strict=True)):
        yerr = [[errors[0][index]], [errors[1][index]]] if errors else None
        axes.bar([x], nan_values([value]), yerr=yerr, **style.bar(), **common)  # type: ignore[arg-type]


# ----------------------------------------------------------------------------- per-run plots


def latency_ttft_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """Latency of one ``generate`` call and time to the first token, per combination (bars in the
    combination's style). Series: ``latency_s <group>`` and ``ttft_s <group>`` (group: model, precision and
    device, the parts every row shares left out), x the combination ids."""
    rows = _with_batch(rows)
    encoding = encoding or Encoding.of(rows)
    figure, (top, bottom) = new_figure(len(rows), height=3.6, panels=2)
    plot = Plot("latency_ttft", "Latency and time to first token per combination", figure,
                xlabel="combination", ylabel="s",
                caption="Median over the timed rounds. Top: one generate call on the whole batch; bottom: "
                "time to the first generated token (prefill).")  # fmt: skip
    if not rows:
        no_data(top, "generate benchmark")
        no_data(bottom, "generate benchmark")
        return plot
    positions = list(range(len(rows)))
    groups = _groups(rows)
    for axes, metric, what in ((top, "latency_s", "latency (s)"), (bottom, "ttft_s", "time to first token (s)")):
        values = [r.value(metric) for r in rows]
        _styled_bars(axes, positions, values, [encoding.style_of(r) for r in rows])
        axes.set_ylabel(what)
        axes.grid(axis="y", alpha=0.3)
        for label, group in groups.items():
            plot.series.append(
                PlotSeries(f"{metric} {label}", tuple(r.combination for r in group),
                           tuple(r.value(metric) for r in group), **encoding.style_of(group[0]).fields(),
                           key=group[0].load_key)
            )  # fmt: skip
        for x, value in zip(positions, values, strict=True):
            if value is None:
                axes.text(x, 0, "n/a", ha="center", va="bottom", fontsize="x-small")
    top.set_xticks([])
    _combination_axis(bottom, rows, positions, encoding)
    _legend(top, rows, [encoding.style_of(g[0]).bar_handle(label) for label, g in groups.items()])
    top.set_title(plot.title)
    return plot


def bandwidth_limit(row: Row) -> tuple[float | None, bool]:
    """The decode rate the memory bandwidth allows one sequence: peak bandwidth / bytes read per step.

    A decode step reads all the weights and the KV cache (Databricks, "LLM Inference Performance
    Engineering", MBU): limit = peak_bandwidth / (weight_bytes + kv_cache_bytes) tokens/s per sequence.
    ``kv_cache_bytes`` is the cache at the end of generation (slightly more than the mean a step reads,
    so the drawn limit is slightly low). Returns (limit, whether the KV cache was known).
    """
    bandwidth, weights, kv = row.value("peak_bandwidth"), row.value("weight_bytes"), row.value("kv_cache_bytes")
    if bandwidth is None or weights is None or weights + (kv or 0) <= 0:
        return None, kv is not None
    return bandwidth / (weights + (kv or 0.0)), kv is not None


def decode_throughput_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """Decode tokens/s per sequence against batch size, one line per model, precision and device, with the
    memory-bandwidth limit of each as a thin line in the same style with hollow markers. Series:
    ``<group>`` (measured) and ``<group> bandwidth limit`` (``filled`` False), x the batch sizes."""
    rows = _with_batch(rows)
    encoding = encoding or Encoding.of(rows)
    figure, (axes,) = new_figure(0)
    plot = Plot("decode_throughput", "Decode speed per sequence against the memory-bandwidth limit", figure,
                xlabel="batch size", ylabel="tok/s",
                caption="Filled markers: measured decode tokens/s per sequence (tokens after the first / time "
                "after the first). Thin line, hollow markers: peak bandwidth / (weight bytes + KV-cache bytes), "
                "the rate at which memory can feed one decode step; MBU is the measured share of it.")  # fmt: skip
    drawn = False
    for label, group in _groups(rows).items():
        style = encoding.style_of(group[0])
        xs = tuple(float(r.batch_size or 0) for r in group)
        measured = tuple(r.value("decode_tok_s_per_seq") for r in group)
        limits = [bandwidth_limit(r) for r in group]
        key = group[0].load_key
        plot.series.append(PlotSeries(label, xs, measured, **style.fields(), key=key))
        plot.series.append(PlotSeries(f"{label} bandwidth limit", xs, tuple(lim for lim, _ in limits),
                                      **style.hollow().fields(), key=key))  # fmt: skip
        axes.plot(xs, nan_values(measured), label=label, linewidth=2.0, **style.line())
        if any(lim is not None for lim, _ in limits):
            weights_only = "" if all(known for _, known in limits) else " (weights only)"
            axes.plot(xs, nan_values([lim for lim, _ in limits]), linewidth=1.0, alpha=0.7,
                      label=f"{label} bandwidth limit{weights_only}", **style.hollow().line())  # fmt: skip
        drawn = drawn or any(v is not None for v in measured)
    if not rows:
        no_data(axes, "generate benchmark")
        return plot
    axes.set_xlabel("batch size")
    axes.set_ylabel("decode speed per sequence (tok/s)")
    axes.set_xticks(sorted({float(r.batch_size or 0) for r in rows}))
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    _legend(axes, rows)
    axes.set_title(plot.title if drawn else f"{plot.title} (no decode figures)")
    return plot


def memory_breakdown_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """Peak memory per combination as stacked grey bars: weights, KV cache and the rest (runtime,
    activations, allocator), each bar outlined and hatched in its combination's style. Series: ``weights``,
    ``KV cache``, ``rest``, ``peak`` in the plot's unit, x the ids; ``peak`` has each bar's style."""
    rows = _with_batch(rows)
    encoding = encoding or Encoding.of(rows)
    figure, (axes,) = new_figure(len(rows))
    peaks = [r.peak_memory for r in rows]
    factor, unit = byte_axis_scale([*peaks, *(r.value("weight_bytes") for r in rows)])
    devices = {r.peak_memory_name for r in rows}
    what = " / ".join(sorted(devices)) or "peak memory"
    plot = Plot("memory", "Peak memory per combination: weights, KV cache and the rest", figure,
                xlabel="combination", ylabel=unit,
                caption=f"Peak during the measured call ({what}). Weights: bytes of the loaded weights; KV "
                "cache: its size at the end of generation; rest: the peak minus both (runtime, activations; "
                "on the CPU the whole process's resident memory). Outline: model (colour), precision (hatch), "
                "device (line style).")  # fmt: skip
    if not rows:
        no_data(axes, "generate benchmark")
        return plot
    weights = [r.value("weight_bytes") for r in rows]
    kv = [r.value("kv_cache_bytes") for r in rows]
    rest = [
        None if p is None else max(p - (w or 0.0) - (k or 0.0), 0.0) for p, w, k in zip(peaks, weights, kv, strict=True)
    ]
    ids = tuple(r.combination for r in rows)
    positions = list(range(len(rows)))
    bottom = [0.0] * len(rows)
    parts = (("weights", weights, "#4c4c4c"), ("KV cache", kv, "#9e9e9e"), ("rest", rest, "#d9d9d9"))
    for label, values, color in parts:
        part = scaled(values, factor)
        plot.series.append(PlotSeries(label, ids, part, color=color))
        heights = [0.0 if v is None else v for v in part]
        axes.bar(positions, heights, bottom=bottom, color=color, label=label, edgecolor="white")
        bottom = [b + h for b, h in zip(bottom, heights, strict=True)]
    styles = tuple(encoding.style_of(r) for r in rows)
    plot.series.append(PlotSeries("peak", ids, scaled(peaks, factor), point_styles=styles))
    for x, height, style in zip(positions, bottom, styles, strict=True):
        axes.bar([x], [height], **style.outline())
    for x, peak in zip(positions, peaks, strict=True):
        if peak is None:
            axes.text(x, 0, "peak n/a", ha="center", va="bottom", fontsize="x-small", rotation=90)
    axes.set_ylabel(f"peak memory ({unit})")
    axes.grid(axis="y", alpha=0.3)
    _combination_axis(axes, rows, positions, encoding)
    handles = [Patch(facecolor=color, label=label) for label, _, color in parts]
    handles += [encoding.style_of(g[0]).bar_handle(label, outline=True) for label, g in _groups(rows).items()]
    _legend(axes, rows, handles)
    axes.set_title(plot.title)
    return plot


def tokens_vs_time_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """Generated tokens of the batch against the time of the call, one line per model, precision and
    device through its batch sizes, each point annotated with its batch size. Series: ``<group>`` with x
    latency (s), y generated tokens."""
    rows = _with_batch(rows)
    encoding = encoding or Encoding.of(rows)
    figure, (axes,) = new_figure(0)
    plot = Plot("tokens_vs_time", "Generated tokens against generation time", figure,
                xlabel="s", ylabel="tokens",
                caption="Tokens generated by one call on the batch (all sequences) against that call's "
                "latency; labels are batch sizes. Steeper is faster.")  # fmt: skip
    for label, group in _groups(rows).items():
        points = [(r.value("latency_s"), _int_value(r.info.get("generated_tokens")), r.batch_size) for r in group]
        style = encoding.style_of(group[0])
        plot.series.append(
            PlotSeries(label, tuple(float("nan") if t is None else t for t, _, _ in points),
                       tuple(None if n is None else float(n) for _, n, _ in points), **style.fields(),
                       key=group[0].load_key)
        )  # fmt: skip
        shown = [(t, n, b) for t, n, b in points if t is not None and n is not None]
        axes.plot([t for t, _, _ in shown], [n for _, n, _ in shown], label=label, **style.line())
        for t, n, b in shown:
            axes.annotate(f"bs{b}", (t, n), textcoords="offset points", xytext=(4, 4), fontsize="x-small")
    if not rows:
        no_data(axes, "generate benchmark")
        return plot
    axes.set_xlabel("generation time of the batch (s)")
    axes.set_ylabel("generated tokens (whole batch)")
    axes.grid(alpha=0.3)
    _legend(axes, rows)
    axes.set_title(plot.title)
    return plot


def _int_value(value: object) -> int | None:
    if isinstance(value, int | float) and not isinstance(value, bool):
        return int(value)
    return None


ROUGE_METRICS = ("rouge1", "rouge2", "rougeLsum")


def rouge_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """ROUGE F1 per model, precision and device (measured once for all batch sizes) with its bootstrap
    interval as error bars, each bar in its combination's style, shaded by ROUGE type. Series: ``rouge1``,
    ``rouge2``, ``rougeLsum`` with x ``model precision device``, ``low`` / ``high`` the interval,
    ``point_styles`` each bar's style."""
    encoding = encoding or Encoding.of(rows)
    chosen = [r for r in _one_per_load_key(_with_batch(rows)) if any(r.metric(m) is not None for m in ROUGE_METRICS)]
    figure, (axes,) = new_figure(len(chosen) * 2)
    plot = Plot("rouge", "Summary quality (ROUGE F1) with 95% bootstrap intervals", figure,
                xlabel="model precision device", ylabel="F1",
                caption="Mean F1 against the reference summaries over the quality items; error bars: the "
                "bootstrap interval saved with the run. Colour: model; hatch: precision; edge: device; "
                "shade: ROUGE type.")  # fmt: skip
    if not chosen:
        no_data(axes, "ROUGE figure")
        return plot
    labels = tuple(" ".join(r.load_key) for r in chosen)
    styles = tuple(encoding.style_of(r) for r in chosen)
    width = 0.8 / len(ROUGE_METRICS)
    shades = dict(zip(ROUGE_METRICS, (1.0, 0.45, 0.7), strict=True))
    for index, (name, alpha) in enumerate(shades.items()):
        values, low, high, below, above = _interval([r.metric(name) for r in chosen])
        plot.series.append(PlotSeries(name, labels, values, low, high, point_styles=styles))
        xs = [i + (index - 1) * width for i in range(len(chosen))]
        _styled_bars(axes, xs, values, styles, (below, above), width=width, capsize=3, alpha=alpha)
    axes.set_xticks(range(len(chosen)), labels, rotation=30, ha="right", fontsize="small")
    for tick, row in zip(axes.get_xticklabels(), chosen, strict=True):
        tick.set_color(encoding.color(row.model))
    axes.set_ylabel("ROUGE F1")
    axes.set_ylim(0, 1)
    axes.grid(axis="y", alpha=0.3)
    handles = [Patch(facecolor="#555555", alpha=alpha, label=f"shade: {name}") for name, alpha in shades.items()]
    handles += [style.bar_handle(label) for label, style in dict(zip(labels, styles, strict=True)).items()]
    _legend(axes, chosen, handles)
    axes.set_title(plot.title)
    return plot


def accuracy_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """The share of answers correct under the data set's accuracy checks per model, precision and device
    (measured once for all batch sizes), with its bootstrap interval as error bars, each bar in its
    combination's style. Series: ``accuracy`` with x ``model precision device``, ``low`` / ``high`` the
    interval, ``point_styles`` each bar's style."""
    encoding = encoding or Encoding.of(rows)
    chosen = _one_per_load_key(_with_batch([r for r in rows if r.metric("accuracy") is not None]))
    figure, (axes,) = new_figure(len(chosen))
    plot = Plot("accuracy", "Accuracy (share of answers correct) with 95% bootstrap intervals", figure,
                xlabel="model precision device", ylabel="share correct",
                caption="The share of the data set's items whose output passes its accuracy check (docs/quality.md, "
                "Accuracy checks); error bars: the bootstrap interval saved with the run.")  # fmt: skip
    if not chosen:
        no_data(axes, "accuracy figure")
        return plot
    labels = tuple(" ".join(r.load_key) for r in chosen)
    styles = tuple(encoding.style_of(r) for r in chosen)
    values, low, high, below, above = _interval([r.metric("accuracy") for r in chosen])
    plot.series.append(PlotSeries("accuracy", labels, values, low, high, point_styles=styles))
    _styled_bars(axes, range(len(chosen)), values, styles, (below, above), width=0.6, capsize=3)
    axes.set_xticks(range(len(chosen)), labels, rotation=30, ha="right", fontsize="small")
    for tick, row in zip(axes.get_xticklabels(), chosen, strict=True):
        tick.set_color(encoding.color(row.model))
    axes.set_ylim(0, 1)
    _legend(axes, chosen, [style.bar_handle(label) for label, style in zip(labels, styles, strict=True)])
    axes.grid(axis="y", alpha=0.3)
    axes.set_title(plot.title)
    return plot


def batch_scaling_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """Latency and whole-batch decode throughput against batch size, one line per model, precision and
    device. Series: ``latency_s <group>`` and ``decode_tok_s_total <group>``, x the batch sizes."""
    rows = _with_batch(rows)
    encoding = encoding or Encoding.of(rows)
    figure, (left, right) = new_figure(0, height=4.0, panels=2)
    plot = Plot("batch_scaling", "Batch-size scaling", figure, xlabel="batch size", ylabel="s; tok/s",
                caption="Top: latency of one call against batch size (flat is ideal). Bottom: decode tokens/s "
                "of the whole batch (rising is what batching buys).")  # fmt: skip
    if not rows:
        no_data(left, "generate benchmark")
        no_data(right, "generate benchmark")
        return plot
    for label, group in _groups(rows).items():
        style = encoding.style_of(group[0])
        xs = tuple(float(r.batch_size or 0) for r in group)
        for axes, metric in ((left, "latency_s"), (right, "decode_tok_s_total")):
            values = tuple(r.value(metric) for r in group)
            plot.series.append(PlotSeries(f"{metric} {label}", xs, values, **style.fields(), key=group[0].load_key))
            axes.plot(xs, nan_values(values), label=label, **style.line())
    ticks = sorted({float(r.batch_size or 0) for r in rows})
    for axes, what in ((left, "latency of one call (s)"), (right, "decode speed, whole batch (tok/s)")):
        axes.set_xticks(ticks)
        axes.set_xlabel("batch size")
        axes.set_ylabel(what)
        axes.set_ylim(bottom=0)
        axes.grid(alpha=0.3)
    _legend(left, rows)
    left.set_title(plot.title)
    return plot


def itl_cdf_plot(rows: Sequence[Row], encoding: Encoding | None = None) -> Plot:
    """The share of tokens that came within each inter-token latency, one line per model, precision and
    device (every timed token of its batch sizes, pooled), markers at a few points. Series: ``<group>`` with
    x ITL (ms, sorted), y cumulative share."""
    rows = _with_batch(rows)
    encoding = encoding or Encoding.of(rows)
    figure, (axes,) = new_figure(0)
    plot = Plot("itl_cdf", "Inter-token latency distribution", figure, xlabel="ms", ylabel="share of tokens",
                caption="Each curve: the share of tokens that followed their previous token within x ms, over "
                "every timed round (ITL); a curve further left is faster, a long flat top is a slow tail.")  # fmt: skip
    for label, group in _groups(rows).items():
        itl = sorted(v * 1e3 for r in group if (m := r.metric("itl_p50_s")) is not None for v in m.samples)
        if not itl:
            continue
        shares = tuple((i + 1) / len(itl) for i in range(len(itl)))
        style = encoding.style_of(group[0])
        plot.series.append(PlotSeries(label, tuple(itl), shares, **style.fields(), key=group[0].load_key))
        axes.step(itl, shares, where="post", label=label, markevery=max(len(itl) // 8, 1), **style.line())
    if not plot.series:
        no_data(axes, "inter-token latency")
        return plot
    for share in (0.5, 0.9, 0.99):
        axes.axhline(share, color="#999999", linewidth=0.8, linestyle=":")
    axes.set_xlabel("inter-token latency (ms)")
    axes.set_ylabel("share of tokens")
    axes.grid(alpha=0.3)
    _legend(axes, rows)
    axes.set_title(plot.title)
    return plot


#: The figures drawn against prompt length: (plot name, metric, what it is, the caption's definition).
LENGTH_PLOTS: dict[str, tuple[str, str, str]] = {
    "prefill_vs_length": ("prefill_tok_s", "Prefill speed against prompt length",
                          "prompt tokens / time to first token"),
    "decode_vs_length": ("decode_tok_s_per_seq", "Decode speed against prompt length",
                         "tokens after the first / time after the first, per sequence, at that depth"),
}  # fmt: skip


def _length_label(row: Row, rows: Sequence[Row]) -> str:
    """A combination without its prompt length: ``bf16 bs1`` where every row shares model and device."""
    return f"{_group_label(row, rows)} bs{row.batch_size}"


def prompt_length_plot(rows: Sequence[Row], name: str, encoding: Encoding | None = None) -> Plot:
    """One figure against the prompt-length axis (``name``: a key of :data:`LENGTH_PLOTS`), one line per
    combination (model, precision, device, batch size: marker size). Series: ``<combination>``, x the prompt
    lengths (tokens, ascending), y the figure's median over the timed rounds."""
    metric, title, definition = LENGTH_PLOTS[name]
    encoding = encoding or Encoding.of(rows)
    chosen = [r for r in _with_batch(rows) if r.prompt_length is not None]
    figure, (axes,) = new_figure(0)
    plot = Plot(name, title, figure, xlabel="prompt tokens", ylabel="tok/s",
                caption=f"Median over the timed rounds of {metric} ({definition}) for each prompt length of "
                "the prompt_tokens axis; one line per combination (a larger marker: a larger batch).")  # fmt: skip
    groups: dict[str, list[Row]] = {}
    for row in chosen:
        groups.setdefault(_length_label(row, chosen), []).append(row)
    for label, group in groups.items():
        group.sort(key=lambda r: r.prompt_length or 0)
        xs = tuple(float(r.prompt_length or 0) for r in group)
        values = tuple(r.value(metric) for r in group)
        style = encoding.style_of(group[0], batch=True)
        plot.series.append(PlotSeries(label, xs, values, **style.fields(), key=group[0].load_key))
        axes.plot(xs, nan_values(values), label=label, **style.line())
    if not chosen:
        no_data(axes, "prompt-length axis")
        return plot
    axes.set_xscale("log", base=2)
    lengths = sorted({float(r.prompt_length or 0) for r in chosen})
    axes.set_xticks(lengths, [f"{x:g}" for x in lengths])
    axes.set_xlabel("prompt length (tokens)")
    axes.set_ylabel(f"{metric} (tok/s)")
    axes.set_ylim(bottom=0)
    axes.grid(alpha=0.3)
    _legend(axes, chosen)
    axes.set_title(plot.title)
    return plot


#: The plots of one run, in page order.
RUN_PLOTS: tuple[Callable[[Sequence[Row], Encoding | None], Plot], ...] = (
    latency_ttft_plot,
    decode_throughput_plot,
    memory_breakdown_plot,
    tokens_vs_time_plot,
    rouge_plot,
    batch_scaling_plot,
    itl_cdf_plot,
)


def run_plots(rows: Sequence[Row], encoding: Encoding | None = None) -> list[Plot]:
    """Every plot of :data:`RUN_PLOTS`, then the accuracy plot where a row has accuracy, then the prompt-length
    plots where a row is on that axis; all in ``encoding`` (default: the encoding of ``rows``)."""
    encoding = encoding or Encoding.of(rows)
    plots = [make(rows, encoding) for make in RUN_PLOTS]
    if any(row.metric("accuracy") is not None for row in rows):
        plots.append(accuracy_plot(rows, encoding))
    if any(row.prompt_length is not None for row in rows):
        plots.extend(prompt_length_plot(rows, name, encoding) for name in LENGTH_PLOTS)
    return plots
