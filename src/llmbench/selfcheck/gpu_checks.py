"""The rows of ``llmbench selfcheck --device cuda``: the harness's GPU figures against independent
readings on the GPU itself, each with what to fix where it fails.

- **timer**: the harness's clock on a GPU (CUDA events, :class:`~llmbench.measure.timers.CudaTimer`)
  against ``torch.cuda.synchronize()`` around ``time.perf_counter`` in a bare loop, interleaved;
- **memory**: a known allocation through the harness's memory probe: torch's allocator figure against
  the allocation's size, the driver's per-process figure (NVML) against the allocator's reserve, its
  growth and its level (the driver counts the CUDA context too: reading below the allocator is a bug);
- **energy**: the driver's total-energy counter over a window of work long enough for its update
  period must move, and its mean power must be plausible against the GPU's power limit;
- **fingerprint**: every GPU field a run saves (model, driver, CUDA versions, clocks, power limit,
  persistence mode) is there.

Tolerances and why: docs/gpu.md (Checking a new runner). The device is :class:`CudaDevice`; these rows
have only run against fakes (docs/gpu.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

from llmbench.fingerprint import describe_gpu_state
from llmbench.gpu_driver import GpuDriverUnavailable
from llmbench.measure.energy import EnergyUnavailable, EnergyWindow
from llmbench.selfcheck.agreement import paired_check
from llmbench.selfcheck.checks import Check
from llmbench.selfcheck.cuda_device import CudaDevice
from llmbench.units import MiB, format_reading

__all__ = [
    "ALLOCATOR_TOLERANCE",
    "DRIVER_GROWTH_TOLERANCE",
    "FINGERPRINT_FIELDS",
    "GPU_STATE_FIELDS",
    "HOLD_S",
    "KNOWN_ALLOCATION_BYTES",
    "POWER_RANGE",
    "TIMER_TOLERANCE",
    "cuda_checks",
    "energy_check",
    "fingerprint_check",
    "memory_checks",
    "timer_check",
]

#: CUDA events against synchronised wall clock on the same work: the wall clock adds a launch and a
#: synchronize (tens of microseconds of a 50 ms call); 2% leaves room for the host's noise between calls.
TIMER_TOLERANCE = 0.02
#: The known allocation: far above the allocators' and the driver's granularity (2 MiB pages).
KNOWN_ALLOCATION_BYTES = 512 * MiB
#: torch's allocator figure against the allocation: its blocks round up by 512 bytes at most.
ALLOCATOR_TOLERANCE = 0.01
#: The driver's per-process growth against the allocator's reserve growth: both count the same cudaMalloc;
#: 2% of 512 MiB is 10 MiB, five of the driver's 2 MiB pages.
DRIVER_GROWTH_TOLERANCE = 0.02
#: How long the allocation is held: five periods of the driver probe's sampler (it reads once more at the end).
HOLD_S = 0.1
#: Mean power over the energy window against the GPU's power limit, as measured / limit - 1: above 5% of
#: the limit (a GPU running matmuls draws more than it idles; a counter that does not move reads 0, one read
#: in the wrong unit 1000 times off) and at most 10% above it (the limit is enforced over about a second;
#: the counter's staleness at each end is up to 5% of the window).
POWER_RANGE = (-0.95, 0.10)
#: The machine fingerprint's fields a GPU run needs, and each GPU's state fields (docs/gpu.md).
FINGERPRINT_FIELDS = ("gpus", "cuda_driver", "cuda_runtime")
GPU_STATE_FIELDS = (
    "name", "driver_version", "cuda_driver_version", "memory_total_bytes", "sm_clock_mhz", "max_sm_clock_mhz",
    "memory_clock_mhz", "max_memory_clock_mhz", "power_limit_w", "enforced_power_limit_w", "persistence_mode",
)  # fmt: skip

_NOT_SAME = (
    "check that the driver reads the GPU torch uses: on a machine with GPUs of different models set "
    "CUDA_DEVICE_ORDER=PCI_BUS_ID (CUDA orders the fastest first, NVML by PCI bus), or give the job one GPU "
    "with CUDA_VISIBLE_DEVICES"
)


def cuda_checks(device: CudaDevice, rounds: int, say: Callable[[str], None] = lambda line: None) -> list[Check]:
    """Every row, in order: timer, memory, energy, fingerprint."""
    say(f"{device.name}: CUDA timer against synchronised wall clock ...")
    out = [timer_check(device, rounds)]
    say(f"{device.name}: a known allocation through the driver and the allocator ...")
    out += memory_checks(device)
    say(f"{device.name}: the energy counter over a window of work ...")
    out.append(energy_check(device))
    out.append(fingerprint_check(device))
    return out


def timer_check(device: CudaDevice, rounds: int) -> Check:
    """The harness's timer around a call of the work against the bare loop's synchronised wall clock, in
    ``rounds`` interleaved pairs whose order alternates, after one warm-up call of each."""
    runtime, cuda = device.runtime, device.device

    def harness() -> float:
        with device.probes.timer.measure() as reading:
            device.work()
        return reading.seconds()  # waits on the end event once

    def bare() -> float:
        runtime.synchronize(cuda)
        started = device.clock()
        device.work()
        runtime.synchronize(cuda)
        return device.clock() - started

    harness()  # warm-up: clocks up, caches filled
    bare()
    found: dict[str, list[float]] = {"harness": [], "bare": []}
    for round_ in range(rounds):
        order = (("harness", harness), ("bare", bare))
        for side, call in order if round_ % 2 == 0 else order[::-1]:
            found[side].append(call())
    return paired_check(
        "CUDA timer vs synchronised wall clock", found["harness"], found["bare"],
        how=(
            f"harness: the harness's timer on {device.name} ({type(device.probes.timer).__name__}: CUDA events on "
            "the current stream); reference: torch.cuda.synchronize() around time.perf_counter in a bare loop; "
            f"the same matmuls, {rounds} interleaved pairs, the median of the pairs' ratios"
        ),
        unit="s", tolerance=TIMER_TOLERANCE,
        fix=(
            "the events do not time the work: the harness's timer records on the current stream of "
            f"{device.name}, so work on another device or stream escapes it. Check that torch's current device is "
            f"the one --device names (or give the job one GPU with CUDA_VISIBLE_DEVICES and use --device cuda), "
            "and that no other job shares the GPU (nvidia-smi); rerun with --rounds 30. If it persists, "
            "the speed figures of this runner cannot be trusted: report it with this table"
        ),
    )  # fmt: skip


def _value(metrics: Mapping[str, Any], name: str) -> float | None:
    metric = metrics.get(name)
    return None if metric is None else metric.value


def _minus(one: float | None, other: float | None) -> float | None:
    return None if one is None or other is None else one - other


def memory_checks(device: CudaDevice, size: int = KNOWN_ALLOCATION_BYTES) -> list[Check]:
    """A known allocation held inside the harness's memory probe, against torch's allocator read directly.

    A small allocation first makes sure the CUDA context and the allocator exist before the first
    reading, so the block adds only the known allocation.
    """
    runtime, cuda = device.runtime, device.device
    warm = device.allocate(MiB)
    runtime.synchronize(cuda)
    reserved_before = int(runtime.memory_reserved(cuda))
    with device.probes.memory.measure() as reading:
        block = device.allocate(size)
        runtime.synchronize(cuda)
        device.sleep(HOLD_S)
        reserved_held = int(runtime.memory_reserved(cuda))
    del block, warm
    metrics = {metric.name: metric for metric in reading.metrics()}
    driver = metrics.get("peak_gpu_process_bytes")
    driver_note = "no driver figure" if driver is None else driver.note
    driver_peak = _value(metrics, "peak_gpu_process_bytes")
    driver_before = _value(metrics, "gpu_process_before_bytes")
    allocated = _minus(_value(metrics, "peak_cuda_allocated_bytes"), _value(metrics, "cuda_allocated_before_bytes"))
    known = f"a {format_reading(size, 'bytes')} tensor allocated and held {HOLD_S:g} s inside the probe"
    reserved = f"torch.cuda.memory_reserved() before the probe and while the tensor is held: {known}"
    driver_fix = (
        "the driver's per-process figure does not follow this process's allocation. In a container, run with "
        "the host's PID namespace (docker run --pid=host): the driver lists the host's PIDs; where NVML gives no "
        f"per-process figure (some virtual GPUs, MIG), peak_gpu_process_bytes stays n/a; {_NOT_SAME}"
    )
    excess = _minus(driver_peak, float(reserved_held))
    above = (
        "" if excess is None else f"; the driver's figure is {format_reading(excess, 'bytes')} above the allocator's"
    )
    return [
        Check(
            "CUDA allocated added vs the known allocation", allocated, float(size), "bytes", ALLOCATOR_TOLERANCE,
            how=(
                "harness: peak_cuda_allocated_bytes - cuda_allocated_before_bytes (torch.cuda.max_memory_allocated "
                f"after reset_peak_memory_stats, the harness's probe); reference: {known}"
            ),
            fix=(
                "torch's allocator statistics do not show the allocation: another device's statistics are read "
                "(check that torch's current device is the one --device names), or the probe reads before the "
                "work is done (it synchronizes first)"
            ),
        ),
        Check(
            "GPU process memory added vs CUDA reserved added", _minus(driver_peak, driver_before),
            float(reserved_held - reserved_before), "bytes", DRIVER_GROWTH_TOLERANCE,
            how=f"harness: peak_gpu_process_bytes - gpu_process_before_bytes ({driver_note}); reference: {reserved}",
            fix=driver_fix,
        ),
        Check(
            "GPU process memory vs CUDA reserved", driver_peak, float(reserved_held), "bytes", 0.0, bound="at_least",
            how=(
                f"harness: peak_gpu_process_bytes ({driver_note}); reference: torch.cuda.memory_reserved() while the "
                f"tensor is held. The driver also counts the CUDA context (a few hundred MiB) and memory torch's "
                f"allocator does not manage, so it reads above the allocator, never below{above}"
            ),
            fix=f"the driver reads less than torch's allocator holds in this process: it reads another process or "
            f"GPU. {driver_fix}",
        ),
    ]  # fmt: skip


def _power_limit_w(device: CudaDevice) -> tuple[float | None, str]:
    """The GPU's enforced power limit (else its power management limit) and where it came from."""
    if device.probes.gpu is None:
        return None, "no driver for this device"
    try:
        state = device.probes.gpu.get().state()
    except GpuDriverUnavailable as error:
        return None, str(error)
    if state.enforced_power_limit_w is not None:
        return state.enforced_power_limit_w, "the enforced power limit (nvmlDeviceGetEnforcedPowerLimit)"
    if state.power_limit_w is not None:
        return state.power_limit_w, "the power limit (nvmlDeviceGetPowerManagementLimit)"
    return None, "NVML gave no power limit for this GPU"


