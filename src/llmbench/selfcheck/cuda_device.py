"""The CUDA device as ``llmbench selfcheck --device cuda`` drives and reads it (:class:`CudaDevice`).

Every reading has a named source: the harness's own tools for the device (:func:`probes_for
<llmbench.measure.probes.probes_for>`: the CUDA event timer, the memory probe of the driver and of torch's
allocator, the NVML energy meter and the driver), torch's allocator and ``torch.cuda.synchronize``
around ``time.perf_counter`` for the references, and the machine fingerprint as a run saves it. The
rows built from them are :mod:`llmbench.selfcheck.gpu_checks`.

:func:`open_cuda_device` builds the real one; tests build one from a FAKE ``torch.cuda`` and the FAKE
NVML. **It has only run against those fakes** (no GPU where it was written): docs/gpu.md.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from llmbench.measure.probes import Probes, probes_for

if TYPE_CHECKING:  # torch is imported where it is used
    import torch

__all__ = ["WORK_S", "CudaDevice", "MatmulWork", "cuda_unavailable_reason", "open_cuda_device"]

#: GPU time of one call of the work: long against the tens of microseconds a launch and a synchronize
#: add to the wall clock (0.1% of it), short enough for many rounds in a second.
WORK_S = 0.05


@dataclass(frozen=True)
class CudaDevice:
    """What the CUDA rows drive and read, each from its own source; tests pass fakes of the first two."""

    #: ``cuda`` or ``cuda:N``, as ``--device`` gave it.
    name: str
    device: torch.device
    #: ``torch.cuda`` (``synchronize``, ``memory_allocated``, ``memory_reserved``): the references' source.
    runtime: Any
    #: The harness's tools for this device: its timer, memory probe, energy meter and driver.
    probes: Probes
    #: Queues about :data:`WORK_S` of GPU work on the device's current stream and returns at once (as a
    #: model's forward does: the host does not wait for the GPU).
    work: Callable[[], None]
    #: A tensor of that many bytes on the device (kept alive by the caller as long as it holds it).
    allocate: Callable[[int], object]
    #: The machine fingerprint as a run saves it (:func:`llmbench.fingerprint.machine_fingerprint`).
    fingerprint: Callable[[], Mapping[str, Any]]
    #: The host's clock of the references (``time.perf_counter``) and its sleep.
    clock: Callable[[], float] = time.perf_counter
    sleep: Callable[[float], None] = time.sleep

    @property
    def index(self) -> int:
        """The CUDA device index (``cuda`` is device 0)."""
        return self.device.index or 0


def cuda_unavailable_reason(device: str) -> str | None:
    """Why ``device`` (``cuda`` or ``cuda:N``) cannot be checked here, or None."""
    import torch

    if not torch.cuda.is_available():
        return "no CUDA device visible to torch (torch.cuda.is_available() is False)"
    index = int(device.partition(":")[2] or 0)
    count = torch.cuda.device_count()
    if index >= count:
        return f"torch sees {count} CUDA device(s): cuda:0 to cuda:{count - 1}"
    return None


class MatmulWork:
    """About ``seconds`` of GPU time per call: a chain of square fp32 matmuls queued on the current stream
    of ``device``. How many is calibrated once, on synchronised wall clock, after a warm-up (cuBLAS's
    handle and workspace are created by the first matmul)."""

    def __init__(self, device: torch.device, size: int = 2048, seconds: float = WORK_S) -> None:
        import torch

        self.device = device
        self._mm = torch.mm
        self._a = torch.randn(size, size, device=device)
        self._out = torch.empty_like(self._a)
        self.repeats = 1
        self()  # warm-up
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        for _ in range(5):
            self()
        torch.cuda.synchronize(device)
        each = (time.perf_counter() - started) / 5
        self.repeats = max(1, math.ceil(seconds / each)) if each > 0 else 1

    def __call__(self) -> None:
        for _ in range(self.repeats):
            self._mm(self._a, self._a, out=self._out)


def open_cuda_device(name: str) -> CudaDevice:
    """The real device ``name`` (``cuda`` or ``cuda:N``; :func:`cuda_unavailable_reason` first)."""
    import torch

    from llmbench.fingerprint import machine_fingerprint

    device = torch.device(name)
    probes = probes_for(name)

    def allocate(size: int) -> object:
        return torch.ones(size, dtype=torch.uint8, device=device)  # written: every page is the GPU's

    return CudaDevice(name, device, torch.cuda, probes, MatmulWork(device), allocate, machine_fingerprint)
