"""``llmbench merge``: shard runs made by pytest-benchmark join into one run that its tools still read."""

from __future__ import annotations

import argparse
import hashlib
import json
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from llmbench.commands.merge import add_merge_arguments, merge_main
from llmbench.shards.merge import TOP_LEVEL_KEYS, MergeError, merge_runs

SUITE = """
def test_generate(benchmark, llm_combination):
    benchmark.extra_info.update(llm_combination.as_info())
    benchmark.extra_info["max_new_tokens"] = 4
    benchmark.extra_info["quality_items"] = 3
    benchmark.pedantic(lambda: sum(range(100)), rounds=3)
"""
MATRIX_ARGS = (
    "--llmbench-model=gemma3-270m",
    "--llmbench-precision=fp32,bf16",
    "--llmbench-device=cpu",
    "--llmbench-batch-size=1,2",
)
BIN = Path(sys.executable).parent


@pytest.fixture(scope="module")
def runs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """The whole matrix in one run, and the same matrix in two shards (real pytest-benchmark output).

    Made once for the module, in parallel pytest processes; the tests never change these files.
    """
    root = tmp_path_factory.mktemp("shard-runs")
    (root / "test_merge_suite.py").write_text(SUITE)
    (root / "runs").mkdir()
    plans = {"whole": [], "shard1": ["--llmbench-shard=1/2"], "shard2": ["--llmbench-shard=2/2"]}
    paths = {
        "whole": root / "runs" / "whole.json",
        "shard1": root / "runs" / "shard-1-of-2.json",
        "shard2": root / "runs" / "shard-2-of-2.json",
    }
    # In this process (torch is imported once already); pytester is function-scoped, this is not.
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        for key, args in plans.items():
            status = pytest.main(
                ["-q", "-p", "no:cacheprovider", "--import-mode=importlib", *MATRIX_ARGS,
                 f"--benchmark-json={paths[key]}", *args]
            )  # fmt: skip
            assert status == pytest.ExitCode.OK
            assert paths[key].exists()
    return paths


def digests(paths: list[Path]) -> dict[Path, str]:
    return {path: hashlib.sha256(path.read_bytes()).hexdigest() for path in paths}


def merge_cli(*argv: str) -> int:
    parser = argparse.ArgumentParser()
    add_merge_arguments(parser)
    return merge_main(parser.parse_args(list(argv)))


def edited(source: Path, target: Path, edit: Callable[[dict[str, Any]], None]) -> Path:
    data = json.loads(source.read_text())
    edit(data)
    target.write_text(json.dumps(data))
    return target


