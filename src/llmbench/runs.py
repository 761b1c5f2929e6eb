"""The one saved-run model: pytest-benchmark JSON runs, loaded, listed, found and written atomically.

A saved run is ``<storage>/<machine id>/NNNN_*.json``. Saved runs are only ever opened for reading
here (listing finds what pytest-benchmark's own file storage query finds); new files (a merged run, a verdict) are
written through a temporary file in the same folder, fsynced, renamed, and the folder fsynced. A run
is checked once, when it is read (:func:`run_from_json`): a broken structure is a :class:`RunFileError`
naming the file, the benchmark and the field; a bad value of one metric makes that metric n/a with a
note. See docs/testing.md.
"""

from __future__ import annotations

import json
import math
import os
import re
import tempfile
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO, get_args

from llmbench.benchmark_storage import RUN_GLOB, machine_id, saved_run_files
from llmbench.metrics import METRIC_FACTS, Unit

__all__ = [
    "FAILED_KEY",
    "FINGERPRINT_KEY",
    "INTERRUPTED_KEY",
    "RUN_GLOB",
    "RunError",
    "RunFileError",
    "SavedRun",
    "benchmark_label",
    "find_run",
    "list_runs",
    "load_run",
    "machine_id_here",
    "parse_run_id",
    "read_json",
    "run_from_json",
    "run_number",
    "write_atomically",
    "write_json_atomically",
    "write_text_atomically",
]

#: The machine_info key of the machine fingerprint each run carries (:mod:`llmbench.fingerprint`).
FINGERPRINT_KEY = "llmbench"
#: The machine_info key of the benchmarks whose test failed in the run: fullname -> the reason.
FAILED_KEY = "llmbench_failed"
#: The machine_info key set on a run saved by an interrupted session (Ctrl-C): what stopped it.
INTERRUPTED_KEY = "llmbench_interrupted"

_RUN_FILE = re.compile(r"^(?P<number>\d{4})_.*\.json$")
_RUN_ID = re.compile(r"^(?P<number>\d{1,4})(?:_.*)?$")


class RunError(Exception):
    """A run that cannot be used (missing, unreadable, corrupted, not a pytest-benchmark run)."""


class RunFileError(RunError):
    """A run file whose structure is broken; the message names the file, the benchmark and the field."""


#: The identifying fields of a benchmark's ``extra_info`` and the JSON types each must have.
_IDENTITY_TYPES: dict[str, tuple[type, ...]] = {
    "model": (str,), "precision": (str,), "device": (str,), "backend": (str,), "family": (str,),
    "batch_size": (int,), "max_new_tokens": (int,), "quality_items": (int,), "outputs_file": (str,),
    "llmbench_fail": (str,), "outputs": (dict,), "dataset": (str,),
}  # fmt: skip
#: pytest-benchmark's ``stats`` fields the readers use, all numbers (``data``: the rounds, a list of them).
_STATS_NUMBERS = ("min", "max", "mean", "stddev", "median", "iqr", "q1", "q3", "ops", "total", "rounds")
#: Every unit a metric may have (llmbench.metrics.Unit; "J/tok" and "W" were once missing: energy warned).
_UNITS = frozenset(get_args(Unit))
_DIRECTIONS = frozenset({"higher", "lower", "none"})
#: Larger magnitudes are no measurement (bytes, seconds, tokens per second): the metric is n/a.
LARGEST_VALUE = 1e18


