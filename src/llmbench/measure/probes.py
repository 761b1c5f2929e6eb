"""The measuring tools of a device: :func:`probes_for` is the only place that looks at the device string.

Everything else talks to the :class:`~llmbench.measure.timers.Timer`,
:class:`~llmbench.measure.memory.MemoryProbe` and :class:`~llmbench.measure.bandwidth.BandwidthMeter`
interfaces::

    probes = probes_for("cpu")
    with probes.memory.measure() as memory, probes.timer.measure() as clock:
        for token in model.stream():
            clock.mark()                 # a per-token timestamp
    clock.seconds(), clock.marks_s(), memory.peak_bytes(), memory.metrics()
"""

from __future__ import annotations

from dataclasses import dataclass, field

from llmbench.gpu_driver import LazyGpuDriver
from llmbench.measure.bandwidth import (
    BandwidthMeter,
    BandwidthReading,
    CpuBandwidthMeter,
    CudaBandwidthMeter,
    MpsBandwidthMeter,
)
from llmbench.measure.driver_memory import CombinedMemoryProbe, GpuProcessMemoryProbe
from llmbench.measure.energy import EnergyMeter, NoEnergyMeter, NvmlEnergyMeter, RaplEnergyMeter
from llmbench.measure.memory import (
    CpuMemoryProbe,
    CpuMemoryReading,
    CudaMemoryProbe,
    CudaMemoryReading,
    MemoryProbe,
    MemoryReading,
    MpsMemoryProbe,
    MpsMemoryReading,
    peak_rss_reset_unsupported,
)
from llmbench.measure.timers import CpuTimer, CudaTimer, MpsTimer, Timer, TimeReading

# The tools are importable from here too: callers need one import for a device's probes and readings.
__all__ = [
    "BandwidthMeter",
    "BandwidthReading",
    "CombinedMemoryProbe",
    "CpuBandwidthMeter",
    "CpuMemoryProbe",
    "CpuMemoryReading",
    "CpuTimer",
    "CudaBandwidthMeter",
    "CudaMemoryProbe",
    "CudaMemoryReading",
    "CudaTimer",
    "EnergyMeter",
    "GpuProcessMemoryProbe",
    "MemoryProbe",
    "MemoryReading",
    "MpsBandwidthMeter",
    "MpsMemoryProbe",
    "MpsMemoryReading",
    "MpsTimer",
    "Probes",
    "TimeReading",
    "Timer",
    "measure_peak_bandwidth",
    "mps_unavailable_reason",
    "peak_rss_reset_unsupported",
    "probes_for",
    "probes_unavailable_reason",
]


@dataclass(frozen=True)
class Probes:
    """The measuring tools of one device.

    ``energy`` finds the device's energy counter on first use (RAPL on a CPU, NVML on CUDA); ``gpu`` is
    the CUDA device's driver (NVML, opened on first use) for the clock event reasons, None elsewhere.
    """

    device: str
    timer: Timer
    memory: MemoryProbe
    bandwidth: BandwidthMeter
    energy: EnergyMeter = field(default_factory=lambda: NoEnergyMeter("no energy counter for this device"))
    gpu: LazyGpuDriver | None = None


def mps_unavailable_reason() -> str | None:
    """Why Apple's MPS cannot be used here, or None."""
    import torch

    if not torch.backends.mps.is_available():
        return f"MPS is not available (torch {torch.__version__}, no Apple GPU found)"
    return None


def probes_unavailable_reason(device: str) -> str | None:
    """Why ``device`` cannot be measured here (no CUDA, no MPS, an unknown name), or None."""
    try:
        probes_for(device)  # cheap: nothing is measured or allocated until a probe is used
    except (RuntimeError, ValueError) as error:
        return str(error)
    return None


def probes_for(device: str) -> Probes:
    """The timer, memory probe and bandwidth meter for a device: ``cpu``, ``cuda``, ``cuda:<n>`` or ``mps``.

    Raises RuntimeError where the device is not available here, ValueError for an unknown device.
    """
    kind, _, index = device.partition(":")
    if kind == "cpu" and not index:
        return Probes(device, CpuTimer(), CpuMemoryProbe(), CpuBandwidthMeter(), RaplEnergyMeter())
    if kind == "cuda" and (not index or index.isdigit()):
        import torch

        if not torch.cuda.is_available():
            raise RuntimeError(f"device {device!r}: torch.cuda.is_available() is False on this machine")
        cuda = torch.device(device)
        # The driver's view of this process first (every engine's memory), then torch's allocator (where
        # torch allocates), then the host RSS: docs/gpu.md.
        driver = LazyGpuDriver(int(index or 0))
        memory = CombinedMemoryProbe(
            [GpuProcessMemoryProbe(driver), CudaMemoryProbe(cuda, only_where_initialized=True), CpuMemoryProbe()]
        )
        return Probes(device, CudaTimer(cuda), memory, CudaBandwidthMeter(cuda), NvmlEnergyMeter(driver), driver)
    if kind == "mps" and not index:
        reason = mps_unavailable_reason()
        if reason is not None:
            raise RuntimeError(f"device {device!r}: {reason}")
        no_counter = NoEnergyMeter("no energy counter is read on MPS (macOS has no RAPL or NVML)")
        return Probes(device, MpsTimer(), MpsMemoryProbe(), MpsBandwidthMeter(), no_counter)
    raise ValueError(f"device {device!r} has no probes; allowed: 'cpu', 'cuda', 'cuda:<index>', 'mps'")


def measure_peak_bandwidth(device: str) -> BandwidthReading:
    """The peak memory bandwidth of ``device`` (a few seconds at most)."""
    return probes_for(device).bandwidth.measure()
