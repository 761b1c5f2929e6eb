"""The end-of-session table's GPU parts (issue 22): the memory column from the driver, the energy and device
memory table, the throttle warning; a CPU session's table without them."""

from __future__ import annotations

from typing import Any

from llmbench.gpu_driver import THROTTLE_INFO_KEY
from llmbench.metrics import Metric, MetricSet
from llmbench.plugin import terminal_table
from llmbench.units import GiB, MiB


def bench(device: str, metrics: list[Metric], **extra: Any) -> dict[str, Any]:
    saved = MetricSet()
    saved.extend([Metric.of("latency_s", 0.5), *metrics])
    info = {"model": "m", "precision": "bf16", "device": device, "batch_size": 1, "metrics": saved.to_json()}
    return {"name": f"test_generate[m-bf16-{device}-bs1]", "extra_info": {**info, **extra}}


def _row(lines: list[str], after: str) -> list[str]:
    """The first table row after the header line that starts with ``after``."""
    start = next(i for i, line in enumerate(lines) if line.startswith(after))
    return lines[start + 2].split()


def test_the_memory_column_of_a_gpu_row_is_the_drivers_figure() -> None:
    lines = terminal_table.render(
        [
            bench("cuda", [
                Metric.of("peak_gpu_process_bytes", 3 * GiB), Metric.of("peak_cuda_allocated_bytes", 2 * GiB),
                Metric.of("peak_rss_bytes", 1 * GiB),
            ]),
        ]
    )  # fmt: skip
    assert _row(lines, "combination")[10:12] == ["3.00", "GiB"]


def test_without_the_drivers_figure_the_allocators_and_never_the_host_rss() -> None:
    gpu_na = Metric.of("peak_gpu_process_bytes", None)
    allocated = Metric.of("peak_cuda_allocated_bytes", 2 * GiB)
    with_allocator = bench("cuda", [gpu_na, allocated, Metric.of("peak_rss_bytes", GiB)])
    llama_no_nvml = bench("cuda", [gpu_na, Metric.of("peak_rss_bytes", GiB)])
    lines = terminal_table.render([with_allocator, llama_no_nvml])
    assert lines[2].split()[10:12] == ["2.00", "GiB"]
    assert lines[3].split()[10] == "n/a"


def test_the_device_table_names_each_figure_for_its_source() -> None:
    lines = terminal_table.render(
        [
            bench("cuda", [
                Metric.of("peak_gpu_process_bytes", 3 * GiB), Metric.of("peak_cuda_allocated_bytes", 2 * GiB),
                Metric.of("peak_cuda_reserved_bytes", 2.5 * GiB), Metric.of("peak_gpu_used_bytes", 4 * GiB),
                Metric.of("peak_rss_bytes", 900 * MiB), Metric.of("energy_per_token_j", 0.0123),
                Metric.of("mean_power_w", 312.4),
            ]),
        ]
    )  # fmt: skip
    header = next(line for line in lines if line.startswith("combination") and "J/token" in line)
    assert header.split() == [
        "combination", "J/token", "mean", "W", "GPU", "proc", "CUDA", "alloc", "CUDA", "resv", "GPU", "used", "host",
        "RSS",
    ]  # fmt: skip
    assert _row(lines, header)[4:] == [
        "0.0123", "312.4", "3.00", "GiB", "2.00", "GiB", "2.50", "GiB", "4.00", "GiB", "900", "MiB",
    ]  # fmt: skip
    assert all(len(line) <= 120 for line in lines)


def test_a_throttled_gpu_is_warned_of_under_the_tables() -> None:
    throttled = {"throttling": ["hw_slowdown"], "samples": 8, "throttled_samples": 8}
    lines = terminal_table.render([bench("cuda", [], **{THROTTLE_INFO_KEY: throttled})])
    start = next(i for i, line in enumerate(lines) if line.startswith("warning:"))
    assert " ".join(line.strip() for line in lines[start:]) == (
        "warning: m bf16 cuda bs1: the GPU throttled during the timed rounds (hw_slowdown in 8 of 8 samples): its "
        "speed and energy figures may read worse than the code is"
    )
    assert all(len(line) <= 120 for line in lines)


def test_a_cpu_session_without_energy_gets_no_device_table_and_no_warning() -> None:
    cpu = bench("cpu", [Metric.of("peak_rss_bytes", GiB), Metric.of("energy_per_token_j", None, note="n/a: no RAPL")])
    lines = terminal_table.render([cpu])
    assert not [line for line in lines if "J/token" in line or line.startswith("warning:")]
    assert lines[2].split()[10:12] == ["1.00", "GiB"]
