"""Timers, memory probes and the bandwidth measurement against known work and known allocations."""

from __future__ import annotations

import math
import mmap
import re
import time
from pathlib import Path

import pytest
import torch

from llmbench.measure.probes import (
    CpuBandwidthMeter,
    CpuMemoryProbe,
    CpuTimer,
    CudaMemoryProbe,
    CudaTimer,
    MpsMemoryProbe,
    MpsTimer,
    measure_peak_bandwidth,
    peak_rss_reset_unsupported,
    probes_for,
    probes_unavailable_reason,
)

MiB = 1 << 20
KNOWN = 256 * MiB

needs_cuda = pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device")


def kernel_peak_reset_refused() -> str | None:
    """The test's own check, independent of llmbench.measure.probes: can this process reset its VmHWM?"""

    def hwm() -> int:
        return int(re.findall(r"VmHWM:\s+(\d+) kB", Path("/proc/self/status").read_text())[0]) * 1024

    try:
        with mmap.mmap(-1, 64 * MiB) as block:  # raise the peak by 64 MiB, then unmap it
            for offset in range(0, 64 * MiB, mmap.PAGESIZE):
                block[offset] = 1
        before = hwm()
        Path("/proc/self/clear_refs").write_text("5")
        after = hwm()
    except (OSError, IndexError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None if after < before - 32 * MiB else f"VmHWM stayed at {after} bytes (was {before})"


RESET_REFUSED = kernel_peak_reset_refused()
needs_peak_reset = pytest.mark.skipif(RESET_REFUSED is not None, reason=f"peak RSS cannot be reset: {RESET_REFUSED}")


def touched_block(size: int) -> mmap.mmap:
    """``size`` bytes of fresh anonymous memory with every page written: exactly that much more RSS.

    Mapped directly, not through malloc: a process whose earlier tests left freed memory resident in
    malloc's heap (a large ``mallopt`` threshold, an allocator's cache) would serve ``np.ones`` from
    pages it already counts, and unmapping gives the pages back at once."""
    block = mmap.mmap(-1, size)
    for offset in range(0, size, mmap.PAGESIZE):
        block[offset] = 1
    return block


def allocate_and_free(hold_s: float = 0.0) -> None:
    """Allocate and touch 256 MiB, hold it, then unmap it."""
    with touched_block(KNOWN):
        time.sleep(hold_s)


# ------------------------------------------------------------------------------------ timers


def test_cpu_timer_measures_the_block_and_its_marks() -> None:
    with CpuTimer().measure() as clock:
        time.sleep(0.02)
        clock.mark()
        time.sleep(0.01)
        clock.mark()
    first, second = clock.marks_s()
    assert first >= 0.02
    assert second - first >= 0.01
    assert clock.seconds() >= second
    assert clock.seconds() < 1.0


def test_a_reading_cannot_be_read_inside_its_block() -> None:
    with CpuTimer().measure() as clock, pytest.raises(RuntimeError, match="after its `with` block"):
        clock.seconds()
    with CpuMemoryProbe().measure() as memory, pytest.raises(RuntimeError, match="after its `with` block"):
        memory.peak_bytes()


# ----------------------------------------------------------------------------- CPU memory probe


def test_the_probe_agrees_with_the_kernel_on_whether_the_peak_can_be_reset() -> None:
    assert (peak_rss_reset_unsupported() is None) == (RESET_REFUSED is None)


@needs_peak_reset
def test_reset_peak_rss_sees_a_known_allocation_and_forgets_it() -> None:
    probe = CpuMemoryProbe(method="clear_refs")
    with probe.measure() as first:
        allocate_and_free()  # freed before the block ends: only the peak can show it
    raised = first.peak_bytes() - first.before_bytes()
    assert 240 * MiB <= raised <= 300 * MiB
    # The reset works: the next block, which allocates nothing, does not report the old peak.
    with probe.measure() as second:
        pass
    assert second.peak_bytes() - second.before_bytes() < 16 * MiB
    assert second.peak_bytes() < first.peak_bytes() - 200 * MiB
    assert "clear_refs" in first.metrics()[0].note


def test_sampled_rss_sees_a_known_allocation_and_forgets_it() -> None:
    probe = CpuMemoryProbe(method="sample")
    with probe.measure() as first:
        # Held 50 ms: the sampler reads every millisecond but needs the GIL to do so.
        allocate_and_free(hold_s=0.05)
    raised = first.peak_bytes() - first.before_bytes()
    assert 240 * MiB <= raised <= 300 * MiB
    with probe.measure() as second:
        pass
    assert second.peak_bytes() - second.before_bytes() < 16 * MiB
    assert "sampled" in first.metrics()[0].note


def test_auto_probe_metrics_and_added_bytes() -> None:
    with CpuMemoryProbe().measure() as memory:
        kept = touched_block(64 * MiB)
    metrics = {m.name: m for m in memory.metrics()}
    assert list(metrics) == ["peak_rss_bytes", "rss_before_bytes"]
    assert metrics["peak_rss_bytes"].value == memory.peak_bytes()
    assert metrics["rss_before_bytes"].value == memory.before_bytes()
    assert all((m.unit, m.direction) == ("bytes", "lower") for m in metrics.values())
    expected = "clear_refs" if RESET_REFUSED is None else "sampled"
    assert expected in metrics["peak_rss_bytes"].note
    assert 60 * MiB <= memory.added_bytes() <= 80 * MiB
    kept.close()


# ------------------------------------------------------------------------------------ bandwidth


def test_cpu_peak_bandwidth_is_a_plausible_read_rate() -> None:
    reading = measure_peak_bandwidth("cpu")
    assert math.isfinite(reading.bytes_per_s)
    assert 1e9 < reading.bytes_per_s < 1e12
    assert reading.method.startswith("read:")
    metric = reading.metric()
    assert (metric.name, metric.unit, metric.value) == ("peak_bandwidth", "bytes/s", reading.bytes_per_s)


def test_cpu_bandwidth_counts_the_bytes_it_read() -> None:
    reading = CpuBandwidthMeter(buffer_bytes=64 * MiB, repeats=2).measure()
    assert "64 MiB" in reading.method
    assert f"{torch.get_num_threads()} threads" in reading.method


# -------------------------------------------------------------------------------------- factory


def test_probes_for_cpu() -> None:
    probes = probes_for("cpu")
    assert isinstance(probes.timer, CpuTimer)
    assert isinstance(probes.memory, CpuMemoryProbe)
    assert isinstance(probes.bandwidth, CpuBandwidthMeter)


@pytest.mark.parametrize("device", ["tpu", "cuda:x", "cpu:0", "", "mps:0"])
def test_probes_for_an_unknown_device_says_what_is_allowed(device: str) -> None:
    with pytest.raises(ValueError, match=r"has no probes; allowed: 'cpu', 'cuda', 'cuda:<index>', 'mps'"):
        probes_for(device)


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_probes_for_cuda_without_cuda() -> None:
    with pytest.raises(RuntimeError, match=r"'cuda:0': torch.cuda.is_available\(\) is False"):
        probes_for("cuda:0")


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the error on a machine without MPS")
def test_probes_for_mps_without_mps_says_why() -> None:
    with pytest.raises(RuntimeError, match=r"'mps': MPS is not available"):
        probes_for("mps")
    assert "MPS is not available" in (probes_unavailable_reason("mps") or "")
    assert probes_unavailable_reason("cpu") is None


# ---------------------------------------- the CUDA implementations' call order, on a fake runtime


class FakeCudaEvent:
    def __init__(self, runtime: FakeCudaRuntime, enable_timing: bool = False) -> None:
        assert enable_timing
        self.runtime = runtime
        self.at: float | None = None

    def record(self, stream: object) -> None:
        assert stream == "stream-of-cuda:0"
        self.at = self.runtime.clock_s

    def synchronize(self) -> None:
        self.runtime.calls.append("event.synchronize")

    def elapsed_time(self, end: FakeCudaEvent) -> float:
        assert self.at is not None
        assert end.at is not None
        return (end.at - self.at) * 1e3  # milliseconds, as torch.cuda.Event does


class FakeCudaRuntime:
    """Stands in for ``torch.cuda``: a clock the test moves, allocator counters, a call log."""

    def __init__(self) -> None:
        self.clock_s = 0.0
        self.calls: list[str] = []
        self.allocated = self.peak_allocated = 0
        self.reserved = self.peak_reserved = 0

    def Event(self, enable_timing: bool = False) -> FakeCudaEvent:  # torch's name
        return FakeCudaEvent(self, enable_timing)

    def current_stream(self, device: torch.device) -> str:
        return f"stream-of-{device}"

    def synchronize(self, device: torch.device | None = None) -> None:
        self.calls.append("synchronize")

    def reset_peak_memory_stats(self, device: torch.device | None = None) -> None:
        self.calls.append("reset_peak_memory_stats")
        self.peak_allocated, self.peak_reserved = self.allocated, self.reserved

    def allocate(self, size: int) -> None:
        self.allocated += size
        self.reserved = max(self.reserved, self.allocated + 2 * MiB)
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_reserved = max(self.peak_reserved, self.reserved)

    def memory_allocated(self, device: torch.device | None = None) -> int:
        return self.allocated

    def memory_reserved(self, device: torch.device | None = None) -> int:
        return self.reserved

    def max_memory_allocated(self, device: torch.device | None = None) -> int:
        self.calls.append("max_memory_allocated")
        return self.peak_allocated

    def max_memory_reserved(self, device: torch.device | None = None) -> int:
        return self.peak_reserved


CUDA0 = torch.device("cuda:0")


def test_cuda_timer_reads_events_with_one_synchronize() -> None:
    runtime = FakeCudaRuntime()
    runtime.clock_s = 10.0
    with CudaTimer(CUDA0, runtime).measure() as clock:
        runtime.clock_s = 10.25
        clock.mark()
        runtime.clock_s = 11.0
    assert runtime.calls == []  # nothing waits for the device inside or at the end of the block
    assert clock.seconds() == pytest.approx(1.0)
    assert clock.marks_s() == pytest.approx((0.25,))
    assert runtime.calls == ["event.synchronize"]


def test_cuda_memory_probe_resets_then_reads_the_peak() -> None:
    runtime = FakeCudaRuntime()
    runtime.allocate(1000 * MiB)
    runtime.allocate(-900 * MiB)  # an old peak of 1000 MiB that must not be reported
    with CudaMemoryProbe(CUDA0, runtime).measure() as memory:
        runtime.calls.append("body")
        runtime.allocate(300 * MiB)
        runtime.allocate(-300 * MiB)
    assert runtime.calls == [
        "synchronize",
        "reset_peak_memory_stats",
        "body",
        "synchronize",
        "max_memory_allocated",
    ]
    assert memory.before_bytes() == 100 * MiB
    assert memory.peak_bytes() == 400 * MiB
    assert memory.added_bytes() == 0
    metrics = {m.name: m.value for m in memory.metrics()}
    assert metrics == {
        "peak_cuda_allocated_bytes": 400 * MiB,
        "peak_cuda_reserved_bytes": 1002 * MiB,  # the allocator keeps what it reserved
        "cuda_allocated_before_bytes": 100 * MiB,
    }


# ------------------------------------------- the MPS implementations, on a fake runtime (no MPS here)


class FakeMpsRuntime:
    """Stands in for ``torch.mps``: allocator counters the test moves and a call log."""

    def __init__(self) -> None:
        self.calls: list[str] = []
        self.allocated = 0
        self.driver = 0

    def synchronize(self) -> None:
        self.calls.append("synchronize")

    def allocate(self, size: int) -> None:
        self.allocated += size
        self.driver = max(self.driver, self.allocated + 4 * MiB)  # the driver keeps what it handed out

    def current_allocated_memory(self) -> int:
        return self.allocated

    def driver_allocated_memory(self) -> int:
        return self.driver


def test_mps_timer_synchronizes_before_each_timestamp() -> None:
    runtime = FakeMpsRuntime()
    with MpsTimer(runtime).measure() as clock:
        runtime.calls.append("body")
        clock.mark()
    assert runtime.calls == ["synchronize", "body", "synchronize", "synchronize"]
    assert 0 <= clock.marks_s()[0] <= clock.seconds()


def test_mps_memory_probe_samples_the_peak_of_a_block() -> None:
    runtime = FakeMpsRuntime()
    runtime.allocate(100 * MiB)
    with MpsMemoryProbe(runtime).measure() as memory:
        runtime.allocate(300 * MiB)
        time.sleep(0.05)  # held for 50 sampling intervals
        runtime.allocate(-300 * MiB)
    assert runtime.calls == ["synchronize", "synchronize"]
    assert memory.before_bytes() == 100 * MiB
    assert memory.peak_bytes() == 400 * MiB
    assert memory.added_bytes() == 0
    metrics = {m.name: m.value for m in memory.metrics()}
    assert metrics == {
        "peak_mps_allocated_bytes": 400 * MiB,
        "peak_mps_driver_bytes": 404 * MiB,
        "mps_allocated_before_bytes": 100 * MiB,
    }


# ------------------------------------------------------------------------------- on a real GPU


@needs_cuda
def test_real_cuda_timer() -> None:
    a = torch.randn(2048, 2048, device="cuda")
    timer = probes_for("cuda").timer
    with timer.measure() as clock:
        for _ in range(10):
            a = a @ a / 2048
        clock.mark()
    assert 0 < clock.marks_s()[0] <= clock.seconds() < 10


@needs_cuda
def test_real_cuda_memory_probe_sees_a_known_allocation_and_forgets_it() -> None:
    probe = probes_for("cuda").memory
    with probe.measure() as first:
        block = torch.ones(KNOWN // 4, device="cuda")
        del block
    assert KNOWN <= first.peak_bytes() - first.before_bytes() <= KNOWN + 4 * MiB
    with probe.measure() as second:
        pass
    assert second.peak_bytes() == second.before_bytes()


@needs_cuda
def test_real_cuda_bandwidth_is_plausible() -> None:
    reading = measure_peak_bandwidth("cuda")
    assert 1e10 < reading.bytes_per_s < 2e13
    assert reading.method.startswith("copy:")
