"""Reports: the tidy table, the plots' data, the page, the markdown, the export, the pytest option, a browser.

Saved runs come from ``tests/data/report_runs`` (hand-made: ``make_runs.py`` there says what each holds,
0001 being an old run without the metrics object) and from the suite run with a tiny model (pytester).
"""

from __future__ import annotations

import copy
import csv
import re
import shutil
import struct
import subprocess
from pathlib import Path
from typing import Any

import pytest

from llmbench.cli import main as cli_main
from llmbench.commands.report import parse_budget
from llmbench.report.export import write_export
from llmbench.report.frame import (
    TIDY_COLUMNS,
    ReportError,
    Table,
    load_runs,
    regressed,
    select_runs,
)
from llmbench.report.history_plots import history_plots
from llmbench.report.html import marked_differences, write_report
from llmbench.report.markdown import GITHUB_COMMENT_LIMIT, build_markdown
from llmbench.report.plots import run_plots
from llmbench.report.verdict import gate_verdict
from llmbench.runs import read_json, run_from_json
from tests.support.matrices import TINY_MATRIX
from tests.support.paths import DATA, REPO

RUNS = DATA / "report_runs"
MACHINE = RUNS / "Linux-CPython-3.11-64bit"
COMBINATIONS = [f"gemma3-270m-{p}-cpu-bs{b}" for p in ("fp32", "bf16", "q4_k_m") for b in (1, 4)]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")


def assert_github_table(markdown: str) -> list[list[str]]:
    """The first pipe table of ``markdown``: a header, a separator with as many cells, rows as wide."""
    lines = markdown.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith("|"))
    block = []
    for line in lines[start:]:
        if not line.startswith("|"):
            break
        block.append(line)

    def cells(line: str) -> list[str]:
        assert line.startswith("|"), line
        assert line.endswith("|"), line
        return re.split(r"(?<!\\)\|", line[1:-1])

    header, separator, *rows = (cells(line) for line in block)
    assert all(re.fullmatch(r"\s*:?-{3,}:?\s*", cell) for cell in separator), block[1]
    assert len(separator) == len(header)
    assert all(len(row) == len(header) for row in rows), [r for r in rows if len(r) != len(header)]
    return [header, *rows]


def read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(encoding="utf-8", newline="") as handle:
        return list(csv.DictReader(handle))


def only_inline_references(page: str) -> None:
    """Every src/href in the page is a data: URI or an in-page anchor; no url(...) or @import either."""
    references = re.findall(r"""\b(?:src|href)\s*=\s*["']?([^"'\s>]+)""", page, flags=re.IGNORECASE)
    assert references, "expected images and anchors"
    outside = [r for r in references if not (r.startswith("data:") or r.startswith("#"))]
    assert outside == []
    assert not re.search(r"url\(|@import|<link\b|<script\b[^>]*\bsrc", page, flags=re.IGNORECASE)


# ----------------------------------------------------------------------------- the table


def test_saved_runs_become_one_row_per_run_and_combination() -> None:
    runs = load_runs(RUNS)
    assert [run.name for run in runs] == ["0001", "0002", "0003"]
    table = Table.of(runs)
    assert [(row.run.name, row.combination) for row in table.rows] == [
        (run, combination) for run in ("0001", "0002", "0003") for combination in COMBINATIONS
    ]
    old = table.of_run(runs[0])
    # The old run saved no metrics: latency comes from pytest-benchmark's median, the rest is n/a.
    assert all(row.value("latency_s") == read_median(row.combination, "0001") for row in old)
    assert all(row.value(name) is None for row in old for name in ("ttft_s", "rougeLsum", "peak_rss_bytes"))
    newest = {row.combination: row for row in table.of_run(runs[2])}
    # The load benchmark's figure joins each batch size of its model, precision and device.
    assert newest["gemma3-270m-q4_k_m-cpu-bs4"].value("load_added_bytes") == 3.1e8
    assert newest["gemma3-270m-fp32-cpu-bs1"].value("load_added_bytes") is None
    assert newest["gemma3-270m-bf16-cpu-bs4"].metrics["rougeLsum"].ci == pytest.approx((0.47, 0.63))


