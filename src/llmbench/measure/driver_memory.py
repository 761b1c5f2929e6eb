"""GPU memory as the driver sees it, and the CUDA memory probe that puts every CUDA figure together.

PyTorch's allocator statistics (``peak_cuda_allocated_bytes``) see only torch's own tensors: not the CUDA
context, cuBLAS workspaces, or any engine that allocates by itself (llama.cpp's ggml). The driver sees
them all: :class:`GpuProcessMemoryProbe` samples NVML's per-process figure (``usedGpuMemory`` of this
process's pid) every :data:`GPU_SAMPLE_INTERVAL_S` in a background thread during the block, and once
more at its end, and keeps the largest (``peak_gpu_process_bytes``), with the whole GPU's used memory
beside it (``peak_gpu_used_bytes``: every process). The driver's accounting mode would give a
process's peak too, but only over its whole life (the load included) and only where an administrator
enabled it, so it is not used.

:class:`CombinedMemoryProbe` runs several probes around one block: on CUDA the driver's, PyTorch's
allocator's and the host RSS probe, each reporting its own figures under its own names. Limits:
docs/metrics.md and docs/gpu.md.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from llmbench.engine_types import ReadingNotFinished
from llmbench.gpu_driver import GpuDriver, GpuDriverUnavailable, LazyGpuDriver
from llmbench.measure.memory import MemoryProbe, MemoryReading, PeakSampler
from llmbench.metrics import Metric

__all__ = [
    "GPU_SAMPLE_INTERVAL_S",
    "CombinedMemoryProbe",
    "CombinedMemoryReading",
    "GpuProcessMemoryProbe",
    "GpuProcessMemoryReading",
]

#: How often the driver's memory figures are sampled during a block. Each sample is an NVML call (a
#: ctypes call that releases the GIL) from a background thread; every 20 ms costs the timed call next to
#: nothing, and the memory a CUDA process holds changes at allocation granularity: the caching
#: allocators (torch's, ggml's) keep what they took, so the peak stays visible until the final reading.
GPU_SAMPLE_INTERVAL_S = 0.02
#: A sampler's stand-in for "the driver did not list the process".
_NOT_LISTED = -1


@dataclass
class GpuProcessMemoryReading(MemoryReading):
    """The driver's memory figures of one process on one GPU around one block.

    The process figures are None where the driver never listed the process during the block (NVML
    unavailable, or a container whose PIDs differ from the host's): ``reason`` says why.
    """

    pid: int
    source: str
    process_before: int | None
    used_before: int | None
    reason: str = ""
    process_peak: int | None = None
    process_after: int | None = None
    used_peak: int | None = None
    finished: bool = False
    errors: list[str] = field(default_factory=list)

    def _check(self) -> None:
        if not self.finished:
            raise ReadingNotFinished("a GPU memory reading")

    def has_peak(self) -> bool:
        self._check()
        return self.process_peak is not None

    def peak_bytes(self) -> int:
        """The process's peak; 0 where the driver did not list it (see :meth:`has_peak`)."""
        self._check()
        return self.process_peak or 0

    def before_bytes(self) -> int:
        return self.process_before or 0

    def after_bytes(self) -> int:
        self._check()
        return self.process_after or 0

    def metrics(self) -> list[Metric]:
        self._check()
        every = f"{GPU_SAMPLE_INTERVAL_S * 1e3:g} ms"
        if self.process_peak is not None:
            note = f"largest NVML usedGpuMemory of pid {self.pid} on {self.source}, sampled every {every}"
        else:
            note = f"n/a: {self.reason or f'the driver did not list pid {self.pid} on {self.source}'}"
        if self.errors:
            note += f" ({len(self.errors)} failed samples, first: {self.errors[0]})"
        used_note = f"largest NVML used memory of the whole GPU (every process), sampled every {every}"
        return [
            Metric.of("peak_gpu_process_bytes", _float(self.process_peak), note=note),
            Metric.of("gpu_process_before_bytes", _float(self.process_before)),
            Metric.of("peak_gpu_used_bytes", _float(self.used_peak), note=used_note if self.used_peak else note),
        ]


def _float(value: int | None) -> float | None:
    return None if value is None else float(value)


class GpuProcessMemoryProbe(MemoryProbe):
    """The peak GPU memory of this process as the driver sees it, sampled during the block.

    ``driver``: the GPU's :class:`~llmbench.gpu_driver.LazyGpuDriver`; where NVML cannot be used, every
    reading is n/a with the reason (never an error). ``pid``: the process to read (default: this one).
    """

    def __init__(
        self, driver: LazyGpuDriver, pid: int | None = None, interval_s: float = GPU_SAMPLE_INTERVAL_S
    ) -> None:
        self.driver = driver
        self.pid = pid
        self.interval_s = interval_s

    @contextmanager
    def measure(self) -> Iterator[MemoryReading]:
        pid = os.getpid() if self.pid is None else self.pid
        try:
            driver = self.driver.get()
        except GpuDriverUnavailable as error:
            reading = GpuProcessMemoryReading(pid, f"cuda:{self.driver.index}", None, None, reason=str(error))
            try:
                yield reading
            finally:
                reading.finished = True
            return
        errors: list[str] = []

        def process() -> int:
            value = _guarded(lambda d: d.process_memory_bytes(pid), driver, errors)
            return _NOT_LISTED if value is None else value

        def used() -> int:
            value = _guarded(GpuDriver.memory_used_bytes, driver, errors)
            return _NOT_LISTED if value is None else value

        first = process()
        reading = GpuProcessMemoryReading(
            pid, driver.description, None if first == _NOT_LISTED else first,
            None, errors=errors,
        )  # fmt: skip
        process_sampler = PeakSampler(process, self.interval_s)
        used_sampler = PeakSampler(used, self.interval_s)
        reading.used_before = None if used_sampler.peak == _NOT_LISTED else used_sampler.peak
        try:
            yield reading
        finally:
            peak, used_peak = process_sampler.stop(), used_sampler.stop()
            after = process()
            reading.process_peak = None if peak == _NOT_LISTED else peak
            reading.process_after = None if after == _NOT_LISTED else after
            reading.used_peak = None if used_peak == _NOT_LISTED else used_peak
            if reading.process_peak is None:
                reading.reason = (
                    f"the driver did not list pid {pid} among the compute processes of {driver.description} "
                    "(in a container the driver lists the host's PIDs: run with the host's PID namespace, "
                    "e.g. docker --pid=host)"
                )
            reading.finished = True


def _guarded(read: Callable[[GpuDriver], int | None], driver: GpuDriver, errors: list[str]) -> int | None:
    """``read(driver)``; None (and the error noted) where NVML raises: a sampler thread must not die."""
    try:
        return read(driver)
    except Exception as error:  # NVMLError, or anything the binding raises mid-sample
        errors.append(f"{type(error).__name__}: {error}")
        return None


@dataclass
class CombinedMemoryReading(MemoryReading):
    """The readings of several probes around one block. The headline figures (``peak_bytes`` and the
    others) are the first reading's that has its figure; the metrics are all of them."""

    readings: tuple[MemoryReading, ...]

    def primary(self) -> MemoryReading:
        for reading in self.readings:
            if reading.has_peak():
                return reading
        return self.readings[0]

    def peak_bytes(self) -> int:
        return self.primary().peak_bytes()

    def before_bytes(self) -> int:
        return self.primary().before_bytes()

    def after_bytes(self) -> int:
        return self.primary().after_bytes()

    def metrics(self) -> list[Metric]:
        return [metric for reading in self.readings for metric in reading.metrics()]


class CombinedMemoryProbe(MemoryProbe):
    """Several probes around one block, entered in order and left in reverse (so the first one's final
    reading comes after every other probe's end, e.g. after the allocator probe's synchronize)."""

    def __init__(self, probes: Sequence[MemoryProbe]) -> None:
        if not probes:
            raise ValueError("CombinedMemoryProbe needs at least one probe")
        self.probes = tuple(probes)

    @contextmanager
    def measure(self) -> Iterator[MemoryReading]:
        with ExitStack() as stack:
            readings = tuple(stack.enter_context(probe.measure()) for probe in self.probes)
            yield CombinedMemoryReading(readings)
