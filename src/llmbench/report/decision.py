"""The decision view: which model, precision and device to pick (docs/reports.md, "Which one to pick").

:func:`decision_frame` lays combinations out as the one table of the GPU-against-CPU seed: one line per
run x combination, what it is (model, precision, device, batch size), then load time, latency of one call,
decode and prefill tokens/s, host RAM and device memory (each source in a column of its own, never one
column that is RSS on one row and CUDA memory on the next), weights and file size, quality and drift
against the reference. Each figure column is the saved metric of that name (:data:`DECISION_COLUMNS`,
names from :data:`llmbench.metrics.METRIC_FACTS`), so a cell is exactly what the run saved, n/a (NaN)
where it saved nothing.

:func:`pareto_mask` and :func:`pareto_front` find the combinations that no other beats on two figures
at once (better or equal on both, strictly better on one). Fronts are computed within one condition
(:data:`CONDITION_COLUMNS`: the same run, data set and prompt length), since speed and quality measured
on different prompts do not compare. Pure functions of the frame; the view's plots are in
:mod:`llmbench.report.decision_plots`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

from llmbench.metrics import METRIC_FACTS
from llmbench.quality.comparison import REFERENCE_INFO_KEY, SAME_RUN_SOURCES
from llmbench.report.frame import Row

__all__ = [
    "CONDITION_COLUMNS",
    "DECISION_COLUMNS",
    "DECISION_IDENTITY",
    "DEVICE_MEMORY_METRICS",
    "FIGURE_COLUMNS",
    "FRONTS",
    "HOST_MEMORY_METRIC",
    "QUALITY_METRICS",
    "REFERENCE_INFO_KEY",
    "SPEED_METRIC",
    "DecisionColumn",
    "Front",
    "decision_frame",
    "device_memory_metric",
    "dominates",
    "front_lines",
    "pareto_front",
    "pareto_mask",
    "quality_metric",
    "shown_columns",
]


@dataclass(frozen=True)
class DecisionColumn:
    """One figure of the decision table: the saved metric it shows and its title, which names its source."""

    #: The metric's name (:data:`~llmbench.metrics.METRIC_FACTS`), also the column of the frame and the export.
    metric: str
    #: The column title for people.
    title: str
    #: Shown in the page and the markdown only where some combination has it (the frame always has it).
    optional: bool = False
    #: Whether the frame carries the metric's saved interval too (``<metric>_ci_low``, ``<metric>_ci_high``).
    interval: bool = False

    @property
    def unit(self) -> str:
        return METRIC_FACTS[self.metric].unit


#: The figures of the decision table, in reading order.
DECISION_COLUMNS: tuple[DecisionColumn, ...] = (
    DecisionColumn("load_s", "load time"),
    DecisionColumn("latency_s", "latency (one call)"),
    DecisionColumn("decode_tok_s_per_seq", "decode tok/s per sequence"),
    DecisionColumn("decode_tok_s_total", "decode tok/s, whole batch"),
    DecisionColumn("prefill_tok_s", "prefill tok/s"),
    DecisionColumn("peak_rss_bytes", "host RAM peak (RSS)"),
    DecisionColumn("peak_gpu_process_bytes", "GPU memory peak (driver)", optional=True),
    DecisionColumn("peak_cuda_allocated_bytes", "CUDA allocated peak (torch)", optional=True),
    DecisionColumn("peak_mps_allocated_bytes", "MPS allocated peak (torch)", optional=True),
    DecisionColumn("weight_bytes", "weights"),
    DecisionColumn("file_bytes", "file size"),
    DecisionColumn("rougeLsum", "ROUGE-Lsum", optional=True),
    DecisionColumn("accuracy", "accuracy", optional=True),
    DecisionColumn("drift_identical_share", "identical to reference"),
    DecisionColumn("rougeLsum_share", "ROUGE-Lsum / reference", optional=True),
    DecisionColumn("accuracy_share", "accuracy / reference", optional=True),
    DecisionColumn("rougeLsum_diff", "ROUGE-Lsum − reference", optional=True, interval=True),
)

#: The frame's figure columns: each metric of :data:`DECISION_COLUMNS`, its interval's ends after it where kept.
FIGURE_COLUMNS: tuple[str, ...] = tuple(
    name
    for column in DECISION_COLUMNS
    for name in (column.metric, *((f"{column.metric}_ci_low", f"{column.metric}_ci_high") if column.interval else ()))
)
#: What a line of the decision frame is (``reference``: what its drift is against, where the run saved it).
DECISION_IDENTITY: tuple[str, ...] = (
    "run", "combination", "model", "precision", "device", "batch_size", "backend", "dataset", "prompt_length",
    "reference",
)  # fmt: skip
#: Lines compared for a front: the same run, data set and prompt length.
CONDITION_COLUMNS: tuple[str, ...] = ("run", "dataset", "prompt_length")

#: Speed in the decision plots: decode tokens/s per sequence, what one request sees. Not latency: a call's
#: latency grows with the tokens generated, and models stop after different numbers of tokens; not the
#: whole batch's rate, which rewards the largest batch whatever one request waits.
SPEED_METRIC = "decode_tok_s_per_seq"
#: Quality in the decision plots: the first of these that some combination has (ROUGE-Lsum for a data set
#: with reference summaries, accuracy for one with answer checks).
QUALITY_METRICS: tuple[str, ...] = ("rougeLsum", "accuracy")
#: Host memory: the process's peak resident set during the timed call.
HOST_MEMORY_METRIC = "peak_rss_bytes"
#: Device memory, one source per plot: the first of these that some combination has.
DEVICE_MEMORY_METRICS: tuple[str, ...] = ("peak_gpu_process_bytes", "peak_cuda_allocated_bytes",
                                          "peak_mps_allocated_bytes")  # fmt: skip


@dataclass(frozen=True)
class Front:
    """One Pareto front of the frame: its column, and what it weighs (y against speed)."""

    #: The boolean column of the frame.
    column: str
    #: For people, what is weighed against speed: ``quality``.
    short: str
    #: Whether a higher y is better (quality) or a lower one (memory).
    y_higher: bool


#: The fronts :func:`decision_frame` marks; y is the quality metric, host RSS or the device memory metric.
FRONTS: tuple[Front, ...] = (
    Front("front_quality_speed", "quality", y_higher=True),
    Front("front_host_memory_speed", "RAM", y_higher=False),
    Front("front_device_memory_speed", "device memory", y_higher=False),
)


def _reference(row: Row) -> str | None:
    """The reference row's drift is against, where its run saved one: ``gemma3-4b bf16 cuda`` (with the run
    it came from where that is another, ``... (run 0003)``), ``itself`` for the reference; None for a run
    saved before references were saved (then: its model's reference precision on the same device)."""
    saved = row.info.get(REFERENCE_INFO_KEY)
    if not isinstance(saved, Mapping) or not all(saved.get(key) for key in ("model", "precision", "device")):
        return None
    key = (str(saved["model"]), str(saved["precision"]), str(saved["device"]))
    if key == row.load_key:
        return "itself"
    source = saved.get("source")
    return " ".join(key) + ("" if source in SAME_RUN_SOURCES else f" ({source})")


def decision_frame(rows: Sequence[Row]) -> pd.DataFrame:
    """One line per row (the order given): :data:`DECISION_IDENTITY`, the :data:`FIGURE_COLUMNS` (a column per
    :data:`DECISION_COLUMNS` metric, NaN where not saved, and the saved interval of those that keep one), and a
    boolean column per front of :data:`FRONTS` (False where the front cannot be drawn: no quality figure, no
    device memory)."""
    records: list[dict[str, Any]] = []
    for row in rows:
        identity = row.identity()
        record: dict[str, Any] = {name: identity.get(name) for name in DECISION_IDENTITY}
        record.update(prompt_length=row.prompt_length, reference=_reference(row))
        for column in DECISION_COLUMNS:
            record[column.metric] = row.value(column.metric)
            if column.interval:
                saved = row.metric(column.metric)
                ci = saved.ci if saved is not None else None
                record.update({f"{column.metric}_ci_low": ci[0] if ci else None,
                               f"{column.metric}_ci_high": ci[1] if ci else None})  # fmt: skip
        records.append(record)
    columns = [*DECISION_IDENTITY, *FIGURE_COLUMNS]
    frame = pd.DataFrame.from_records(records, columns=columns)
    frame = frame.astype({"batch_size": "Int64", "prompt_length": "Int64",
                          **{name: "float64" for name in FIGURE_COLUMNS}})  # fmt: skip
    ys = (quality_metric(frame), HOST_MEMORY_METRIC, device_memory_metric(frame))
    for front, y in zip(FRONTS, ys, strict=True):
        frame[front.column] = (
            pareto_front(frame, SPEED_METRIC, y, y_higher=front.y_higher, by=CONDITION_COLUMNS)
            if y is not None
            else pd.Series(False, index=frame.index, dtype=bool)
        )
    return frame


def quality_metric(frame: pd.DataFrame) -> str | None:
    """The quality figure of the decision plots: the first of :data:`QUALITY_METRICS` some line has, else None."""
    return next((name for name in QUALITY_METRICS if name in frame and frame[name].notna().any()), None)


def device_memory_metric(frame: pd.DataFrame) -> str | None:
    """The device memory of the decision plots: the first of :data:`DEVICE_MEMORY_METRICS` some line has."""
    return next((name for name in DEVICE_MEMORY_METRICS if name in frame and frame[name].notna().any()), None)


def shown_columns(frame: pd.DataFrame) -> tuple[list[DecisionColumn], list[DecisionColumn]]:
    """The columns a page shows, and the optional ones it leaves out because no line has them."""
    shown = [c for c in DECISION_COLUMNS if not c.optional or frame[c.metric].notna().any()]
    return shown, [c for c in DECISION_COLUMNS if c not in shown]


# ----------------------------------------------------------------------------- Pareto fronts


def dominates(a: tuple[float, float], b: tuple[float, float]) -> bool:
    """Whether ``a`` beats ``b`` (both oriented so that higher is better): at least as good on both, better on one."""
    return a[0] >= b[0] and a[1] >= b[1] and (a[0] > b[0] or a[1] > b[1])


def _oriented(value: Any, higher: bool) -> float | None:
    if value is None or value is pd.NA:
        return None
    number = float(value)
    if not math.isfinite(number):
        return None
    return number if higher else -number


def pareto_mask(
    xs: Sequence[float | None], ys: Sequence[float | None], *, x_higher: bool = True, y_higher: bool = True
) -> list[bool]:
    """For each point (x, y), whether no other point dominates it. ``x_higher`` / ``y_higher``: which way is
    better. A point with a missing or non-finite coordinate is never on the front and beats no other;
    equal points are all on the front or all off it."""
    if len(xs) != len(ys):
        raise ValueError(f"pareto_mask: {len(xs)} x values but {len(ys)} y values")
    points = []
    for x, y in zip(xs, ys, strict=True):
        ox, oy = _oriented(x, x_higher), _oriented(y, y_higher)
        points.append(None if ox is None or oy is None else (ox, oy))
    valid = [p for p in points if p is not None]
    return [p is not None and not any(dominates(q, p) for q in valid) for p in points]


def pareto_front(
    frame: pd.DataFrame,
    x: str,
    y: str,
    *,
    x_higher: bool = True,
    y_higher: bool = True,
    by: Sequence[str] = (),
) -> pd.Series:
    """Whether each line of ``frame`` is on the Pareto front of columns ``x`` and ``y``, computed within each
    group of the columns ``by`` (missing values there form a group of their own). A boolean Series on the
    frame's index."""
    mask = pd.Series(False, index=frame.index, dtype=bool)
    if frame.empty:
        return mask
    keys = [column for column in by if column in frame]
    parts = [part for _, part in frame.groupby(keys, dropna=False, sort=False)] if keys else [frame]
    for part in parts:
        mask.loc[part.index] = pareto_mask(part[x].tolist(), part[y].tolist(), x_higher=x_higher, y_higher=y_higher)
    return mask


def front_lines(frame: pd.DataFrame, column: str, x: str) -> list[pd.DataFrame]:
    """The lines on the front ``column``, one frame per condition (:data:`CONDITION_COLUMNS`), sorted by ``x``:
    the steps a plot draws through them."""
    on = frame[frame[column]]
    if on.empty:
        return []
    keys = [c for c in CONDITION_COLUMNS if c in on]
    return [part.sort_values(x) for _, part in on.groupby(keys, dropna=False, sort=False)]
