"""The GPU as its driver sees it, through NVML (the ``nvidia-ml-py`` package, module ``pynvml``).

One wrapper for every reading the harness takes from the driver: a process's GPU memory, the
total-energy counter, a snapshot of the GPU's state (model, driver, CUDA version, clocks, power
limit, persistence mode) and the clock event ("throttle") reasons. ``pynvml`` is imported on first
use only, so a CPU session never imports it; where it is missing or the driver cannot be reached,
:class:`GpuDriverUnavailable` says why::

    driver = GpuDriver.open(0)                  # CUDA device 0, as CUDA_VISIBLE_DEVICES numbers it
    driver.process_memory_bytes(os.getpid())    # None: the process is not among the driver's
    driver.energy_mj()                          # millijoules since the driver loaded (Volta and newer)
    driver.state().as_dict()                    # for the machine fingerprint
    throttling_reasons(driver.clock_event_reasons())

Tests inject a fake NVML (:mod:`llmbench.testing.fake_nvml`) as ``sys.modules["pynvml"]`` or as the
``nvml`` argument. Which of these paths ever ran on a GPU: docs/gpu.md. Imports no llmbench module.
"""

from __future__ import annotations

import importlib
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from typing import Any

__all__ = [
    "BENIGN_REASONS",
    "CLOCK_EVENT_REASONS",
    "ENERGY_UPDATE_PERIOD_S",
    "THROTTLE_INFO_KEY",
    "THROTTLING_REASONS",
    "GpuDriver",
    "GpuDriverUnavailable",
    "GpuState",
    "LazyGpuDriver",
    "gpu_states",
    "load_nvml",
    "reason_names",
    "throttle_note",
    "throttling_reasons",
]

#: How often the driver updates its total-energy counter: about every 100 ms (measured by others on
#: Volta to Hopper; NVML documents only the unit). docs/gpu.md says how the energy window allows for it.
ENERGY_UPDATE_PERIOD_S = 0.1

#: NVML's clock event reason bits (``nvmlClocksEventReason*`` in nvml.h, formerly
#: ``nvmlClocksThrottleReason*``; the same values) and the names the harness saves.
CLOCK_EVENT_REASONS: Mapping[int, str] = {
    0x001: "gpu_idle",
    0x002: "applications_clocks_setting",
    0x004: "sw_power_cap",
    0x008: "hw_slowdown",
    0x010: "sync_boost",
    0x020: "sw_thermal_slowdown",
    0x040: "hw_thermal_slowdown",
    0x080: "hw_power_brake_slowdown",
    0x100: "display_clock_setting",
    0x200: "board_limit",
    0x400: "reliability",
}
#: Reasons that do not count as throttling: the GPU has nothing to do (idle), or runs at clocks someone
#: set (application clocks, a sync-boost group, the display clock): a setting the fingerprint shows.
BENIGN_REASONS = frozenset({"gpu_idle", "applications_clocks_setting", "sync_boost", "display_clock_setting"})
#: Reasons that count as throttling: the driver lowered the clocks for power, heat or a hardware limit.
THROTTLING_REASONS = frozenset(CLOCK_EVENT_REASONS.values()) - BENIGN_REASONS

#: Where a benchmark's ``extra_info`` keeps the clock event reasons sampled during its timed rounds.
THROTTLE_INFO_KEY = "gpu_clock_events"


class GpuDriverUnavailable(RuntimeError):
    """NVML cannot be used here; the message says why (no ``nvidia-ml-py``, no driver, no such GPU)."""


def load_nvml() -> Any:
    """The ``pynvml`` module (imported now, on first use), or :class:`GpuDriverUnavailable`."""
    try:
        return importlib.import_module("pynvml")
    except ImportError as error:
        raise GpuDriverUnavailable(
            f"nvidia-ml-py is not installed ({error}); install it with pip install 'pytest-llmbench[cuda]'"
        ) from None


def reason_names(mask: int) -> tuple[str, ...]:
    """The names of the reason bits set in ``mask``, unknown bits as ``bit_0x...``."""
    names = [name for bit, name in CLOCK_EVENT_REASONS.items() if mask & bit]
    unknown = mask & ~sum(CLOCK_EVENT_REASONS)
    names += [f"bit_{1 << i:#x}" for i in range(64) if unknown & (1 << i)]
    return tuple(names)


def throttling_reasons(mask: int) -> tuple[str, ...]:
    """The reasons in ``mask`` that count as throttling (:data:`THROTTLING_REASONS`, and unknown bits)."""
    return tuple(name for name in reason_names(mask) if name not in BENIGN_REASONS)


