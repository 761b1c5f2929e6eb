"""Timers, memory probes and the peak-bandwidth measurement, one implementation per device kind.

:func:`probes_for` is the only place that looks at the device string; everything else talks to
the :class:`Timer`, :class:`MemoryProbe` and :class:`BandwidthMeter` interfaces::

    probes = probes_for("cpu")
    with probes.memory.measure() as memory, probes.timer.measure() as clock:
        for token in model.stream():
            clock.mark()                 # a per-token timestamp
    clock.seconds(), clock.marks_s(), memory.peak_bytes(), memory.metrics()

Readings can be read only after their ``with`` block has ended.

Timers
    CPU: ``time.perf_counter``. CUDA: ``torch.cuda.Event(enable_timing=True)`` recorded on the
    current stream at the start, at each ``mark()`` and at the end; reading waits on the last
    event once (one synchronize) and converts the event intervals to seconds. The events time the
    stream, so work queued before the block is not counted and work queued inside is, even if the
    host returned before it finished.

Peak memory on CPU (``peak_rss_bytes``, ``rss_before_bytes``)
    Method 1, used where it works (Linux >= 4.0): writing ``5`` to ``/proc/self/clear_refs`` sets
    the kernel's high-water mark of resident memory (``VmHWM`` in ``/proc/self/status``) to the
    current RSS; after the call ``VmHWM`` is the exact peak RSS reached in between, at page
    granularity, with no sampling and no overhead on the measured call. Each measurement checks
    that the reset took (``VmHWM`` is within a few MiB of ``VmRSS`` right after the write); where
    it does not (no ``/proc``, a read-only ``/proc`` in a container, a kernel before 4.0) the probe
    falls back, and says why in the metric's ``note``:
    Method 2: a daemon thread samples RSS (psutil) about every millisecond and keeps the largest
    value. It misses peaks shorter than the interval, and it needs the GIL, so it only samples
    while the measured code runs C code that releases the GIL or between Python switch intervals
    (5 ms); it also takes a little CPU from the measured call.
    Limits of both: RSS is the whole process (other threads' allocations count too) and only
    resident pages (allocated but untouched memory does not count; memory swapped out does not);
    pages of memory-mapped files that were read count (llama.cpp maps its GGUF file); memory the
    allocator kept from earlier calls is already in ``rss_before_bytes`` and is reused without
    raising the peak. The peak is absolute: it includes the loaded weights.

Peak memory on CUDA (``peak_cuda_allocated_bytes``, ``peak_cuda_reserved_bytes``)
    ``synchronize``, ``reset_peak_memory_stats``, run, ``synchronize``, then
    ``max_memory_allocated`` (tensors) and ``max_memory_reserved`` (what PyTorch's caching allocator
    took from the driver). Only memory allocated through PyTorch counts (not the CUDA context, not
    cuBLAS workspaces made outside the allocator, not another library's own allocations). Gate on
    allocated; report reserved.

Peak bandwidth (``peak_bandwidth``)
    CPU: the best of several ``torch.sum`` passes over a float32 buffer of at least 512 MiB (and at
    least 4x the last-level cache), with all of torch's threads: a pure read of N bytes, reported
    as N / t. CUDA: the best of several device-to-device copies of a 512 MiB buffer timed with
    events, reported as 2N / t (a copy reads N bytes and writes N).
"""

from __future__ import annotations

import functools
import math
import mmap
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Iterator
from contextlib import AbstractContextManager, contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

import psutil
import torch

from llmbench.metrics import Metric

MiB = 1 << 20

__all__ = [
    "BandwidthMeter",
    "BandwidthReading",
    "CpuBandwidthMeter",
    "CpuMemoryProbe",
    "CpuMemoryReading",
    "CpuTimer",
    "CudaBandwidthMeter",
    "CudaMemoryProbe",
    "CudaMemoryReading",
    "CudaTimer",
    "MemoryProbe",
    "MemoryReading",
    "Probes",
    "TimeReading",
    "Timer",
    "measure_peak_bandwidth",
    "peak_rss_reset_unsupported",
    "probes_for",
]