def energy_check(device: CudaDevice) -> Check:
    """The harness's energy meter over a window of the work, synchronised after each call, kept open for
    the counter's update period (:class:`~llmbench.measure.energy.EnergyWindow`, 2 s on NVML): its mean
    power against the GPU's power limit, within :data:`POWER_RANGE`."""
    name = "mean power over the energy window vs the power limit"
    limit, source = _power_limit_w(device)
    fix = (
        "the driver's total-energy counter did not move over the window, or reads in another unit: NVML has it "
        "on Volta and newer GPUs (nvmlDeviceGetTotalEnergyConsumption); energy_per_token_j is n/a where it "
        f"cannot be read, and wrong where it reads another GPU: {_NOT_SAME}"
    )
    try:
        counter = device.probes.energy.counter()
    except EnergyUnavailable as error:
        return Check(
            name, None, limit, "W", 0.0, bound="range", allowed=POWER_RANGE,
            how=f"harness: n/a: {error}; reference: {source}",
            fix=f"{error}. Install nvidia-ml-py (pip install 'pytest-llmbench[cuda]') on a Volta or newer GPU",
        )  # fmt: skip
    runtime, cuda = device.runtime, device.device

    def synchronised_work() -> int:
        device.work()
        runtime.synchronize(cuda)
        return 0  # no tokens: the window's energy and seconds are what is read

    window = EnergyWindow(counter, clock=device.clock)
    window.start()
    window.extend(synchronised_work)
    energy = window.stop()
    return Check(
        name, energy.watts, limit, "W", 0.0, bound="range", allowed=POWER_RANGE,
        how=(
            f"harness: {counter.description}: {energy.joules:.4g} J over {energy.seconds:.3g} s of matmuls "
            f"({energy.extra_calls} calls, the window kept open for {energy.min_window_s:g} s, 20 of the counter's "
            f"update periods), through the harness's energy meter; reference: {source}"
        ),
        fix=fix if limit is not None else f"{fix}. {source}: the fingerprint row says what the driver refused",
    )  # fmt: skip


