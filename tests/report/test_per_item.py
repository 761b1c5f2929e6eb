"""Per-prompt figures: saved for every item by a suite run on the tiny model, the tidy frame and its pivot,
``llmbench export --per-item`` to CSV and Parquet, runs saved before them, bad records and bad options, and the
pandas snippet of docs/reports.md run on a real export."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]
import pytest

from llmbench.cli import main as cli_main
from llmbench.data import SHIPPED_DATA, load_items
from llmbench.report.frame import ReportError, load_runs
from llmbench.report.per_item import PER_ITEM_COLUMNS, per_item_frame, per_item_frames, per_item_pivot
from llmbench.runs import SavedRun, run_from_json
from tests.support.matrices import tiny_matrix
from tests.support.paths import DATA, REPO

OLD_RUNS = DATA / "report_runs"
#: The first items of the shipped data set: what --llmbench-quality-items=3 generates.
ITEM_IDS = [item.id for item in load_items(SHIPPED_DATA)[:3]]
COMMON = ("benchmarks", "--llmbench-quality-items=3", "--llmbench-quality-batch-size=2", "--llmbench-rounds=1",
          "--llmbench-warmup-rounds=0", "-p", "no:cacheprovider", "--llmbench-peak-bandwidth=10GB/s",
          "--benchmark-autosave")  # fmt: skip


def suite_run(suite: pytest.Pytester, model_dir: Path, *args: str) -> SavedRun:
    """Run the repository's test_generate on the tiny model at fp32, batch sizes 1 and 2; the saved run."""
    (suite.path / "benchmarks").mkdir()
    (suite.path / "benchmarks" / "matrix.toml").write_text(tiny_matrix(model_dir, batch_sizes=(1, 2)))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks")
    result = suite.runpytest(*COMMON, *args)
    result.assert_outcomes(passed=2)
    (run,) = load_runs(suite.path / ".benchmarks")
    return run


def saved_records(run: SavedRun) -> dict[str, list[dict[str, Any]]]:
    return {str(b["param"]): b["extra_info"]["per_item"] for b in run.benchmarks.values()}


def test_the_quality_pass_saves_every_items_figures_and_they_export(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, tmp_path: Path
) -> None:
    # The default mode, models in their worker processes (the default isolation): the calls are timed there.
    run = suite_run(suite, tiny_gemma3_dir)
    saved = saved_records(run)
    assert sorted(saved) == ["tiny-fp32-cpu-bs1", "tiny-fp32-cpu-bs2"]
    # One quality pass per model, precision and device: the same records with each of its tests.
    assert saved["tiny-fp32-cpu-bs1"] == saved["tiny-fp32-cpu-bs2"]
    records = saved["tiny-fp32-cpu-bs1"]
    assert [r["item"] for r in records] == ITEM_IDS
    assert [(r["source"], r["batch_size"], r["call"], r["call_items"]) for r in records] == [
        ("quality", 2, 0, 2), ("quality", 2, 0, 2), ("quality", 2, 1, 1),
    ]  # fmt: skip
    for record in records:
        assert min(record["latency_s"], record["ttft_s"], record["peak_rss_bytes"], record["prompt_tokens"]) > 0
        assert 1 <= record["generated_tokens"] <= 4
    assert records[0]["latency_s"] == records[1]["latency_s"]  # one call, two items

    frame = per_item_frame(run)
    assert list(frame.columns)[: len(PER_ITEM_COLUMNS)] == list(PER_ITEM_COLUMNS)
    assert list(frame["combination"]) == ["tiny-fp32-cpu-bs2"] * 3  # the quality pass's batch size, kept once
    assert list(frame["item"]) == ITEM_IDS
    pivot = per_item_pivot(frame)
    assert pivot.shape == (3, 1)
    assert list(pivot.index) == ITEM_IDS

    # The export round-trips through pandas, CSV and Parquet alike.
    out = tmp_path / "per_item.csv"
    assert cli_main(["export", "--storage", str(suite.path / ".benchmarks"), "--per-item", "--output", str(out)]) == 0
    # (a run id such as 0001 reads back as a number unless told: the docs' snippet does not need it as text)
    known = [name for name in frame.columns if frame[name].notna().any()]  # no commit: None in, NaN out
    assert frame.columns.tolist() == pd.read_csv(out).columns.tolist()
    pd.testing.assert_frame_equal(pd.read_csv(out, dtype={"run": str})[known], frame[known], check_dtype=False)
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "per_item.parquet"
    assert cli_main(["export", "--storage", str(suite.path / ".benchmarks"), "--per-item", "-o", str(parquet)]) == 0
    pd.testing.assert_frame_equal(pd.read_parquet(parquet), frame)


