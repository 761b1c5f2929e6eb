"""The one saved-run model (llmbench.runs), value formatter (llmbench.units) and bootstrap (llmbench.stats)."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path

import pytest

from llmbench import benchmark_storage
from llmbench.metrics import METRIC_FACTS, METRIC_ORDER, metric_label, reading_order
from llmbench.runs import (
    RunError,
    find_run,
    list_runs,
    load_run,
    machine_id_here,
    parse_run_id,
    run_from_json,
    run_number,
    write_json_atomically,
    write_text_atomically,
)
from llmbench.stats import bootstrap_ci, paired_bootstrap_ci, ratio_of_medians_ci
from llmbench.units import GiB, MiB, SizeError, format_bytes, format_compact, format_value, parse_size, scale_for
from tests.support.paths import DATA

RUNS = DATA / "runs"
REPORT_RUNS = DATA / "report_runs"
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


# --- the storage layout (llmbench.benchmark_storage) and `llmbench runs` ---------------------------------


def _layout(root: Path) -> Path:
    storage = root / "storage"
    for name in ("Linux-A/0001_a.json", "Linux-A/0003_c.json", "Linux-B/0002_b.json", "Linux-B/notes.json",
                 "0004_root.json", ".git/0009_not_a_run.txt"):  # fmt: skip
        (storage / name).parent.mkdir(parents=True, exist_ok=True)
        (storage / name).write_text("{}")
    return storage


@pytest.mark.parametrize("machine", [None, "Linux-A", "Linux-B"])
def test_saved_run_files_are_what_pytest_benchmarks_query_finds(tmp_path: Path, machine: str | None) -> None:
    from pytest_benchmark.storage.file import FileStorage

    storage = _layout(tmp_path)
    theirs = FileStorage(storage, logger=None, default_machine_id=machine).query(benchmark_storage.RUN_GLOB)
    assert benchmark_storage.saved_run_files(storage, machine) == theirs
    assert not benchmark_storage.saved_run_files(tmp_path / "missing")
    assert not (tmp_path / "missing").exists()  # never created


def test_latest_runs_take_the_highest_numbers_under_the_folder_as_given(tmp_path: Path) -> None:
    storage = _layout(tmp_path)
    assert benchmark_storage.latest_runs(storage) == [storage / "0004_root.json"]
    assert benchmark_storage.latest_runs(storage, count=3) == [
        storage / "Linux-B/0002_b.json", storage / "Linux-A/0003_c.json", storage / "0004_root.json"
    ]
    # The files at the top count too, as in pytest-benchmark's query.
    assert benchmark_storage.latest_runs(storage, "Linux-A") == [storage / "0004_root.json"]
    assert benchmark_storage.latest_runs(storage / "Linux-B") == [storage / "Linux-B/0002_b.json"]  # files at the top
    assert benchmark_storage.latest_runs(tmp_path / "missing") == []


def test_machine_id_of_a_run_is_its_storage_folder_name() -> None:
    info = {"system": "Linux", "python_implementation": "CPython", "python_version": "3.12.4", "machine": "x86_64"}
    assert benchmark_storage.machine_id_of(info) == "Linux-CPython-3.12-64bit"
    assert benchmark_storage.machine_id_of({}) == "Unknown-Python-0.0-32bit"
    assert benchmark_storage.machine_id() == machine_id_here()


def test_llmbench_runs_prints_bare_values(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from llmbench.cli import main

    storage = _layout(tmp_path)
    assert main(["runs", "latest", "--storage", str(storage), "--count", "2"]) == 0
    newest = [str(storage / "Linux-A/0003_c.json"), str(storage / "0004_root.json")]
    assert capsys.readouterr().out.splitlines() == newest
    assert main(["runs", "latest", "--storage", str(tmp_path / "missing")]) == 0
    assert capsys.readouterr().out == ""
    run = tmp_path / "run.json"
    run.write_text(json.dumps({"machine_info": {"system": "Darwin", "python_implementation": "CPython",
                                                "python_version": "3.11.2", "machine": "arm64"},
                               "commit_info": {"id": "0123456789abcdef"}, "benchmarks": []}))  # fmt: skip
    assert main(["runs", "machine-id", str(run)]) == 0
    assert main(["runs", "commit", str(run)]) == 0
    assert main(["runs", "machine-id"]) == 0
    assert capsys.readouterr().out.splitlines() == ["Darwin-CPython-3.11-64bit", "0123456789abcdef", machine_id_here()]
    assert main(["runs", "commit", str(tmp_path / "missing.json")]) == 2
    assert "llmbench runs: error:" in capsys.readouterr().err