def read_median(combination: str, run: str) -> float:
    path = next(MACHINE.glob(f"{run}_*.json"))
    bench = next(b for b in read_json(path)["benchmarks"] if b["param"] == combination)
    return float(bench["stats"]["median"])


def test_default_selection_is_the_latest_run_with_its_history() -> None:
    current, history = select_runs(RUNS, history=2)
    assert current.name == "0003"
    assert [run.name for run in history] == ["0002", "0003"]
    current, history = select_runs(RUNS, ["0001", "0002"])
    assert (current.name, [run.name for run in history]) == ("0002", ["0001", "0002"])
    with pytest.raises(ReportError, match=r"'0009' matches no saved run"):
        select_runs(RUNS, ["0009"])


def test_sizes_parse_and_bad_ones_say_what_is_expected() -> None:
    assert parse_budget("8GiB") == 8 * 2**30
    assert parse_budget("512 MiB") == 512 * 2**20
    assert parse_budget("16GB") == 16e9
    with pytest.raises(ReportError, match=r"--memory-budget: '8 parsecs' is not a memory size; expected e.g. 8GiB"):
        parse_budget("8 parsecs")


def test_the_tidy_frame_has_one_line_per_run_combination_and_metric() -> None:
    runs = load_runs(RUNS)
    table = Table.of(runs)
    frame = table.frame
    assert list(frame.columns) == list(TIDY_COLUMNS)
    line = frame[(frame["run"] == "0003") & (frame["combination"] == "gemma3-270m-bf16-cpu-bs4")
                 & (frame["metric"] == "rougeLsum")]  # fmt: skip
    assert len(line) == 1
    assert line.iloc[0][["value", "unit", "direction", "ci_low", "ci_high"]].tolist() == pytest.approx(
        [0.55, "F1", "higher", 0.47, 0.63]
    )
    assert line.iloc[0]["run_number"] == 3
    assert line.iloc[0]["batch_size"] == 4
    # The old run saved only latency (from pytest-benchmark's median): one line per combination.
    assert (frame.loc[frame["run"] == "0001", "metric"] == "latency_s").all()
    assert len(table.wide()) == len(table.rows)


def test_metrics_are_ordered_by_the_names_runs_save_them_under() -> None:
    data = copy.deepcopy(dict(read_json(next(MACHINE.glob("0003_*.json")))))
    for bench in data["benchmarks"]:
        metrics = (bench.get("extra_info") or {}).get("metrics")
        if metrics:
            metrics["semantic_sim"] = {"value": 0.8, "unit": "ratio", "direction": "higher"}
    names = Table.of([run_from_json(data, "a run with semantic_sim", name="0042")]).metric_names
    # semantic_sim reads with the quality figures, not after everything else (the old order named it
    # semantic_similarity, so the saved metric was sorted to the end).
    assert names.index("rougeLsum") < names.index("semantic_sim") < names.index("drift_identical_share")


# ----------------------------------------------------------------------------- plots