def test_batch_sizes_times_every_item_at_each_tests_batch_size(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, tmp_path: Path
) -> None:
    run = suite_run(suite, tiny_gemma3_dir, "--llmbench-per-item=batch-sizes", "--llmbench-isolation=none")
    saved = saved_records(run)
    assert [(r["source"], r["batch_size"], r["call"]) for r in saved["tiny-fp32-cpu-bs1"]] == [
        ("test", 1, 0), ("test", 1, 1), ("test", 1, 2),
    ]  # fmt: skip
    assert [r["call"] for r in saved["tiny-fp32-cpu-bs2"]] == [0, 0, 1]
    frame = per_item_frame(run)
    assert len(frame) == 3 * 2  # one row per item x combination
    pivot = per_item_pivot(frame, value="generated_tokens")
    assert pivot.shape == (3, 2)
    assert list(pivot.columns) == ["tiny-fp32-cpu-bs1", "tiny-fp32-cpu-bs2"]
    assert list(pivot.index) == ITEM_IDS

    # The snippet of docs/reports.md, run on this export.
    out = tmp_path / "per_item.csv"
    assert cli_main(["export", "--storage", str(suite.path / ".benchmarks"), "--per-item", "-o", str(out)]) == 0
    namespace = run_docs_snippet(tmp_path)
    table, docs_pivot = namespace["table"], namespace["pivot"]
    assert table.shape == (6, 7)
    assert list(table["item"]) == ITEM_IDS * 2
    assert docs_pivot.shape == (3, 2)
    pd.testing.assert_frame_equal(
        docs_pivot.reindex(index=ITEM_IDS), per_item_pivot(frame), check_names=False, check_dtype=False
    )


def docs_snippet() -> str:
    """The python block of docs/reports.md's section "Per-prompt figures"."""
    page = (REPO / "docs" / "reports.md").read_text(encoding="utf-8")
    section = page.split("## Per-prompt figures", 1)[1]
    match = re.search(r"```python\n(.*?)```", section, re.DOTALL)
    assert match, "docs/reports.md: no python block under Per-prompt figures"
    return match.group(1)


def run_docs_snippet(folder: Path) -> dict[str, Any]:
    namespace: dict[str, Any] = {}
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(folder)
        exec(compile(docs_snippet(), "docs/reports.md", "exec"), namespace)  # the page's own code
    return namespace


# ----------------------------------------------------------------------------- hand-made runs


def benchmark(param: str, batch_size: int, records: Any) -> dict[str, Any]:
    info: dict[str, Any] = {"model": "m", "precision": "fp32", "device": "cpu", "batch_size": batch_size}
    if records is not None:
        info["per_item"] = records
    return {"fullname": f"t.py::test[{param}]", "name": f"test[{param}]", "param": param,
            "stats": {"median": 1.0, "data": [1.0]}, "extra_info": info}  # fmt: skip


def record(item: str, index: int, batch_size: int, source: str = "test", **figures: Any) -> dict[str, Any]:
    return {"item": item, "index": index, "source": source, "batch_size": batch_size, "call": index,
            "call_items": 1, "latency_s": 0.1 * (index + 1) * batch_size, "ttft_s": 0.01, "prompt_tokens": 5,
            "generated_tokens": 4, "decode_tok_s": 30.0, "peak_rss_bytes": 1e6, **figures}  # fmt: skip


def hand_run(*benchmarks: dict[str, Any], name: str = "0007") -> SavedRun:
    return run_from_json({"benchmarks": list(benchmarks), "datetime": "2026-12-07T10:00:00"}, name, name=name)


