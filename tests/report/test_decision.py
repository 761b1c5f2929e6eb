"""The decision view (issue 19): the one table (every column, each figure from the saved metric it names), the
Pareto fronts (hypothesis: the front's properties), the two plots' data points labelled, the page, the
markdown and ``llmbench export --decision``.

The saved runs are synthetic, built here like the other report tests build theirs: three models (t5-small
on the CPU; gemma3-270m at fp32 and q4_k_m on the CPU; gemma3-4b at bf16 and nf4 on CUDA) at batch sizes 1
and 2, with figures chosen so that each front is known (see ``FIGURES``).
"""

from __future__ import annotations

import json
import math
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pandas as pd  # type: ignore[import-untyped]  # no stubs installed (pandas-stubs)
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from llmbench.cli import main as cli_main
from llmbench.metrics import Metric, MetricSet
from llmbench.report.decision import (
    DECISION_COLUMNS,
    FIGURE_COLUMNS,
    decision_frame,
    dominates,
    pareto_front,
    pareto_mask,
)
from llmbench.report.decision_plots import memory_speed_plot, point_label, quality_speed_plot
from llmbench.report.frame import Table, rows_of
from llmbench.report.html import write_report
from llmbench.report.markdown import DecisionTable, build_markdown
from llmbench.runs import SavedRun, load_run, run_from_json
from llmbench.units import GiB
from tests.support.paths import DATA, REPO

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: (model, precision, device) -> decode tok/s per sequence at bs1, ROUGE-Lsum, host RSS (GiB), the driver's
#: GPU memory and torch's CUDA allocated peak (GiB; None on the CPU), weights and file (GiB).
FIGURES: dict[tuple[str, str, str], tuple[float, float, float, float | None, float | None, float, float]] = {
    ("t5-small", "fp32", "cpu"): (80.0, 0.30, 0.50, None, None, 0.23, 0.23),
    ("gemma3-270m", "fp32", "cpu"): (16.0, 0.45, 1.60, None, None, 1.00, 1.00),
    ("gemma3-270m", "q4_k_m", "cpu"): (42.0, 0.43, 0.45, None, None, 0.24, 0.25),
    ("gemma3-4b", "bf16", "cuda"): (30.0, 0.60, 2.00, 9.0, 8.2, 7.2, 8.0),
    ("gemma3-4b", "nf4", "cuda"): (35.0, 0.58, 1.80, 4.0, 3.1, 2.6, 8.0),
}
BATCHES = (1, 2)
#: What each combination's drift is against (``extra_info["quality_reference"]``); t5-small's run saved none
#: (as a run before references were saved).
REFERENCES: dict[tuple[str, str, str], dict[str, str]] = {
    ("gemma3-270m", "fp32", "cpu"): {"model": "gemma3-270m", "precision": "fp32", "device": "cpu"},
    ("gemma3-270m", "q4_k_m", "cpu"): {"model": "gemma3-270m", "precision": "fp32", "device": "cpu",
                                       "source": "run 0007"},
    ("gemma3-4b", "bf16", "cuda"): {"model": "gemma3-4b", "precision": "bf16", "device": "cuda"},
    ("gemma3-4b", "nf4", "cuda"): {"model": "gemma3-4b", "precision": "bf16", "device": "cuda",
                                   "source": "this session"},
}  # fmt: skip
#: The fronts these figures give (bs2 is slower per sequence, with more memory, at the same quality).
QUALITY_FRONT = {"t5-small-fp32-cpu-bs1", "gemma3-270m-q4_k_m-cpu-bs1", "gemma3-4b-nf4-cuda-bs1",
                 "gemma3-4b-bf16-cuda-bs1"}  # fmt: skip
RAM_FRONT = {"t5-small-fp32-cpu-bs1", "gemma3-270m-q4_k_m-cpu-bs1"}
DEVICE_FRONT = {"gemma3-4b-nf4-cuda-bs1"}


