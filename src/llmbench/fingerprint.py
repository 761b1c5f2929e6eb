"""The machine fingerprint saved with every run, so a comparison can tell when machines differ."""

from __future__ import annotations

import os
import platform
import shutil
import subprocess
import sys
from collections.abc import Mapping
from importlib import metadata
from typing import Any

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
)


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
        "cuda_driver": _nvidia_driver() if gpus else None,
        "cuda_runtime": torch.version.cuda if gpus else None,
        "torch_threads": torch.get_num_threads() if torch is not None else None,
        "libraries": {name: _version(name) for name in LIBRARIES},
        "python": platform.python_version(),
    }


def fingerprint_differences(baseline: Mapping[str, Any], current: Mapping[str, Any]) -> list[str]:
    """Readable differences of the identity fields, e.g. "cpu: Xeon 8480 -> EPYC 9654"."""
    differences = []
    for name in IDENTITY_FIELDS:
        before, after = baseline.get(name), current.get(name)
        if name == "libraries" and isinstance(before, Mapping) and isinstance(after, Mapping):
            for library in sorted(set(before) | set(after)):
                if before.get(library) != after.get(library):
                    differences.append(f"{library}: {before.get(library)} -> {after.get(library)}")
        elif before != after:
            differences.append(f"{name}: {before} -> {after}")
    return differences
