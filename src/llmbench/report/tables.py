"""Saved runs as one tidy table, and the ``llmbench report`` and ``llmbench export`` commands.

A run is one pytest-benchmark JSON file (``.benchmarks/<machine id>/NNNN_*.json``), listed and read
with pytest-benchmark's own :class:`~pytest_benchmark.storage.file.FileStorage` (read only: nothing
is written there). Each benchmark of a run that names a model, precision and device becomes one
:class:`Row`: one run x combination with every metric saved in ``extra_info["metrics"]``. A metric a
run did not save (an older run, a figure that could not be computed) is ``None`` and shows as n/a.

The plots are drawn by :mod:`llmbench.report.plots`, the page and the markdown by :mod:`llmbench.report.html`.
"""

from __future__ import annotations

import argparse
import csv
import fnmatch
import importlib
import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from llmbench.config.options import split_number_unit
from llmbench.metrics import Metric, metrics_of

__all__ = [
    "DEFAULT_HISTORY",
    "DEFAULT_MEMORY_BUDGET",
    "METRIC_ORDER",
    "ReportError",
    "ReportVerdict",
    "Row",
    "Run",
    "Table",
    "add_export_arguments",
    "add_report_arguments",
    "export_main",
    "format_value",
    "gate_verdict",
    "load_runs",
    "parse_size",
    "report_main",
    "run_from_json",
    "select_runs",
    "write_export",
]

#: Saved runs shown in the history, the report's own run included.
DEFAULT_HISTORY = 20
DEFAULT_MEMORY_BUDGET = "8GiB"
#: How pytest-benchmark names saved runs (``0001_<commit>_<date>.json``).
RUN_GLOB = "[0-9][0-9][0-9][0-9]_"

#: The metrics of DESIGN.md in reading order; any other saved metric follows, sorted by name.
METRIC_ORDER: tuple[str, ...] = (
    "latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_per_seq", "decode_tok_s_total", "mbu",
    "peak_rss_bytes", "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes", "weight_bytes",
    "kv_cache_bytes", "file_bytes", "load_s", "load_added_bytes",
    "rouge1", "rouge2", "rougeLsum", "semantic_similarity",
    "drift_identical_share", "drift_first_diff_token", "rouge1_share", "rouge2_share", "rougeLsum_share",
    "quality_target_met", "peak_bandwidth", "rss_before_bytes", "cuda_allocated_before_bytes",
)  # fmt: skip

#: Characters of report.md given to the gate's verdict (the report's own tables need the rest of 65,536).
VERDICT_MARKDOWN_LIMIT = 20_000
#: Metrics a load benchmark (no batch size) measures for every batch size of its model, precision and device.
_LOAD_METRICS = ("load_s", "load_added_bytes")


class ReportError(Exception):
    """A problem the user can fix (no saved run, a run that does not exist, a bad size); the message says how."""


# ----------------------------------------------------------------------------- runs


@dataclass(frozen=True)
class Run:
    """One saved (or in-memory) pytest-benchmark run."""

    #: ``0003`` for a saved run (its number), ``session`` for one built from the running session.
    id: str
    #: The file, or None for a run that was not saved.
    path: Path | None
    data: Mapping[str, Any]

    @property
    def datetime(self) -> str:
        return str(self.data.get("datetime") or "")

    @property
    def commit(self) -> str | None:
        info = self.data.get("commit_info") or {}
        commit = info.get("id")
        return str(commit) if commit and commit != "unversioned" else None

    @property
    def dirty(self) -> bool:
        return bool((self.data.get("commit_info") or {}).get("dirty"))

    @property
    def machine_info(self) -> Mapping[str, Any]:
        info = self.data.get("machine_info") or {}
        return info if isinstance(info, Mapping) else {}

    @property
    def fingerprint(self) -> Mapping[str, Any] | None:
        """The llmbench machine fingerprint saved with the run (``machine_info["llmbench"]``), if any."""
        print_ = self.machine_info.get("llmbench")
        return print_ if isinstance(print_, Mapping) else None

    @property
    def label(self) -> str:
        """Short label for axes and tables: ``0003 abc1234`` or ``0003 2026-11-28 09:27``."""
        if self.commit:
            return f"{self.id} {self.commit[:7]}{'+' if self.dirty else ''}"
        return f"{self.id} {self.datetime[:16].replace('T', ' ')}".strip()

    @property
    def benchmarks(self) -> list[Mapping[str, Any]]:
        return [b for b in self.data.get("benchmarks") or () if isinstance(b, Mapping)]