def test_shards_merge_into_one_pytest_benchmark_run(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    shard_runs = [runs["shard1"], runs["shard2"]]
    before = digests(shard_runs)
    # pytest-benchmark's file storage: <storage>/<machine id>/NNNN_<name>.json
    output = tmp_path / "storage" / "Linux-CPython-3-64bit" / "0001_merged.json"
    assert merge_cli(*map(str, shard_runs), "-o", str(output)) == 0
    assert digests(shard_runs) == before

    merged = json.loads(output.read_text())
    whole = json.loads(runs["whole"].read_text())
    assert sorted(merged) == sorted(TOP_LEVEL_KEYS) == sorted(whole)
    assert sorted(b["fullname"] for b in merged["benchmarks"]) == sorted(b["fullname"] for b in whole["benchmarks"])
    assert len(merged["benchmarks"]) == 4
    # Each shard's fingerprint travels with the merged run; every benchmark names its shard.
    assert set(merged["machine_info"]["llmbench_shards"]) == {str(p) for p in shard_runs}
    assert {b["extra_info"]["shard"] for b in merged["benchmarks"]} == {str(p) for p in shard_runs}
    assert "llmbench_shard" not in merged["machine_info"]
    first = json.loads(runs["shard1"].read_text())
    second = json.loads(runs["shard2"].read_text())
    # Each shard records the split (the same in both) and how many tests each shard runs.
    records = [data["machine_info"]["llmbench_shard"] for data in (first, second)]
    assert [(r["index"], r["count"], r["runnable"]) for r in records] == [(1, 2, [2, 2]), (2, 2, [2, 2])]
    assert records[0]["plan"] == records[1]["plan"]
    # Every test's duration travels with the merged run (later shards balance by them).
    durations = {**first["machine_info"]["llmbench_durations"], **second["machine_info"]["llmbench_durations"]}
    assert sorted(durations) == sorted(b["fullname"] for b in whole["benchmarks"])
    assert merged["machine_info"]["llmbench_durations"] == dict(sorted(durations.items()))
    assert merged["commit_info"] == first["commit_info"]
    assert merged["version"] == first["version"]

    # pytest-benchmark's own command loads it from the storage and renders its table.
    from pytest_benchmark import cli

    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(
        sys, "argv", ["pytest-benchmark", "--storage", f"file://{tmp_path / 'storage'}", "compare", "0001"]
    )
    cli.main()  # type: ignore[no-untyped-call]
    table = capsys.readouterr().out
    for bench in whole["benchmarks"]:
        assert bench["name"] in table


def test_llmbench_compare_accepts_the_merged_run(runs: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "merged.json"
    assert merge_cli(str(runs["shard1"]), str(runs["shard2"]), "-o", str(output)) == 0
    verdict = tmp_path / "verdict.md"
    result = subprocess.run(
        [BIN / "llmbench", "compare", str(output), str(output), "--verdict", str(verdict)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    assert verdict.read_text().strip()


def test_the_same_benchmark_in_two_runs_is_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    copy = shutil.copy(runs["shard1"], tmp_path / "again.json")
    with pytest.raises(MergeError) as error:
        merge_runs([runs["shard1"], runs["shard2"], copy])
    message = str(error.value)
    assert message.startswith("the same benchmark is in two runs: test_merge_suite.py::test_generate[")
    assert f"(in {runs['shard1']} and {copy})" in message


def test_a_whole_run_and_a_shard_overlap(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "merged.json"
    assert merge_cli(str(runs["whole"]), str(runs["shard2"]), "-o", str(output)) == 2
    assert not output.exists()
    assert "llmbench merge: error: the same benchmark is in two runs" in capsys.readouterr().err


def _set_extra(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for bench in data["benchmarks"]:
            bench["extra_info"][key] = value

    return edit


def _set_stats(key: str, value: Any) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        for bench in data["benchmarks"]:
            bench["stats"][key] = value

    return edit


def _set_commit(data: dict[str, Any]) -> None:
    data["commit_info"]["id"] = "0" * 40


def _set_version(data: dict[str, Any]) -> None:
    data["version"] = "4.0.0"


def _set_shard(data: dict[str, Any]) -> None:
    data["machine_info"]["llmbench_shard"] = {"index": 1, "count": 2}


def _set_count(data: dict[str, Any]) -> None:
    data["machine_info"]["llmbench_shard"] = {"index": 2, "count": 3}


def _set_plan(data: dict[str, Any]) -> None:
    data["machine_info"]["llmbench_shard"]["plan"] = "0123456789abcdef"


def _set_side(data: dict[str, Any]) -> None:
    data["machine_info"]["llmbench_ab"] = {"pair": "P", "side": "head", "rounds": 3}


@pytest.mark.parametrize(
    ("edit", "expected"),
    [
        (_set_commit, "commit id: "),
        (_set_version, "pytest-benchmark version: "),
        (_set_extra("max_new_tokens", 64), "max_new_tokens of gemma3-270m: 4 in {shard1} but 64 in {other}"),
        (_set_extra("quality_items", 32), "quality items: 3 in {shard1} but 32 in {other}"),
        (_set_stats("rounds", 10), "rounds of test_merge_suite.py::test_generate: 3 in {shard1} but 10 in {other}"),
        (_set_shard, "shard 1: in {shard1} and in {other}"),
        (_set_count, "shard count: 2 in {shard1} but 3 in {other}"),
        (
            _set_plan,
            "the split of the tests (differs where shards read other saved runs for their costs or skip "
            "other combinations): ",
        ),
        (_set_side, 'saved by: "pytest" in {shard1} but "llmbench ab (head side)" in {other}'),
    ],
)
def test_runs_with_different_settings_are_refused(
    runs: dict[str, Path], tmp_path: Path, edit: Callable[[dict[str, Any]], None], expected: str
) -> None:
    other = edited(runs["shard2"], tmp_path / "other.json", edit)
    before = digests([runs["shard1"], other])
    with pytest.raises(MergeError) as error:
        merge_runs([runs["shard1"], other])
    message = str(error.value)
    assert message.startswith("the runs were made with different settings, refusing to merge: ")
    assert expected.format(shard1=runs["shard1"], other=other) in message
    assert str(runs["shard1"]) in message
    assert str(other) in message
    assert digests([runs["shard1"], other]) == before


def test_a_missing_shard_is_a_warning(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    output = tmp_path / "merged.json"
    assert merge_cli(str(runs["shard1"]), "-o", str(output)) == 0
    captured = capsys.readouterr()
    assert "warning: no run of shard(s) 2: their combinations are missing from the merged run" in captured.err
    assert f"-> {output}" in captured.out


def _shards_of_three(runnable: list[int]) -> Callable[[dict[str, Any]], None]:
    def edit(data: dict[str, Any]) -> None:
        data["machine_info"]["llmbench_shard"].update(count=3, runnable=runnable)

    return edit


def test_a_shard_with_nothing_to_run_is_not_missing(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """Shard 3 of 3 had no test to run (more shards than pieces), so it saved no run: nothing is missing."""
    empty_third = _shards_of_three([2, 2, 0])
    one, two = (edited(runs[k], tmp_path / f"{k}.json", empty_third) for k in ("shard1", "shard2"))
    assert merge_cli(str(one), str(two), "-o", str(tmp_path / "merged.json")) == 0
    captured = capsys.readouterr()
    assert "warning" not in captured.err
    assert "llmbench merge: 4 benchmarks from 2 runs" in captured.out
    # Shard 2 ran tests and left no run: that one is missing, shard 3 still is not.
    assert merge_cli(str(one), "-o", str(tmp_path / "merged.json")) == 0
    assert "warning: no run of shard(s) 2: their combinations" in capsys.readouterr().err
    # A run from before shards recorded what each runs: every shard without a run is named, as before.
    old = edited(runs["shard1"], tmp_path / "old.json", _shards_of_three([2, 2, 0]))
    data = json.loads(old.read_text())
    del data["machine_info"]["llmbench_shard"]["runnable"]
    old.write_text(json.dumps(data))
    assert merge_cli(str(old), "-o", str(tmp_path / "merged.json")) == 0
    assert "warning: no run of shard(s) 2, 3: their combinations" in capsys.readouterr().err


def _head_side(loads: dict[str, int], rounds_per_load: int = 3) -> Callable[[dict[str, Any]], None]:
    """The run as `llmbench ab` saves a head side: each benchmark's rounds from its own load pairs
    (``loads``: benchmark name -> load pairs; the others one), ``rounds_per_load`` rounds in each."""

    def edit(data: dict[str, Any]) -> None:
        data["machine_info"]["llmbench_ab"] = {
            "pair": "20261201T000000Z", "side": "head", "ref": "HEAD", "rounds": 3, "warmup_rounds": 1,
            "loads": 1, "max_loads": 4,
        }  # fmt: skip
        for bench in data["benchmarks"]:
            count = loads.get(bench["name"], 1)
            round_loads = [load for load in range(count) for _ in range(rounds_per_load)]
            bench["extra_info"]["llmbench_ab"] = {"pair": "20261201T000000Z", "side": "head",
                                                  "round_loads": round_loads, "loads": [{}] * count}  # fmt: skip
            bench["stats"]["rounds"] = len(round_loads)
            bench["stats"]["data"] = [0.001] * len(round_loads)

    return edit


def test_ab_head_sides_with_different_load_pairs_merge(runs: dict[str, Path], tmp_path: Path) -> None:
    """`llmbench ab --max-loads` adds load pairs where a verdict is noisy: the shards' head sides then hold
    6 rounds (two load pairs) in one benchmark and 3 in the others. Each keeps its own."""
    second = json.loads(runs["shard2"].read_text())
    noisy = second["benchmarks"][0]["name"]
    one = edited(runs["shard1"], tmp_path / "0001_ab-head.json", _head_side({}))
    two = edited(runs["shard2"], tmp_path / "0002_ab-head.json", _head_side({noisy: 2}))
    merged = merge_runs([one, two])
    rounds = {
        b["name"]: (b["stats"]["rounds"], len(b["extra_info"]["llmbench_ab"]["loads"])) for b in merged["benchmarks"]
    }
    assert rounds.pop(noisy) == (6, 2)
    assert set(rounds.values()) == {(3, 1)}
    assert len(rounds) == 3


def test_ab_head_sides_with_other_rounds_per_load_pair_are_refused(runs: dict[str, Path], tmp_path: Path) -> None:
    one = edited(runs["shard1"], tmp_path / "0001_ab-head.json", _head_side({}))
    two = edited(runs["shard2"], tmp_path / "0002_ab-head.json", _head_side({}, rounds_per_load=5))
    with pytest.raises(MergeError) as error:
        merge_runs([one, two])
    assert f"rounds per load pair of test_merge_suite.py::test_generate: 3 in {one} but 5 in {two}" in str(error.value)


@pytest.mark.parametrize(
    ("content", "expected"),
    [
        ("{not json", "not a readable pytest-benchmark JSON run"),
        ("[]", "not a pytest-benchmark run (top level is not an object)"),
        ('{"benchmarks": []}', "not a pytest-benchmark run (missing machine_info, commit_info, datetime, version)"),
    ],
)
def test_unreadable_runs_are_named(
    runs: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str], content: str, expected: str
) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text(content)
    assert merge_cli(str(runs["shard1"]), str(bad), "-o", str(tmp_path / "out.json")) == 2
    assert f"llmbench merge: error: {bad}: {expected}" in capsys.readouterr().err
    assert merge_cli(str(tmp_path / "nowhere.json"), "-o", str(tmp_path / "out.json")) == 2
    assert "nowhere.json: no such file" in capsys.readouterr().err


def test_output_may_not_be_an_input(runs: dict[str, Path], capsys: pytest.CaptureFixture[str]) -> None:
    before = digests([runs["shard1"], runs["shard2"]])
    assert merge_cli(str(runs["shard1"]), str(runs["shard2"]), "-o", str(runs["shard2"])) == 2
    assert "is one of the runs" in capsys.readouterr().err
    assert digests([runs["shard1"], runs["shard2"]]) == before


def test_write_is_atomic(runs: dict[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    output = tmp_path / "merged.json"
    output.write_text("the previous merged run")

    def broken_dump(*args: Any, **kwargs: Any) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(json, "dump", broken_dump)
    with pytest.raises(OSError, match="disk full"):
        merge_cli(str(runs["shard1"]), str(runs["shard2"]), "-o", str(output))
    assert output.read_text() == "the previous merged run"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["merged.json"]


def test_llmbench_merge_command(runs: dict[str, Path], tmp_path: Path) -> None:
    output = tmp_path / "merged.json"
    result = subprocess.run(
        [BIN / "llmbench", "merge", str(runs["shard1"]), str(runs["shard2"]), "-o", str(output)],
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert f"llmbench merge: 4 benchmarks from 2 runs -> {output}" in result.stdout
