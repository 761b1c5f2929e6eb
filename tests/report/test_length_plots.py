"""The report's plots against the prompt-length axis: the data drawn (series and x values), not pixels."""

from __future__ import annotations

from typing import Any

from llmbench.metrics import METRICS_KEY, Metric, MetricSet
from llmbench.report.frame import rows_of, session_run
from llmbench.report.plots import prompt_length_plot, run_plots


def _benchmark(precision: str, batch: int, length: int | None, prefill: float, decode: float | None) -> dict[str, Any]:
    metrics = MetricSet()
    metrics.add(Metric.of("prefill_tok_s", prefill))
    metrics.add(Metric.of("decode_tok_s_per_seq", decode))
    info: dict[str, Any] = {"model": "gemma3-270m", "precision": precision, "device": "cpu", "batch_size": batch,
                            "backend": "llama_cpp" if precision == "q4_k_m" else "transformers",
                            METRICS_KEY: metrics.to_json()}  # fmt: skip
    name = f"test_generate[gemma3-270m-{precision}-cpu-bs{batch}"
    if length is not None:
        info["prompt_length"] = length
        name += f"-prompt{length}"
    return {"name": f"{name}]", "fullname": f"benchmarks/test_generate.py::{name}]", "stats": {}, "extra_info": info}


def _rows(*benchmarks: dict[str, Any]) -> Any:
    return rows_of(session_run({"benchmarks": list(benchmarks), "machine_info": {}, "datetime": ""}))


def test_prefill_and_decode_are_plotted_against_length_one_series_per_combination() -> None:
    rows = _rows(
        _benchmark("q4_k_m", 1, 1024, 400.0, 60.0),
        _benchmark("q4_k_m", 1, 128, 500.0, 70.0),
        _benchmark("fp32", 1, 128, 300.0, 16.0),
        _benchmark("fp32", 1, 1024, 250.0, None),
    )
    assert sorted(row.combination for row in rows) == [
        "gemma3-270m-fp32-cpu-bs1-prompt1024", "gemma3-270m-fp32-cpu-bs1-prompt128",
        "gemma3-270m-q4_k_m-cpu-bs1-prompt1024", "gemma3-270m-q4_k_m-cpu-bs1-prompt128",
    ]  # fmt: skip
    prefill = prompt_length_plot(rows, "prefill_vs_length")
    assert sorted(prefill.labels()) == ["fp32 bs1", "q4_k_m bs1"]
    assert prefill.series_named("q4_k_m bs1").points() == {128.0: 500.0, 1024.0: 400.0}
    assert prefill.series_named("fp32 bs1").points() == {128.0: 300.0, 1024.0: 250.0}
    decode = prompt_length_plot(rows, "decode_vs_length")
    assert decode.series_named("q4_k_m bs1").x == (128.0, 1024.0)
    assert decode.series_named("fp32 bs1").y == (16.0, None)  # n/a is not drawn
    names = [plot.name for plot in run_plots(rows)]
    assert names[-2:] == ["prefill_vs_length", "decode_vs_length"]


def test_batch_sizes_are_separate_series() -> None:
    rows = _rows(_benchmark("bf16", 1, 128, 300.0, 16.0), _benchmark("bf16", 4, 128, 900.0, 12.0))
    plot = prompt_length_plot(rows, "prefill_vs_length")
    assert sorted(plot.labels()) == ["bf16 bs1", "bf16 bs4"]
    assert plot.series_named("bf16 bs4").points() == {128.0: 900.0}


def test_a_run_without_the_axis_keeps_its_ids_and_gets_no_length_plots() -> None:
    rows = _rows(_benchmark("q4_k_m", 1, None, 500.0, 70.0))
    assert [row.combination for row in rows] == ["gemma3-270m-q4_k_m-cpu-bs1"]
    assert "prefill_vs_length" not in [plot.name for plot in run_plots(rows)]
    assert prompt_length_plot(rows, "decode_vs_length").series == []
