"""Several data sets in one run, one of them prompts only: separate combinations in the run, the terminal
table, the report, the export and the verdict; the prompt-only set's quality is n/a with the reason.

The tiny model loads in the pytest process (``--llmbench-isolation=none``): the data sets are under test,
not the workers."""

from __future__ import annotations

import contextlib
import io
import shutil
from pathlib import Path

import pandas as pd
import pytest

from llmbench.cli import main
from llmbench.report.frame import Table, rows_of
from llmbench.report.html import DEFAULT_BUDGET_BYTES, side_by_side
from llmbench.report.markdown import build_markdown
from llmbench.runs import list_runs, load_run
from tests.support.matrices import tiny_matrix, write_matrix
from tests.support.paths import DATA, REPO

ARGS = (
    "benchmarks", "--llmbench-isolation=none", "--llmbench-rounds=1", "--llmbench-warmup-rounds=0",
    "--llmbench-quality-items=2", "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs",
    "-p", "no:cacheprovider",
)  # fmt: skip
PROMPTS = "A fox found a bunch of grapes.\nThe crow sang for the cheese.\n"
REASON = "the data set 'parables' has no reference texts (prompts only): nothing to score the outputs against"


def test_two_data_sets_are_separate_combinations_everywhere(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    matrix = tiny_matrix(tiny_gemma3_dir).replace("batch_sizes = [1]\n", "batch_sizes = [1]\n"
                                                  'datasets = ["summaries", "parables.txt"]\n')  # fmt: skip
    write_matrix(suite.path, matrix)
    (suite.path / "benchmarks" / "parables.txt").write_text(PROMPTS, encoding="utf-8")
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks")

    result = suite.runpytest(*ARGS, "--benchmark-autosave")

    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(
        [
            "tiny fp32 cpu bs1 summaries *",
            "tiny fp32 cpu bs1 parables *",
            "ROUGE-L n/a for tiny fp32 cpu bs1 parables: the data set 'parables' has no *",
        ]
    )
    (path,) = list_runs(suite.path / "runs")
    run = load_run(path)
    names = [bench["name"] for bench in run.benchmarks.values()]
    assert names == ["test_generate[tiny-fp32-cpu-bs1-summaries]", "test_generate[tiny-fp32-cpu-bs1-parables]"]
    summaries, parables = rows_of(run)
    assert (summaries.dataset, parables.dataset) == ("summaries", "parables")
    # The prompt-only set: every speed and memory figure, ROUGE n/a with the reason (never 0).
    for name in ("latency_s", "ttft_s", "decode_tok_s_per_seq", "peak_rss_bytes", "weight_bytes"):
        assert parables.value(name) is not None, name
    rouge = parables.metric("rougeLsum")
    assert rouge is not None
    assert rouge.value is None
    assert rouge.note == f"n/a: {REASON}"
    assert summaries.value("rougeLsum") is not None
    assert set(parables.outputs) == {"1", "2"}

    # The report (its text; drawing the plots is the report's own tests' work).
    report = build_markdown(run, rows_of(run), None, DEFAULT_BUDGET_BYTES)
    assert "| tiny | fp32 | cpu | 1 | summaries |" in report  # the decision table's data set column
    assert "| tiny | fp32 | cpu | 1 | parables |" in report
    assert "data sets parables, summaries" in report
    assert f"Note: ROUGE-Lsum n/a for tiny-fp32-cpu-bs1-parables: {REASON}" in report
    items = side_by_side(rows_of(run), suite.path)
    assert [(item.dataset, item.id) for item in items] == [
        ("parables", "1"),
        ("parables", "2"),
        ("summaries", "fox-and-grapes"),
        ("summaries", "tortoise-and-hare"),
    ]
    assert items[0].reference == ""

    export = suite.path / "export.csv"
    with contextlib.redirect_stdout(io.StringIO()):
        assert main(["export", "--storage", str(suite.path / "runs"), "--output", str(export)]) == 0
    table = pd.read_csv(export)
    assert list(table["combination"]) == ["tiny-fp32-cpu-bs1-parables", "tiny-fp32-cpu-bs1-summaries"]
    assert list(table["dataset"]) == ["parables", "summaries"]
    assert table.loc[0, "rougeLsum"] != table.loc[0, "rougeLsum"]  # NaN: n/a, not 0

    # Compared (with itself), the verdict says why the prompt-only set has no ROUGE.
    verdict = io.StringIO()
    with contextlib.redirect_stdout(verdict):
        main(["compare", str(path), str(path)])
    text = " ".join(verdict.getvalue().split())
    assert f"note: quality n/a: {REASON} [tiny fp32 cpu bs1 parables]" in text


def test_runs_saved_before_the_axis_are_the_default_set() -> None:
    runs = [load_run(path) for path in list_runs(DATA / "report_runs" / "Linux-CPython-3.11-64bit")]
    rows = Table.of(runs).rows

    assert {row.dataset for row in rows} == {"summaries"}
    assert all(not row.combination.endswith("summaries") for row in rows)
    assert set(Table.of(runs).wide()["dataset"]) == {"summaries"}
