"""Per-prompt figures of a saved run: the notebook's per-prompt table as a tidy pandas frame, and its pivot.

A benchmark that timed its pass over the data set item by item saved one record per item in
``extra_info["per_item"]`` (:mod:`llmbench.measure.per_item`; the fields: docs/metrics.md, Per-item figures).
:func:`per_item_frame` lays a run's records out one line per item x combination, :func:`per_item_pivot` one
line per item and one column per combination. A run saved before per-item figures existed (or with
``--llmbench-per-item=off``) gives an empty frame with the same columns.

The combination of a record is the pass's: model, precision and device of its benchmark, the batch size of
the pass that timed it (the quality pass's ``--llmbench-quality-batch-size`` for ``source == "quality"``,
the test's own for ``"test"``). The quality pass runs once per model, precision and device and its records
are saved with each of their tests: the frame keeps them once.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import replace
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

from llmbench.measure.per_item import PER_ITEM_KEY, RECORD_FIELDS
from llmbench.metrics import reading_order
from llmbench.report.frame import ReportError, Row, combination_sort_key, rows_of
from llmbench.runs import SavedRun

__all__ = [
    "PER_ITEM_COLUMNS",
    "PER_ITEM_VALUES",
    "per_item_frame",
    "per_item_frames",
    "per_item_pivot",
    "runs_without_per_item",
]

#: Which run and combination a line belongs to (as in the report's tables; ``batch_size`` is the pass's).
_IDENTITY = (
    "run", "run_number", "run_datetime", "commit", "machine", "combination",
    "model", "precision", "device", "batch_size", "backend", "dataset",
)  # fmt: skip
#: The record's own fields after the identity (``batch_size`` is already there).
_RECORD = tuple(name for name in RECORD_FIELDS if name != "batch_size")
#: The frame's columns; the call's peak memory figures follow (``peak_rss_bytes`` always, a GPU's beside it).
PER_ITEM_COLUMNS: tuple[str, ...] = (*_IDENTITY, *_RECORD)
#: The figures :func:`per_item_pivot` can lay out (with any ``peak_*`` column of the frame).
PER_ITEM_VALUES: tuple[str, ...] = ("latency_s", "ttft_s", "prompt_tokens", "generated_tokens", "decode_tok_s")
_INTEGERS = ("run_number", "batch_size", "index", "call", "call_items", "prompt_tokens", "generated_tokens")
_NUMBERS = ("latency_s", "ttft_s", "decode_tok_s")
_TEXTS = ("item", "source")


def _number(value: Any, where: str, name: str) -> float | None:
    """A record's figure as a float (None, or a number: n/a is None); anything else is a :class:`ReportError`."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise ReportError(f"{where}: field {name!r} is {value!r}, not a number")
    return float(value)


def _records(row: Row) -> list[dict[str, Any]]:
    """The checked per-item records of one benchmark (none where it saved none)."""
    saved = row.info.get(PER_ITEM_KEY)
    if saved is None:
        return []
    where = f"{row.run.source}: {row.combination}: extra_info[{PER_ITEM_KEY!r}]"
    if not isinstance(saved, list):
        raise ReportError(f"{where} is a {type(saved).__name__}, not a list of per-item records")
    out = []
    for position, record in enumerate(saved):
        here = f"{where}[{position}]"
        if not isinstance(record, Mapping):
            raise ReportError(f"{here} is a {type(record).__name__}, not a per-item record (an object)")
        missing = [name for name in (*_TEXTS, "batch_size", "index") if record.get(name) is None]
        if missing:
            raise ReportError(f"{here} has no {', '.join(repr(name) for name in missing)}")
        checked: dict[str, Any] = {name: str(record[name]) for name in _TEXTS}
        for name, value in record.items():
            if name in _INTEGERS or name in _NUMBERS or name.startswith("peak_"):
                checked[name] = number = _number(value, here, name)
                if name in _INTEGERS and number is not None and not number.is_integer():
                    raise ReportError(f"{here}: field {name!r} is {value!r}, not a whole number")
        out.append(checked)
    return out


def _pass_row(row: Row, batch_size: int) -> Row:
    """The row as the pass that timed a record names it: its batch size, no prompt length (a pass times the
    data set's own prompts)."""
    info = {key: value for key, value in row.info.items() if key not in ("prompt_length", PER_ITEM_KEY)}
    return replace(row, batch_size=batch_size, info=info)