class _NotFinished(RuntimeError):
    pass


def _not_finished(what: str) -> _NotFinished:
    return _NotFinished(f"{what} can be read only after its `with` block has ended")


# --------------------------------------------------------------------------------------- timers


class TimeReading(ABC):
    """The elapsed time of one ``with timer.measure()`` block, and the marks taken inside it."""

    @abstractmethod
    def mark(self) -> None:
        """Take a timestamp now (e.g. when a token is ready)."""

    @abstractmethod
    def seconds(self) -> float:
        """Seconds from the start to the end of the block."""

    @abstractmethod
    def marks_s(self) -> tuple[float, ...]:
        """Seconds from the start of the block to each :meth:`mark`, in order."""


class Timer(ABC):
    """Times a block of code on one device."""

    @abstractmethod
    def measure(self) -> AbstractContextManager[TimeReading]:
        """A context manager; its reading can be read after the block."""


class _CpuTimeReading(TimeReading):
    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._marks: list[float] = []
        self._end: float | None = None

    def mark(self) -> None:
        self._marks.append(time.perf_counter())

    def _finish(self) -> None:
        self._end = time.perf_counter()

    def seconds(self) -> float:
        if self._end is None:
            raise _not_finished("a timer reading")
        return self._end - self._start

    def marks_s(self) -> tuple[float, ...]:
        if self._end is None:
            raise _not_finished("a timer reading")
        return tuple(m - self._start for m in self._marks)


class CpuTimer(Timer):
    """Wall-clock time with ``time.perf_counter``."""

    @contextmanager
    def measure(self) -> Iterator[TimeReading]:
        reading = _CpuTimeReading()
        try:
            yield reading
        finally:
            reading._finish()


class _CudaTimeReading(TimeReading):
    def __init__(self, runtime: Any, device: torch.device) -> None:
        self._runtime = runtime
        self._device = device
        self._start = self._record()
        self._marks: list[Any] = []
        self._end: Any = None
        self._result: tuple[float, tuple[float, ...]] | None = None

    def _record(self) -> Any:
        event = self._runtime.Event(enable_timing=True)
        event.record(self._runtime.current_stream(self._device))
        return event

    def mark(self) -> None:
        self._marks.append(self._record())

    def _finish(self) -> None:
        self._end = self._record()

    def _read(self) -> tuple[float, tuple[float, ...]]:
        if self._end is None:
            raise _not_finished("a timer reading")
        if self._result is None:
            # The one synchronize: every event was recorded on the same stream before the end.
            self._end.synchronize()
            seconds = self._start.elapsed_time(self._end) / 1e3
            marks = tuple(self._start.elapsed_time(m) / 1e3 for m in self._marks)
            self._result = (seconds, marks)
        return self._result

    def seconds(self) -> float:
        return self._read()[0]

    def marks_s(self) -> tuple[float, ...]:
        return self._read()[1]


class CudaTimer(Timer):
    """GPU time with CUDA events on the current stream; one synchronize when the reading is read.

    ``runtime`` is ``torch.cuda`` (tests pass a fake with the same few functions).
    """

    def __init__(self, device: torch.device, runtime: Any = None) -> None:
        self.device = device
        self._runtime = torch.cuda if runtime is None else runtime

    @contextmanager
    def measure(self) -> Iterator[TimeReading]:
        reading = _CudaTimeReading(self._runtime, self.device)
        try:
            yield reading
        finally:
            reading._finish()


# -------------------------------------------------------------------------------- memory probes


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


class _RssSampler:
    """A daemon thread keeping the largest RSS seen, sampled about every millisecond."""

    def __init__(self, interval_s: float = _SAMPLE_INTERVAL_S) -> None:
        self._process = psutil.Process()
        self._interval_s = interval_s
        self._stop = threading.Event()
        self.peak = self._rss()
        self._thread = threading.Thread(target=self._run, name="llmbench-rss-sampler", daemon=True)
        self._thread.start()

    def _rss(self) -> int:
        return int(self._process.memory_info().rss)

    def _run(self) -> None:
        while not self._stop.wait(self._interval_s):
            self.peak = max(self.peak, self._rss())

    def stop(self) -> int:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self._rss())
        return self.peak


