"""Memory probes: one interface (:class:`MemoryProbe`), one implementation per device kind; each resets
the peak (or starts sampling), runs the block and reads the peak.

CPU: peak RSS of the process, from the kernel's high-water mark reset through ``/proc/self/clear_refs``
where that works, else sampled every millisecond. CUDA: PyTorch's allocator peaks
(``max_memory_allocated``/``reserved``) after ``reset_peak_memory_stats``; on a CUDA device the probe is
:class:`~llmbench.measure.driver_memory.CombinedMemoryProbe` of the driver's per-process figure, these and
the host RSS (:func:`~llmbench.measure.probes.probes_for`). MPS: no peak statistics
exist, so ``torch.mps.current_allocated_memory`` and ``driver_allocated_memory`` are sampled every
millisecond. Limits of each method: docs/metrics.md.
"""

from __future__ import annotations

import functools
import mmap
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

import psutil

from llmbench.engine_types import ReadingNotFinished
from llmbench.metrics import Metric
from llmbench.units import MiB

if TYPE_CHECKING:  # torch is imported where it is used: a llama.cpp worker never needs it
    import torch

__all__ = [
    "CpuMemoryMethod",
    "CpuMemoryProbe",
    "CpuMemoryReading",
    "CudaMemoryProbe",
    "CudaMemoryReading",
    "MemoryProbe",
    "MemoryReading",
    "MpsMemoryProbe",
    "MpsMemoryReading",
    "PeakSampler",
    "peak_rss_reset_unsupported",
]


class MemoryReading(ABC):
    """The memory of one ``with probe.measure()`` block."""

    @abstractmethod
    def peak_bytes(self) -> int:
        """The figure to gate on: peak RSS on CPU, peak allocated bytes on CUDA."""

    @abstractmethod
    def before_bytes(self) -> int:
        """The same quantity at the start of the block."""

    @abstractmethod
    def after_bytes(self) -> int:
        """The same quantity (current, not peak) at the end of the block."""

    def added_bytes(self) -> int:
        """What the block left behind (e.g. the memory added by loading a model)."""
        return self.after_bytes() - self.before_bytes()

    def has_peak(self) -> bool:
        """Whether :meth:`peak_bytes` is a measured figure (False: a probe that could not read, e.g. the
        GPU driver's where NVML is missing; its metrics are then n/a with the reason)."""
        return True

    @abstractmethod
    def metrics(self) -> list[Metric]:
        """The peak figures as metrics (bytes, lower is better)."""


class MemoryProbe(ABC):
    """Measures the peak memory of a block of code on one device, with the peak reset first."""

    @abstractmethod
    def measure(self) -> AbstractContextManager[MemoryReading]:
        """A context manager; its reading can be read after the block."""


_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")
#: How far VmHWM may sit above VmRSS right after a reset (pages touched by other threads meanwhile).
_RESET_SLACK_BYTES = 8 * MiB
_SAMPLE_INTERVAL_S = 0.001


def _status_bytes() -> tuple[int, int]:
    """(VmHWM, VmRSS) of this process in bytes, read together from /proc/self/status."""
    values: dict[str, int] = {}
    for line in _STATUS.read_text().splitlines():
        key, _, rest = line.partition(":")
        if key in ("VmHWM", "VmRSS"):
            number, unit = rest.split()
            assert unit == "kB", line  # the kernel always writes kB here
            values[key] = int(number) * 1024
    return values["VmHWM"], values["VmRSS"]


def _reset_peak_rss() -> str | None:
    """Reset VmHWM to the current RSS; None where that worked, else why not."""
    try:
        with _CLEAR_REFS.open("w") as handle:
            handle.write("5")
        hwm, rss = _status_bytes()
    except (OSError, KeyError, ValueError) as exc:
        return f"cannot reset the peak through {_CLEAR_REFS} ({type(exc).__name__}: {exc})"
    if hwm > rss + _RESET_SLACK_BYTES:
        return f"writing 5 to {_CLEAR_REFS} left VmHWM at {hwm} bytes, above VmRSS {rss}"
    return None