def run_from_json(data: Mapping[str, Any], path: Path | None = None, run_id: str | None = None) -> Run:
    """A run from pytest-benchmark's JSON (a saved file's content, or ``as_dict()`` of a session's benchmarks)."""
    if run_id is None:
        run_id = path.name.split("_", 1)[0] if path is not None else "session"
    return Run(run_id, path, data)


class _QuietLogger:
    """The logger pytest-benchmark's storage wants; warnings are kept to be shown in the report."""

    def __init__(self) -> None:
        self.warnings: list[str] = []

    def warning(self, text: str, *args: Any, **kwargs: Any) -> None:
        self.warnings.append(str(text))

    def info(self, text: str, *args: Any, **kwargs: Any) -> None:
        pass

    def debug(self, text: str, *args: Any, **kwargs: Any) -> None:
        pass


def _storage(directory: Path) -> tuple[Any, _QuietLogger]:
    from pytest_benchmark.storage.file import FileStorage

    if not directory.is_dir():
        # FileStorage would create it: say what is wrong instead.
        raise ReportError(
            f"--storage: {str(directory)!r} is not a directory of saved runs; run "
            "`pytest benchmarks --benchmark-autosave` first, or pass --storage DIR"
        )
    logger = _QuietLogger()
    return FileStorage(directory, logger=logger), logger  # type: ignore[no-untyped-call]


def load_runs(storage_dir: Path, selectors: Sequence[str] = ()) -> list[Run]:
    """The runs in ``storage_dir`` matching ``selectors`` (run numbers such as ``0003``, globs or files),
    all saved runs without selectors, oldest first. A selector that matches nothing is a
    :class:`ReportError`; an unreadable file too (naming it)."""
    storage, logger = _storage(storage_dir)
    runs: list[Run] = []
    for selector in selectors or (RUN_GLOB,):
        found = [
            run_from_json(data, storage.path / relpath if not Path(relpath).is_absolute() else Path(relpath))
            for relpath, data in storage.load(selector)
        ]
        if logger.warnings:
            raise ReportError(f"cannot read a saved run: {'; '.join(logger.warnings)}")
        if not found and selectors:
            raise ReportError(
                f"RUN: {selector!r} matches no saved run in {str(storage_dir)!r}; give a run number "
                "(e.g. 0003), a glob or a run file"
            )
        runs.extend(run for run in found if run.path not in {r.path for r in runs})
    return sorted(runs, key=lambda run: (run.datetime, str(run.path)))


def select_runs(
    storage_dir: Path, selectors: Sequence[str] = (), history: int = DEFAULT_HISTORY
) -> tuple[Run, list[Run]]:
    """The report's run and its history (oldest first, ending with the run itself).

    Without selectors: the latest saved run and the ``history - 1`` runs saved before it in the same
    machine directory. With selectors: the last of them, and all of them as the history.
    """
    if history < 1:
        raise ReportError(f"--history: {history} is not positive; expected the number of runs to show (1 or more)")
    runs = load_runs(storage_dir, selectors)
    if not runs:
        raise ReportError(f"no saved run in {str(storage_dir)!r}; run `pytest benchmarks --benchmark-autosave` first")
    current = runs[-1]
    if selectors:
        return current, runs[-history:]
    return current, history_of(current, runs, history)


def history_of(current: Run, runs: Sequence[Run], history: int) -> list[Run]:
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


# ----------------------------------------------------------------------------- the tidy table


@dataclass(frozen=True)
class Row:
    """One run x combination, with every metric it saved."""

    run: Run
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
        """``model-precision-device-bsN``, the id of the parametrized benchmark."""
        base = f"{self.model}-{self.precision}-{self.device}"
        return base if self.batch_size is None else f"{base}-bs{self.batch_size}"

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
        """The memory figure the gate uses: allocated CUDA memory on a GPU, RSS on the CPU."""
        return "peak_cuda_allocated_bytes" if "peak_cuda_allocated_bytes" in self.metrics else "peak_rss_bytes"

    @property
    def peak_memory(self) -> float | None:
        return self.value(self.peak_memory_name)