def test_the_pivot_is_items_by_combinations_in_data_set_order() -> None:
    items = ["z-first", "a-second", "m-third"]
    run = hand_run(
        benchmark("m-fp32-cpu-bs4", 4, [record(item, i, 4) for i, item in enumerate(items)]),
        benchmark("m-fp32-cpu-bs1", 1, [record(item, i, 1, peak_gpu_process_bytes=5e6)
                                        for i, item in enumerate(items)]),
    )  # fmt: skip
    frame = per_item_frame(run)
    assert list(frame["combination"]) == ["m-fp32-cpu-bs1"] * 3 + ["m-fp32-cpu-bs4"] * 3
    assert frame["peak_gpu_process_bytes"].isna().sum() == 3  # a figure one combination measured
    pivot = per_item_pivot(frame)
    assert pivot.shape == (3, 2)
    assert list(pivot.index) == items
    assert pivot.loc["a-second", "m-fp32-cpu-bs4"] == pytest.approx(0.8)
    assert per_item_pivot(frame, value="peak_gpu_process_bytes").loc["z-first", "m-fp32-cpu-bs1"] == 5e6
    with pytest.raises(ValueError, match=r"value 'rouge1' is not a per-item figure of this frame; expected one of "
                       r"latency_s, ttft_s, .*peak_rss_bytes"):  # fmt: skip
        per_item_pivot(frame, value="rouge1")
    two_runs = per_item_frames([run, hand_run(*run.data["benchmarks"], name="0008")])  # type: ignore[index]
    with pytest.raises(ValueError, match=r"holds 2 runs \(0007, 0008\); pivot one run's lines"):
        per_item_pivot(two_runs)


def test_two_sources_for_one_combination_are_not_mixed_in_the_pivot() -> None:
    run = hand_run(
        benchmark("m-fp32-cpu-bs2", 2, [record("a", 0, 2, source="quality"), record("b", 1, 2, source="quality")]),
        benchmark("m-fp32-cpu-bs2-other", 2, [record("a", 0, 2), record("b", 1, 2)]),
    )  # fmt: skip
    frame = per_item_frame(run)
    assert len(frame) == 4
    with pytest.raises(ValueError, match=r"2 items timed twice in one combination \(sources: quality, test\)"):
        per_item_pivot(frame)
    assert per_item_pivot(frame[frame["source"] == "test"]).shape == (2, 1)


@pytest.mark.parametrize(
    ("records", "message"),
    [
        ({"item": "a"}, r" is a dict, not a list of per-item records"),
        (["a"], r"\[0\] is a str, not a per-item record"),
        ([{"item": "a", "source": "test", "batch_size": 1}], r"\[0\] has no 'index'"),
        ([record("a", 0, 1, latency_s="fast")], r"\[0\]: field 'latency_s' is 'fast', not a number"),
        ([record("a", 0, 1, prompt_tokens=2.5)], r"\[0\]: field 'prompt_tokens' is 2.5, not a whole number"),
    ],
)
def test_a_malformed_record_names_the_run_combination_and_field(records: Any, message: str) -> None:
    run = hand_run(benchmark("m-fp32-cpu-bs1", 1, records))
    with pytest.raises(ReportError, match=r"0007: m-fp32-cpu-bs1: extra_info\['per_item'\]" + message):
        per_item_frame(run)