def throttle_note(info: Any) -> str | None:
    """The warning for a benchmark whose ``extra_info[THROTTLE_INFO_KEY]`` shows throttling, or None.

    ``info`` is that saved value (a mapping with ``throttling`` and ``samples``); anything else is None.
    """
    if not isinstance(info, Mapping):
        return None
    reasons = info.get("throttling")
    if not reasons or not isinstance(reasons, list | tuple):
        return None
    throttled, samples = info.get("throttled_samples"), info.get("samples")
    share = f" in {throttled} of {samples} samples" if isinstance(throttled, int) and isinstance(samples, int) else ""
    return (
        f"the GPU throttled during the timed rounds ({', '.join(map(str, reasons))}{share}): "
        "its speed and energy figures may read worse than the code is"
    )


def _text(value: Any) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


@dataclass(frozen=True)
class GpuState:
    """One GPU as the driver reports it now; a field the driver does not report is None."""

    index: int
    name: str | None
    uuid: str | None
    driver_version: str | None
    #: The CUDA version the driver supports, e.g. "12.4".
    cuda_driver_version: str | None
    memory_total_bytes: int | None
    sm_clock_mhz: int | None
    max_sm_clock_mhz: int | None
    memory_clock_mhz: int | None
    max_memory_clock_mhz: int | None
    power_limit_w: float | None
    enforced_power_limit_w: float | None
    persistence_mode: bool | None

    #: The settings that change what is measured: two runs whose GPUs differ in these are not comparable. (The
    #: model and the driver version are identity fields of the fingerprint already: ``gpus``, ``cuda_driver``.)
    IDENTITY = (
        "memory_total_bytes", "max_sm_clock_mhz", "max_memory_clock_mhz", "enforced_power_limit_w", "persistence_mode",
    )  # fmt: skip

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def _visible_device(nvml: Any, index: int, environ: Mapping[str, str]) -> tuple[Any, str]:
    """The NVML handle of CUDA device ``index`` and how it was found, honouring ``CUDA_VISIBLE_DEVICES``.

    NVML numbers all GPUs by PCI bus; CUDA numbers the visible ones, fastest first unless
    ``CUDA_DEVICE_ORDER=PCI_BUS_ID`` (set it on a machine with different GPU models; docs/gpu.md).
    """
    visible = environ.get("CUDA_VISIBLE_DEVICES")
    if visible is None:
        return nvml.nvmlDeviceGetHandleByIndex(index), f"NVML device {index}"
    entries = [entry.strip() for entry in visible.split(",") if entry.strip()]
    if index >= len(entries):
        raise GpuDriverUnavailable(
            f"CUDA device {index} is not visible: CUDA_VISIBLE_DEVICES={visible!r} shows {len(entries)} device(s)"
        )
    entry = entries[index]
    if entry.isdigit():
        return nvml.nvmlDeviceGetHandleByIndex(int(entry)), f"NVML device {entry} (CUDA_VISIBLE_DEVICES={visible})"
    if entry.startswith("GPU-"):
        for candidate in range(nvml.nvmlDeviceGetCount()):
            handle = nvml.nvmlDeviceGetHandleByIndex(candidate)
            if _text(nvml.nvmlDeviceGetUUID(handle)).startswith(entry):
                return handle, f"NVML device {candidate} ({entry})"
        raise GpuDriverUnavailable(f"no GPU's UUID starts with {entry!r} (CUDA_VISIBLE_DEVICES={visible!r})")
    raise GpuDriverUnavailable(
        f"CUDA_VISIBLE_DEVICES entry {entry!r} is not supported for driver readings: "
        "allowed are GPU indices and GPU-<uuid> (MIG instances are not)"
    )