def _int_or_none(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


def rows_of(run: Run) -> list[Row]:
    """The combinations of one run: every benchmark with a batch size (one ``generate`` benchmark each),
    with the load metrics of its model, precision and device added where the benchmark lacks them.
    A run with only load benchmarks gives one row per load."""
    generate: list[Row] = []
    loads: dict[tuple[str, str, str], Mapping[str, Metric]] = {}
    load_rows: list[Row] = []
    for bench in run.benchmarks:
        info = bench.get("extra_info") or {}
        if not isinstance(info, Mapping) or not info.get("model"):
            continue  # not an llmbench benchmark, or one that failed before saving its fields
        metrics = dict(metrics_of(bench))
        stats = bench.get("stats") or {}
        if "latency_s" not in metrics and info.get("batch_size") is not None and stats.get("median") is not None:
            # An older run without the metrics object: pytest-benchmark's own median is latency_s.
            data = tuple(float(x) for x in stats.get("data") or ())
            metrics["latency_s"] = Metric(
                "latency_s", float(stats["median"]), "s", "lower", data, note="pytest-benchmark's median"
            )
        outputs = info.get("outputs") or {}
        row = Row(
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
        if row.batch_size is None:
            loads[row.load_key] = metrics
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


def precision_rank(precision: str) -> int:
    """Full precision first: the order of the tables and the reference for output differences."""
    order = ("fp32", "f32", "bf16", "fp16", "f16", "bf16-gguf", "q8_0", "int8", "q6_k", "q5_k_m", "q5_k_s",
             "q5_0", "q4_k_m", "q4_k_s", "q4_0", "nf4", "iq4_xs", "q3_k_m", "q2_k")  # fmt: skip
    return order.index(precision) if precision in order else len(order)


def combination_sort_key(row: Row) -> tuple[Any, ...]:
    return (row.model, precision_rank(row.precision), row.precision, _device_rank(row.device), row.batch_size or 0)


@dataclass(frozen=True)
class Table:
    """Runs x combinations with every metric: the data behind every plot, table and export."""

    rows: tuple[Row, ...]

    @classmethod
    def of(cls, runs: Iterable[Run], combinations: Sequence[str] = ()) -> Table:
        """All rows of ``runs``, in run order then combination order; ``combinations``: fnmatch patterns
        of the combination ids to keep (all when empty)."""
        rows: list[Row] = []
        for run in runs:
            run_rows = sorted(rows_of(run), key=combination_sort_key)
            if combinations:
                run_rows = [r for r in run_rows if any(fnmatch.fnmatchcase(r.combination, p) for p in combinations)]
            rows.extend(run_rows)
        return cls(tuple(rows))

    @property
    def runs(self) -> list[Run]:
        seen: dict[int, Run] = {}
        for row in self.rows:
            seen.setdefault(id(row.run), row.run)
        return list(seen.values())

    def of_run(self, run: Run) -> list[Row]:
        return [row for row in self.rows if row.run is run]

    @property
    def metric_names(self) -> list[str]:
        names = {name for row in self.rows for name in row.metrics}
        return [m for m in METRIC_ORDER if m in names] + sorted(names - set(METRIC_ORDER))

    def unit(self, name: str) -> str:
        for row in self.rows:
            metric = row.metrics.get(name)
            if metric is not None:
                return metric.unit
        return ""

    def with_ci(self) -> list[str]:
        return [n for n in self.metric_names if any((m := r.metrics.get(n)) is not None and m.ci for r in self.rows)]

    def records(self) -> list[dict[str, Any]]:
        """One flat record per row (run x combination): identity columns, then one column per metric
        (``None`` where the run did not save it) and ``<metric>_ci_low`` / ``_ci_high`` for intervals."""
        names, ci_names = self.metric_names, self.with_ci()
        out = []
        for row in self.rows:
            record: dict[str, Any] = {
                "run": row.run.id,
                "run_datetime": row.run.datetime,
                "commit": row.run.commit,
                "machine": row.run.path.parent.name if row.run.path is not None else None,
                "combination": row.combination,
                "model": row.model,
                "precision": row.precision,
                "device": row.device,
                "batch_size": row.batch_size,
                "backend": row.backend,
            }
            for name in names:
                record[name] = row.value(name)
            for name in ci_names:
                metric = row.metrics.get(name)
                ci = metric.ci if metric is not None else None
                record[f"{name}_ci_low"] = ci[0] if ci else None
                record[f"{name}_ci_high"] = ci[1] if ci else None
            out.append(record)
        return out


# ----------------------------------------------------------------------------- formatting

_BINARY = (("TiB", 2.0**40), ("GiB", 2.0**30), ("MiB", 2.0**20), ("KiB", 2.0**10))


def format_bytes(value: float) -> str:
    for unit, size in _BINARY:
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"


def format_value(value: float | None, unit: str) -> str:
    """A metric value for people: ``n/a`` where missing, bytes in binary units, seconds in ms below 1 s."""
    if value is None:
        return "n/a"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "bytes/s":
        return f"{value / 1e9:.1f} GB/s"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "tok/s":
        return f"{value:.1f} tok/s"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "F1":
        return f"{value:.3f}"
    if unit == "tokens":
        return f"{value:.1f}"
    return f"{value:.4g}"


_SIZE_UNITS = {
    "": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": 2.0**10, "mib": 2.0**20, "gib": 2.0**30, "tib": 2.0**40,
}  # fmt: skip


def parse_size(text: str, what: str = "--memory-budget") -> float:
    """A memory size such as ``8GiB``, ``512MiB``, ``16GB`` or plain bytes, in bytes."""
    number, unit = split_number_unit(text)
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except (ValueError, KeyError):
        raise ReportError(f"{what}: {text!r} is not a memory size; expected e.g. 8GiB, 512MiB, 16GB or bytes") from None
    if not value > 0 or value == float("inf"):
        raise ReportError(f"{what}: {text!r} must be a positive size")
    return value


# ----------------------------------------------------------------------------- the gate's verdict


@dataclass(frozen=True)
class ReportVerdict:
    """What the report shows of the gate's verdict: its markdown and the regressed (combination, metric)."""

    markdown: str
    regressed: frozenset[tuple[str, str]] = frozenset()
    #: One line, e.g. "2 regressions in 12 combinations".
    headline: str = ""
    #: The verdict cut to fit a pull-request comment next to the report's own tables ("" : use ``markdown``).
    short_markdown: str = ""


def _combination_of(bench: Mapping[str, Any]) -> str | None:
    info = bench.get("extra_info") or {}
    if not isinstance(info, Mapping) or not info.get("model"):
        return None
    base = f"{info['model']}-{info.get('precision', 'n/a')}-{info.get('device', 'n/a')}"
    return base if info.get("batch_size") is None else f"{base}-bs{info['batch_size']}"


def from_gate(verdict: Any, current: Run) -> ReportVerdict:
    """The report's view of a :class:`llmbench.gate.compare.Verdict`: its markdown, summary and regressed metrics."""
    combinations = {
        str(bench.get("fullname")): combination
        for bench in current.benchmarks
        if (combination := _combination_of(bench)) is not None
    }
    regressed = {
        (combinations.get(result.fullname, result.label), decision.metric)
        for result in verdict.results
        for decision in result.regressions
    }
    return ReportVerdict(
        verdict.markdown(), frozenset(regressed), verdict.summary(), verdict.markdown(limit=VERDICT_MARKDOWN_LIMIT)
    )


def gate_verdict(current: Run, history: Sequence[Run]) -> ReportVerdict | None:
    """The gate's verdict on ``current`` against the run before it in ``history`` (the gate's default
    baseline, ``last``), or None where there is no earlier run. Uses :mod:`llmbench.gate.compare` and its
    default rules; ``--llmbench-fail`` rules and windows are the business of ``llmbench compare``."""
    from llmbench.gate import compare as gate

    earlier = [run for run in history if run is not current and run.datetime <= current.datetime]
    if not earlier:
        return None
    try:
        previous, now = (
            gate.run_from_json(run.data, str(run.path or "this session"), run.id, _int_or_none(run.id))
            for run in (earlier[-1], current)
        )
    except gate.GateError as error:
        raise ReportError(str(error)) from None
    baseline = gate.Baseline((previous,), f"{previous.name} ({previous.source}), the run before")
    return from_gate(gate.compare_runs(baseline, now), current)


# ----------------------------------------------------------------------------- export


def _csv_cell(value: Any) -> Any:
    return "" if value is None else value


def write_csv(path: Path, records: Sequence[Mapping[str, Any]], columns: Sequence[str] | None = None) -> None:
    """Records as CSV (empty cells where a value is missing: pandas reads them as NaN)."""
    fields = list(columns) if columns is not None else list(records[0]) if records else []
    with path.open("w", encoding="utf-8", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=fields, extrasaction="ignore")
        writer.writeheader()
        for record in records:
            writer.writerow({key: _csv_cell(record.get(key)) for key in fields})


def write_export(table: Table, output: Path) -> Path:
    """The tidy table as ``.csv`` (standard library) or ``.parquet`` (needs pyarrow)."""
    records = table.records()
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise ReportError(f"--output: {str(output)!r} must end in .csv or .parquet")
    output.parent.mkdir(parents=True, exist_ok=True)
    if suffix == ".csv":
        write_csv(output, records)
        return output
    try:
        pa = importlib.import_module("pyarrow")
        pq = importlib.import_module("pyarrow.parquet")
    except ImportError:
        raise ReportError(
            f"--output: writing {output.name} needs pyarrow, which is not installed; "
            "install it (pip install pyarrow) or write a .csv file"
        ) from None
    pq.write_table(pa.Table.from_pylist(records), output)
    return output


# ----------------------------------------------------------------------------- command line


def _add_storage(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "runs", nargs="*", metavar="RUN",
        help="saved runs: a run number (0003), a glob or a run file. Default: see above",
    )  # fmt: skip
    parser.add_argument(
        "--storage", metavar="DIR", type=Path, default=Path(".benchmarks"),
        help="pytest-benchmark's storage directory. Default: %(default)s",
    )  # fmt: skip


def add_report_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench report``."""
    parser.description = (
        "Write DIR/index.html (one self-contained page) and DIR/report.md (for a pull-request comment), "
        "with the tables as CSV files next to them. Default runs: the latest saved run and the history "
        "before it."
    )
    _add_storage(parser)
    parser.add_argument("--output", "-o", metavar="DIR", type=Path, required=True, help="where to write the report")
    parser.add_argument(
        "--memory-budget", metavar="SIZE", default=DEFAULT_MEMORY_BUDGET,
        help="the memory the hardware guidance checks each combination against, e.g. 8GiB, 24GB. "
        "Default: %(default)s",
    )  # fmt: skip
    parser.add_argument(
        "--history", metavar="N", type=int, default=DEFAULT_HISTORY,
        help="saved runs shown in the history, the report's own included. Default: %(default)s",
    )  # fmt: skip
    parser.add_argument(
        "--combination", metavar="PATTERN", action="append", default=[],
        help="only combinations whose id matches this glob (e.g. '*-bf16-*'); repeat for more. Default: all",
    )  # fmt: skip


def report_main(args: argparse.Namespace) -> int:
    """``llmbench report``: 0 when written, 2 on a problem the message explains."""
    from llmbench.report.html import write_report

    try:
        budget = parse_size(args.memory_budget)
        current, history = select_runs(args.storage, args.runs, args.history)
        files = write_report(
            current, history, args.output, memory_budget=budget, combinations=args.combination,
            verdict=gate_verdict(current, history),
        )  # fmt: skip
    except ReportError as error:
        print(f"llmbench report: error: {error}")
        return 2
    print(f"llmbench report: wrote {files.index} and {files.markdown}")
    return 0


def add_export_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench export``."""
    parser.description = (
        "Write saved runs as one table, one row per combination and run, every metric a column "
        "(empty where a run did not save it). Default runs: all saved runs."
    )
    _add_storage(parser)
    parser.add_argument(
        "--output", "-o", metavar="FILE", type=Path, required=True,
        help="FILE.csv, or FILE.parquet (needs pyarrow)",
    )  # fmt: skip


def export_main(args: argparse.Namespace) -> int:
    """``llmbench export``: 0 when written, 2 on a problem the message explains."""
    try:
        runs = load_runs(args.storage, args.runs)
        if not runs:
            raise ReportError(f"no saved run in {str(args.storage)!r}")
        table = Table.of(runs)
        path = write_export(table, args.output)
    except ReportError as error:
        print(f"llmbench export: error: {error}")
        return 2
    print(f"llmbench export: wrote {len(table.rows)} rows ({len(table.runs)} runs) to {path}")
    return 0


def read_json(path: Path) -> Mapping[str, Any]:
    """A run file, for tests and scripts."""
    data = json.loads(path.read_text(encoding="utf-8"))
    if not isinstance(data, Mapping):
        raise ReportError(f"{path}: not a pytest-benchmark run (expected a JSON object)")
    return data