@dataclass
class CpuMemoryReading(MemoryReading):
    """Resident memory (RSS) of the whole process around one block."""

    rss_before: int
    method: str
    rss_peak: int | None = None
    rss_after: int | None = None

    def _done(self) -> tuple[int, int]:
        if self.rss_peak is None or self.rss_after is None:
            raise _not_finished("a memory reading")
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
            Metric("peak_rss_bytes", float(peak), "bytes", "lower", note=self.method),
            Metric("rss_before_bytes", float(self.rss_before), "bytes", "lower"),
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
        process = psutil.Process()
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
            rss_before=int(process.memory_info().rss),
            method=f"largest RSS sampled every {_SAMPLE_INTERVAL_S * 1e3:g} ms, because {reason}",
        )
        sampler = _RssSampler()
        try:
            yield reading
        finally:
            reading.rss_peak = sampler.stop()
            reading.rss_after = int(process.memory_info().rss)


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
            raise _not_finished("a memory reading")
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
        allocated, reserved, _ = self._done()
        note = "torch.cuda max_memory_{allocated,reserved} after reset_peak_memory_stats"
        return [
            Metric("peak_cuda_allocated_bytes", float(allocated), "bytes", "lower", note=note),
            Metric("peak_cuda_reserved_bytes", float(reserved), "bytes", "lower", note=note),
            Metric("cuda_allocated_before_bytes", float(self.allocated_before), "bytes", "lower"),
        ]


class CudaMemoryProbe(MemoryProbe):
    """Peak CUDA memory of a block: synchronize, reset the peak, run, synchronize, read.

    ``runtime`` is ``torch.cuda`` (tests pass a fake with the same few functions).
    """

    def __init__(self, device: torch.device, runtime: Any = None) -> None:
        self.device = device
        self._runtime = torch.cuda if runtime is None else runtime

    @contextmanager
    def measure(self) -> Iterator[MemoryReading]:
        cuda, device = self._runtime, self.device
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


# ------------------------------------------------------------------------------- peak bandwidth


@dataclass(frozen=True)
class BandwidthReading:
    """The machine's peak memory bandwidth and how it was found (or that the user gave it)."""

    bytes_per_s: float
    method: str

    def metric(self) -> Metric:
        return Metric("peak_bandwidth", self.bytes_per_s, "bytes/s", "none", note=self.method)


class BandwidthMeter(ABC):
    """Measures the peak memory bandwidth of one device."""

    @abstractmethod
    def measure(self) -> BandwidthReading: ...


def _last_level_cache_bytes() -> int:
    """Total size of the distinct highest-level CPU caches (Linux sysfs), 0 where unknown."""
    best_level, caches = 0, dict[str, int]()
    for index in Path("/sys/devices/system/cpu").glob("cpu[0-9]*/cache/index[0-9]*"):
        try:
            level = int((index / "level").read_text())
            if (index / "type").read_text().strip() == "Instruction":
                continue
            size_text = (index / "size").read_text().strip()
            shared = (index / "shared_cpu_list").read_text().strip()
        except (OSError, ValueError):
            continue
        factor = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(size_text[-1:], 1)
        size = int(size_text.rstrip("KMG")) * factor
        if level > best_level:
            best_level, caches = level, {}
        if level == best_level:
            caches[shared] = size
    return sum(caches.values())