class GpuDriver:
    """One GPU through NVML. Build it with :meth:`open`; its methods raise ``nvml.NVMLError`` as NVML does."""

    def __init__(self, nvml: Any, handle: Any, index: int, description: str) -> None:
        self.nvml = nvml
        self.handle = handle
        #: The CUDA device index this driver reads (``cuda:<index>``).
        self.index = index
        #: Which NVML device that is, e.g. "NVML device 2 (CUDA_VISIBLE_DEVICES=2,3)".
        self.description = description

    @classmethod
    def open(cls, index: int = 0, *, nvml: Any = None, environ: Mapping[str, str] = os.environ) -> GpuDriver:
        """Initialise NVML and find CUDA device ``index``; :class:`GpuDriverUnavailable` says why not."""
        nvml = load_nvml() if nvml is None else nvml
        try:
            nvml.nvmlInit()
            handle, description = _visible_device(nvml, index, environ)
        except nvml.NVMLError as error:
            raise GpuDriverUnavailable(f"NVML cannot read CUDA device {index}: {error}") from None
        return cls(nvml, handle, index, description)

    def process_memory_bytes(self, pid: int) -> int | None:
        """GPU memory the driver has given process ``pid`` on this GPU (CUDA context, every allocator and
        library included), or None where the driver does not list the process or its figure.

        In a container without the host's PID namespace the driver lists host PIDs: no process matches.
        """
        for process in self.nvml.nvmlDeviceGetComputeRunningProcesses(self.handle):
            if process.pid == pid:
                used = process.usedGpuMemory
                return None if used is None else int(used)
        return None

    def memory_used_bytes(self) -> int:
        """GPU memory in use on this GPU by every process (and the driver's reserve)."""
        return int(self.nvml.nvmlDeviceGetMemoryInfo(self.handle).used)

    def energy_mj(self) -> int:
        """The total-energy counter in millijoules since the driver was loaded (Volta and newer GPUs;
        older ones raise NVMLError Not Supported). Updated about every :data:`ENERGY_UPDATE_PERIOD_S`."""
        return int(self.nvml.nvmlDeviceGetTotalEnergyConsumption(self.handle))

    def clock_event_reasons(self) -> int:
        """The bit mask of why the clocks are below their maximum now (:data:`CLOCK_EVENT_REASONS`)."""
        current = getattr(self.nvml, "nvmlDeviceGetCurrentClocksEventReasons", None)
        if current is not None:
            try:
                return int(current(self.handle))
            except self.nvml.NVMLError:
                pass  # a driver older than the binding: the older name below
        return int(self.nvml.nvmlDeviceGetCurrentClocksThrottleReasons(self.handle))

    def _maybe(self, function: str, *args: Any) -> Any:
        try:
            return getattr(self.nvml, function)(*args)
        except (self.nvml.NVMLError, AttributeError):
            return None

    def state(self) -> GpuState:
        """A snapshot of the GPU now (clocks as they are at this moment); fields NVML refuses are None."""
        nvml, handle = self.nvml, self.handle
        cuda = self._maybe("nvmlSystemGetCudaDriverVersion")
        memory = self._maybe("nvmlDeviceGetMemoryInfo", handle)
        limit = self._maybe("nvmlDeviceGetPowerManagementLimit", handle)
        enforced = self._maybe("nvmlDeviceGetEnforcedPowerLimit", handle)
        persistence = self._maybe("nvmlDeviceGetPersistenceMode", handle)

        def text(function: str, *args: Any) -> str | None:
            value = self._maybe(function, *args)
            return None if value is None else _text(value)

        def clock(function: str, kind: int) -> int | None:
            value = self._maybe(function, handle, kind)
            return None if value is None else int(value)

        return GpuState(
            index=self.index,
            name=text("nvmlDeviceGetName", handle),
            uuid=text("nvmlDeviceGetUUID", handle),
            driver_version=text("nvmlSystemGetDriverVersion"),
            # nvmlSystemGetCudaDriverVersion gives 1000 * major + 10 * minor (12040 for 12.4).
            cuda_driver_version=None if cuda is None else f"{int(cuda) // 1000}.{int(cuda) % 1000 // 10}",
            memory_total_bytes=None if memory is None else int(memory.total),
            sm_clock_mhz=clock("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_SM),
            max_sm_clock_mhz=clock("nvmlDeviceGetMaxClockInfo", nvml.NVML_CLOCK_SM),
            memory_clock_mhz=clock("nvmlDeviceGetClockInfo", nvml.NVML_CLOCK_MEM),
            max_memory_clock_mhz=clock("nvmlDeviceGetMaxClockInfo", nvml.NVML_CLOCK_MEM),
            # NVML gives power limits in milliwatts.
            power_limit_w=None if limit is None else int(limit) / 1000,
            enforced_power_limit_w=None if enforced is None else int(enforced) / 1000,
            persistence_mode=None if persistence is None else int(persistence) == nvml.NVML_FEATURE_ENABLED,
        )

    def __repr__(self) -> str:
        return f"GpuDriver(cuda:{self.index}, {self.description})"


class LazyGpuDriver:
    """A :class:`GpuDriver` opened on first use (building one costs nothing), remembering why it could not
    be opened. The measuring tools of one CUDA device share one."""

    def __init__(self, index: int = 0, nvml: Any = None) -> None:
        self.index = index
        self._nvml = nvml
        self._driver: GpuDriver | None = None
        self._reason: str | None = None

    def get(self) -> GpuDriver:
        """The driver, or :class:`GpuDriverUnavailable` (the same reason every time)."""
        if self._driver is None and self._reason is None:
            try:
                self._driver = GpuDriver.open(self.index, nvml=self._nvml)
            except GpuDriverUnavailable as error:
                self._reason = str(error)
        if self._driver is None:
            raise GpuDriverUnavailable(self._reason)
        return self._driver

    def unavailable_reason(self) -> str | None:
        try:
            self.get()
        except GpuDriverUnavailable as error:
            return str(error)
        return None


def gpu_states(count: int, nvml: Any = None) -> tuple[list[dict[str, Any]] | None, str | None]:
    """The state of CUDA devices ``0 .. count-1`` as dicts, or (None, why not)."""
    try:
        return [GpuDriver.open(index, nvml=nvml).state().as_dict() for index in range(count)], None
    except GpuDriverUnavailable as error:
        return None, str(error)
