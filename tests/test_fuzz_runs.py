"""Saved runs fuzzed: every ``llmbench`` reader decides or stops with one line and exit status 2.

Real saved runs (tests/data/runs) are mutated by hypothesis (wrong types, missing keys, NaN and
infinities, empty and nested lists, huge numbers, strings for numbers, unknown metrics) and handed to
``llmbench compare``, ``merge``, ``export``, ``history`` and ``report`` in-process. No exception may escape,
bad input never gives exit status 1 (a regression), and the input files are never modified.
``LLMBENCH_FUZZ_EXAMPLES`` sets the example count (30 by default; see docs/testing.md).
"""

from __future__ import annotations

import contextlib
import copy
import hashlib
import io
import json
import math
import os
import tempfile
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from llmbench.cli import main
from llmbench.runs import RunFileError, load_run, run_from_json
from tests.support.paths import DATA
from tests.support.robustness_record import record

RUNS = DATA / "runs" / "Linux-CPython-3.11-64bit"
#: The two runs every reader is handed (0002 is 0001 measured again: no regression between them).
SOURCES = ("0001_base.json", "0002_same.json")
MACHINE = "Linux-CPython-3.11-64bit"
EXAMPLES = int(os.environ.get("LLMBENCH_FUZZ_EXAMPLES", "30"))
#: No shrinking: each example runs the readers in full (seconds); the failing example is printed as drawn.
PHASES = (Phase.explicit, Phase.reuse, Phase.generate)

#: Values no saved field may hold: each makes a metric n/a or the run unreadable, never a regression.
BAD_VALUES: st.SearchStrategy[Any] = st.one_of(
    st.sampled_from([math.nan, math.inf, -math.inf, 1e308, -1e308, 10**400, 1e19]),
    st.sampled_from(["", "1.5", "0", "nan", "fast", "0.766"]),
    st.sampled_from([[], [[1, 2]], [1], [None, None, None], [{}], ["1", "2"], {}, {"value": 1}, None, True, False]),
    st.lists(st.one_of(st.floats(allow_nan=True), st.text(max_size=3)), max_size=3),
    st.text(max_size=8),
)
UNKNOWN_METRIC = st.fixed_dictionaries(
    {},
    optional={
        "value": st.one_of(st.floats(), st.integers(), st.text(max_size=3), st.none()),
        "unit": st.one_of(st.sampled_from(["s", "bytes", "F1", "parsec"]), st.integers()),
        "direction": st.sampled_from(["higher", "lower", "none", "up", 3]),
        "samples": st.one_of(st.lists(st.floats(), max_size=4), st.integers(), st.text(max_size=3)),
        "ci": st.one_of(st.lists(st.floats(), max_size=3), st.none(), st.text(max_size=2)),
    },
)


