"""Peak memory bandwidth of a device, the limit ``mbu`` compares decoding with (see docs/metrics.md).

CPU: the best of several ``torch.sum`` passes over a float32 buffer (a pure read of N bytes: N / t).
CUDA and MPS: the best of several device-to-device copies (a copy reads N and writes N: 2N / t).
"""

from __future__ import annotations

import math
import time
from abc import ABC, abstractmethod
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmbench.measure.timers import CudaTimer, MpsTimer
from llmbench.metrics import Metric
from llmbench.units import MiB

if TYPE_CHECKING:  # torch is imported where it is used: a llama.cpp worker never needs it
    import torch

__all__ = [
    "BandwidthMeter",
    "BandwidthReading",
    "CpuBandwidthMeter",
    "CudaBandwidthMeter",
    "MpsBandwidthMeter",
]


@dataclass(frozen=True)
class BandwidthReading:
    """The machine's peak memory bandwidth and how it was found (or that the user gave it)."""

    bytes_per_s: float
    method: str

    def metric(self) -> Metric:
        return Metric.of("peak_bandwidth", self.bytes_per_s, note=self.method)


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

    Decoding streams the weights once per token, a pure read; a float32 ``sum`` reads N bytes on all of
    torch's threads. The buffer is at least 512 MiB and 4x the last-level cache; the best pass is kept
    because a noisy machine only ever makes a pass slower. Why this method: docs/metrics.md.
    """

    def __init__(self, buffer_bytes: int | None = None, repeats: int = 10) -> None:
        self.buffer_bytes = buffer_bytes
        self.repeats = repeats

    def measure(self) -> BandwidthReading:
        size = self.buffer_bytes or max(512 * MiB, 4 * _last_level_cache_bytes())
        elements = size // 4
        import torch

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
        import torch

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


class MpsBandwidthMeter(BandwidthMeter):
    """Apple MPS memory bandwidth: best of ``repeats`` device copies of a 512 MiB buffer, timed with
    :class:`MpsTimer` (synchronize around each), reported as 2N / t like :class:`CudaBandwidthMeter`.

    ``runtime`` is ``torch.mps``.
    """

    def __init__(self, buffer_bytes: int | None = None, repeats: int = 20, runtime: Any = None) -> None:
        self.buffer_bytes = buffer_bytes
        self.repeats = repeats
        import torch

        self._runtime = torch.mps if runtime is None else runtime

    def measure(self) -> BandwidthReading:
        size = self.buffer_bytes or 512 * MiB
        import torch

        source = torch.ones(size // 4, dtype=torch.float32, device="mps")
        target = torch.empty_like(source)
        timer = MpsTimer(self._runtime)
        try:
            target.copy_(source)  # warm-up
            best = math.inf
            for _ in range(self.repeats):
                with timer.measure() as reading:
                    target.copy_(source)
                best = min(best, reading.seconds())
        finally:
            del source, target
            self._runtime.empty_cache()
        moved = 2 * (size // 4) * 4
        return BandwidthReading(
            bytes_per_s=moved / best,
            method=(
                f"copy: best of {self.repeats} device copies of {size // MiB} MiB on mps, "
                "torch.mps.synchronize around each, 2 x bytes copied / time"
            ),
        )