def per_item_frame(run: SavedRun) -> pd.DataFrame:
    """The per-prompt table of one saved run: one line per item x combination (:data:`PER_ITEM_COLUMNS`, then
    the calls' ``peak_*`` memory columns), in combination order then data-set order.

    ``run`` is a :class:`llmbench.runs.SavedRun` (``llmbench.report.frame.load_runs`` reads them, or
    ``llmbench.report.frame.session_run`` the running session's). Each line is one item in one combination: the
    figures of the call that generated it (``latency_s`` and ``peak_*`` are the call's, shared by the items of
    one call; ``ttft_s``, tokens and ``decode_tok_s`` the item's own). The combination is the pass's (its batch
    size is that of the pass, see the module's docstring). An empty frame, with these columns, for a run that
    saved no per-item figures. A malformed record is a :class:`~llmbench.report.frame.ReportError` naming the
    run, combination and field.
    """
    lines: list[tuple[tuple[Any, ...], dict[str, Any]]] = []
    seen: set[tuple[str, str, str]] = set()
    for row in rows_of(run):
        for record in _records(row):
            batch_size = int(record["batch_size"])
            pass_row = _pass_row(row, batch_size)
            key = (pass_row.combination, record["source"], record["item"])
            if key in seen:
                continue  # the quality pass's records, saved with each test of its model, precision and device
            seen.add(key)
            line = {**pass_row.identity(), **record, "batch_size": batch_size}
            lines.append(((combination_sort_key(pass_row), record["source"], record["index"]), line))
    lines.sort(key=lambda entry: entry[0])
    records = [line for _, line in lines]
    peaks = sorted({name for line in records for name in line if name.startswith("peak_")} | {"peak_rss_bytes"},
                   key=reading_order)  # fmt: skip
    frame = pd.DataFrame.from_records(records, columns=[*PER_ITEM_COLUMNS, *peaks])
    dtypes = {name: "Int64" for name in _INTEGERS} | {name: "float64" for name in (*_NUMBERS, *peaks)}
    return frame.astype(dtypes)


def per_item_frames(runs: Iterable[SavedRun]) -> pd.DataFrame:
    """:func:`per_item_frame` of each run, one after the other (the export of several runs)."""
    frames = [per_item_frame(run) for run in runs]
    if not frames:
        return per_item_frame(SavedRun(source="", name="", number=None, machine_info={}, benchmarks={}))
    columns = list(dict.fromkeys(name for frame in frames for name in frame.columns))
    non_empty = [frame for frame in frames if not frame.empty]
    if not non_empty:
        return frames[0].reindex(columns=columns)
    return pd.concat(non_empty, ignore_index=True).reindex(columns=columns)


def per_item_pivot(frame: pd.DataFrame, value: str = "latency_s") -> pd.DataFrame:
    """The notebook's pivot: one line per item (data-set order), one column per combination (the frame's
    order), each cell ``value`` (a figure of :data:`PER_ITEM_VALUES` or a ``peak_*`` column) of that item in
    that combination.

    ``frame`` is :func:`per_item_frame`'s (of one run; filter a frame of several first, e.g.
    ``frame[frame["run"] == "0003"]``). Raises ValueError for a ``value`` that is not such a column, a frame
    of several runs, or one with two lines for an item and combination (two sources: filter ``source``).
    """
    allowed = [*PER_ITEM_VALUES, *(name for name in frame.columns if str(name).startswith("peak_"))]
    if value not in allowed:
        raise ValueError(
            f"value {value!r} is not a per-item figure of this frame; expected one of {', '.join(allowed)}"
        )
    runs = list(dict.fromkeys(frame["run"]))
    if len(runs) > 1:
        raise ValueError(
            f"the frame holds {len(runs)} runs ({', '.join(map(str, runs))}); pivot one run's lines, e.g. "
            f"frame[frame['run'] == {runs[-1]!r}]"
        )
    doubled = frame.duplicated(subset=["item", "combination"])
    if doubled.any():
        sources = ", ".join(sorted(set(frame["source"])))
        raise ValueError(
            f"the frame has {int(doubled.sum())} items timed twice in one combination (sources: {sources}); "
            "pivot one source's lines, e.g. frame[frame['source'] == 'test']"
        )
    items = list(dict.fromkeys(frame.sort_values("index", kind="stable")["item"]))
    combinations = list(dict.fromkeys(frame["combination"]))
    pivot = frame.pivot(index="item", columns="combination", values=value)
    return pivot.reindex(index=items, columns=combinations)


def runs_without_per_item(runs: Sequence[SavedRun]) -> list[SavedRun]:
    """The runs that saved no per-item figures (saved before they existed, or without a timed pass)."""
    return [run for run in runs if not any(PER_ITEM_KEY in row.info for row in rows_of(run))]
