"""Merging the saved runs of the shards into one pytest-benchmark run (``llmbench merge``,
:mod:`llmbench.commands.merge`).

The merged run has the same top-level keys (``machine_info``, ``commit_info``, ``benchmarks``,
``datetime``, ``version``); a benchmark present in two shards, or shards made with different settings
(or split differently: :func:`llmbench.shards.plan.plan_digest`), are refused with the files named. The
head sides of ``llmbench ab`` pairs merge too: each benchmark keeps its own load pairs (``--max-loads``
adds pairs where a verdict is noisy, so shards run different numbers), and the rounds that must agree are
those of one load pair. The command writes the merged run atomically (:mod:`llmbench.runs`).

Every comparison with a reference (drift, quality shares and differences) is computed again over the merged
run, from the outputs each benchmark saved (:func:`llmbench.quality.comparison.recompare`): a combination
whose reference ran in another shard is compared here, so no comparison is n/a for that reason. The outputs
travel inside the shards' runs (``extra_info``: texts, token ids, per-item scores), so the per-item outputs
files, which stay on the shards' machines, are not needed. A comparison a shard made with a named reference
run (``--llmbench-reference-run``) whose reference is in none of the merged runs is kept as saved.
"""

from __future__ import annotations

import json
from collections import Counter
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from llmbench.gate.baseline import AB_MARK
from llmbench.quality.comparison import MERGED_SOURCE, REFERENCE_INFO_KEY, SESSION_SOURCE, recompare
from llmbench.runs import FINGERPRINT_KEY, RunError, read_json, run_from_json
from llmbench.shards.costs import DURATIONS_KEY, durations_of
from llmbench.shards.plan import SHARD_INFO_KEY

__all__ = ["MERGED_SOURCE", "SHARDS_INFO_KEY", "TOP_LEVEL_KEYS", "MergeError", "merge_runs", "missing_shards"]

#: The machine_info key of a merged run: shard file -> that shard's machine fingerprint.
SHARDS_INFO_KEY = "llmbench_shards"
TOP_LEVEL_KEYS = ("machine_info", "commit_info", "benchmarks", "datetime", "version")


class MergeError(Exception):
    """Runs that cannot be merged; the message names the files."""


def _load(path: Path) -> dict[str, Any]:
    try:
        data = read_json(path)
    except RunError as error:
        reason = str(error).removeprefix(f"{path}: ")
        if reason == "no such file":
            raise MergeError(str(error)) from None
        raise MergeError(f"{path}: not a readable pytest-benchmark JSON run ({reason})") from None
    if not isinstance(data, dict):
        raise MergeError(f"{path}: not a pytest-benchmark run (top level is not an object)")
    missing = [key for key in TOP_LEVEL_KEYS if key not in data]
    if missing:
        raise MergeError(f"{path}: not a pytest-benchmark run (missing {', '.join(missing)})")
    if not isinstance(data["benchmarks"], list) or not isinstance(data["machine_info"], dict):
        raise MergeError(f"{path}: not a pytest-benchmark run (benchmarks must be a list, machine_info an object)")
    if data["commit_info"] is not None and not isinstance(data["commit_info"], dict):
        raise MergeError(f"{path}: field 'commit_info' is not an object")
    try:
        run_from_json(data, str(path), path=path)  # the one check of a run's structure (runs.py)
    except RunError as error:
        raise MergeError(str(error)) from None
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
        if "plan" in shard:
            add("the split of the tests (differs where shards read other saved runs for their costs or skip "
                "other combinations)", shard["plan"])  # fmt: skip
    pair = data["machine_info"].get(AB_MARK)
    pair = pair if isinstance(pair, Mapping) else {}
    add("saved by", f"llmbench ab ({pair.get('side')} side)" if pair else "pytest")
    for key in ("rounds", "warmup_rounds", "loads", "max_loads"):
        if key in pair:
            add(f"llmbench ab {key}", pair[key])
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
        function = str(bench.get("fullname", bench.get("name", ""))).split("[", 1)[0]
        marks = info.get(AB_MARK)
        round_loads = marks.get("round_loads") if isinstance(marks, Mapping) else None
        if isinstance(round_loads, list):
            # An A/B side: as many load pairs as its verdicts needed, each with the same rounds.
            for per_load in set(Counter(map(str, round_loads)).values()):
                add(f"rounds per load pair of {function}", per_load)
            continue
        rounds = (bench.get("stats") or {}).get("rounds")
        if rounds is not None:
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
    and ``extra_info["shard"]`` (the file) to every benchmark, and compares every benchmark with its
    reference again over the merged run (:func:`compare_merged`).
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
    durations = {
        name: seconds for data in runs.values() for name, seconds in durations_of(data["machine_info"]).items()
    }
    machine_info.pop(DURATIONS_KEY, None)
    if durations:
        machine_info[DURATIONS_KEY] = dict(sorted(durations.items()))
    benchmarks = []
    for name, data in runs.items():
        for bench in data["benchmarks"]:
            merged = dict(bench)
            merged["extra_info"] = {**(bench.get("extra_info") or {}), "shard": name}
            benchmarks.append(merged)
    compare_merged(benchmarks, len(files))
    return {
        "machine_info": machine_info,
        "commit_info": first["commit_info"],
        "benchmarks": benchmarks,
        "datetime": max(str(data["datetime"]) for data in runs.values()),
        "version": first["version"],
    }


def compare_merged(benchmarks: Sequence[dict[str, Any]], runs: int) -> int:
    """Compare each benchmark of the merged run with its reference's saved outputs (``extra_info`` changed in
    place); returns how many were compared. A reference in none of the ``runs`` merged runs is n/a with the
    reason, unless the shard compared with a named reference run (kept)."""

    def absent(info: Mapping[str, Any], reference: str) -> str | None:
        saved = info.get(REFERENCE_INFO_KEY)
        if not isinstance(saved, Mapping) or saved.get("source") not in (None, SESSION_SOURCE):
            return None  # a run of an earlier version, or compared with a named reference run: as saved
        return f"n/a: the reference {reference} is in none of the {runs} merged runs"

    infos = [bench["extra_info"] for bench in benchmarks if isinstance(bench.get("extra_info"), dict)]
    return recompare(infos, MERGED_SOURCE, None, absent)


def missing_shards(paths: Sequence[Path | str]) -> list[int]:
    """Shard numbers that none of the runs carries (from their ``llmbench_shard`` record), for a warning;
    not those that had nothing to run (the record's ``runnable``: each shard's tests not skipped at
    collection, the same in every shard's run), which save no run."""
    count = None
    present = set()
    runnable: list[int] | None = None
    for path in paths:
        shard = _load(Path(path))["machine_info"].get(SHARD_INFO_KEY)
        if isinstance(shard, Mapping) and isinstance(shard.get("count"), int):
            count = shard["count"]
            present.add(shard.get("index"))
            planned = shard.get("runnable")
            if isinstance(planned, list) and len(planned) == count and all(isinstance(n, int) for n in planned):
                runnable = planned
    if count is None:
        return []
    return [
        index for index in range(1, count + 1) if index not in present and (runnable is None or runnable[index - 1] > 0)
    ]
