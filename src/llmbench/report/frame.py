"""The report's data: saved runs as one tidy pandas frame of runs x combinations x metrics.

Each benchmark of a run that names a model, precision and device is one :class:`Row` (one run x
combination: its metrics, generated outputs and saved fields); :class:`Table` holds the rows of the
runs shown and lays their metrics out as :attr:`Table.frame`, one line per run x combination x
metric. A metric a run did not save (an older run, a figure that could not be computed) has no line
(in wide tables: an empty cell) and shows as n/a.
"""

from __future__ import annotations

import fnmatch
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)

from llmbench import benchmark_storage
from llmbench.config.combination import DEFAULT_DATASET
from llmbench.config.precisions import precision_rank
from llmbench.metrics import Metric, metrics_of, reading_order
from llmbench.runs import RunError, SavedRun, list_runs, load_run, run_from_json

if TYPE_CHECKING:
    from llmbench.gate import Verdict

__all__ = [
    "DEFAULT_HISTORY",
    "IDENTITY_COLUMNS",
    "PEAK_MEMORY_METRICS",
    "TIDY_COLUMNS",
    "ReportError",
    "Row",
    "Table",
    "combination_sort_key",
    "history_of",
    "load_runs",
    "regressed",
    "rows_of",
    "select_runs",
    "session_run",
]

#: A row's "peak memory", the first of these it measured: the driver's figure of the process on a GPU
#: (every engine's memory, docs/gpu.md), torch's allocated peak where the driver's is n/a, RSS on the CPU.
PEAK_MEMORY_METRICS: tuple[str, ...] = ("peak_gpu_process_bytes", "peak_cuda_allocated_bytes", "peak_rss_bytes")

#: Saved runs shown in the history, the report's own run included.
DEFAULT_HISTORY = 20

#: Metrics a load benchmark (no batch size) measures for every batch size of its model, precision and device.
_LOAD_METRICS = ("load_s", "load_added_bytes")
#: The columns that say which run and combination a line belongs to (wide tables start with them).
IDENTITY_COLUMNS: tuple[str, ...] = (
    "run", "run_number", "run_datetime", "commit", "machine", "combination",
    "model", "precision", "device", "batch_size", "backend", "dataset",
)  # fmt: skip
#: The tidy frame: one line per run x combination x metric; ``row`` is the run x combination's position.
TIDY_COLUMNS: tuple[str, ...] = (
    "row", *IDENTITY_COLUMNS, "metric", "value", "unit", "direction", "ci_low", "ci_high",
)  # fmt: skip


class ReportError(Exception):
    """A problem the user can fix (no saved run, a run that does not exist, a bad size); the message says how."""


# ----------------------------------------------------------------------------- runs


def session_run(data: Mapping[str, Any]) -> SavedRun:
    """The running session's benchmarks (``as_dict()`` of each, in pytest-benchmark's JSON layout) as a run."""
    try:
        return run_from_json(data, "this session", name="session")
    except RunError as error:
        raise ReportError(str(error)) from None


def _query(storage_dir: Path, selector: str) -> list[Path]:
    """pytest-benchmark's own query: a run file, or a glob of file names (``0003``, ``machine/0003``)."""
    try:
        return benchmark_storage.query(storage_dir, selector)
    except ValueError as error:
        raise ReportError(f"RUN: {error}") from None


def _selected(storage_dir: Path, selectors: Sequence[str]) -> list[list[Path]]:
    """The run files each selector names, in the order given: a run file is itself (``--storage`` is not
    read for it, nor needed); anything else is looked up in ``storage_dir``, which must then exist. No
    selectors: every saved run of ``storage_dir``. A selector that matches nothing is a :class:`ReportError`."""
    looked_up = [selector for selector in selectors if not Path(selector).is_file()]
    if (looked_up or not selectors) and not storage_dir.is_dir():
        # pytest-benchmark's storage would create it: say what is wrong instead.
        what = f"RUN: {looked_up[0]!r} is not a run file, and --storage" if looked_up else "--storage:"
        raise ReportError(
            f"{what} {str(storage_dir)!r} is not a directory of saved runs; run "
            "`pytest benchmarks --benchmark-autosave` first, pass --storage DIR, or give the runs as files"
        )
    if not selectors:
        return [list_runs(storage_dir)]
    selected = []
    for selector in selectors:
        found = [Path(selector)] if Path(selector).is_file() else _query(storage_dir, selector)
        if not found:
            raise ReportError(
                f"RUN: {selector!r} matches no saved run in {str(storage_dir)!r}; give a run number "
                "(e.g. 0003), a glob or a run file"
            )
        selected.append(found)
    return selected