def figures_of(model: str, precision: str, device: str, batch: int) -> list[Metric]:
    decode, rouge, rss, driver, allocated, weights, file = FIGURES[(model, precision, device)]
    slower, more = 0.8 ** (batch - 1), 1.0 + 0.05 * (batch - 1)
    metrics = [
        Metric.of("latency_s", 32 / (decode * slower) + 0.1),
        Metric.of("decode_tok_s_per_seq", decode * slower),
        Metric.of("decode_tok_s_total", decode * slower * batch),
        Metric.of("prefill_tok_s", 10 * decode),
        Metric.of("peak_rss_bytes", rss * more * GiB),
        Metric.of("weight_bytes", weights * GiB),
        Metric.of("file_bytes", file * GiB),
        Metric.of("rougeLsum", rouge, ci=(rouge - 0.05, rouge + 0.05)),
    ]
    if driver is not None and allocated is not None:
        metrics += [Metric.of("peak_gpu_process_bytes", driver * more * GiB),
                    Metric.of("peak_cuda_allocated_bytes", allocated * more * GiB)]  # fmt: skip
    if precision not in ("fp32", "bf16"):  # the reference precisions of their models: no drift against themselves
        metrics += [Metric.of("drift_identical_share", 0.5, note="2 of 4 output texts identical to the reference's"),
                    Metric.of("rougeLsum_share", 0.95),
                    Metric.of("rougeLsum_diff", -0.02, ci=(-0.05, 0.01))]  # fmt: skip
    return metrics


#: The combinations with per-item figures (the quality pass at batch size 2, saved with each of their tests).
PER_ITEM = (("t5-small", "fp32", "cpu"), ("gemma3-4b", "nf4", "cuda"))
ITEMS = ("a1", "a2", "a3")


