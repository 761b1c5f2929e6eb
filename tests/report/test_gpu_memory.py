"""The report's "peak memory" on a GPU (issue 22): the process's GPU memory from the driver, torch's allocated
peak where the driver's figure is n/a, RSS on the CPU; the history plot's series follows the same choice."""

from __future__ import annotations

from typing import Any

from llmbench.metrics import Metric, MetricSet
from llmbench.report.frame import Table, rows_of
from llmbench.report.history_plots import history_plots
from llmbench.runs import run_from_json
from llmbench.units import GiB


def _run(*benches: tuple[str, list[Metric]]) -> Any:
    entries = []
    for device, metrics in benches:
        saved = MetricSet()
        saved.extend([Metric.of("latency_s", 0.5), *metrics])
        extra = {"model": "m", "precision": "bf16", "device": device, "batch_size": 1, "backend": "transformers",
                 "metrics": saved.to_json()}  # fmt: skip
        entries.append({"name": f"test_generate[m-bf16-{device}-bs1]",
                        "fullname": f"b.py::test_generate[m-bf16-{device}-bs1]", "extra_info": extra})  # fmt: skip
    data = {"machine_info": {}, "benchmarks": entries, "datetime": "2025-01-01T00:00:00", "commit_info": {}}
    return run_from_json(data, "0001", "0001")


def test_peak_memory_is_the_drivers_figure_on_a_gpu() -> None:
    run = _run(
        ("cuda", [Metric.of("peak_gpu_process_bytes", 3 * GiB), Metric.of("peak_cuda_allocated_bytes", 2 * GiB),
                  Metric.of("peak_rss_bytes", 1 * GiB)]),
        ("cuda:1", [Metric.of("peak_gpu_process_bytes", None), Metric.of("peak_cuda_allocated_bytes", 2 * GiB),
                    Metric.of("peak_rss_bytes", 1 * GiB)]),
        ("cpu", [Metric.of("peak_rss_bytes", 1 * GiB), Metric.of("energy_per_token_j", None)]),
    )  # fmt: skip
    rows = {row.device: row for row in rows_of(run)}
    assert (rows["cuda"].peak_memory_name, rows["cuda"].peak_memory) == ("peak_gpu_process_bytes", 3 * GiB)
    assert (rows["cuda:1"].peak_memory_name, rows["cuda:1"].peak_memory) == ("peak_cuda_allocated_bytes", 2 * GiB)
    assert (rows["cpu"].peak_memory_name, rows["cpu"].peak_memory) == ("peak_rss_bytes", 1 * GiB)
    (plot,) = [p for p in history_plots(Table.of([run]), [run]) if p.name == "history_peak_memory"]
    drawn = {series.label: series.y for series in plot.series}
    assert drawn == {"m-bf16-cpu-bs1": (1.0,), "m-bf16-cuda-bs1": (3.0,), "m-bf16-cuda:1-bs1": (2.0,)}  # GiB
