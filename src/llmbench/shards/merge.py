"""Splitting the matrix across machines (``--llmbench-shard=K/N``) and merging the shards' saved runs.

**Assignment.** The unit that loads once is a (model, precision) pair: its tests go to one shard
whenever there are at least as many pairs as shards, so each model is loaded in as few shards as
possible. Pairs are balanced by expected cost, largest first, each onto the least-loaded shard (ties:
the lower shard number; pairs of equal cost in name order), so the same matrix always gives the same
shards on every machine and every combination is in exactly one shard. With more shards than pairs,
the largest pieces are split in two, by device first and then by batch size, until there are enough.

**Cost model** (relative, unitless; only the ratios matter)::

    cost = PRECISION_FACTOR[precision] * batch_size * max_new_tokens

``PRECISION_FACTOR`` is the time per generated token relative to fp32/bf16 on the development machines
(DESIGN.md: bitsandbytes int8 decodes at about half the speed of bf16, llama.cpp GGUF types at about
2.5 times). A load test (no batch size) counts as batch size 1. The cost must not depend on the
machine (CUDA present or not, skips): shards on different machines must compute the same split.

**Merge.** ``llmbench merge RUN... -o RUN`` joins pytest-benchmark JSON runs of the shards into one
run with the same top-level keys (``machine_info``, ``commit_info``, ``benchmarks``, ``datetime``,
``version``), refusing a benchmark present in two shards and shards made with different settings.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from llmbench.config.combination import GGUF_PRECISIONS

#: Time per generated token relative to fp32 (DESIGN.md, Gemma 3 270M on CPU: fp32 and bf16 about
#: 16 tok/s, nf4 14, int8 7.6, llama.cpp Q4_K_M about 42). Unknown precisions count as 1.
PRECISION_FACTOR: dict[str, float] = {
    "fp32": 1.0,
    "bf16": 1.0,
    "fp16": 1.0,
    "nf4": 1.0,
    "int8": 2.0,
    **{precision: 0.4 for precision in GGUF_PRECISIONS},
}
#: The machine_info key of a run that says which shard made it (written by ``llmbench.plugin.shard_hooks``).
SHARD_INFO_KEY = "llmbench_shard"
#: The machine_info key of a merged run: shard file -> that shard's machine fingerprint.
SHARDS_INFO_KEY = "llmbench_shards"
#: The machine_info key of the fingerprint each run carries (``llmbench.fingerprint``).
FINGERPRINT_KEY = "llmbench"
TOP_LEVEL_KEYS = ("machine_info", "commit_info", "benchmarks", "datetime", "version")


def expected_cost(precision: str, batch_size: int | None, max_new_tokens: int) -> float:
    """The cost model above: precision factor x batch size x new tokens."""
    return PRECISION_FACTOR.get(precision, 1.0) * (batch_size or 1) * max_new_tokens


@dataclass(frozen=True)
class Work:
    """One test to place: its unique name (the test id), what it runs and its expected cost."""

    name: str
    model: str
    precision: str
    device: str
    batch_size: int | None
    cost: float


@dataclass(frozen=True)
class _Piece:
    name: str
    work: tuple[Work, ...]

    @property
    def cost(self) -> float:
        return sum(sorted(w.cost for w in self.work))


def _axis_values(piece: _Piece, axis: str) -> dict[str, Any]:
    """Each work's value on ``axis`` ("device" or "bs"); a load test (no batch size) goes with the
    smallest batch size of its piece, so splitting by batch size does not add a load."""
    if axis == "device":
        return {w.name: w.device for w in piece.work}
    sizes = [w.batch_size for w in piece.work if w.batch_size is not None]
    smallest = min(sizes) if sizes else None
    return {w.name: w.batch_size if w.batch_size is not None else smallest for w in piece.work}


def _halves(piece: _Piece) -> tuple[_Piece, _Piece] | None:
    """Split a piece in two by device, else by batch size (balanced by cost), or None if it cannot be."""
    for axis in ("device", "bs"):
        value_of = _axis_values(piece, axis)
        values = sorted(set(value_of.values()), key=str)
        if len(values) < 2:
            continue
        costs = {v: sum(sorted(w.cost for w in piece.work if value_of[w.name] == v)) for v in values}
        sides: tuple[list[Any], list[Any]] = ([], [])
        loads = [0.0, 0.0]
        for value in sorted(values, key=lambda v: (-costs[v], str(v))):
            side = 0 if loads[0] <= loads[1] else 1
            sides[side].append(value)
            loads[side] += costs[value]
        halves = tuple(
            _Piece(
                f"{piece.name}/{axis}={'+'.join(sorted(str(v) for v in side))}",
                tuple(w for w in piece.work if value_of[w.name] in side),
            )
            for side in sides
        )
        return halves[0], halves[1]
    return None


def assign_shards(work: Iterable[Work], n: int) -> dict[str, int]:
    """Each work name -> its shard (1..n); deterministic, every name in exactly one shard.

    Groups by (model, precision); with more shards than groups, splits the largest groups by device,
    then batch size; places groups largest first onto the least-loaded shard (ties: lower shard).
    """
    if n < 1:
        raise ValueError(f"shard count must be positive, got {n}")
    items = list(work)
    names = [w.name for w in items]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"work names must be unique; repeated: {', '.join(duplicates)}")
    groups: dict[tuple[str, str], list[Work]] = {}
    for w in sorted(items, key=lambda w: w.name):
        groups.setdefault((w.model, w.precision), []).append(w)
    pieces = [_Piece(f"{model}-{precision}", tuple(ws)) for (model, precision), ws in groups.items()]
    while len(pieces) < n:
        for piece in sorted(pieces, key=lambda p: (-p.cost, p.name)):
            halves = _halves(piece)
            if halves is not None:
                pieces.remove(piece)
                pieces.extend(halves)
                break
        else:
            break  # nothing left to split: some shards stay empty
    loads = [0.0] * n
    shard_of: dict[str, int] = {}
    for piece in sorted(pieces, key=lambda p: (-p.cost, p.name)):
        shard = min(range(n), key=lambda index: (loads[index], index))
        loads[shard] += piece.cost
        for w in piece.work:
            shard_of[w.name] = shard + 1
    return shard_of


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, what: str, origin: str) -> Shard:
    """``K/N`` with 1 <= K <= N; a :class:`llmbench.config.options.SettingError` otherwise."""
    from llmbench.config.options import SettingError

    parts = text.strip().split("/")
    try:
        index, count = (int(part) for part in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        index = count = None
    if index is None or count is None or count < 1 or not 1 <= index <= count:
        raise SettingError(f"{what}: {text!r} is not a shard (from {origin}); expected K/N with 1 <= K <= N, e.g. 2/3")
    return Shard(index, count)


# --- merge -------------------------------------------------------------------------------------


class MergeError(Exception):
    """Runs that cannot be merged; the message names the files."""


def _load(path: Path) -> dict[str, Any]:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise MergeError(f"{path}: no such file") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise MergeError(f"{path}: not a readable pytest-benchmark JSON run ({error})") from None
    if not isinstance(data, dict):
        raise MergeError(f"{path}: not a pytest-benchmark run (top level is not an object)")
    missing = [key for key in TOP_LEVEL_KEYS if key not in data]
    if missing:
        raise MergeError(f"{path}: not a pytest-benchmark run (missing {', '.join(missing)})")
    if not isinstance(data["benchmarks"], list) or not isinstance(data["machine_info"], dict):
        raise MergeError(f"{path}: not a pytest-benchmark run (benchmarks must be a list, machine_info an object)")
    return data


def _settings_of(data: Mapping[str, Any]) -> dict[str, frozenset[Any]]:
    """The settings that must agree between shards: readable name -> the values this run has."""
    settings: dict[str, set[Any]] = {}

    def add(name: str, value: Any) -> None:
        settings.setdefault(name, set()).add(json.dumps(value, sort_keys=True))

    add("pytest-benchmark version", data.get("version"))
    add("commit id", (data.get("commit_info") or {}).get("id"))
    shard = data["machine_info"].get(SHARD_INFO_KEY)
    if isinstance(shard, Mapping):
        add("shard count", shard.get("count"))
    fingerprint = data["machine_info"].get(FINGERPRINT_KEY)
    if isinstance(fingerprint, Mapping) and isinstance(fingerprint.get("settings"), Mapping):
        for name, value in fingerprint["settings"].items():
            add(f"setting {name}", value)
    for bench in data["benchmarks"]:
        info = bench.get("extra_info") or {}
        if "model" not in info:
            continue  # not a benchmark of the matrix: its rounds may be calibrated
        if "max_new_tokens" in info:
            add(f"max_new_tokens of {info['model']}", info["max_new_tokens"])
        if "quality_items" in info:
            add("quality items", info["quality_items"])
        rounds = (bench.get("stats") or {}).get("rounds")
        if rounds is not None:
            function = str(bench.get("fullname", bench.get("name", ""))).split("[", 1)[0]
            add(f"rounds of {function}", rounds)
    return {name: frozenset(values) for name, values in settings.items()}


def _shown(values: frozenset[str]) -> str:
    return ", ".join(sorted(values))


def _fingerprint(data: Mapping[str, Any]) -> Any:
    fingerprint = data["machine_info"].get(FINGERPRINT_KEY)
    if fingerprint is not None:
        return fingerprint
    # A run without the harness's fingerprint: keep pytest-benchmark's own machine description.
    return {key: value for key, value in data["machine_info"].items() if key not in (SHARD_INFO_KEY, SHARDS_INFO_KEY)}


def merge_runs(paths: Sequence[Path | str]) -> dict[str, Any]:
    """One pytest-benchmark run from the saved runs of the shards; :class:`MergeError` when they do not fit.

    The merged run keeps the first file's ``machine_info``, ``commit_info`` and ``version``, takes the
    latest ``datetime``, adds ``machine_info["llmbench_shards"]`` (file -> that shard's fingerprint)
    and ``extra_info["shard"]`` (the file) to every benchmark.
    """
    if not paths:
        raise MergeError("no runs to merge")
    files = [str(path) for path in paths]
    repeated = sorted({name for name in files if files.count(name) > 1})
    if repeated:
        raise MergeError(f"{', '.join(repeated)} given more than once")
    runs = {name: _load(Path(name)) for name in files}

    owner: dict[str, str] = {}
    duplicates: list[str] = []
    for name, data in runs.items():
        for bench in data["benchmarks"]:
            fullname = str(bench.get("fullname", bench.get("name")))
            if fullname in owner:
                duplicates.append(f"{fullname} (in {owner[fullname]} and {name})")
            else:
                owner[fullname] = name
    if duplicates:
        shown = "; ".join(duplicates[:5]) + (f"; and {len(duplicates) - 5} more" if len(duplicates) > 5 else "")
        raise MergeError(f"the same benchmark is in two runs: {shown}")

    seen: dict[str, tuple[frozenset[str], str]] = {}
    mismatches: list[str] = []
    for name, data in runs.items():
        for setting, values in _settings_of(data).items():
            if setting not in seen:
                seen[setting] = (values, name)
            elif seen[setting][0] != values:
                first_values, first_file = seen[setting]
                mismatches.append(f"{setting}: {_shown(first_values)} in {first_file} but {_shown(values)} in {name}")
    indexes: dict[int, str] = {}
    for name, data in runs.items():
        shard = data["machine_info"].get(SHARD_INFO_KEY)
        index = shard.get("index") if isinstance(shard, Mapping) else None
        if isinstance(index, int):
            if index in indexes:
                mismatches.append(f"shard {index}: in {indexes[index]} and in {name}")
            indexes[index] = name
    if mismatches:
        raise MergeError("the runs were made with different settings, refusing to merge: " + "; ".join(mismatches))

    first = runs[files[0]]
    machine_info = {key: value for key, value in first["machine_info"].items() if key != SHARD_INFO_KEY}
    machine_info[SHARDS_INFO_KEY] = {name: _fingerprint(data) for name, data in runs.items()}
    benchmarks = []
    for name, data in runs.items():
        for bench in data["benchmarks"]:
            merged = dict(bench)
            merged["extra_info"] = {**(bench.get("extra_info") or {}), "shard": name}
            benchmarks.append(merged)
    return {
        "machine_info": machine_info,
        "commit_info": first["commit_info"],
        "benchmarks": benchmarks,
        "datetime": max(str(data["datetime"]) for data in runs.values()),
        "version": first["version"],
    }


def missing_shards(paths: Sequence[Path | str]) -> list[int]:
    """Shard numbers that none of the runs carries (from their ``llmbench_shard`` record), for a warning."""
    count = None
    present = set()
    for path in paths:
        shard = _load(Path(path))["machine_info"].get(SHARD_INFO_KEY)
        if isinstance(shard, Mapping) and isinstance(shard.get("count"), int):
            count = shard["count"]
            present.add(shard.get("index"))
    return [] if count is None else [index for index in range(1, count + 1) if index not in present]


def write_run(run: Mapping[str, Any], output: Path) -> None:
    """Write a run atomically: a temporary file in the same folder, then ``os.replace``."""
    output.parent.mkdir(parents=True, exist_ok=True)
    handle, temporary = tempfile.mkstemp(prefix=f".{output.name}.", suffix=".tmp", dir=output.parent)
    try:
        with os.fdopen(handle, "w", encoding="utf-8") as stream:
            json.dump(run, stream, indent=4)
            stream.write("\n")
        os.replace(temporary, output)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def add_merge_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("runs", nargs="+", metavar="RUN", type=Path, help="saved runs of the shards (JSON files)")
    parser.add_argument(
        "-o", "--output", required=True, type=Path, metavar="RUN",
        help="the merged run to write (a JSON file; written atomically)",
    )  # fmt: skip


def merge_main(args: argparse.Namespace) -> int:
    """``llmbench merge RUN... -o RUN``: 0 when written, 2 when the runs cannot be merged."""
    runs: list[Path] = args.runs
    output: Path = args.output
    if any(output.resolve() == run.resolve() for run in runs):
        print(f"llmbench merge: error: the output {output} is one of the runs; choose another file", file=sys.stderr)
        return 2
    try:
        merged = merge_runs(runs)
        missing = missing_shards(runs)
    except MergeError as error:
        print(f"llmbench merge: error: {error}", file=sys.stderr)
        return 2
    write_run(merged, output)
    if missing:
        print(
            f"llmbench merge: warning: no run of shard(s) {', '.join(map(str, missing))}: "
            "their combinations are missing from the merged run",
            file=sys.stderr,
        )
    print(f"llmbench merge: {len(merged['benchmarks'])} benchmarks from {len(runs)} runs -> {output}")
    return 0