@dataclass(frozen=True)
class SavedRun:
    """One saved run (or the current session), read-only."""

    #: Where it came from, as shown ("/path/.benchmarks/Linux-.../0003_abc.json", "this session").
    source: str
    #: A short name: the run id ("0003"), else the file name (or the source for a session).
    name: str
    #: The run number from the file name (``0003_*.json``), None for other files and the session.
    number: int | None
    machine_info: Mapping[str, Any]
    #: fullname -> the benchmark's JSON object (with ``stats`` and ``extra_info``), in file order.
    benchmarks: Mapping[str, Mapping[str, Any]]
    notes: tuple[str, ...] = ()
    #: The file, None for a run that was not saved.
    path: Path | None = None
    commit_info: Mapping[str, Any] | None = None
    #: pytest-benchmark's ISO timestamp ("" where missing).
    datetime: str = ""
    #: The whole parsed JSON object (for code that needs keys not modelled here).
    data: Mapping[str, Any] | None = None
    #: The combinations whose test failed in this run, (fullname, reason), from ``machine_info``'s
    #: :data:`FAILED_KEY` (a failed test's benchmark is not saved).
    failed: tuple[tuple[str, str], ...] = ()

    @property
    def fingerprint(self) -> Mapping[str, Any] | None:
        """The llmbench machine fingerprint saved with the run (``machine_info["llmbench"]``), if any."""
        value = self.machine_info.get(FINGERPRINT_KEY)
        return value if isinstance(value, Mapping) else None

    @property
    def commit(self) -> str | None:
        """The commit id the run was made at, None where unknown or unversioned."""
        commit = (self.commit_info or {}).get("id")
        return str(commit) if commit and commit != "unversioned" else None

    @property
    def dirty(self) -> bool:
        return bool((self.commit_info or {}).get("dirty"))

    @property
    def label(self) -> str:
        """Short label for axes and tables: ``0003 abc1234`` or ``0003 2026-11-28 09:27``."""
        if self.commit:
            return f"{self.name} {self.commit[:7]}{'+' if self.dirty else ''}"
        return f"{self.name} {self.datetime[:16].replace('T', ' ')}".strip()

    @property
    def machine_id(self) -> str | None:
        """The storage subfolder (pytest-benchmark's machine id) of a saved run."""
        return self.path.parent.name if self.path is not None else None


def run_number(path: Path) -> int | None:
    """``3`` for ``0003_abc.json``; None for a file not named like a saved run."""
    match = _RUN_FILE.match(path.name)
    return int(match["number"]) if match else None


def parse_run_id(text: str) -> str | None:
    """``"0003"`` for ``3``, ``0003`` or ``0003_abc`` (also ``0003_abc.json``); None for other text."""
    match = _RUN_ID.match(text)
    return f"{int(match['number']):04d}" if match else None


def _not_finite_count(value: Any) -> int:
    if isinstance(value, float):
        return 0 if math.isfinite(value) else 1
    if isinstance(value, Mapping):
        return sum(_not_finite_count(v) for v in value.values())
    if isinstance(value, list):
        return sum(_not_finite_count(v) for v in value)
    return 0


def benchmark_label(bench: Mapping[str, Any]) -> str:
    """``gemma3-270m nf4 cpu bs4`` for test_generate (the data set last where the test id names it); other
    tests get their name first (``load gemma3-270m q4_k_m cpu``); the fullname where the combination fields
    are missing."""
    extra = bench.get("extra_info")
    fullname = str(bench.get("fullname", "?"))
    if not isinstance(extra, Mapping) or "model" not in extra:
        return fullname
    words = [str(extra[key]) for key in ("model", "precision", "device") if key in extra]
    if "batch_size" in extra:
        words.append(f"bs{extra['batch_size']}")
    if extra.get("dataset"):
        words.append(str(extra["dataset"]))
    function = fullname.split("::")[-1].split("[")[0]
    if function != "test_generate":
        words.insert(0, function.removeprefix("test_"))
    return " ".join(words)