def test_each_plot_has_the_expected_series() -> None:
    runs = load_runs(RUNS)
    table = Table.of(runs)
    rows = table.of_run(runs[2])
    plots = {plot.name: plot for plot in run_plots(rows)}
    assert list(plots) == [
        "latency_ttft", "decode_throughput", "memory", "tokens_vs_time", "rouge", "batch_scaling", "itl_cdf",
    ]  # fmt: skip

    latency = plots["latency_ttft"]
    assert latency.labels() == [f"{m} {p}" for m in ("latency_s", "ttft_s") for p in ("fp32", "bf16", "q4_k_m")]
    q4 = latency.series_named("latency_s q4_k_m")
    assert q4.x == ("gemma3-270m-q4_k_m-cpu-bs1", "gemma3-270m-q4_k_m-cpu-bs4")
    assert q4.y == tuple(row.value("latency_s") for row in rows if row.precision == "q4_k_m")
    # One model: one colour; one marker and hatch per precision, the same in every plot.
    assert q4.style == plots["decode_throughput"].series_named("q4_k_m").style
    styles = [latency.series_named(f"latency_s {p}") for p in ("fp32", "bf16", "q4_k_m")]
    assert len({s.color for s in styles}) == 1
    assert len({(s.marker, s.hatch) for s in styles}) == 3

    decode = plots["decode_throughput"]
    assert decode.labels() == [f"{p}{s}" for p in ("fp32", "bf16", "q4_k_m") for s in ("", " bandwidth limit")]
    limit = decode.series_named("bf16 bandwidth limit")
    bf16 = [row for row in rows if row.precision == "bf16"]
    assert limit.x == (1.0, 4.0)
    assert limit.y == pytest.approx([26e9 / (0.54e9 + r.value("kv_cache_bytes")) for r in bf16])  # type: ignore[operator]

    memory = plots["memory"]
    assert memory.ylabel == "GiB"
    assert memory.labels() == ["weights", "KV cache", "rest", "peak"]
    weights, kv, rest, peak = (memory.series_named(n).points() for n in memory.labels())
    for combination in COMBINATIONS:
        assert weights[combination] + kv[combination] + rest[combination] == pytest.approx(peak[combination])  # type: ignore[operator]

    tokens = plots["tokens_vs_time"].series_named("fp32")
    assert tokens.y == (32.0, 128.0)

    rouge = plots["rouge"]
    assert rouge.labels() == ["rouge1", "rouge2", "rougeLsum"]
    lsum = rouge.series_named("rougeLsum")
    assert lsum.x == ("gemma3-270m fp32 cpu", "gemma3-270m bf16 cpu", "gemma3-270m q4_k_m cpu")
    assert lsum.low == pytest.approx((0.49, 0.47, 0.42))
    assert lsum.high == pytest.approx((0.65, 0.63, 0.58))

    scaling = plots["batch_scaling"]
    assert scaling.labels() == [
        f"{m} {p}" for p in ("fp32", "bf16", "q4_k_m") for m in ("latency_s", "decode_tok_s_total")
    ]
    for plot in plots.values():
        assert plot.png()[:8] == b"\x89PNG\r\n\x1a\n"


def test_history_marks_the_gates_regressions() -> None:
    runs = load_runs(RUNS)
    verdict = gate_verdict(runs[2], runs)
    assert verdict is not None
    marks = regressed(verdict, runs[2])
    # Latency is 30% slower too: one earlier run cannot show this machine's drift, but 30% is beyond the threshold
    # plus the assumed first-baseline allowance (5% + 14%, docs/gate.md), so it is marked as well.
    assert marks == {("gemma3-270m-q4_k_m-cpu-bs4", "peak_rss_bytes"), ("gemma3-270m-q4_k_m-cpu-bs4", "latency_s")}
    plots = {plot.name: plot for plot in history_plots(Table.of(runs), runs, marks)}
    assert list(plots) == [f"history_{m}" for m in ("latency_s", "ttft_s", "decode_tok_s_total", "peak_memory",
                                                     "rougeLsum", "load_s")]  # fmt: skip
    memory = plots["history_peak_memory"]
    assert memory.labels() == [*COMBINATIONS, "regressions"]
    assert memory.series_named("regressions").x == (runs[2].label,)
    latency = plots["history_latency_s"]
    assert latency.labels() == [*COMBINATIONS, "regressions"]
    assert latency.series_named("regressions").x == (runs[2].label,)
    series = latency.series_named("gemma3-270m-q4_k_m-cpu-bs4")
    assert series.x == ("0001 1111111", "0002 2222222", "0003 3333333")
    assert series.y[2] == pytest.approx(series.y[1] * 1.3)  # type: ignore[operator]
    # The old run has no TTFT: a gap (None), not a crash.
    assert plots["history_ttft_s"].series_named("gemma3-270m-fp32-cpu-bs1").y[0] is None