def fingerprint_check(device: CudaDevice) -> Check:
    """Each field of :data:`FINGERPRINT_FIELDS`, and of :data:`GPU_STATE_FIELDS` for this GPU, is in the
    fingerprint a run saves."""
    fingerprint = device.fingerprint()
    missing = [field for field in FINGERPRINT_FIELDS if not fingerprint.get(field)]
    states = fingerprint.get("gpu_state")
    state = states[device.index] if isinstance(states, list) and device.index < len(states) else None
    if isinstance(state, Mapping):
        missing += [f"gpu_state.{field}" for field in GPU_STATE_FIELDS if state.get(field) is None]
        shown = f"{describe_gpu_state(state)}; CUDA runtime (torch) {fingerprint.get('cuda_runtime')}"
    else:
        missing += [f"gpu_state.{field}" for field in GPU_STATE_FIELDS]
        shown = f"no GPU state: {fingerprint.get('gpu_state_unavailable') or 'none recorded'}"
    required = len(FINGERPRINT_FIELDS) + len(GPU_STATE_FIELDS)
    fixes = []
    from_torch = [field for field in missing if field in FINGERPRINT_FIELDS and field != "cuda_driver"]
    if from_torch:
        fixes.append(f"torch gave no {', '.join(from_torch)}: install torch's CUDA build (docs/installation.md)")
    if not isinstance(state, Mapping):
        reason = fingerprint.get("gpu_state_unavailable") or "the fingerprint has no state for this GPU"
        fixes.append(
            f"the fingerprint has no GPU state ({reason}): install nvidia-ml-py (pip install "
            "'pytest-llmbench[cuda]') and check that nvidia-smi works for this user"
        )
    elif any(field.startswith("gpu_state.") or field == "cuda_driver" for field in missing):
        refused = [field for field in missing if field not in from_torch]
        fixes.append(
            f"the driver (NVML) refused {', '.join(refused)} on this GPU or for this user: nvidia-smi -q -d "
            "CLOCK,POWER,PERFORMANCE shows what it gives; without them a changed clock or power limit reads as "
            "a regression (docs/gpu.md)"
        )
    if isinstance(state, Mapping) and state.get("persistence_mode") is False:
        shown += " (persistence off: sudo nvidia-smi -pm 1 keeps the driver loaded between jobs)"
    return Check(
        "fingerprint fields of the GPU", float(required - len(missing)), float(required), "count", 0.0,
        how=f"harness: the fields present in the fingerprint a run saves; reference: the {required} it needs. {shown}"
        + (f"; missing: {', '.join(missing)}" if missing else ""),
        fix="; ".join(fixes),
    )  # fmt: skip
