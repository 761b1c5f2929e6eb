"""A FAKE NVML: stands in for the ``pynvml`` module (package ``nvidia-ml-py``) where there is no GPU.

It has the few functions and constants :mod:`llmbench.gpu_driver` calls, with the same names, argument
order and units as ``pynvml`` (bytes, millijoules, milliwatts, MHz; ``NVMLError`` with a ``value``), and
GPUs whose readings a test sets. Inject it where the code looks ``pynvml`` up::

    fake = FakeNvml([FakeGpu(name="NVIDIA H100 80GB HBM3")])
    monkeypatch.setitem(sys.modules, "pynvml", fake)      # or GpuDriver.open(0, nvml=fake)
    fake.gpus[0].processes[os.getpid()] = 700 * MiB
    fake.gpus[0].energy_mj = 1_000

Nothing here talks to a driver: a test that passes with it shows the harness's logic, not that a real
GPU reads the same (docs/gpu.md lists which GPU paths have only run against this fake).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

__all__ = ["FakeGpu", "FakeNvml", "FakeNvmlError"]

# The constants of pynvml (nvml.h) that the harness uses.
NVML_CLOCK_GRAPHICS = 0
NVML_CLOCK_SM = 1
NVML_CLOCK_MEM = 2
NVML_FEATURE_DISABLED = 0
NVML_FEATURE_ENABLED = 1
NVML_ERROR_NOT_SUPPORTED = 3
NVML_ERROR_NO_PERMISSION = 4
NVML_ERROR_INVALID_ARGUMENT = 2
NVML_ERROR_NOT_FOUND = 6
NVML_ERROR_DRIVER_NOT_LOADED = 9
NVML_ERROR_FUNCTION_NOT_FOUND = 13

_MESSAGES = {
    NVML_ERROR_INVALID_ARGUMENT: "Invalid Argument",
    NVML_ERROR_NOT_SUPPORTED: "Not Supported",
    NVML_ERROR_NO_PERMISSION: "Insufficient Permissions",
    NVML_ERROR_NOT_FOUND: "Not Found",
    NVML_ERROR_DRIVER_NOT_LOADED: "Driver Not Loaded",
    NVML_ERROR_FUNCTION_NOT_FOUND: "Function Not Found",
}


class FakeNvmlError(Exception):
    """Like ``pynvml.NVMLError``: carries the NVML return code as ``value``; ``str`` is NVML's message."""

    def __init__(self, value: int) -> None:
        super().__init__(value)
        self.value = value

    def __str__(self) -> str:
        return _MESSAGES.get(self.value, f"NVML error {self.value}")


@dataclass
class FakeGpu:
    """One fake GPU; every reading is a plain attribute a test sets (or a callable for a moving one)."""

    name: str = "NVIDIA FAKE GPU"
    uuid: str = "GPU-00000000-fake-0000-0000-000000000000"
    memory_total: int = 80 * 1024**3
    memory_used: int = 1024**3
    #: pid -> bytes the driver reports for that process (None: "not available", as on some systems).
    processes: dict[int, int | None] = field(default_factory=dict)
    #: The total-energy counter in mJ, or a callable giving it (a counter that moves with a fake clock).
    energy_mj: int | Callable[[], int] = 0
    sm_clock: int = 1980
    max_sm_clock: int = 1980
    memory_clock: int = 2619
    max_memory_clock: int = 2619
    power_limit_mw: int = 700_000
    enforced_power_limit_mw: int = 700_000
    persistence: int = NVML_FEATURE_ENABLED
    #: The clock event reasons bit mask, or a callable giving it (reasons that change while sampled).
    clock_event_reasons: int | Callable[[], int] = 0
    #: Function names that raise "Not Supported" on this GPU (e.g. the energy counter before Volta).
    not_supported: set[str] = field(default_factory=set)