# ----------------------------------------------------------------------------- page, markdown, CSV


def test_report_command_writes_a_self_contained_page_markdown_and_csv(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "report"
    assert cli_main(["report", "--storage", str(RUNS), "--output", str(out), "--memory-budget", "1GiB"]) == 0
    assert "wrote" in capsys.readouterr().out
    page = (out / "index.html").read_text(encoding="utf-8")
    only_inline_references(page)
    assert page.count('src="data:image/png;base64,') == 2 + 7 + 6  # decision plots + run plots + history plots
    assert "llmbench regression gate: FAILED" in page
    assert "gemma3-270m q4_k_m cpu bs4: latency 1.39 → 1.81 s" in page
    assert "Intel(R) Xeon(R) Platinum 8480+" in page  # the fingerprint
    # Side by side: the reference, and the words q4_k_m changed against fp32.
    assert "The council approved the new park budget on Monday." in page
    assert "The <mark>city</mark> council approved <mark>a</mark> park" in page
    # Hardware guidance against 1 GiB: fp32 (about 1.5 GiB measured) does not fit, q4_k_m does.
    guidance = {row["combination"]: row for row in read_csv(out / "guidance.csv")}
    assert guidance["gemma3-270m-fp32-cpu-bs1"]["fits"] == "False"
    assert guidance["gemma3-270m-q4_k_m-cpu-bs4"]["fits"] == "True"
    markdown = (out / "report.md").read_text(encoding="utf-8")
    assert len(markdown) < GITHUB_COMMENT_LIMIT
    tables = [block for block in re.split(r"\n\n+", markdown) if block.startswith("|")]
    for block in tables:
        assert_github_table(block)
    assert any(
        block.startswith("| model | precision | device | batch | Pareto front (against speed) | load time |")
        for block in tables
    )
    results = read_csv(out / "results.csv")
    assert len(results) == 3 * 6
    old = [row for row in results if row["run"] == "0001"]
    assert all(row["ttft_s"] == "" and row["latency_s"] != "" for row in old)


def test_an_old_run_without_metrics_shows_n_a(tmp_path: Path) -> None:
    current, history = select_runs(RUNS, ["0001"])
    files = write_report(current, history, tmp_path)
    page = files.index.read_text(encoding="utf-8")
    assert "Not saved by this run (shown as n/a): ttft_s, decode_tok_s_per_seq, rougeLsum, kv_cache_bytes." in page
    summary = assert_github_table(files.markdown.read_text(encoding="utf-8"))
    assert len(summary) == 1 + 6
    assert all(cells[6].strip() != "n/a" for cells in summary[1:])  # latency: pytest-benchmark's median
    assert all(cells[7].strip() == "n/a" for cells in summary[1:])  # decode tok/s per sequence
    assert "No generated outputs were saved with this run" in page


def large_run(combinations: int) -> dict[str, Any]:
    base = read_json(next(MACHINE.glob("0003_*.json")))
    template = next(b for b in base["benchmarks"] if b["param"] == "gemma3-270m-bf16-cpu-bs4")
    benchmarks = []
    for index in range(combinations):
        bench = copy.deepcopy(template)
        bench["extra_info"]["model"] = f"model-with-a-long-name-{index // 8:03d}"
        bench["extra_info"]["precision"] = ("fp32", "bf16", "fp16", "int8", "nf4", "q4_k_m", "q8_0", "q2_k")[index % 8]
        bench["fullname"] = f"benchmarks/test_generate.py::test_generate[{index}]"
        benchmarks.append(bench)
    return {**base, "benchmarks": benchmarks}


def test_markdown_stays_under_githubs_limit_for_a_large_matrix() -> None:
    run = run_from_json(large_run(200), "a large run", name="0042")
    rows = Table.of([run]).of_run(run)
    assert len(rows) == 200
    markdown = build_markdown(run, rows, None, parse_budget("8GiB"))
    assert len(markdown) < GITHUB_COMMENT_LIMIT
    table = assert_github_table(markdown)
    assert 1 < len(table) <= 201
    if len(table) < 201:
        assert f"_{201 - len(table)} more combinations not shown" in markdown
    assert "index.html" in markdown


def test_export_writes_one_csv_row_per_combination_and_run(tmp_path: Path) -> None:
    out = tmp_path / "all.csv"
    assert cli_main(["export", "--storage", str(RUNS), "--output", str(out)]) == 0
    rows = read_csv(out)
    expected = [(run, c) for run in ("0001", "0002", "0003") for c in COMBINATIONS]
    assert [(r["run"], r["combination"]) for r in rows] == expected
    assert {"latency_s", "rougeLsum", "rougeLsum_ci_low", "rougeLsum_ci_high", "model", "batch_size"} <= set(rows[0])
    assert rows[0]["rougeLsum"] == ""
    assert float(rows[-1]["rougeLsum"]) == pytest.approx(0.5)


def test_parquet_needs_pyarrow_and_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import builtins

    real_import = builtins.__import__

    def no_pyarrow(name: str, *args: Any, **kwargs: Any) -> Any:
        if name.startswith("pyarrow"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", no_pyarrow)
    with pytest.raises(ReportError, match=r"needs pyarrow, which is not installed; install it .* or write a \.csv"):
        write_export(Table.of(load_runs(RUNS)), tmp_path / "all.parquet")


def test_parquet_export_reads_back_with_pandas(tmp_path: Path) -> None:
    pd = pytest.importorskip("pandas")
    pytest.importorskip("pyarrow")
    out = tmp_path / "all.parquet"
    assert cli_main(["export", "--storage", str(RUNS), "--output", str(out)]) == 0
    frame = pd.read_parquet(out)
    assert len(frame) == 3 * 6
    assert frame["rougeLsum"].iloc[-1] == pytest.approx(0.5)
    assert frame["batch_size"].tolist() == [1, 4] * 9


def test_the_page_renders_the_verdicts_objects(tmp_path: Path) -> None:
    current, history = select_runs(RUNS)
    verdict = gate_verdict(current, history)
    assert verdict is not None
    page = write_report(current, history, tmp_path, verdict=verdict).index.read_text(encoding="utf-8")
    rows = re.findall(r'<tr class="regressed">(.*?)</tr>', page)
    # The verdict's table row of the regression, and the decision table's row of its combination.
    assert any("<td>gemma3-270m q4_k_m cpu bs4</td><td>peak_rss_bytes</td>" in row for row in rows)
    # 30% slower latency against one earlier run: beyond the threshold plus the first-baseline allowance.
    assert any("<td>gemma3-270m q4_k_m cpu bs4</td><td>latency_s</td>" in row for row in rows)
    assert any("gemma3-270m-q4_k_m-cpu-bs4" in row for row in rows)
    assert len(rows) == 3
    assert f"<b>{verdict.summary()}</b>" in page


def test_differences_from_full_precision_are_marked() -> None:
    assert marked_differences("a b c", "a b c") == "a b c"
    assert marked_differences("a x c", "a b c") == "a <mark>x</mark> c"
    assert marked_differences("a c", "a b c") == 'a <mark class="gap" title="missing: b">&#8230;</mark> c'
    assert marked_differences("<b> d", "<b>") == "&lt;b&gt; <mark>d</mark>"


# ----------------------------------------------------------------------------- a real browser


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
def test_chromium_renders_the_page_without_loading_anything_else(tmp_path: Path) -> None:
    current, history = select_runs(RUNS)
    files = write_report(current, history, tmp_path / "report", verdict=gate_verdict(current, history))
    only_inline_references(files.index.read_text(encoding="utf-8"))
    shot = tmp_path / "shot.png"
    common = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--window-size=1400,2000", "--enable-logging=stderr", "--v=0",
    ]  # fmt: skip
    url = files.index.resolve().as_uri()
    dom = subprocess.run([*common, "--dump-dom", url], capture_output=True, text=True, timeout=120, check=True)
    # The rendered DOM holds every figure, and nothing failed to load (Chromium logs failed loads).
    assert dom.stdout.count("<img") == 15  # 2 decision plots + 7 run plots + 6 history plots
    assert "net::ERR_" not in dom.stderr
    assert "Failed to load resource" not in dom.stderr
    subprocess.run([*common, f"--screenshot={shot}", url], capture_output=True, timeout=120, check=True)
    assert png_size(shot) == (1400, 2000)
    assert shot.stat().st_size > 50_000  # text, tables and a plot, not a blank page


# ----------------------------------------------------------------------------- from the suite, through pytest


@pytest.mark.usefixtures("one_torch_thread")  # the models load in this process (tests/conftest.py)
def test_the_suite_writes_the_report_of_its_saved_run(suite: pytest.Pytester, tiny_gemma3_dir: Path) -> None:
    (suite.path / "benchmarks").mkdir()
    (suite.path / "benchmarks" / "matrix.toml").write_text(TINY_MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks")
    # The report is under test, not the workers: the models load in the pytest process, the bandwidth is given.
    common = ["benchmarks", "--llmbench-quality-items=4", "--llmbench-rounds=2", "--llmbench-warmup-rounds=0",
              "-p", "no:cacheprovider", "--llmbench-isolation=none", "--llmbench-peak-bandwidth=10GB/s"]  # fmt: skip
    result = suite.runpytest(*common, "--benchmark-autosave", "--llmbench-report=rep")
    result.assert_outcomes(passed=4)
    result.stdout.fnmatch_lines(["llmbench report: rep/index.html and rep/report.md"])
    saved = load_runs(suite.path / ".benchmarks")
    assert len(saved) == 1
    combos = [f"tiny-{p}-cpu-bs{b}" for p in ("fp32", "bf16") for b in (1, 2)]
    assert [row.combination for row in Table.of(saved).rows] == combos
    page = (suite.path / "rep" / "index.html").read_text(encoding="utf-8")
    only_inline_references(page)
    assert f"run {saved[0].name}" in page
    assert "tiny-bf16-cpu-bs2" in page
    rows = Table.of(saved).rows
    plots = {plot.name: plot for plot in run_plots(rows)}
    assert plots["latency_ttft"].series_named("latency_s bf16").x == ("tiny-bf16-cpu-bs1", "tiny-bf16-cpu-bs2")
    assert all(v is not None for v in plots["latency_ttft"].series_named("ttft_s fp32").y)
    assert plots["rouge"].series_named("rouge1").x == ("tiny fp32 cpu", "tiny bf16 cpu")
    assert plots["memory"].series_named("weights").y[0] is not None
    assert all(row.outputs for row in rows)
    assert rows[0].outputs_file is not None
    assert "reference summary" in page
    # Each output says what it is marked against: bf16 against its reference fp32 (this session), fp32 itself.
    assert "marked against its reference, tiny fp32 cpu" in page
    assert "the reference of: tiny bf16 cpu" in page
    assert "not marked: it is its own reference" in page

    # Without --benchmark-autosave nothing is saved: the report is built from the session's benchmarks,
    # with the saved run as its history.
    result = suite.runpytest(*common, "--llmbench-precision=fp32", "--llmbench-batch-size=1", "--llmbench-report=rep2")
    result.assert_outcomes(passed=1)
    assert len(load_runs(suite.path / ".benchmarks")) == 1
    page = (suite.path / "rep2" / "index.html").read_text(encoding="utf-8")
    assert "run session" in page
    assert f"History: {saved[0].label}, session" in page
    assert (suite.path / "rep2" / "report.md").is_file()