def _load(paths: Iterable[Path]) -> list[SavedRun]:
    """The runs of ``paths`` (each once), oldest first; an unreadable file is a :class:`ReportError` naming it."""
    try:
        runs = [load_run(path) for path in dict.fromkeys(paths)]
    except RunError as error:
        raise ReportError(f"cannot read a saved run: {error}") from None
    return sorted(runs, key=lambda run: (run.datetime, str(run.path)))


def load_runs(storage_dir: Path, selectors: Sequence[str] = ()) -> list[SavedRun]:
    """The runs matching ``selectors`` (run files, or run numbers such as ``0003`` and globs looked up in
    ``storage_dir``), all saved runs of ``storage_dir`` without selectors, oldest first. ``storage_dir`` is
    read (and must exist) only for selectors that are not files. A selector that matches nothing is a
    :class:`ReportError`; an unreadable file too (naming it)."""
    return _load(path for found in _selected(storage_dir, selectors) for path in found)


def select_runs(
    storage_dir: Path, selectors: Sequence[str] = (), history: int = DEFAULT_HISTORY
) -> tuple[SavedRun, list[SavedRun]]:
    """The report's run and its history (oldest first, ending with the run itself).

    Without selectors: the latest saved run and the ``history - 1`` runs saved before it in the same
    machine directory. With selectors: the run the last selector names (the newest of its matches, for a
    glob), whatever its date (a run of the default branch saved while a pull request's run was measured
    is newer, and is history, not the headline), after the ``history - 1`` newest of the others.
    """
    if history < 1:
        raise ReportError(f"--history: {history} is not positive; expected the number of runs to show (1 or more)")
    selected = _selected(storage_dir, selectors)
    if selectors:
        current = _load(selected[-1])[-1]
        others = [run for run in _load(p for found in selected for p in found) if run.path != current.path]
        return current, [*others[len(others) - (history - 1) :], current] if history > 1 else [current]
    runs = _load(selected[0])
    if not runs:
        raise ReportError(f"no saved run in {str(storage_dir)!r}; run `pytest benchmarks --benchmark-autosave` first")
    current = runs[-1]
    return current, history_of(current, runs, history)


def history_of(current: SavedRun, runs: Sequence[SavedRun], history: int) -> list[SavedRun]:
    """``current`` and the ``history - 1`` runs before it that were saved in the same machine directory."""
    same = [
        run
        for run in runs
        if run is not current
        and run.path is not None
        and (current.path is None or run.path.parent == current.path.parent)
        and run.datetime <= current.datetime
    ]
    return [*same[len(same) - (history - 1) :], current] if history > 1 else [current]


def regressed(verdict: Verdict | None, run: SavedRun) -> frozenset[tuple[str, str]]:
    """The (combination id, metric) pairs the gate's ``verdict`` on ``run`` found regressed."""
    if verdict is None:
        return frozenset()
    combinations = {str(bench.get("fullname")): row.combination for bench, row in _rows_by_benchmark(run)}
    return frozenset(
        (combinations.get(result.fullname, result.label), decision.metric)
        for result in verdict.results
        for decision in result.regressions
    )


# ----------------------------------------------------------------------------- rows