class FakeNvml:
    """The ``pynvml`` module's functions over :class:`FakeGpu` objects; ``calls`` logs each call's name.

    ``has_event_reasons=False`` gives a binding without ``nvmlDeviceGetCurrentClocksEventReasons`` (older
    nvidia-ml-py), which only has the older ``...ThrottleReasons``; ``library_missing=True`` one whose
    ``nvmlInit`` fails as it does with no driver installed.
    """

    NVMLError = FakeNvmlError
    NVML_CLOCK_GRAPHICS = NVML_CLOCK_GRAPHICS
    NVML_CLOCK_SM = NVML_CLOCK_SM
    NVML_CLOCK_MEM = NVML_CLOCK_MEM
    NVML_FEATURE_DISABLED = NVML_FEATURE_DISABLED
    NVML_FEATURE_ENABLED = NVML_FEATURE_ENABLED

    def __init__(
        self,
        gpus: list[FakeGpu] | None = None,
        *,
        driver_version: str = "550.54.15",
        cuda_driver_version: int = 12040,
        has_event_reasons: bool = True,
        library_missing: bool = False,
    ) -> None:
        self.gpus = [FakeGpu()] if gpus is None else gpus
        self.driver_version = driver_version
        self.cuda_driver_version = cuda_driver_version
        self.library_missing = library_missing
        self.initialised = 0
        self.calls: list[str] = []
        if has_event_reasons:
            self.nvmlDeviceGetCurrentClocksEventReasons = self._clock_event_reasons

    def _call(self, name: str, handle: int | None = None) -> FakeGpu:
        self.calls.append(name)
        if not self.initialised:
            raise FakeNvmlError(1)  # NVML_ERROR_UNINITIALIZED
        if handle is None:
            return self.gpus[0]
        gpu = self.gpus[handle]
        if name in gpu.not_supported:
            raise FakeNvmlError(NVML_ERROR_NOT_SUPPORTED)
        return gpu

    def nvmlInit(self) -> None:
        self.calls.append("nvmlInit")
        if self.library_missing:
            raise FakeNvmlError(NVML_ERROR_DRIVER_NOT_LOADED)
        self.initialised += 1

    def nvmlShutdown(self) -> None:
        self.calls.append("nvmlShutdown")
        self.initialised -= 1

    def nvmlDeviceGetCount(self) -> int:
        self._call("nvmlDeviceGetCount")
        return len(self.gpus)

    def nvmlDeviceGetHandleByIndex(self, index: int) -> int:
        self._call("nvmlDeviceGetHandleByIndex")
        if not 0 <= index < len(self.gpus):
            raise FakeNvmlError(NVML_ERROR_INVALID_ARGUMENT)
        return index

    def nvmlDeviceGetUUID(self, handle: int) -> str:
        return self._call("nvmlDeviceGetUUID", handle).uuid

    def nvmlDeviceGetName(self, handle: int) -> str:
        return self._call("nvmlDeviceGetName", handle).name

    def nvmlSystemGetDriverVersion(self) -> str:
        self._call("nvmlSystemGetDriverVersion")
        return self.driver_version

    def nvmlSystemGetCudaDriverVersion(self) -> int:
        self._call("nvmlSystemGetCudaDriverVersion")
        return self.cuda_driver_version

    def nvmlDeviceGetComputeRunningProcesses(self, handle: int) -> list[Any]:
        gpu = self._call("nvmlDeviceGetComputeRunningProcesses", handle)
        return [SimpleNamespace(pid=pid, usedGpuMemory=used) for pid, used in gpu.processes.items()]

    def nvmlDeviceGetMemoryInfo(self, handle: int) -> Any:
        gpu = self._call("nvmlDeviceGetMemoryInfo", handle)
        return SimpleNamespace(total=gpu.memory_total, used=gpu.memory_used, free=gpu.memory_total - gpu.memory_used)

    def nvmlDeviceGetTotalEnergyConsumption(self, handle: int) -> int:
        gpu = self._call("nvmlDeviceGetTotalEnergyConsumption", handle)
        return gpu.energy_mj() if callable(gpu.energy_mj) else gpu.energy_mj

    def nvmlDeviceGetClockInfo(self, handle: int, kind: int) -> int:
        gpu = self._call("nvmlDeviceGetClockInfo", handle)
        return {NVML_CLOCK_SM: gpu.sm_clock, NVML_CLOCK_MEM: gpu.memory_clock}[kind]

    def nvmlDeviceGetMaxClockInfo(self, handle: int, kind: int) -> int:
        gpu = self._call("nvmlDeviceGetMaxClockInfo", handle)
        return {NVML_CLOCK_SM: gpu.max_sm_clock, NVML_CLOCK_MEM: gpu.max_memory_clock}[kind]

    def nvmlDeviceGetPowerManagementLimit(self, handle: int) -> int:
        return self._call("nvmlDeviceGetPowerManagementLimit", handle).power_limit_mw

    def nvmlDeviceGetEnforcedPowerLimit(self, handle: int) -> int:
        return self._call("nvmlDeviceGetEnforcedPowerLimit", handle).enforced_power_limit_mw

    def nvmlDeviceGetPersistenceMode(self, handle: int) -> int:
        return self._call("nvmlDeviceGetPersistenceMode", handle).persistence

    def _clock_event_reasons(self, handle: int) -> int:
        gpu = self._call("nvmlDeviceGetCurrentClocksEventReasons", handle)
        return gpu.clock_event_reasons() if callable(gpu.clock_event_reasons) else gpu.clock_event_reasons

    def nvmlDeviceGetCurrentClocksThrottleReasons(self, handle: int) -> int:
        gpu = self._call("nvmlDeviceGetCurrentClocksThrottleReasons", handle)
        return gpu.clock_event_reasons() if callable(gpu.clock_event_reasons) else gpu.clock_event_reasons