@functools.cache
def peak_rss_reset_unsupported() -> str | None:
    """Why the kernel's peak RSS cannot be reset here, or None where it can (checked once).

    The check touches and frees a 32 MiB anonymous mapping, so that VmHWM is certainly above the
    current RSS, resets the peak and checks that VmHWM came down.
    """
    size = 32 * MiB
    try:
        with mmap.mmap(-1, size) as block:
            for offset in range(0, size, mmap.PAGESIZE):
                block[offset] = 1
        hwm_before, rss = _status_bytes()
    except (OSError, KeyError, ValueError) as exc:
        return f"cannot read VmHWM from {_STATUS} ({type(exc).__name__}: {exc})"
    if hwm_before < rss + size // 2:
        return "could not raise VmHWM above VmRSS to check the reset"
    reason = _reset_peak_rss()
    if reason is not None:
        return reason
    hwm_after, _ = _status_bytes()
    if hwm_after > hwm_before - size // 2:
        return f"writing 5 to {_CLEAR_REFS} did not lower VmHWM ({hwm_before} -> {hwm_after} bytes)"
    return None


class PeakSampler:
    """A daemon thread keeping the largest value of ``read()`` seen, sampled every ``interval_s`` (1 ms by
    default); :meth:`stop` reads once more and returns the peak."""

    def __init__(self, read: Callable[[], int], interval_s: float = _SAMPLE_INTERVAL_S) -> None:
        self._read = read
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = read()
        self._thread = threading.Thread(target=self._run, name="llmbench-peak-sampler", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self._read())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._read())
        return self.peak


def _rss() -> int:
    return int(psutil.Process().memory_info().rss)


@dataclass
class CpuMemoryReading(MemoryReading):
    """Resident memory (RSS) of the whole process around one block."""

    rss_before: int
    method: str
    rss_peak: int | None = None
    rss_after: int | None = None

    def _done(self) -> tuple[int, int]:
        if self.rss_peak is None or self.rss_after is None:
            raise ReadingNotFinished("a memory reading")
        return self.rss_peak, self.rss_after

    def peak_bytes(self) -> int:
        return self._done()[0]

    def before_bytes(self) -> int:
        return self.rss_before

    def after_bytes(self) -> int:
        return self._done()[1]

    def metrics(self) -> list[Metric]:
        peak, _ = self._done()
        return [
            Metric.of("peak_rss_bytes", float(peak), note=self.method),
            Metric.of("rss_before_bytes", float(self.rss_before)),
        ]


CpuMemoryMethod = Literal["auto", "clear_refs", "sample"]


class CpuMemoryProbe(MemoryProbe):
    """Peak RSS of a block: the kernel's reset high-water mark where possible, else sampling.

    ``method="auto"`` resets VmHWM through ``/proc/self/clear_refs`` and falls back to sampling,
    for that measurement, where the reset does not take; ``"sample"`` always samples;
    ``"clear_refs"`` raises where the reset does not take.
    """

    def __init__(self, method: CpuMemoryMethod = "auto") -> None:
        self.method = method

    @contextmanager
    def measure(self) -> Iterator[MemoryReading]:
        reason = _reset_peak_rss() if self.method != "sample" else "sampling was asked for"
        if reason is not None and self.method == "clear_refs":
            raise RuntimeError(f"CpuMemoryProbe(method='clear_refs'): {reason}")
        if reason is None:
            reading = CpuMemoryReading(
                rss_before=_status_bytes()[1],
                method="VmHWM from /proc/self/status after a reset through /proc/self/clear_refs",
            )
            try:
                yield reading
            finally:
                reading.rss_peak, reading.rss_after = _status_bytes()
            return
        reading = CpuMemoryReading(
            rss_before=_rss(),
            method=f"largest RSS sampled every {_SAMPLE_INTERVAL_S * 1e3:g} ms, because {reason}",
        )
        sampler = PeakSampler(_rss)
        try:
            yield reading
        finally:
            reading.rss_peak = sampler.stop()
            reading.rss_after = _rss()


@dataclass
class CudaMemoryReading(MemoryReading):
    """PyTorch's CUDA allocator statistics around one block."""

    allocated_before: int
    reserved_before: int
    allocated_peak: int | None = None
    reserved_peak: int | None = None
    allocated_after: int | None = None

    def _done(self) -> tuple[int, int, int]:
        if self.allocated_peak is None or self.reserved_peak is None or self.allocated_after is None:
            raise ReadingNotFinished("a memory reading")
        return self.allocated_peak, self.reserved_peak, self.allocated_after

    def peak_bytes(self) -> int:
        return self._done()[0]

    def peak_reserved_bytes(self) -> int:
        return self._done()[1]

    def before_bytes(self) -> int:
        return self.allocated_before

    def after_bytes(self) -> int:
        return self._done()[2]

    def metrics(self) -> list[Metric]:
        """The allocator's figures; none where torch's allocator held nothing at all (a llama.cpp process,
        whose memory only the driver sees: ``peak_gpu_process_bytes``)."""
        allocated, reserved, _ = self._done()
        if reserved == 0 and self.reserved_before == 0:
            return []
        note = "torch.cuda max_memory_{allocated,reserved} after reset_peak_memory_stats"
        return [
            Metric.of("peak_cuda_allocated_bytes", float(allocated), note=note),
            Metric.of("peak_cuda_reserved_bytes", float(reserved), note=note),
            Metric.of("cuda_allocated_before_bytes", float(self.allocated_before)),
        ]