class CpuBandwidthMeter(BandwidthMeter):
    """Read bandwidth of main memory: best of ``repeats`` ``torch.sum`` passes over a big buffer.

    Why this method: LLM decoding streams the weights from memory once per token, a pure read,
    so a read is the limit to compare with. ``sum`` over float32 is a read of N bytes that
    vectorizes and runs on all of torch's intra-op threads (``torch.get_num_threads()``); an int8
    sum would widen every element to int64 and be bound by arithmetic (0.14 GB/s here), not by
    memory. A copy would count 2N (3N with write-allocate) and mix in write bandwidth. The buffer
    is at least 512 MiB and at least 4x the last-level cache, so caches hold under a quarter of
    it; the best pass of several is kept because a noisy machine only ever makes a pass slower.
    On the 2-core development machines this gives about 25-30 GB/s (DESIGN.md: about 26); most of
    the ~1.5 s it takes there is the page faults of filling the buffer once.
    """

    def __init__(self, buffer_bytes: int | None = None, repeats: int = 10) -> None:
        self.buffer_bytes = buffer_bytes
        self.repeats = repeats

    def measure(self) -> BandwidthReading:
        size = self.buffer_bytes or max(512 * MiB, 4 * _last_level_cache_bytes())
        elements = size // 4
        threads = torch.get_num_threads()
        buffer = torch.ones(elements, dtype=torch.float32)  # writing ones touches every page
        try:
            buffer.sum()  # warm-up
            best = math.inf
            for _ in range(self.repeats):
                started = time.perf_counter()
                buffer.sum()
                best = min(best, time.perf_counter() - started)
        finally:
            del buffer
        read = elements * 4
        return BandwidthReading(
            bytes_per_s=read / best,
            method=(
                f"read: best of {self.repeats} torch.sum passes over a {read // MiB} MiB float32 buffer "
                f"with {threads} threads, bytes read / time"
            ),
        )


class CudaBandwidthMeter(BandwidthMeter):
    """Device memory bandwidth: best of ``repeats`` device-to-device copies timed with events.

    A copy of N bytes reads N and writes N: reported as 2N / t, as CUDA's ``bandwidthTest`` does.
    The buffer is 512 MiB (far above any GPU's L2 cache), less where the free memory is short.
    """

    def __init__(self, device: torch.device, buffer_bytes: int | None = None, repeats: int = 20) -> None:
        self.device = device
        self.buffer_bytes = buffer_bytes
        self.repeats = repeats

    def measure(self) -> BandwidthReading:
        device = self.device
        size = self.buffer_bytes
        if size is None:
            free, _ = torch.cuda.mem_get_info(device)
            size = max(64 * MiB, min(512 * MiB, free // 4))
        source = torch.ones(size // 4, dtype=torch.float32, device=device)
        target = torch.empty_like(source)
        timer = CudaTimer(device)
        try:
            target.copy_(source)  # warm-up
            times = []
            for _ in range(self.repeats):
                with timer.measure() as reading:
                    target.copy_(source)
                times.append(reading)
            best = min(r.seconds() for r in times)
        finally:
            del source, target
            torch.cuda.empty_cache()
        moved = 2 * (size // 4) * 4
        return BandwidthReading(
            bytes_per_s=moved / best,
            method=(
                f"copy: best of {self.repeats} device-to-device copies of {size // MiB} MiB on {device}, "
                "CUDA events, 2 x bytes copied / time"
            ),
        )


def measure_peak_bandwidth(device: str) -> BandwidthReading:
    """The peak memory bandwidth of ``device`` (a few seconds at most)."""
    return probes_for(device).bandwidth.measure()


# ---------------------------------------------------------------------------------------- factory


@dataclass(frozen=True)
class Probes:
    """The measuring tools of one device."""

    device: str
    timer: Timer
    memory: MemoryProbe
    bandwidth: BandwidthMeter


def probes_for(device: str) -> Probes:
    """The timer, memory probe and bandwidth meter for a device: ``cpu``, ``cuda`` or ``cuda:<n>``.

    The only place in the measuring code that looks at the device.
    """
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return Probes(device, CpuTimer(), CpuMemoryProbe(), CpuBandwidthMeter())
    if kind == "cuda" and (not index or index.isdigit()):
        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r}: torch.cuda.is_available() is False on this machine")
        cuda = torch.device(device)
        return Probes(device, CudaTimer(cuda), CudaMemoryProbe(cuda), CudaBandwidthMeter(cuda))
    raise ValueError(f"device {device!r} has no probes; allowed: 'cpu', 'cuda', 'cuda:<index>'")
