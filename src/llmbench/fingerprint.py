"""The machine fingerprint saved with every run, so a comparison can tell when machines differ.

On a machine with CUDA GPUs it holds each GPU's state as the driver reports it (``gpu_state``: model,
driver and CUDA versions, current and maximum SM and memory clocks, power limits, persistence mode; read
through :mod:`llmbench.gpu_driver` when the fingerprint is taken, at the end of the session), or why that
could not be read (``gpu_state_unavailable``). Whether a GPU throttled *during* a combination is recorded
with that combination (:mod:`llmbench.measure.throttle`), not here.
"""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

from llmbench.gpu_driver import GpuState, gpu_states

#: Libraries whose version changes what is measured.
LIBRARIES = ("torch", "transformers", "llama-cpp-python", "bitsandbytes", "accelerate", "pytest-benchmark")
#: Fields that must match for two runs to count as the same machine (others are shown, not compared).
IDENTITY_FIELDS = (
    "cpu",
    "cpu_count",
    "memory_bytes",
    "gpus",
    "cuda_driver",
    "cuda_runtime",
    "torch_threads",
    "libraries",
    "gpu_state",
)
#: Identity fields added after runs were first saved: compared only where both runs have them, so that the
#: runs saved before are still this machine's.
NEWER_IDENTITY_FIELDS = frozenset({"gpu_state"})


def _cpu_model() -> str:
    try:
        with open("/proc/cpuinfo", encoding="utf-8") as cpuinfo:
            for line in cpuinfo:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _memory_bytes() -> int | None:
    try:
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    except (ValueError, OSError, AttributeError):
        return None


def _version(distribution: str) -> str | None:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return None


def _nvidia_driver() -> str | None:
    if shutil.which("nvidia-smi") is None:
        return None
    try:
        out = subprocess.run(
            ["nvidia-smi", "--query-gpu=driver_version", "--format=csv,noheader"],
            capture_output=True, text=True, timeout=10, check=True,
        )  # fmt: skip
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip().splitlines()[0] if out.stdout.strip() else None


def machine_fingerprint(torch_fields: bool = True) -> dict[str, Any]:
    """CPU, cores, memory, GPUs, driver and CUDA versions, thread count and library versions.

    The GPUs, CUDA runtime and thread count come from torch, imported for them only with ``torch_fields``
    (a session that ran an LLM benchmark) or where it is imported already; else they are None (a plain
    pytest-benchmark session never pays torch's import).
    """
    torch: Any = None
    if torch_fields or "torch" in sys.modules:
        import torch

    gpus: list[str] | None = None
    if torch is not None:
        gpus = []
        if torch.cuda.is_available():
            gpus = [torch.cuda.get_device_name(index) for index in range(torch.cuda.device_count())]
    return {
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "memory_bytes": _memory_bytes(),
        "gpus": gpus,
        **gpu_fields(len(gpus or ())),
        "cuda_runtime": torch.version.cuda if gpus else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "python": platform.python_version(),
    }


def gpu_fields(count: int, nvml: Any = None) -> dict[str, Any]:
    """``cuda_driver``, ``gpu_state`` and ``gpu_state_unavailable`` for ``count`` visible CUDA devices.

    The driver (NVML, ``nvml`` in tests) gives each GPU's state and the driver version; without it the
    driver version comes from ``nvidia-smi`` and the state is None with the reason. No GPU: all None, and
    NVML is never imported.
    """
    if count == 0:
        return {"cuda_driver": None, "gpu_state": None, "gpu_state_unavailable": None}
    states, reason = gpu_states(count, nvml)
    driver = states[0].get("driver_version") if states else None
    return {"cuda_driver": driver or _nvidia_driver(), "gpu_state": states, "gpu_state_unavailable": reason}


def describe_gpu_state(state: Mapping[str, Any]) -> str:
    """One GPU's state for people: "GPU 0 NVIDIA H100 80GB HBM3, driver 550.54.15 (CUDA 12.4), SM 1755 of 1980
    MHz, memory 2619 of 2619 MHz, power limit 700 W (enforced 700 W), persistence on"."""

    def get(key: str) -> Any:
        value = state.get(key)
        return "n/a" if value is None else value

    mode = state.get("persistence_mode")
    persistence = "on" if mode is True else "off" if mode is False else "n/a"
    return (
        f"GPU {get('index')} {get('name')}, driver {get('driver_version')} (CUDA {get('cuda_driver_version')}), "
        f"SM {get('sm_clock_mhz')} of {get('max_sm_clock_mhz')} MHz, memory {get('memory_clock_mhz')} of "
        f"{get('max_memory_clock_mhz')} MHz, power limit {get('power_limit_w')} W (enforced "
        f"{get('enforced_power_limit_w')} W), persistence {persistence}"
    )


def _gpu_identity(states: Any) -> Any:
    """The identity fields of each GPU's state (its clocks now are shown, not compared)."""
    if not isinstance(states, list):
        return states
    return [
        {key: state.get(key) for key in GpuState.IDENTITY} if isinstance(state, Mapping) else state
        for state in states
    ]


def fingerprint_differences(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Readable differences of the identity fields, e.g. "cpu: Xeon 8480 -> EPYC 9654"."""
    differences = []
    for name in IDENTITY_FIELDS:
        if name in NEWER_IDENTITY_FIELDS and (name not in baseline or name not in current):
            continue
        before, after = baseline.get(name), current.get(name)
        if name == "gpu_state":
            differences.extend(_gpu_differences(_gpu_identity(before), _gpu_identity(after)))
        elif name == "libraries" and isinstance(before, Mapping) and isinstance(after, Mapping):
            for library in sorted(set(before) | set(after)):
                if before.get(library) != after.get(library):
                    differences.append(f"{library}: {before.get(library)} -> {after.get(library)}")
        elif before != after:
            differences.append(f"{name}: {before} -> {after}")
    return differences


def _gpu_differences(before: Any, after: Any) -> list[str]:
    """E.g. "GPU 0 enforced_power_limit_w: 700.0 -> 350.0"; the whole field where the GPUs do not pair up."""
    if not (isinstance(before, list) and isinstance(after, list) and len(before) == len(after)):
        return [f"gpu_state: {before} -> {after}"] if before != after else []
    out = []
    for index, (one, other) in enumerate(zip(before, after, strict=True)):
        if not (isinstance(one, Mapping) and isinstance(other, Mapping)):
            if one != other:
                out.append(f"GPU {index}: {one} -> {other}")
            continue
        out.extend(
            f"GPU {index} {key}: {one.get(key)} -> {other.get(key)}"
            for key in GpuState.IDENTITY
            if one.get(key) != other.get(key)
        )
    return out