def per_item_records(model: str, precision: str, device: str) -> list[dict[str, Any]]:
    """Items a1, a2 in one call, a3 in the next; latency 0.5 s + 0.1 s per item index (distinct per model)."""
    offset = 0.0 if model == "t5-small" else 1.0
    return [
        {"item": item, "index": index, "source": "quality", "batch_size": 2, "call": index // 2,
         "call_items": 2 if index < 2 else 1, "latency_s": 0.5 + offset + 0.1 * (index // 2), "ttft_s": 0.05,
         "prompt_tokens": 100 + index, "generated_tokens": 20 + index, "decode_tok_s": 40.0 - index,
         "peak_rss_bytes": 0.5 * GiB}
        for index, item in enumerate(ITEMS)
    ]  # fmt: skip


def bench(model: str, precision: str, device: str, batch: int | None, metrics: list[Metric]) -> dict[str, Any]:
    saved = MetricSet()
    saved.extend(metrics)
    info: dict[str, Any] = {"model": model, "precision": precision, "device": device, "backend": "transformers",
                            "metrics": saved.to_json()}  # fmt: skip
    name = f"{model}-{precision}-{device}"
    if batch is not None:
        info["batch_size"] = batch
        name += f"-bs{batch}"
    if batch is not None and (model, precision, device) in PER_ITEM:
        info["per_item"] = per_item_records(model, precision, device)
    if batch is not None and (model, precision, device) in REFERENCES:
        info["quality_reference"] = REFERENCES[(model, precision, device)]
    test = "test_generate" if batch is not None else "test_load"
    return {"name": f"{test}[{name}]", "fullname": f"benchmarks/{test}.py::{test}[{name}]", "param": name,
            "extra_info": info, "stats": {"median": 1.0, "data": [1.0]}}  # fmt: skip


def matrix_data() -> dict[str, Any]:
    """A run of the matrix: every combination's generate benchmark, and a load benchmark per model, precision
    and device (its load_s joins each batch size's row)."""
    benchmarks = [bench(*key, batch, figures_of(*key, batch)) for key in FIGURES for batch in BATCHES]
    benchmarks += [bench(*key, None, [Metric.of("load_s", 1.0 + index)]) for index, key in enumerate(FIGURES)]
    return {"machine_info": {}, "benchmarks": benchmarks, "datetime": "2026-12-01T10:00:00", "commit_info": {}}


def matrix_run() -> SavedRun:
    return run_from_json(matrix_data(), "a matrix run", name="0001")


@pytest.fixture
def storage(tmp_path: Path) -> Path:
    """The matrix run saved as pytest-benchmark saves it (a machine folder, a numbered file)."""
    folder = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    (folder / "0001_abc_20261201_100000.json").write_text(json.dumps(matrix_data()), encoding="utf-8")
    return tmp_path / ".benchmarks"


# ----------------------------------------------------------------------------- the table


def test_the_table_has_every_column_each_from_its_saved_metric() -> None:
    rows = rows_of(matrix_run())
    frame = decision_frame(rows)
    assert len(frame) == len(FIGURES) * len(BATCHES)
    expected = ["run", "combination", "model", "precision", "device", "batch_size", "backend", "dataset",
                "prompt_length", "reference", *FIGURE_COLUMNS,
                "front_quality_speed", "front_host_memory_speed", "front_device_memory_speed"]  # fmt: skip
    assert list(frame.columns) == expected
    for index, row in enumerate(rows):
        line = frame.iloc[index]
        assert line["combination"] == row.combination
        for column in DECISION_COLUMNS:
            saved = row.value(column.metric)
            assert pd.isna(line[column.metric]) if saved is None else line[column.metric] == saved, column.metric
    by_id = frame.set_index("combination")
    # Host RAM and device memory in columns of their own: the CUDA row's host column is its RSS, not GPU bytes.
    cuda = by_id.loc["gemma3-4b-nf4-cuda-bs1"]
    assert cuda["peak_rss_bytes"] == pytest.approx(1.8 * GiB)
    assert cuda["peak_gpu_process_bytes"] == pytest.approx(4.0 * GiB)
    assert cuda["peak_cuda_allocated_bytes"] == pytest.approx(3.1 * GiB)
    assert pd.isna(by_id.loc["t5-small-fp32-cpu-bs1", "peak_gpu_process_bytes"])
    # Load time comes from the load benchmark of the model, precision and device, for each batch size.
    assert by_id.loc["gemma3-4b-nf4-cuda-bs2", "load_s"] == 5.0
    assert by_id.loc["gemma3-270m-q4_k_m-cpu-bs1", "file_bytes"] == pytest.approx(0.25 * GiB)
    assert by_id.loc["gemma3-270m-q4_k_m-cpu-bs1", "drift_identical_share"] == 0.5
    assert pd.isna(by_id.loc["gemma3-270m-fp32-cpu-bs1", "drift_identical_share"])
    # The ROUGE difference keeps its paired interval.
    assert by_id.loc[
        "gemma3-4b-nf4-cuda-bs1", ["rougeLsum_diff", "rougeLsum_diff_ci_low", "rougeLsum_diff_ci_high"]
    ].tolist() == [-0.02, -0.05, 0.01]
    # What the drift is against, from the run's saved reference: itself for the reference, the run it came from.
    assert by_id["reference"].fillna("not saved").to_dict() == {
        **{f"gemma3-270m-fp32-cpu-bs{b}": "itself" for b in BATCHES},
        **{f"gemma3-270m-q4_k_m-cpu-bs{b}": "gemma3-270m fp32 cpu (run 0007)" for b in BATCHES},
        **{f"gemma3-4b-bf16-cuda-bs{b}": "itself" for b in BATCHES},
        **{f"gemma3-4b-nf4-cuda-bs{b}": "gemma3-4b bf16 cuda" for b in BATCHES},
        **{f"t5-small-fp32-cpu-bs{b}": "not saved" for b in BATCHES},
    }


def test_the_fronts_are_the_combinations_nothing_beats() -> None:
    frame = decision_frame(rows_of(matrix_run())).set_index("combination")
    assert set(frame.index[frame["front_quality_speed"]]) == QUALITY_FRONT
    assert set(frame.index[frame["front_host_memory_speed"]]) == RAM_FRONT
    assert set(frame.index[frame["front_device_memory_speed"]]) == DEVICE_FRONT


def test_the_page_and_markdown_show_the_table_with_its_sources(tmp_path: Path) -> None:
    run = matrix_run()
    files = write_report(run, [run], tmp_path)
    page = files.index.read_text(encoding="utf-8")
    section = page[page.index('<h2 id="decision">') : page.index('<h2 id="plots">')]
    headers = re.findall(r"<th>(.*?)</th>", section)
    titles = [re.sub(r"<[^>]+>", "", h) for h in headers]
    assert titles[:4] == ["model", "precision", "device", "batch"]
    hidden = ("peak_mps_allocated_bytes", "accuracy", "accuracy_share")
    assert titles[4:] == [
        "Pareto front (against speed)",
        *(c.title for c in DECISION_COLUMNS if c.metric not in hidden),
        "drift against",
    ]
    # Each header names its saved metric (hover), each cell with a saved note shows it.
    assert '<span title="peak_rss_bytes">host RAM peak (RSS)</span>' in section
    assert '<span title="peak_gpu_process_bytes">GPU memory peak (driver)</span>' in section
    assert 'title="2 of 4 output texts identical to the reference&#x27;s">50.0%</td>' in section
    nf4 = next(r for r in re.findall(r"<tr[^>]*>(.*?)</tr>", section) if 'title="gemma3-4b-nf4-cuda-bs1"' in r)
    cells = [re.sub(r"<[^>]+>", "", c) for c in re.findall(r"<td[^>]*>(.*?)</td>", nf4)]
    assert cells[:4] == ["gemma3-4b", "nf4", "cuda", "1"]
    shown = dict(zip(titles, cells, strict=True))
    assert shown["host RAM peak (RSS)"] == "1.80 GiB"
    assert shown["GPU memory peak (driver)"] == "4.00 GiB"
    assert shown["CUDA allocated peak (torch)"] == "3.10 GiB"
    assert shown["load time"] == "5.00 s"
    assert shown["file size"] == "8.00 GiB"
    assert shown["ROUGE-Lsum"] == "0.580"
    assert shown["Pareto front (against speed)"] == "quality, device memory"
    assert shown["drift against"] == "gemma3-4b bf16 cuda"
    assert shown["ROUGE-Lsum − reference"] == "-0.020 [-0.050, 0.010]"
    assert "Columns left out (no combination has them): MPS allocated peak (torch), accuracy, accuracy / reference" in (
        section
    )
    # Both plots in the section, and summary.csv is the decision frame.
    assert section.count('src="data:image/png;base64,') == 2
    summary = pd.read_csv(tmp_path / "summary.csv")
    assert list(summary.columns) == list(decision_frame(rows_of(run)).columns)
    assert set(summary.loc[summary["front_quality_speed"], "combination"]) == QUALITY_FRONT

    markdown = build_markdown(run, rows_of(run), None, 8 * GiB)
    table = next(block for block in markdown.split("\n\n") if block.startswith("| model |"))
    header, _, *lines = table.splitlines()
    assert [h.strip() for h in header.strip("|").split("|")] == titles
    nf4_line = next(line for line in lines if "| nf4 | cuda | 1 |" in line)
    assert "| 1.80 GiB | 4.00 GiB | 3.10 GiB |" in nf4_line
    assert (
        "Pareto front of device memory against speed (peak GPU process (driver) against decode tok/s per "
        "sequence): gemma3-4b-nf4-cuda-bs1"
    ) in markdown


def test_a_cpu_only_run_leaves_the_device_columns_out_and_says_so() -> None:
    rows = [row for row in rows_of(matrix_run()) if row.device == "cpu"]
    key = DecisionTable.of(rows)
    assert "GPU memory peak (driver)" not in key.header
    assert "host RAM peak (RSS)" in key.header
    assert "GPU memory peak (driver)" in key.hidden_line()
    assert not key.frame["front_device_memory_speed"].any()


def test_export_writes_the_decision_table(storage: Path, tmp_path: Path) -> None:
    out = tmp_path / "decision.csv"
    assert cli_main(["export", "--storage", str(storage), "--decision", "--output", str(out)]) == 0
    frame = pd.read_csv(out)
    run = load_run(next((storage / "Linux-CPython-3.11-64bit").glob("*.json")))
    assert frame["combination"].tolist() == [row.combination for row in Table.of([run]).rows]
    assert set(frame.loc[frame["front_host_memory_speed"], "combination"]) == RAM_FRONT
    assert frame.set_index("combination").loc["gemma3-4b-bf16-cuda-bs2", "peak_gpu_process_bytes"] == pytest.approx(
        9.0 * 1.05 * GiB
    )
    pytest.importorskip("pyarrow")
    parquet = tmp_path / "decision.parquet"
    assert cli_main(["export", "--storage", str(storage), "--decision", "--output", str(parquet)]) == 0
    read = pd.read_parquet(parquet)
    assert read["front_quality_speed"].dtype == bool
    assert set(read.loc[read["front_quality_speed"], "combination"]) == QUALITY_FRONT


def test_the_docs_snippet_picks_from_the_export(
    storage: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """docs/reports.md's pandas snippet runs on a real export and prints the quality front, fastest first."""
    text = (REPO / "docs" / "reports.md").read_text(encoding="utf-8")
    snippet = text[text.index("To pick from the export") :]
    code = snippet[snippet.index("```python\n") + len("```python\n") : snippet.index("\n```\n")]
    assert (
        cli_main(["export", "--storage", str(storage), "--decision", "--output", str(tmp_path / "decision.csv")]) == 0
    )
    capsys.readouterr()
    monkeypatch.chdir(tmp_path)
    exec(compile(code, "docs/reports.md", "exec"), {})
    printed = capsys.readouterr().out
    order = ["t5-small-fp32-cpu-bs1", "gemma3-270m-q4_k_m-cpu-bs1", "gemma3-4b-nf4-cuda-bs1", "gemma3-4b-bf16-cuda-bs1"]
    assert [line.split()[1] for line in printed.splitlines()[1:]] == order


def test_export_takes_one_table_at_a_time(storage: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out = tmp_path / "x.csv"
    assert cli_main(["export", "--storage", str(storage), "--decision", "--per-item", "--output", str(out)]) == 2
    assert "error: --per-item and --decision: give one of them" in capsys.readouterr().out
    assert not out.exists()


@pytest.mark.parametrize(
    ("name", "combinations"),
    [("old_format.json", 0), ("other_machine.json", 2), ("new_removed.json", 2), ("0001_base.json", 2)],
)
def test_runs_saved_by_earlier_versions_still_report(name: str, combinations: int, tmp_path: Path) -> None:
    """Saved runs of earlier versions (tests/data/runs; old_format.json: a plain pytest-benchmark run, no
    combination fields, so no rows) give the page, its decision section and both plots."""
    path = next(p for p in (DATA / "runs").rglob(name))
    run = load_run(path)
    files = write_report(run, [run], tmp_path)
    page = files.index.read_text(encoding="utf-8")
    section = page[page.index('<h2 id="decision">') : page.index('<h2 id="plots">')]
    rows = rows_of(run)
    assert len(rows) == combinations
    assert all(f'title="{row.combination}"' in section for row in rows)
    assert section.count('src="data:image/png;base64,') == 2
    frame = decision_frame(rows)
    assert frame["latency_s"].notna().all()  # pytest-benchmark's median where no metrics were saved
    assert "| model | precision | device | batch |" in files.markdown.read_text(encoding="utf-8")


def test_the_page_and_markdown_show_the_per_prompt_table_and_its_pivot(tmp_path: Path) -> None:
    run = matrix_run()
    files = write_report(run, [run], tmp_path)
    page = files.index.read_text(encoding="utf-8")
    section = page[page.index('<h2 id="per-item">') : page.index('<h2 id="guidance">')]
    # The latency pivot: one line per prompt, one column per combination of the pass (its batch size, 2).
    pivot = section[: section.index("</table>")]
    assert re.findall(r"<th>(.*?)</th>", pivot) == ["item", "gemma3-4b-nf4-cuda-bs2", "t5-small-fp32-cpu-bs2"]
    lines = [re.findall(r"<td[^>]*>(.*?)</td>", line) for line in re.findall(r"<tr>(.*?)</tr>", pivot)][1:]
    assert lines == [["a1", "1.50 s", "500.0 ms"], ["a2", "1.50 s", "500.0 ms"], ["a3", "1.60 s", "600.0 ms"]]
    # The tokens and decode pivots, and the whole table (each item once, though saved with two tests each).
    assert "tokens generated for the item (generated_tokens), pass: quality" in section
    assert "the per-prompt table (6 lines: item x combination)" in section
    assert "<th>peak RSS</th>" in section
    csv = pd.read_csv(tmp_path / "per_item.csv")
    assert len(csv) == 6
    assert "per_item.csv" in page
    markdown = files.markdown.read_text(encoding="utf-8")
    block = markdown[markdown.index("<details><summary>Per prompt: latency") :]
    assert "| item | gemma3-4b-nf4-cuda-bs2 | t5-small-fp32-cpu-bs2 |" in block
    assert "| a3 | 1.60 s | 600.0 ms |" in block


@pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed (Debian package chromium)")
def test_chromium_renders_the_decision_table_and_its_plots(tmp_path: Path) -> None:
    run = matrix_run()
    files = write_report(run, [run], tmp_path / "report")
    command = [
        str(CHROMIUM), "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
        "--disable-component-update", "--no-first-run", f"--user-data-dir={tmp_path / 'profile'}",
        "--dump-dom", files.index.resolve().as_uri(),
    ]  # fmt: skip
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120, check=True).stdout
    section = dom[dom.index('<h2 id="decision">') : dom.index('<h2 id="plots">')]
    # Every combination's row, and both plots as images the browser decoded from the page itself.
    assert len(re.findall(r'<td title="[^"]+-bs[12]">', section)) == len(FIGURES) * len(BATCHES)
    assert re.findall(r'<figure id="plot-([a-z_]+)">', section) == ["quality_vs_speed", "memory_vs_speed"]
    assert section.count('<img alt="') == 2


def test_a_run_without_per_item_figures_says_so(tmp_path: Path) -> None:
    data = matrix_data()
    for entry in data["benchmarks"]:
        entry["extra_info"].pop("per_item", None)
    run = run_from_json(data, "no per-item", name="0002")
    files = write_report(run, [run], tmp_path)
    page = files.index.read_text(encoding="utf-8")
    assert "No per-item figures were saved with this run" in page
    assert not (tmp_path / "per_item.csv").exists()
    assert "Per prompt:" not in files.markdown.read_text(encoding="utf-8")


def test_a_malformed_per_item_record_is_named_and_the_report_stands(tmp_path: Path) -> None:
    data = matrix_data()
    data["benchmarks"][0]["extra_info"]["per_item"] = 5
    run = run_from_json(data, "bad per-item", name="0003")
    page = write_report(run, [run], tmp_path).index.read_text(encoding="utf-8")
    assert "Per-item figures not shown: " in page
    assert "is a int, not a list of per-item records" in page
    assert '<h2 id="guidance">' in page


# ----------------------------------------------------------------------------- the plots


def test_the_quality_plot_labels_every_point_and_draws_the_front() -> None:
    rows = rows_of(matrix_run())
    plot = quality_speed_plot(rows)
    by_id = {row.combination: row for row in rows}
    assert plot.ylabel == "rougeLsum"
    assert set(plot.labels()) == {*by_id, "Pareto front"}
    for combination, row in by_id.items():
        series = plot.series_named(combination)
        assert series.x == (row.value("decode_tok_s_per_seq"),)
        assert series.y == (row.value("rougeLsum"),)
    front = plot.series_named("Pareto front")
    expected = sorted((by_id[c].value("decode_tok_s_per_seq"), by_id[c].value("rougeLsum")) for c in QUALITY_FRONT)
    assert list(zip(front.x, front.y, strict=True)) == expected
    # Points in the report's encoding: colour by model, marker by precision, size by batch size.
    styles = {c: plot.series_named(c) for c in by_id}
    assert len({styles[c].color for c in by_id if c.startswith("gemma3-4b")}) == 1
    assert (
        len({styles[c].color for c in ("t5-small-fp32-cpu-bs1", "gemma3-270m-fp32-cpu-bs1", "gemma3-4b-nf4-cuda-bs1")})
        == 3
    )
    assert styles["gemma3-4b-nf4-cuda-bs1"].marker != styles["gemma3-4b-bf16-cuda-bs1"].marker
    assert styles["t5-small-fp32-cpu-bs1"].marker == styles["gemma3-270m-fp32-cpu-bs1"].marker
    assert styles["t5-small-fp32-cpu-bs2"].markersize > styles["t5-small-fp32-cpu-bs1"].markersize
    assert styles["gemma3-4b-nf4-cuda-bs1"].key == ("gemma3-4b", "nf4", "cuda")
    # Each drawn point carries its label in the figure: the parts of the combination that differ.
    texts = {text.get_text() for text in plot.figure.axes[0].texts}
    assert texts == {point_label(row, rows) for row in rows}
    assert "gemma3-4b nf4 cuda bs1" in texts
    assert plot.png()[:8] == b"\x89PNG\r\n\x1a\n"


def test_the_memory_plot_keeps_host_and_device_memory_on_axes_of_their_own() -> None:
    rows = rows_of(matrix_run())
    plot = memory_speed_plot(rows)
    assert len(plot.figure.axes) == 2
    host = plot.series_named("peak_rss_bytes: gemma3-4b-nf4-cuda-bs1")
    assert host.y == pytest.approx((1.8,))  # GiB
    device = plot.series_named("peak_gpu_process_bytes: gemma3-4b-nf4-cuda-bs1")
    assert device.y == pytest.approx((4.0,))
    assert not any(label.startswith("peak_gpu_process_bytes: t5") for label in plot.labels())
    by_id = {row.combination: row for row in rows}
    ram = plot.series_named("peak_rss_bytes: Pareto front")
    assert set(ram.x) == {by_id[c].value("decode_tok_s_per_seq") for c in RAM_FRONT}
    assert plot.series_named("peak_gpu_process_bytes: Pareto front").x == (35.0,)
    # A CPU-only run: one panel.
    assert len(memory_speed_plot([r for r in rows if r.device == "cpu"]).figure.axes) == 1


def test_a_run_without_quality_or_decode_figures_still_plots(tmp_path: Path) -> None:
    data = matrix_data()
    for entry in data["benchmarks"]:
        for name in ("rougeLsum", "decode_tok_s_per_seq"):
            entry["extra_info"]["metrics"].pop(name, None)
    rows = rows_of(run_from_json(data, "no quality", name="0002"))
    plot = quality_speed_plot(rows)
    assert plot.series == []
    assert "nothing to weigh speed against" in plot.caption
    memory = memory_speed_plot(rows)
    assert "not drawn (not measured)" in memory.caption
    assert not decision_frame(rows)["front_host_memory_speed"].any()


# ----------------------------------------------------------------------------- the front's properties

finite = st.floats(min_value=-1e6, max_value=1e6, allow_nan=False, allow_infinity=False)
maybe = st.one_of(finite, st.none(), st.just(math.nan))
points = st.lists(st.tuples(maybe, maybe), max_size=25)


def oriented(point: tuple[float | None, float | None], x_higher: bool, y_higher: bool) -> tuple[float, float] | None:
    x, y = point
    if x is None or y is None or math.isnan(x) or math.isnan(y):
        return None
    return (x if x_higher else -x, y if y_higher else -y)


@settings(max_examples=200, deadline=None)
@given(points, st.booleans(), st.booleans())
def test_the_front_is_exactly_the_undominated_points(
    values: list[tuple[float | None, float | None]], x_higher: bool, y_higher: bool
) -> None:
    mask = pareto_mask([x for x, _ in values], [y for _, y in values], x_higher=x_higher, y_higher=y_higher)
    valid = [oriented(p, x_higher, y_higher) for p in values]
    kept = [p for p in valid if p is not None]
    for on, point in zip(mask, valid, strict=True):
        if point is None:
            assert not on  # a missing figure is never on the front
        elif on:
            assert not any(dominates(other, point) for other in kept)
        else:
            # Off the front: some point on the front beats it (domination is transitive).
            assert any(dominates(other, point) for other, o in zip(valid, mask, strict=True) if o and other)
    if kept:
        best_x = max(kept)  # the fastest point, the best y among the fastest: always on the front
        assert mask[valid.index(best_x)]


@settings(max_examples=100, deadline=None)
@given(st.lists(st.tuples(finite, finite), min_size=1, max_size=20), st.randoms(use_true_random=False))
def test_the_front_does_not_depend_on_order_or_on_missing_points(
    values: list[tuple[float, float]], random: Any
) -> None:
    mask = pareto_mask([x for x, _ in values], [y for _, y in values])
    order = list(range(len(values)))
    random.shuffle(order)
    shuffled = pareto_mask([values[i][0] for i in order], [values[i][1] for i in order])
    assert [mask[i] for i in order] == shuffled
    with_missing = pareto_mask([x for x, _ in values] + [None, 1e9], [y for _, y in values] + [1e9, math.nan])
    assert with_missing == [*mask, False, False]
    # Lower-is-better on a negated axis is the same front.
    assert pareto_mask([-x for x, _ in values], [y for _, y in values], x_higher=False) == mask


@settings(max_examples=50, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["a", "b"]), finite, finite), max_size=20))
def test_a_front_by_group_is_each_groups_own_front(values: list[tuple[str, float, float]]) -> None:
    frame = pd.DataFrame(values, columns=["dataset", "x", "y"])
    mask = pareto_front(frame, "x", "y", y_higher=False, by=["dataset"])
    for dataset in ("a", "b"):
        part = frame[frame["dataset"] == dataset]
        alone = pareto_mask(part["x"].tolist(), part["y"].tolist(), y_higher=False)
        assert mask[part.index].tolist() == alone


def test_pareto_mask_says_what_is_wrong_with_uneven_input() -> None:
    with pytest.raises(ValueError, match=r"pareto_mask: 2 x values but 1 y values"):
        pareto_mask([1.0, 2.0], [1.0])