class CudaMemoryProbe(MemoryProbe):
    """Peak CUDA memory of a block: synchronize, reset the peak, run, synchronize, read.

    ``runtime`` is ``torch.cuda`` (tests pass a fake with the same few functions). With
    ``only_where_initialized``, a process where torch has not initialised CUDA (a llama.cpp worker: ggml
    has its own) is left alone: no synchronize, which would create a torch CUDA context of some hundred
    MiB in it, and no figures (the driver's ``peak_gpu_process_bytes`` is that process's figure).
    """

    def __init__(self, device: torch.device, runtime: Any = None, only_where_initialized: bool = False) -> None:
        self.device = device
        self.only_where_initialized = only_where_initialized
        import torch

        self._runtime = torch.cuda if runtime is None else runtime

    @contextmanager
    def measure(self) -> Iterator[MemoryReading]:
        cuda, device = self._runtime, self.device
        if self.only_where_initialized and not cuda.is_initialized():
            unused = CudaMemoryReading(0, 0)
            try:
                yield unused
            finally:
                unused.allocated_peak = unused.reserved_peak = unused.allocated_after = 0
            return
        cuda.synchronize(device)
        cuda.reset_peak_memory_stats(device)
        reading = CudaMemoryReading(
            allocated_before=int(cuda.memory_allocated(device)),
            reserved_before=int(cuda.memory_reserved(device)),
        )
        try:
            yield reading
        finally:
            cuda.synchronize(device)
            reading.allocated_peak = int(cuda.max_memory_allocated(device))
            reading.reserved_peak = int(cuda.max_memory_reserved(device))
            reading.allocated_after = int(cuda.memory_allocated(device))


@dataclass
class MpsMemoryReading(MemoryReading):
    """Apple MPS memory around one block: PyTorch's allocated tensors and what the Metal driver holds."""

    allocated_before: int
    allocated_peak: int | None = None
    driver_peak: int | None = None
    allocated_after: int | None = None

    def _done(self) -> tuple[int, int, int]:
        if self.allocated_peak is None or self.driver_peak is None or self.allocated_after is None:
            raise ReadingNotFinished("a memory reading")
        return self.allocated_peak, self.driver_peak, self.allocated_after

    def peak_bytes(self) -> int:
        return self._done()[0]

    def before_bytes(self) -> int:
        return self.allocated_before

    def after_bytes(self) -> int:
        return self._done()[2]

    def metrics(self) -> list[Metric]:
        allocated, driver, _ = self._done()
        every = f"{_SAMPLE_INTERVAL_S * 1e3:g} ms"
        note = f"largest torch.mps current_allocated_memory / driver_allocated_memory sampled every {every}"
        return [
            Metric.of("peak_mps_allocated_bytes", float(allocated), note=note),
            Metric.of("peak_mps_driver_bytes", float(driver), note=note),
            Metric.of("mps_allocated_before_bytes", float(self.allocated_before)),
        ]


class MpsMemoryProbe(MemoryProbe):
    """Peak MPS memory of a block: synchronize, sample allocated and driver memory while it runs, synchronize.

    ``runtime`` is ``torch.mps`` (tests pass a fake with the same few functions).
    """

    def __init__(self, runtime: Any = None) -> None:
        import torch

        self._runtime = torch.mps if runtime is None else runtime

    @contextmanager
    def measure(self) -> Iterator[MemoryReading]:
        mps = self._runtime
        mps.synchronize()
        reading = MpsMemoryReading(allocated_before=int(mps.current_allocated_memory()))
        allocated = PeakSampler(lambda: int(mps.current_allocated_memory()))
        driver = PeakSampler(lambda: int(mps.driver_allocated_memory()))
        try:
            yield reading
        finally:
            mps.synchronize()
            reading.allocated_peak, reading.driver_peak = allocated.stop(), driver.stop()
            reading.allocated_after = int(mps.current_allocated_memory())