def _sha(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.json")}


def _mutate(data: st.DataObject, run: Any, counts: Counter[str]) -> Any:
    """One mutation of ``run`` (parsed JSON): replace a node with a bad value, delete a key, or add an
    unknown metric. Walks down from the top, biased towards the benchmarks' metrics."""
    kind = data.draw(st.sampled_from(["replace", "delete", "unknown metric"]), label="mutation")
    counts[kind] += 1
    if kind == "unknown metric":
        benches = run.get("benchmarks") if isinstance(run, dict) else None
        if not isinstance(benches, list) or not benches or not isinstance(benches[0], dict):
            return run
        bench = data.draw(st.sampled_from(benches), label="benchmark")
        metrics = bench.get("extra_info", {}).get("metrics") if isinstance(bench.get("extra_info"), dict) else None
        if isinstance(metrics, dict):
            name = data.draw(st.sampled_from(["zz_unknown", "tokens_per_joule", "latency_s", "rouge1"]), label="name")
            metrics[name] = data.draw(st.one_of(UNKNOWN_METRIC, BAD_VALUES), label="metric")
        return run
    if kind == "replace" and data.draw(st.integers(0, 15), label="whole file") == 0:
        return data.draw(BAD_VALUES, label="the whole file")
    parent: Any = None
    key: Any = None
    node = run
    start = data.draw(st.sampled_from(["metrics", "anywhere"]), label="where")
    if start == "metrics" and isinstance(run, dict) and isinstance(run.get("benchmarks"), list) and run["benchmarks"]:
        bench = data.draw(st.sampled_from(run["benchmarks"]), label="benchmark")
        extra = bench.get("extra_info") if isinstance(bench, dict) else None
        if isinstance(extra, dict) and isinstance(extra.get("metrics"), dict):
            parent, key, node = extra, "metrics", extra["metrics"]
    while isinstance(node, dict | list) and node:
        keys: Sequence[Any] = list(node) if isinstance(node, dict) else range(len(node))
        child = data.draw(st.sampled_from(keys), label="key")
        parent, key, node = node, child, node[child]
        if data.draw(st.integers(0, 3), label="stop") == 0:
            break
    if parent is None:
        return run
    if kind == "delete" and isinstance(parent, dict):
        del parent[key]
    else:
        parent[key] = data.draw(BAD_VALUES, label="bad value")
    return run


def _run_cli(argv: list[str]) -> tuple[int, str]:
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        try:
            status = main(argv)
        except SystemExit as stop:  # argparse
            status = int(stop.code or 0)
    return status, out.getvalue()


def _readers(storage: Path, work: Path) -> dict[str, list[str]]:
    folder = storage / MACHINE
    first, second = (str(folder / name) for name in ("0001_a.json", "0002_b.json"))
    return {
        "compare ids": ["compare", "0001", "0002", "--storage", str(storage)],
        "compare files": ["compare", first, second, "--storage", str(storage)],
        "compare window": ["compare", "window:2", "0002", "--storage", str(storage), "--drift-history", "3"],
        "merge": ["merge", second, "-o", str(work / "merged.json")],
        "export": ["export", "--storage", str(storage), "-o", str(work / "runs.csv")],
        "history": ["history", "--storage", str(storage), "--since", "2"],
    }


def _check(name: str, status: int, output: str, counts: Counter[str]) -> None:
    assert status in (0, 2), f"llmbench {name}: exit status {status} for bad input (1 means a regression)\n{output}"
    assert "usage: llmbench" not in output, f"llmbench {name}: the test's own arguments are wrong\n{output}"
    counts[f"{name}: exit {status}"] += 1
    if status == 2:
        errors = [line for line in output.splitlines() if ": error: " in line]
        assert len(errors) == 1, f"llmbench {name}: expected one error line\n{output}"


def _fuzz(
    storage: Path, data: st.DataObject, counts: Counter[str], readers: Callable[[Path, Path], dict[str, list[str]]]
) -> None:
    folder = storage / MACHINE
    folder.mkdir(parents=True)
    runs = [json.loads((RUNS / name).read_text()) for name in SOURCES]
    which = data.draw(st.sampled_from(["current", "baseline", "both"]), label="file mutated")
    for index in (0, 1):
        if which == "both" or (which == "current") == (index == 1):
            for _ in range(data.draw(st.integers(1, 3), label="mutations")):
                runs[index] = _mutate(data, runs[index], counts)
    for run, name in zip(runs, ("0001_a.json", "0002_b.json"), strict=True):
        text = json.dumps(run, indent=4)  # NaN and Infinity as Python's json writes them (as pytest-benchmark)
        (folder / name).write_text(text)
    before = _sha(storage)
    work = storage.parent / "out"
    work.mkdir()
    for name, argv in readers(storage, work).items():
        status, output = _run_cli(argv)
        _check(name, status, output, counts)
        assert _sha(storage) == before, f"llmbench {name} modified its input"
    counts["run files"] += 2


def test_fuzzed_runs_never_crash_never_regress_never_change_input() -> None:
    counts: Counter[str] = Counter()

    @settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=list(HealthCheck), database=None,
              phases=PHASES)  # fmt: skip
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            _fuzz(Path(tmp) / "storage", data, counts, _readers)

    check()
    exits = {k: v for k, v in sorted(counts.items()) if ": exit " in k}
    record("fuzzed run files (compare x3, merge, export, history)", examples=counts["run files"] // 2,
           run_files=counts["run files"], mutations=sum(counts[k] for k in ("replace", "delete", "unknown metric")),
           exit_1=0, **exits)  # fmt: skip


def _report_reader(storage: Path, work: Path) -> dict[str, list[str]]:
    return {"report": ["report", "--storage", str(storage), "-o", str(work / "report")]}


