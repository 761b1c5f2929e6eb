"""The one saved-run model: pytest-benchmark JSON runs, loaded, listed, found and written atomically.

A saved run is ``<storage>/<machine id>/NNNN_*.json``. Saved runs are only ever opened for reading
here (listing uses pytest-benchmark's own file storage query); new files (a merged run, a verdict) are
written through a temporary file in the same folder, fsynced, renamed, and the folder fsynced. Bad
input gives a :class:`RunError` naming the file and the problem, never a traceback.
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
from typing import Any, TextIO

__all__ = [
    "FINGERPRINT_KEY",
    "RUN_GLOB",
    "RunError",
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

#: How pytest-benchmark names saved runs (``0001_<commit>_<date>.json``), as a storage query.
RUN_GLOB = "[0-9][0-9][0-9][0-9]_"
#: The machine_info key of the machine fingerprint each run carries (:mod:`llmbench.fingerprint`).
FINGERPRINT_KEY = "llmbench"

_RUN_FILE = re.compile(r"^(?P<number>\d{4})_.*\.json$")
_RUN_ID = re.compile(r"^(?P<number>\d{1,4})(?:_.*)?$")


class RunError(Exception):
    """A run that cannot be used (missing, unreadable, corrupted, not a pytest-benchmark run)."""


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
    """``gemma3-270m nf4 cpu bs4`` for test_generate; other tests get their name first
    (``load gemma3-270m q4_k_m cpu``); the fullname where the combination fields are missing."""
    extra = bench.get("extra_info")
    fullname = str(bench.get("fullname", "?"))
    if not isinstance(extra, Mapping) or "model" not in extra:
        return fullname
    words = [str(extra[key]) for key in ("model", "precision", "device") if key in extra]
    if "batch_size" in extra:
        words.append(f"bs{extra['batch_size']}")
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
    for index, bench in enumerate(data["benchmarks"]):
        if not isinstance(bench, Mapping) or not isinstance(bench.get("fullname"), str):
            raise RunError(f"{source}: benchmark #{index + 1} has no 'fullname' (not a pytest-benchmark run?)")
        benchmarks[bench["fullname"]] = bench
    notes = []
    bad = {
        full: count
        for full, bench in benchmarks.items()
        if (count := _not_finite_count(bench.get("extra_info")) + _not_finite_count(bench.get("stats")))
    }
    if bad:
        where = ", ".join(benchmark_label(benchmarks[full]) for full in bad)
        notes.append(f"{name}: {sum(bad.values())} value(s) are NaN or infinite ({where}): shown as n/a")
    machine_info = data.get("machine_info")
    commit_info = data.get("commit_info")
    return SavedRun(
        source=source, name=name, number=number,
        machine_info=machine_info if isinstance(machine_info, Mapping) else {},
        benchmarks=benchmarks, notes=tuple(notes), path=path,
        commit_info=commit_info if isinstance(commit_info, Mapping) else None,
        datetime=str(data.get("datetime") or ""), data=data,
    )  # fmt: skip


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

    Uses pytest-benchmark's own :class:`FileStorage` query, constructed only on an existing folder (its
    constructor would create a missing one; nothing is ever written).
    """
    if not storage.is_dir():
        return []
    from pytest_benchmark.storage.file import FileStorage

    query = FileStorage(storage, logger=None, default_machine_id=machine_id).query  # type: ignore[no-untyped-call]
    files = query(RUN_GLOB)  # type: ignore[no-untyped-call]
    paths = [Path(file) for file in files if run_number(Path(file)) is not None]
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
    from pytest_benchmark.utils import get_machine_id

    return str(get_machine_id())  # type: ignore[no-untyped-call]