@dataclass(frozen=True)
class Row:
    """One run x combination, with every metric it saved."""

    run: SavedRun
    model: str
    precision: str
    device: str
    batch_size: int | None
    backend: str
    metrics: Mapping[str, Metric]
    #: Generated text per quality item id (``extra_info["outputs"]``).
    outputs: Mapping[str, str] = field(default_factory=dict)
    outputs_file: str | None = None
    info: Mapping[str, Any] = field(default_factory=dict)

    @property
    def combination(self) -> str:
        """``model-precision-device-bsN``, the id of the parametrized benchmark (then the data set where the
        test id names it, and ``-promptN`` on the prompt-length axis); the precision with the words of a model
        entry's 4-bit settings where the test id has them (``extra_info["precision_id"]``: ``nf4-double_quant``)."""
        base = f"{self.model}-{self.info.get('precision_id') or self.precision}-{self.device}"
        base = base if self.batch_size is None else f"{base}-bs{self.batch_size}"
        base = base if self.named_dataset is None else f"{base}-{self.named_dataset}"
        return base if self.prompt_length is None else f"{base}-prompt{self.prompt_length}"

    @property
    def named_dataset(self) -> str | None:
        """The data set where the test id names it (``extra_info["dataset"]``: the matrix had several, or
        another than the default); None: the default set, as in runs saved before the axis existed."""
        value = self.info.get("dataset")
        return str(value) if value else None

    @property
    def dataset(self) -> str:
        """The data set the row measured: the one its test id names, else the default (shipped summaries)."""
        return self.named_dataset or DEFAULT_DATASET

    @property
    def prompt_length(self) -> int | None:
        """Tokens in each prompt on the prompt-length axis (``extra_info["prompt_length"]``); None without it."""
        return _int_or_none(self.info.get("prompt_length"))

    @property
    def load_key(self) -> tuple[str, str, str]:
        return (self.model, self.precision, self.device)

    def value(self, name: str) -> float | None:
        metric = self.metrics.get(name)
        return None if metric is None else metric.value

    def metric(self, name: str) -> Metric | None:
        return self.metrics.get(name)

    @property
    def peak_memory_name(self) -> str:
        """The memory figure of the row's device (:data:`PEAK_MEMORY_METRICS`, the first measured one): on a
        GPU the process's GPU memory from the driver, else torch's allocated peak; RSS on the CPU."""
        measured = (name for name in PEAK_MEMORY_METRICS if self.value(name) is not None)
        return next(measured, next((name for name in PEAK_MEMORY_METRICS if name in self.metrics), "peak_rss_bytes"))

    @property
    def peak_memory(self) -> float | None:
        return self.value(self.peak_memory_name)

    def identity(self) -> dict[str, Any]:
        """The :data:`IDENTITY_COLUMNS` of this row."""
        run = self.run
        return {
            "run": run.name, "run_number": run.number, "run_datetime": run.datetime, "commit": run.commit,
            "machine": run.path.parent.name if run.path is not None else None, "combination": self.combination,
            "model": self.model, "precision": self.precision, "device": self.device,
            "batch_size": self.batch_size, "backend": self.backend, "dataset": self.dataset,
        }  # fmt: skip


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def _row(run: SavedRun, bench: Mapping[str, Any], info: Mapping[str, Any]) -> Row:
    metrics = dict(metrics_of(bench))
    stats = bench.get("stats") or {}
    if "latency_s" not in metrics and info.get("batch_size") is not None and stats.get("median") is not None:
        # An older run without the metrics object: pytest-benchmark's own median is latency_s.
        data = tuple(float(x) for x in stats.get("data") or ())
        metrics["latency_s"] = Metric(
            "latency_s", float(stats["median"]), "s", "lower", data, note="pytest-benchmark's median"
        )
    outputs = info.get("outputs") or {}
    return Row(
        run=run,
        model=str(info["model"]),
        precision=str(info.get("precision", "n/a")),
        device=str(info.get("device", "n/a")),
        batch_size=_int_or_none(info.get("batch_size")),
        backend=str(info.get("backend", "")),
        metrics=metrics,
        outputs={str(k): str(v) for k, v in outputs.items()} if isinstance(outputs, Mapping) else {},
        outputs_file=str(info["outputs_file"]) if info.get("outputs_file") else None,
        info={k: v for k, v in info.items() if k not in ("metrics", "outputs")},
    )


def _rows_by_benchmark(run: SavedRun) -> list[tuple[Mapping[str, Any], Row]]:
    """Each llmbench benchmark of the run with its row (others, and benchmarks that failed before
    saving their fields, are left out)."""
    out = []
    for bench in run.benchmarks.values():
        info = bench.get("extra_info") or {}
        if isinstance(info, Mapping) and info.get("model"):
            out.append((bench, _row(run, bench, info)))
    return out