def run_from_json(
    data: Any, source: str, name: str | None = None, number: int | None = None, *, path: Path | None = None
) -> SavedRun:
    """A :class:`SavedRun` from a parsed pytest-benchmark JSON object. Raises :class:`RunError`.

    ``name`` defaults to the run id of ``path`` (``0003``), else its file name, else ``source``.
    """
    if not isinstance(data, Mapping) or not isinstance(data.get("benchmarks"), list):
        raise RunError(f"{source}: not a pytest-benchmark run (expected a JSON object with a 'benchmarks' list)")
    if number is None and path is not None:
        number = run_number(path)
    if name is None:
        name = f"{number:04d}" if number is not None else path.name if path is not None else source
    benchmarks: dict[str, Mapping[str, Any]] = {}
    notes: list[str] = []
    for index, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, Mapping) or not isinstance(bench.get("fullname"), str):
            raise RunFileError(f"{source}: benchmark #{index + 1} has no 'fullname' (not a pytest-benchmark run?)")
        benchmarks[bench["fullname"]] = _checked_benchmark(bench, source, name, notes)
    bad = {
        full: count
        for full, bench in benchmarks.items()
        if (count := _not_finite_count(bench.get("extra_info")) + _not_finite_count(bench.get("stats")))
    }
    if bad:
        where = ", ".join(benchmark_label(benchmarks[full]) for full in bad)
        notes.append(f"{name}: {sum(bad.values())} value(s) are NaN or infinite ({where}): shown as n/a")
    machine_info = data.get("machine_info")
    if machine_info is not None and not isinstance(machine_info, Mapping):
        raise RunFileError(f"{source}: field 'machine_info' is {_kind(machine_info)}, expected an object")
    fingerprint = (machine_info or {}).get(FINGERPRINT_KEY)
    if fingerprint is not None and not isinstance(fingerprint, Mapping):
        raise RunFileError(
            f"{source}: field 'machine_info.{FINGERPRINT_KEY}' is {_kind(fingerprint)}, expected an object"
        )
    failed = (machine_info or {}).get(FAILED_KEY) or {}
    if not isinstance(failed, Mapping) or not all(isinstance(v, str) for v in failed.values()):
        raise RunFileError(f"{source}: field 'machine_info.{FAILED_KEY}' is {_kind(failed)}, expected an object "
                           "of test ids and reasons")  # fmt: skip
    interrupted = (machine_info or {}).get(INTERRUPTED_KEY)
    if interrupted:
        notes.append(f"{name}: saved by an interrupted session ({interrupted}): it holds only the tests that finished")
    commit_info = data.get("commit_info")
    return SavedRun(
        source=source, name=name, number=number,
        machine_info=machine_info if isinstance(machine_info, Mapping) else {},
        benchmarks=benchmarks, notes=tuple(notes), path=path,
        commit_info=commit_info if isinstance(commit_info, Mapping) else None,
        datetime=str(data.get("datetime") or ""), data=data, failed=tuple(failed.items()),
    )  # fmt: skip


def _kind(value: Any) -> str:
    """``a list``, ``the string '5'``, ``the number 5``: what a bad field holds, for a message."""
    if isinstance(value, bool):
        return f"the boolean {str(value).lower()}"
    if isinstance(value, int | float):
        return f"the number {value!r}" if abs(value) < 1e30 else "a number out of range"
    if isinstance(value, str):
        return f"the string {value[:40]!r}"
    if value is None:
        return "null"
    return "a list" if isinstance(value, list) else "an object" if isinstance(value, Mapping) else type(value).__name__


def _is_number(value: Any) -> bool:
    """A JSON number (not a boolean); NaN and infinities count (readers show them as n/a)."""
    return isinstance(value, int | float) and not isinstance(value, bool)


def _too_large(value: Any) -> bool:
    """A number beyond :data:`LARGEST_VALUE` (an integer too large for a float included; NaN and
    infinities are not: readers show them as n/a)."""
    if not _is_number(value):
        return False
    try:
        number = float(value)
    except OverflowError:
        return True
    return math.isfinite(number) and abs(number) > LARGEST_VALUE


def _one_of(value: Any, allowed: frozenset[str]) -> bool:
    return isinstance(value, str) and value in allowed


