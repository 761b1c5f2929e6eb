"""A FAKE ``torch.cuda`` and a FAKE CUDA device for ``llmbench selfcheck --device cuda`` where there is no GPU.

:class:`FakeCudaRuntime` has the few functions of ``torch.cuda`` the harness's CUDA timer and memory probe
and the selfcheck call, over a host clock and a device clock that only the fake work moves: work queued
runs on the device after what is queued before it, ``synchronize`` moves the host clock to the device's,
an event records when the device reaches it, and each launch costs the host :attr:`launch_s`. Its
allocator keeps torch's counters; it tells a FAKE NVML GPU (:mod:`llmbench.testing.fake_nvml`) the
process's memory (a CUDA context plus what the allocator reserved) and drives the GPU's energy counter
(``watts`` times the host clock, updated every 100 ms as the driver's). Each reading can be put off for a
test: ``event_scale``, ``driver_scale``, ``allocated_scale``, ``energy_moves``.

Nothing here is a GPU: a test that passes with it shows the selfcheck's logic, not that a GPU reads the same.
"""

from __future__ import annotations

import os
from typing import Any

import torch

from llmbench.fingerprint import gpu_fields
from llmbench.gpu_driver import LazyGpuDriver
from llmbench.measure.bandwidth import CudaBandwidthMeter
from llmbench.measure.driver_memory import CombinedMemoryProbe, GpuProcessMemoryProbe
from llmbench.measure.energy import NvmlEnergyMeter
from llmbench.measure.memory import CpuMemoryProbe, CudaMemoryProbe
from llmbench.measure.probes import Probes
from llmbench.measure.timers import CudaTimer
from llmbench.selfcheck.cuda_device import WORK_S, CudaDevice
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml
from llmbench.units import MiB

__all__ = ["CUDA0", "FakeCudaEvent", "FakeCudaRuntime", "FakeTensor", "fake_cuda_device"]

CUDA0 = torch.device("cuda:0")
#: The driver's energy counter moves every 100 ms (llmbench.gpu_driver.ENERGY_UPDATE_PERIOD_S).
_ENERGY_PERIOD_S = 0.1


class FakeCudaEvent:
    """``torch.cuda.Event(enable_timing=True)`` on the fake device's clock."""

    def __init__(self, runtime: FakeCudaRuntime, enable_timing: bool = False) -> None:
        assert enable_timing
        self.runtime = runtime
        self.at: float | None = None

    def record(self, stream: object) -> None:
        runtime = self.runtime
        self.at = max(runtime.host_s, runtime.device_free_s)  # when the stream reaches the event
        runtime.device_free_s = self.at

    def synchronize(self) -> None:
        assert self.at is not None
        self.runtime.host_s = max(self.runtime.host_s, self.at)

    def elapsed_time(self, end: FakeCudaEvent) -> float:
        assert self.at is not None
        assert end.at is not None
        return (end.at - self.at) * 1e3 * self.runtime.event_scale  # milliseconds, as torch's


class FakeTensor:
    """A FAKE device tensor: its bytes are the fake allocator's until it is dropped."""

    def __init__(self, runtime: FakeCudaRuntime, size: int) -> None:
        self.runtime = runtime
        self.size = size

    def __del__(self) -> None:
        self.runtime.free(self.size)