def rows_of(run: SavedRun) -> list[Row]:
    """The combinations of one run: every benchmark with a batch size (one ``generate`` benchmark each),
    with the load metrics of its model, precision and device added where the benchmark lacks them.
    A run with only load benchmarks gives one row per load."""
    generate: list[Row] = []
    loads: dict[tuple[str, str, str], Mapping[str, Metric]] = {}
    load_rows: list[Row] = []
    for _, row in _rows_by_benchmark(run):
        if row.batch_size is None:
            loads[row.load_key] = row.metrics
            load_rows.append(row)
        else:
            generate.append(row)
    if not generate:
        return load_rows
    merged = []
    for row in generate:
        extra = {k: v for k, v in loads.get(row.load_key, {}).items() if k in _LOAD_METRICS and k not in row.metrics}
        merged.append(replace(row, metrics={**row.metrics, **extra}) if extra else row)
    return merged


def _device_rank(device: str) -> int:
    return {"cpu": 0, "cuda": 1, "mps": 2}.get(device, 3)


def combination_sort_key(row: Row) -> tuple[Any, ...]:
    return (row.model, precision_rank(row.precision), row.precision, _device_rank(row.device), row.batch_size or 0,
            row.named_dataset or "", row.prompt_length or 0)  # fmt: skip


# ----------------------------------------------------------------------------- the table


@dataclass(frozen=True)
class Table:
    """The rows of the runs shown (run order, then combination order) and their tidy frame."""

    rows: tuple[Row, ...]

    @classmethod
    def of(cls, runs: Iterable[SavedRun], combinations: Sequence[str] = ()) -> Table:
        """All rows of ``runs``; ``combinations``: fnmatch patterns of the combination ids to keep (all when empty)."""
        rows: list[Row] = []
        for run in runs:
            run_rows = sorted(rows_of(run), key=combination_sort_key)
            if combinations:
                run_rows = [r for r in run_rows if any(fnmatch.fnmatchcase(r.combination, p) for p in combinations)]
            rows.extend(run_rows)
        return cls(tuple(rows))

    @property
    def runs(self) -> list[SavedRun]:
        return list({id(row.run): row.run for row in self.rows}.values())

    def of_run(self, run: SavedRun) -> list[Row]:
        return [row for row in self.rows if row.run is run]

    @cached_property
    def frame(self) -> pd.DataFrame:
        """One line per run x combination x metric (:data:`TIDY_COLUMNS`), metrics in reading order."""
        records = [
            {"row": index, **row.identity(), "metric": name, "value": metric.value, "unit": metric.unit,
             "direction": metric.direction, "ci_low": metric.ci[0] if metric.ci else None,
             "ci_high": metric.ci[1] if metric.ci else None}
            for index, row in enumerate(self.rows)
            for name, metric in sorted(row.metrics.items(), key=lambda item: reading_order(item[0]))
        ]  # fmt: skip
        frame = pd.DataFrame.from_records(records, columns=list(TIDY_COLUMNS))
        return frame.astype({"row": "int64", "run_number": "Int64", "batch_size": "Int64", "value": "float64",
                             "ci_low": "float64", "ci_high": "float64"})  # fmt: skip

    @property
    def metric_names(self) -> list[str]:
        return sorted(set(self.frame["metric"]), key=reading_order)

    def wide(self) -> pd.DataFrame:
        """One line per run x combination: :data:`IDENTITY_COLUMNS`, one column per metric (empty where the
        run did not save it), then ``<metric>_ci_low`` / ``_ci_high`` for the metrics with intervals."""
        identity = pd.DataFrame.from_records([row.identity() for row in self.rows], columns=list(IDENTITY_COLUMNS))
        identity = identity.astype({"run_number": "Int64", "batch_size": "Int64"})
        tidy, names = self.frame, self.metric_names
        values = tidy.pivot(index="row", columns="metric", values="value").reindex(columns=names)
        with_ci = [name for name in names if tidy.loc[tidy["metric"] == name, "ci_low"].notna().any()]
        intervals = [
            tidy.pivot(index="row", columns="metric", values=end)[with_ci].add_suffix(f"_{end}")
            for end in ("ci_low", "ci_high")
        ]
        ci_columns = [f"{name}_{end}" for name in with_ci for end in ("ci_low", "ci_high")]
        wide = pd.concat([values, *intervals], axis=1).reindex(index=range(len(self.rows)))
        return pd.concat([identity, wide.reindex(columns=[*names, *ci_columns])], axis=1)