def _metric_problem(data: Any) -> str | None:
    """What is wrong with one saved metric object (None if it can be read)."""
    if not isinstance(data, Mapping):
        return f"is {_kind(data)}, expected an object"
    value = data.get("value")
    if value is not None and not _is_number(value):
        return f"'value' is {_kind(value)}, expected a number or null"
    samples = data.get("samples")
    if samples is not None and not (isinstance(samples, list) and all(_is_number(x) for x in samples)):
        return f"'samples' is {_kind(samples)}, expected a list of numbers"
    ci = data.get("ci")
    if ci is not None and not (
        isinstance(ci, list) and len(ci) == 2 and (all(_is_number(x) for x in ci) or ci == [None, None])
    ):
        return f"'ci' is {_kind(ci) if not isinstance(ci, list) else f'a list of {len(ci)}'}, expected [low, high]"
    for key, allowed in (("unit", _UNITS), ("direction", _DIRECTIONS)):
        if key in data and not _one_of(data[key], allowed):
            return f"'{key}' is {_kind(data[key])}, expected one of {', '.join(sorted(allowed))}"
    if any(_too_large(x) for x in (value, *(samples or ()), *(ci or ()))):
        return f"holds a number beyond {LARGEST_VALUE:g}"
    return None


def _checked_metrics(metrics: Mapping[str, Any], where: str, notes: list[str]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for metric, data in metrics.items():
        problem = _metric_problem(data)
        if problem is None:
            out[metric] = data
            continue
        notes.append(f"{where}: metric {metric}: {problem}: shown as n/a")
        saved = data if isinstance(data, Mapping) else {}
        unit = saved.get("unit") if _one_of(saved.get("unit"), _UNITS) else None
        direction = saved.get("direction") if _one_of(saved.get("direction"), _DIRECTIONS) else None
        facts = METRIC_FACTS.get(metric)
        out[metric] = {
            "value": None,
            "unit": unit or (facts.unit if facts else "count"),
            "direction": direction or (facts.direction if facts else "none"),
            "note": f"unreadable in the saved run: {problem}",
        }
    return out


def _checked_benchmark(bench: Mapping[str, Any], source: str, run_name: str, notes: list[str]) -> Mapping[str, Any]:
    """The benchmark as the readers may trust it: a broken field raises :class:`RunFileError`, a bad metric
    (or bad stats, from which older runs take their latency) becomes n/a with a note in ``notes``."""
    fullname = bench["fullname"]
    where = f"{source}: benchmark {fullname!r}"
    checked = dict(bench)
    extra = bench.get("extra_info")
    if extra is not None:
        if not isinstance(extra, Mapping):
            raise RunFileError(f"{where}: field 'extra_info' is {_kind(extra)}, expected an object")
        for key, types in _IDENTITY_TYPES.items():
            value = extra.get(key)
            if value is not None and (not isinstance(value, types) or isinstance(value, bool)):
                raise RunFileError(f"{where}: field 'extra_info.{key}' is {_kind(value)}, expected {_expected(types)}")
        metrics = extra.get("metrics")
        if metrics is not None:
            if not isinstance(metrics, Mapping):
                raise RunFileError(f"{where}: field 'extra_info.metrics' is {_kind(metrics)}, expected an object")
            checked["extra_info"] = {**extra, "metrics": _checked_metrics(metrics, f"{run_name}: {fullname}", notes)}
    stats = bench.get("stats")
    if stats is not None:
        if not isinstance(stats, Mapping):
            raise RunFileError(f"{where}: field 'stats' is {_kind(stats)}, expected an object")
        bad = [key for key in _STATS_NUMBERS if stats.get(key) is not None and not _is_number(stats[key])]
        data = stats.get("data")
        if data is not None and not (isinstance(data, list) and all(_is_number(x) for x in data)):
            bad.append("data")
        bad += [key for key in _STATS_NUMBERS if key not in bad and _too_large(stats.get(key))]
        if "data" not in bad and data is not None and any(_too_large(x) for x in data):
            bad.append("data")
        if bad:
            fields = ", ".join(f"'stats.{key}'" for key in bad)
            notes.append(f"{run_name}: {fullname}: {fields} not (finite, plausible) numbers: its stats are n/a")
            checked["stats"] = {}
    return checked


def _expected(types: tuple[type, ...]) -> str:
    return {str: "a string", int: "an integer", dict: "an object"}[types[0]]


def read_json(path: Path) -> Any:
    """The parsed JSON of a file (opened read-only). Raises :class:`RunError` with the file and the problem."""
    try:
        with path.open("rb") as handle:
            raw = handle.read()
    except FileNotFoundError:
        raise RunError(f"{path}: no such file") from None
    except IsADirectoryError:
        raise RunError(f"{path}: is a folder, not a run's .json file") from None
    except OSError as error:
        raise RunError(f"{path}: cannot be read ({error.strerror or error})") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except UnicodeDecodeError:
        raise RunError(f"{path}: not a JSON file (not UTF-8 text)") from None
    except json.JSONDecodeError as error:
        raise RunError(f"{path}: corrupted JSON ({error.msg} at line {error.lineno}, column {error.colno})") from None


def load_run(path: Path) -> SavedRun:
    """Read one saved run (opened read-only). Raises :class:`RunError` with the file and the problem."""
    return run_from_json(read_json(path), str(path), path=path)


def list_runs(storage: Path, machine_id: str | None = None) -> list[Path]:
    """The saved runs ``NNNN_*.json`` of one machine id (all machine ids with None), oldest first.

    The files pytest-benchmark's own file storage query finds (:func:`llmbench.benchmark_storage.saved_run_files`);
    nothing is ever written, a missing folder is not created.
    """
    paths = [path for path in saved_run_files(storage, machine_id) if run_number(path) is not None]
    return sorted(paths, key=lambda p: (run_number(p), str(p)))


def find_run(storage: Path, run_id: str, machine_id: str | None, origin: str) -> Path:
    """The file of run ``run_id`` ("0003"): this machine id's folder first, then any. Raises :class:`RunError`."""
    where = f"(from {origin})"
    if not storage.is_dir():
        raise RunError(f"run {run_id}: the storage folder {storage} does not exist {where}")
    for scope in (machine_id, None) if machine_id else (None,):
        matches = [p for p in list_runs(storage, scope) if run_number(p) == int(run_id)]
        if len(matches) == 1:
            return matches[0]
        if len(matches) > 1:
            listed = ", ".join(str(p) for p in matches)
            raise RunError(f"run {run_id} is ambiguous in {storage} {where}: {listed}; give the file's path")
    saved = [f"{run_number(p):04d}" for p in list_runs(storage, None)]
    have = f"saved runs: {', '.join(saved)}" if saved else "it holds no saved runs"
    raise RunError(f"run {run_id} not found in {storage} {where}; {have}")


def _fsync_directory(directory: Path) -> None:
    """Make a rename durable (POSIX); a no-op where folders cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def write_atomically(path: Path, write: Callable[[TextIO], object]) -> None:
    """Call ``write(stream)`` on a temporary file in ``path``'s folder, fsync it, rename it to ``path``, fsync
    the folder. A crash or an error leaves the previous file untouched and no temporary file behind."""
    path.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(handle, "w", encoding="utf-8", newline="\n") as out:
            write(out)
            out.flush()
            os.fsync(out.fileno())
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def write_text_atomically(path: Path, text: str) -> None:
    """Write ``text`` to ``path`` through :func:`write_atomically`."""
    write_atomically(path, lambda out: out.write(text))


def write_json_atomically(path: Path, data: Any) -> None:
    """Write ``data`` as indented JSON (as pytest-benchmark saves runs) through :func:`write_atomically`."""

    def dump(out: TextIO) -> None:
        json.dump(data, out, indent=4)
        out.write("\n")

    write_atomically(path, dump)


def machine_id_here() -> str:
    """pytest-benchmark's id of this machine, its storage subfolder (``Linux-CPython-3.11-64bit``)."""
    return machine_id()