class FakeCudaRuntime:
    """Stands in for ``torch.cuda`` (see the module's docstring); ``gpu`` is the FAKE NVML GPU it drives."""

    def __init__(self, gpu: FakeGpu, context_bytes: int = 500 * MiB, watts: float = 300.0) -> None:
        self.gpu = gpu
        self.context_bytes = context_bytes
        self.watts = watts
        self.pid = os.getpid()
        self.host_s = 100.0
        self.device_free_s = 100.0
        self.launch_s = 20e-6
        self.allocated = self.peak_allocated = 0
        self.reserved = self.peak_reserved = 0
        # What a test puts off: events' elapsed times, the driver's per-process figure, torch's allocated
        # figure (by these factors), and whether the energy counter moves at all.
        self.event_scale = 1.0
        self.driver_scale = 1.0
        self.allocated_scale = 1.0
        self.energy_moves = True
        self._energy_start = self.host_s
        gpu.energy_mj = self._energy_mj
        self._tell_driver()

    # -- the host's clock
    def perf_counter(self) -> float:
        return self.host_s

    def sleep(self, seconds: float) -> None:
        self.host_s += seconds

    def queue(self, seconds: float) -> None:
        """Work of ``seconds`` on the device, after what is queued; the host pays one launch, and the work
        starts no earlier than the launch's end."""
        self.host_s += self.launch_s
        self.device_free_s = max(self.host_s, self.device_free_s) + seconds

    # -- torch.cuda's functions
    def is_initialized(self) -> bool:
        return True

    def Event(self, enable_timing: bool = False) -> FakeCudaEvent:  # torch's name
        return FakeCudaEvent(self, enable_timing)

    def current_stream(self, device: torch.device | None = None) -> str:
        return "stream"

    def synchronize(self, device: torch.device | None = None) -> None:
        self.host_s = max(self.host_s, self.device_free_s)

    def reset_peak_memory_stats(self, device: torch.device | None = None) -> None:
        self.peak_allocated, self.peak_reserved = self.allocated, self.reserved

    def memory_allocated(self, device: torch.device | None = None) -> int:
        return self.allocated

    def memory_reserved(self, device: torch.device | None = None) -> int:
        return self.reserved

    def max_memory_allocated(self, device: torch.device | None = None) -> int:
        return int(self.peak_allocated * self.allocated_scale)

    def max_memory_reserved(self, device: torch.device | None = None) -> int:
        return self.peak_reserved

    # -- the allocator and the driver it tells
    def allocate(self, size: int) -> FakeTensor:
        """A tensor of ``size`` bytes; the allocator reserves in 2 MiB blocks and keeps what it reserved."""
        self.allocated += size
        blocks = -(-self.allocated // (2 * MiB))
        self.reserved = max(self.reserved, blocks * 2 * MiB)
        self.peak_allocated = max(self.peak_allocated, self.allocated)
        self.peak_reserved = max(self.peak_reserved, self.reserved)
        self._tell_driver()
        return FakeTensor(self, size)

    def free(self, size: int) -> None:
        self.allocated -= size

    def _tell_driver(self) -> None:
        self.gpu.processes[self.pid] = int((self.context_bytes + self.reserved) * self.driver_scale)

    def _energy_mj(self) -> int:
        if not self.energy_moves:
            return 1_000
        updated = (self.host_s - self._energy_start) // _ENERGY_PERIOD_S * _ENERGY_PERIOD_S
        return 1_000 + int(self.watts * updated * 1e3)


def fake_cuda_device(runtime: FakeCudaRuntime, nvml: FakeNvml, fingerprint: dict[str, Any] | None = None) -> CudaDevice:
    """A :class:`CudaDevice` on the fakes, with the harness's own tools for ``cuda:0`` built as
    ``probes_for("cuda:0")`` builds them (but over the FAKE runtime and the FAKE NVML), and the fingerprint's
    GPU fields read through :func:`llmbench.fingerprint.gpu_fields` from the fake NVML (``fingerprint``
    replaces that)."""
    driver = LazyGpuDriver(0, nvml)
    memory = CombinedMemoryProbe(
        [GpuProcessMemoryProbe(driver), CudaMemoryProbe(CUDA0, runtime, only_where_initialized=True), CpuMemoryProbe()]
    )
    probes = Probes(
        "cuda:0", CudaTimer(CUDA0, runtime), memory, CudaBandwidthMeter(CUDA0), NvmlEnergyMeter(driver), driver
    )

    def machine_fingerprint() -> dict[str, Any]:
        if fingerprint is not None:
            return fingerprint
        return {"gpus": [nvml.gpus[0].name], "cuda_runtime": "12.4", **gpu_fields(1, nvml)}

    return CudaDevice(
        "cuda:0", CUDA0, runtime, probes, work=lambda: runtime.queue(WORK_S), allocate=runtime.allocate,
        fingerprint=machine_fingerprint, clock=runtime.perf_counter, sleep=runtime.sleep,
    )  # fmt: skip
