"""The driver's GPU memory probe and the combined CUDA memory probe (src/llmbench/measure/driver_memory.py), on
the FAKE NVML: no GPU here."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import torch

from llmbench.gpu_driver import LazyGpuDriver
from llmbench.measure.driver_memory import (
    GPU_SAMPLE_INTERVAL_S,
    CombinedMemoryProbe,
    GpuProcessMemoryProbe,
    GpuProcessMemoryReading,
)
from llmbench.measure.memory import CpuMemoryProbe, CudaMemoryProbe, CudaMemoryReading, MemoryProbe, MemoryReading
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml
from llmbench.units import MiB

PID = os.getpid()


def _values(reading: MemoryReading) -> dict[str, float | None]:
    return {metric.name: metric.value for metric in reading.metrics()}


def _wait_for_samples(fake: FakeNvml, count: int) -> None:
    """Until the sampler thread has called the driver ``count`` more times (or 5 s, then the test fails)."""
    name = "nvmlDeviceGetComputeRunningProcesses"
    target = fake.calls.count(name) + count
    deadline = time.monotonic() + 5
    while fake.calls.count(name) < target:
        assert time.monotonic() < deadline, "the sampler thread took no samples"
        time.sleep(GPU_SAMPLE_INTERVAL_S / 4)


def test_the_peak_is_the_largest_sample_of_this_process_during_the_block() -> None:
    fake = FakeNvml([FakeGpu(memory_used=2000 * MiB)])
    fake.gpus[0].processes = {PID: 500 * MiB, 4242: 9000 * MiB}  # another process's memory is not ours
    probe = GpuProcessMemoryProbe(LazyGpuDriver(0, fake))
    with probe.measure() as memory:
        fake.gpus[0].processes[PID] = 1700 * MiB  # a transient peak, gone before the block ends
        fake.gpus[0].memory_used = 3200 * MiB
        _wait_for_samples(fake, 2)
        fake.gpus[0].processes[PID] = 600 * MiB
    assert isinstance(memory, GpuProcessMemoryReading)
    assert memory.has_peak()
    assert (memory.before_bytes(), memory.peak_bytes(), memory.after_bytes()) == (500 * MiB, 1700 * MiB, 600 * MiB)
    assert _values(memory) == {
        "peak_gpu_process_bytes": 1700 * MiB,
        "gpu_process_before_bytes": 500 * MiB,
        "peak_gpu_used_bytes": 3200 * MiB,
    }
    note = {m.name: m.note for m in memory.metrics()}["peak_gpu_process_bytes"]
    assert note == f"largest NVML usedGpuMemory of pid {PID} on NVML device 0, sampled every 20 ms"


def test_a_process_the_driver_does_not_list_is_na_with_the_reason() -> None:
    fake = FakeNvml()
    fake.gpus[0].processes = {4242: 100 * MiB}  # host PIDs, as in a container
    with GpuProcessMemoryProbe(LazyGpuDriver(0, fake)).measure() as memory:
        pass
    assert not memory.has_peak()
    values = _values(memory)
    assert values["peak_gpu_process_bytes"] is None
    assert values["peak_gpu_used_bytes"] == fake.gpus[0].memory_used
    note = {m.name: m.note for m in memory.metrics()}["peak_gpu_process_bytes"]
    assert note.startswith(f"n/a: the driver did not list pid {PID} among the compute processes of NVML device 0")
    assert "--pid=host" in note


def test_without_nvml_every_figure_is_na_with_the_reason_and_the_block_runs() -> None:
    ran = []
    with GpuProcessMemoryProbe(LazyGpuDriver(0, FakeNvml(library_missing=True))).measure() as memory:
        ran.append(True)
    assert ran == [True]
    assert not memory.has_peak()
    assert set(_values(memory).values()) == {None}
    notes = {m.note for m in memory.metrics() if m.name != "gpu_process_before_bytes"}
    assert notes == {"n/a: NVML cannot read CUDA device 0: Driver Not Loaded"}


def test_a_failing_sample_does_not_kill_the_sampler_and_is_noted() -> None:
    fake = FakeNvml()
    fake.gpus[0].processes = {PID: 100 * MiB}
    with GpuProcessMemoryProbe(LazyGpuDriver(0, fake), interval_s=0.001).measure() as memory:
        fake.gpus[0].not_supported = {"nvmlDeviceGetMemoryInfo"}
        time.sleep(0.02)
    assert _values(memory)["peak_gpu_process_bytes"] == 100 * MiB
    assert isinstance(memory, GpuProcessMemoryReading)
    assert memory.errors
    assert "failed samples, first: FakeNvmlError: Not Supported" in memory.metrics()[0].note


class Recorder(MemoryProbe):
    """A probe that logs when it is entered and left, with fixed figures."""

    def __init__(self, name: str, log: list[str], reading: MemoryReading) -> None:
        self.name, self.log, self.reading = name, log, reading

    @contextmanager
    def measure(self) -> Iterator[MemoryReading]:
        self.log.append(f"enter {self.name}")
        yield self.reading
        self.log.append(f"leave {self.name}")


def _allocator(allocated: int, reserved: int) -> CudaMemoryReading:
    return CudaMemoryReading(
        allocated_before=allocated, reserved_before=reserved, allocated_peak=allocated, reserved_peak=reserved,
        allocated_after=allocated,
    )  # fmt: skip


def test_the_combined_probe_reports_every_figure_and_ends_the_driver_last() -> None:
    fake = FakeNvml()
    fake.gpus[0].processes = {PID: 900 * MiB}
    log: list[str] = []
    driver = GpuProcessMemoryProbe(LazyGpuDriver(0, fake))
    allocator = Recorder("allocator", log, _allocator(300 * MiB, 400 * MiB))
    with CombinedMemoryProbe([driver, allocator, CpuMemoryProbe()]).measure() as memory:
        log.append("body")
    assert log == ["enter allocator", "body", "leave allocator"]
    assert memory.peak_bytes() == 900 * MiB  # the driver's figure heads where it has one
    names = [metric.name for metric in memory.metrics()]
    assert names == [
        "peak_gpu_process_bytes", "gpu_process_before_bytes", "peak_gpu_used_bytes",
        "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes", "cuda_allocated_before_bytes",
        "peak_rss_bytes", "rss_before_bytes",
    ]  # fmt: skip
    assert _values(memory)["peak_rss_bytes"] > 0  # host RSS on a CUDA combination too


def test_without_the_drivers_figure_the_allocators_peak_heads() -> None:
    driver = GpuProcessMemoryProbe(LazyGpuDriver(0, FakeNvml(library_missing=True)))
    allocator = Recorder("allocator", [], _allocator(300 * MiB, 400 * MiB))
    with CombinedMemoryProbe([driver, allocator]).measure() as memory:
        pass
    assert memory.peak_bytes() == 300 * MiB


def test_an_allocator_that_never_held_anything_reports_no_figures() -> None:
    """A llama.cpp process on CUDA: torch's allocator is idle, its zeros would read as 'no memory used'."""
    assert _allocator(0, 0).metrics() == []
    assert [m.name for m in _allocator(0, 2 * MiB).metrics()] == [
        "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes", "cuda_allocated_before_bytes"
    ]


def test_the_combined_probe_needs_a_probe() -> None:
    with pytest.raises(ValueError, match="at least one probe"):
        CombinedMemoryProbe([])


class UninitialisedTorchCuda:
    """Stands in for ``torch.cuda`` in a process where torch never initialised CUDA (a llama.cpp worker)."""

    def __init__(self) -> None:
        self.calls: list[str] = []

    def is_initialized(self) -> bool:
        self.calls.append("is_initialized")
        return False

    def __getattr__(self, name: str) -> Any:
        raise AssertionError(f"torch.cuda.{name} called: it would create a torch CUDA context")


def test_the_allocator_probe_leaves_a_process_without_torch_cuda_alone() -> None:
    runtime = UninitialisedTorchCuda()
    with CudaMemoryProbe(torch.device("cuda:0"), runtime, only_where_initialized=True).measure() as memory:
        pass
    assert runtime.calls == ["is_initialized"]
    assert memory.metrics() == []
    assert memory.peak_bytes() == 0