# A plot with many unknown metrics: matplotlib warns that its layout collapsed (cosmetic, not an error).
@pytest.mark.filterwarnings("ignore:constrained_layout not applied:UserWarning")
def test_fuzzed_runs_report() -> None:
    """``llmbench report`` (plots: slower) on fewer examples."""
    counts: Counter[str] = Counter()

    @settings(max_examples=max(3, EXAMPLES // 6), deadline=None, suppress_health_check=list(HealthCheck),
              database=None, phases=PHASES)  # fmt: skip
    @given(st.data())
    def check(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            _fuzz(Path(tmp) / "storage", data, counts, _report_reader)

    check()
    exits = {k: v for k, v in sorted(counts.items()) if ": exit " in k}
    files = counts["run files"]
    record("fuzzed run files (report)", examples=files // 2, run_files=files, exit_1=0, **exits)


# ----------------------------------------------------------------------------- the findings of issue 13


def _with_metric(field: str, value: Any) -> dict[str, Any]:
    run: dict[str, Any] = json.loads((RUNS / "0002_same.json").read_text())
    run["benchmarks"][0]["extra_info"]["metrics"]["latency_s"][field] = value
    return run


@pytest.mark.parametrize(
    ("field", "value", "said"),
    [
        ("samples", 5, "'samples' is the number 5"),
        ("samples", [[1, 2]], "'samples' is a list"),
        ("ci", [1], "'ci' is a list of 1"),
        ("value", "0.766", "'value' is the string '0.766'"),
        ("value", 10**400, "beyond"),
        ("direction", "sideways", "'direction' is the string 'sideways'"),
    ],
)
def test_a_bad_field_makes_its_metric_n_a_with_a_note(field: str, value: Any, said: str) -> None:
    run = run_from_json(_with_metric(field, value), "x.json", "0002")
    fullname = next(iter(run.benchmarks))
    metric = run.benchmarks[fullname]["extra_info"]["metrics"]["latency_s"]
    assert metric["value"] is None
    assert (metric["unit"], metric["direction"]) == ("s", "lower")
    assert any("latency_s" in note and said in note and "n/a" in note for note in run.notes), run.notes


def test_compare_names_the_bad_metric_and_does_not_pass_it_silently(tmp_path: Path) -> None:
    folder = tmp_path / MACHINE
    folder.mkdir()
    (folder / "0001_a.json").write_text((RUNS / "0001_base.json").read_text())
    (folder / "0002_b.json").write_text(json.dumps(_with_metric("samples", 5)))
    status, output = _run_cli(["compare", "0001", "0002", "--storage", str(tmp_path)])
    assert status == 0, output
    said = "metric latency_s: 'samples' is the number 5, expected a list of numbers: shown as n/a"
    assert said in " ".join(output.split())


@pytest.mark.parametrize(
    ("path", "value", "said"),
    [
        (("extra_info",), [], "field 'extra_info' is a list, expected an object"),
        (("stats",), "fast", "field 'stats' is the string 'fast', expected an object"),
        (("extra_info", "metrics"), [1], "field 'extra_info.metrics' is a list"),
        (("extra_info", "batch_size"), "1", "field 'extra_info.batch_size' is the string '1', expected an integer"),
    ],
)
def test_a_broken_structure_is_one_line_naming_file_benchmark_and_field(
    tmp_path: Path, path: tuple[str, ...], value: Any, said: str
) -> None:
    run = json.loads((RUNS / "0002_same.json").read_text())
    node = run["benchmarks"][0]
    for key in path[:-1]:
        node = node[key]
    node[path[-1]] = value
    bad = tmp_path / "0002_bad.json"
    bad.write_text(json.dumps(run))
    with pytest.raises(RunFileError, match=r"benchmark 'benchmarks/test_generate\.py::test_generate"):
        load_run(bad)
    status, output = _run_cli(["compare", str(RUNS / "0001_base.json"), str(bad)])
    assert status == 2
    (line,) = output.splitlines()
    assert str(bad) in line, line
    assert said in line, line


def test_bad_stats_of_an_older_run_make_its_latency_n_a(tmp_path: Path) -> None:
    run = json.loads((RUNS.parent / "old_format_data.json").read_text())
    run["benchmarks"][0]["stats"]["data"] = [[1, 2]]
    saved = run_from_json(copy.deepcopy(run), "old.json", "old")
    assert any("'stats.data'" in note and "n/a" in note for note in saved.notes), saved.notes
