"""The end-of-session table: units, n/a for missing figures, width."""

from __future__ import annotations

from typing import Any

from llmbench.metrics import Metric, MetricSet
from llmbench.plugin import terminal_table as metrics_table


def bench(model: str, precision: str, batch: int, metrics: list[Metric]) -> dict[str, Any]:
    saved = MetricSet()
    saved.extend(metrics)
    return {
        "name": f"test_generate[{model}-{precision}-cpu-bs{batch}]",
        "extra_info": {"model": model, "precision": precision, "device": "cpu", "batch_size": batch,
                       "metrics": saved.to_json()},
    }  # fmt: skip


def test_rows_use_human_units_and_na() -> None:
    rows = metrics_table.render(
        [
            bench(
                "gemma3-270m", "q4_k_m", 4,
                [
                    Metric("latency_s", 1.234, "s", "lower"),
                    Metric("ttft_s", 0.0456, "s", "lower"),
                    Metric("decode_tok_s_per_seq", 41.83, "tok/s", "higher"),
                    Metric("peak_rss_bytes", 3 * 2**30, "bytes", "lower"),
                    Metric("weight_bytes", 246_587_904, "bytes", "lower"),
                    Metric("mbu", 0.4512, "ratio", "higher"),
                    Metric("rougeLsum", None, "F1", "higher"),
                ],
            ),
            bench("old-model", "fp32", 1, [Metric("latency_s", 12.5, "s", "lower")]),
        ]
    )  # fmt: skip
    header, _, first, second = rows[:4]
    assert header.split() == [
        "combination", "latency", "TTFT", "prefill/s", "decode/s", "batch/s", "peak", "mem", "weights", "MBU",
        "ROUGE-L", "same",
    ]  # fmt: skip
    assert first.split() == [
        "gemma3-270m", "q4_k_m", "cpu", "bs4", "1234", "ms", "46", "ms", "n/a", "41.8", "n/a", "3.00", "GiB",
        "235", "MiB", "45.1%", "n/a", "n/a",
    ]  # fmt: skip
    assert second.split()[:6] == ["old-model", "fp32", "cpu", "bs1", "12.5", "s"]
    assert second.split()[6:] == ["n/a"] * 9
    assert all(len(line) <= 120 for line in rows)
    # "same" is against the reference, which may be another model, precision or device (docs/quality.md).
    assert rows[-1].endswith("same: share of outputs identical to the reference's")


def test_benchmarks_without_llm_figures_are_left_out() -> None:
    assert metrics_table.render([{"name": "test_other", "extra_info": {}}]) == []
