"""The one saved-run model (llmbench.runs), value formatter (llmbench.units) and bootstrap (llmbench.stats)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from llmbench.metrics import METRIC_FACTS, METRIC_ORDER, metric_label, reading_order
from llmbench.runs import (
    RunError,
    find_run,
    list_runs,
    load_run,
    parse_run_id,
    run_from_json,
    run_number,
    write_json_atomically,
    write_text_atomically,
)
from llmbench.stats import bootstrap_ci, paired_bootstrap_ci, ratio_of_medians_ci
from llmbench.units import GiB, MiB, SizeError, format_bytes, format_compact, format_value, parse_size, scale_for

RUNS = Path(__file__).parent / "data" / "runs"
REPORT_RUNS = Path(__file__).parent / "data" / "report_runs"
MACHINE = "Linux-CPython-3.11-64bit"


def test_saved_runs_load_with_their_number_name_and_fingerprint() -> None:
    paths = list_runs(RUNS, MACHINE)
    assert [run_number(p) for p in paths] == [1, 2, 3, 4]
    run = load_run(paths[0])
    assert (run.name, run.number, run.path, run.machine_id) == ("0001", 1, paths[0], MACHINE)
    assert run.benchmarks
    report_run = load_run(list_runs(REPORT_RUNS)[0])
    assert report_run.commit is not None
    assert report_run.datetime
    assert report_run.label.startswith(f"0001 {report_run.commit[:7]}")


def test_bad_runs_raise_run_error_naming_the_file(tmp_path: Path) -> None:
    with pytest.raises(RunError, match="corrupted JSON"):
        load_run(RUNS / "corrupted.json")
    with pytest.raises(RunError, match="no such file"):
        load_run(tmp_path / "missing.json")
    with pytest.raises(RunError, match="not a pytest-benchmark run"):
        run_from_json({"benchmarks": {}}, "x.json")
    assert run_from_json({"benchmarks": []}, "this session").name == "this session"


def test_find_run_and_run_ids() -> None:
    assert find_run(RUNS, "0002", MACHINE, "test").name == "0002_same.json"
    with pytest.raises(RunError, match=r"run 0009 not found .*saved runs: 0001, 0002, 0003, 0004"):
        find_run(RUNS, "0009", MACHINE, "test")
    ids = [parse_run_id(t) for t in ("3", "0003", "0003_abc.json", "x.json", "last")]
    assert ids == ["0003", "0003", "0003", None, None]


def test_atomic_writers_leave_only_the_file(tmp_path: Path) -> None:
    target = tmp_path / "sub" / "run.json"
    write_json_atomically(target, {"benchmarks": []})
    assert json.loads(target.read_text()) == {"benchmarks": []}
    write_text_atomically(target, "replaced\n")
    assert target.read_text() == "replaced\n"
    assert os.listdir(target.parent) == ["run.json"]


def test_formatting() -> None:
    assert format_value(None, "s") == "n/a"
    assert format_value(0.0123, "s") == "12.3 ms"
    assert format_value(3 * GiB, "bytes") == format_bytes(3 * GiB) == "3.00 GiB"
    assert format_value(0.451, "ratio") == "45.1%"
    assert format_compact(1.234, "s") == "1234 ms"
    assert format_compact(235 * MiB, "bytes") == "235 MiB"
    assert scale_for("bytes", [3 * GiB, 2 * MiB]) == (float(GiB), "GiB")
    assert scale_for("ratio", [0.5]) == (1.0, "")
    assert parse_size("8GiB") == 8 * GiB
    with pytest.raises(SizeError, match="--memory-budget"):
        parse_size("lots")


def test_bootstrap_is_seeded_and_brackets_the_estimate() -> None:
    values = [0.1 * i for i in range(20)]
    low, high = bootstrap_ci(values)
    assert low < sum(values) / len(values) < high
    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert paired_bootstrap_ci([1.0]) is None
    ratio = ratio_of_medians_ci([1.0, 1.01, 0.99, 1.0], [1.2, 1.21, 1.19, 1.2])
    assert ratio is not None
    assert 1.15 < ratio[0] <= ratio[1] < 1.25
    assert not math.isnan(ratio[0])


def test_metric_facts_use_the_saved_names() -> None:
    assert "semantic_sim" in METRIC_FACTS
    assert "semantic_similarity" not in METRIC_FACTS
    assert METRIC_ORDER[0] == "latency_s"
    assert metric_label("decode_tok_s_total") == "decode"
    assert metric_label("custom") == "custom"
    assert sorted(["custom", "rouge1", "latency_s"], key=reading_order) == ["latency_s", "rouge1", "custom"]
    saved = {
        name: (metric["unit"], metric["direction"])
        for path in list_runs(REPORT_RUNS)
        for bench in load_run(path).benchmarks.values()
        for name, metric in bench["extra_info"].get("metrics", {}).items()
    }
    for name, (unit, direction) in saved.items():
        assert (METRIC_FACTS[name].unit, METRIC_FACTS[name].direction) == (unit, direction), name