def test_llmbench_merge_keeps_each_shards_records(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    shards = []
    for batch_size in (1, 4):
        path = tmp_path / f"shard{batch_size}.json"
        bench = benchmark(
            f"m-fp32-cpu-bs{batch_size}", batch_size, [record("a", 0, batch_size), record("b", 1, batch_size)]
        )
        data = {"machine_info": {}, "commit_info": None, "version": "5.0.0", "datetime": "2026-12-07T10:00:00",
                "benchmarks": [bench]}  # fmt: skip
        path.write_text(json.dumps(data), encoding="utf-8")
        shards.append(str(path))
    merged = tmp_path / "merged.json"
    assert cli_main(["merge", *shards, "-o", str(merged)]) == 0
    out = tmp_path / "merged.csv"
    assert cli_main(["export", str(merged), "--per-item", "-o", str(out)]) == 0
    assert "wrote 4 per-item rows (1 runs)" in capsys.readouterr().out
    frame = pd.read_csv(out)
    assert list(zip(frame["combination"], frame["item"], strict=True)) == [
        ("m-fp32-cpu-bs1", "a"), ("m-fp32-cpu-bs1", "b"), ("m-fp32-cpu-bs4", "a"), ("m-fp32-cpu-bs4", "b"),
    ]  # fmt: skip


# ----------------------------------------------------------------------------- runs saved before


def test_runs_saved_before_per_item_figures_export_with_a_message(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "old.csv"
    assert cli_main(["export", "--storage", str(OLD_RUNS), "--per-item", "--output", str(out)]) == 0
    printed = capsys.readouterr().out
    assert "3 of 3 runs saved no per-item figures (0001, 0002, 0003)" in printed
    assert "--llmbench-per-item=off" in printed
    assert "wrote 0 per-item rows (0 runs)" in printed
    frame = pd.read_csv(out)
    assert frame.empty
    assert list(frame.columns) == [*PER_ITEM_COLUMNS, "peak_rss_bytes"]
    # The ordinary export of the same runs is unchanged.
    assert cli_main(["export", "--storage", str(OLD_RUNS), "--output", str(tmp_path / "all.csv")]) == 0
    assert len(pd.read_csv(tmp_path / "all.csv")) == 18


def test_a_bad_per_item_export_says_what_is_wrong(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert cli_main(["export", "--storage", str(OLD_RUNS), "--per-item", "--output", str(tmp_path / "x.xlsx")]) == 2
    assert "--output: " in capsys.readouterr().out
    bad = tmp_path / "0001_bad.json"
    bad.write_text(
        '{"benchmarks": [{"fullname": "t::x", "name": "x", "stats": {}, "extra_info": '
        '{"model": "m", "batch_size": 1, "per_item": 5}}]}'
    )
    assert cli_main(["export", str(bad), "--per-item", "--output", str(tmp_path / "x.csv")]) == 2
    assert "extra_info['per_item'] is a int, not a list of per-item records" in capsys.readouterr().out


# ----------------------------------------------------------------------------- the option


@pytest.mark.parametrize(
    ("args", "ini", "line"),
    [
        (["--llmbench-per-item=sometimes"], "",
         "ERROR: --llmbench-per-item: 'sometimes' is not a per-item mode (from --llmbench-per-item on the command "
         "line); expected one of quality, batch-sizes, off"),
        ([], "llmbench_per_item = every\n",
         "ERROR: --llmbench-per-item: 'every' is not a per-item mode (from llmbench_per_item in tox.ini); "
         "expected one of quality, batch-sizes, off"),
        (["--llmbench-per-item=batch-sizes", "--llmbench-quality-items=0"], "",
         "ERROR: --llmbench-per-item: 'batch-sizes' (from --llmbench-per-item on the command line) times the "
         "quality items, but --llmbench-quality-items is 0 (from --llmbench-quality-items on the command line); "
         "give --llmbench-quality-items a number or 'all', or set --llmbench-per-item=off"),
    ],
)  # fmt: skip
def test_bad_option_values_are_usage_errors(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, args: list[str], ini: str, line: str
) -> None:
    (suite.path / "benchmarks").mkdir()
    (suite.path / "benchmarks" / "matrix.toml").write_text(tiny_matrix(tiny_gemma3_dir))
    if ini:
        suite.makeini("[pytest]\n" + ini)
    result = suite.runpytest("--collect-only", "-q", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([line])


def test_the_default_turns_off_without_quality_items(suite: pytest.Pytester, tiny_gemma3_dir: Path) -> None:
    (suite.path / "benchmarks").mkdir()
    (suite.path / "benchmarks" / "matrix.toml").write_text(tiny_matrix(tiny_gemma3_dir))
    suite.makepyfile(test_mode="def test_mode(llmbench_per_item):\n    assert llmbench_per_item == 'off'\n")
    suite.runpytest("--llmbench-quality-items=0", "-p", "no:cacheprovider").assert_outcomes(passed=1)
    suite.runpytest("-p", "no:cacheprovider").assert_outcomes(failed=1)  # the default is quality
