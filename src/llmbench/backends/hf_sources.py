"""Where the transformers backend's weights come from, and whether they (and the device) can be had here.

Sources: ``package:<name>`` (a packaged GGUF, converted once into a cached Hugging Face directory),
``path:<dir>`` (a local Hugging Face directory), ``hub:<org/name>`` (read from the local Hugging Face
cache without contacting the hub; downloaded only when not cached, the hub is reachable and
``HF_HUB_OFFLINE`` is not set). The checks are cheap enough for collection.
"""

from __future__ import annotations

import functools
import json
import os
from dataclasses import dataclass
from pathlib import Path

import torch

from llmbench.backends.model_files import converted_hf_dir, package_missing_reason
from llmbench.config.combination import ModelSpec

__all__ = [
    "HfSource",
    "bitsandbytes_unavailable_reason",
    "cached_hub_snapshot",
    "device_unavailable_reason",
    "hub_offline",
    "hub_unreachable_reason",
    "resolve_source",
    "source_unavailable_reason",
    "weight_files",
]

#: Values of HF_HUB_OFFLINE that mean offline, as huggingface_hub reads them.
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
#: Seconds to wait for the hub before calling it unreachable (huggingface_hub itself retries for
#: about 25 s on a machine without DNS: too slow for collection).
_HUB_PROBE_TIMEOUT_S = 3.0


@dataclass(frozen=True)
class HfSource:
    """Where ``from_pretrained`` reads from."""

    name_or_path: str
    #: The local directory holding the files; None for a hub id still to be downloaded.
    directory: Path | None
    hub_id: str | None = None


def resolve_source(spec: ModelSpec, cache_dir: Path) -> HfSource:
    """Where ``from_pretrained`` reads ``spec``'s weights from (a ``package:`` GGUF is converted on first use)."""
    kind, value = spec.source_kind, spec.source_value
    if kind == "package":
        directory = converted_hf_dir(cache_dir, value)
        return HfSource(str(directory), directory)
    if kind == "path":
        directory = Path(value).expanduser()
        return HfSource(str(directory), directory)
    if kind == "hub":
        snapshot = cached_hub_snapshot(value)
        if snapshot is not None:
            return HfSource(str(snapshot), snapshot, hub_id=value)
        return HfSource(value, None, hub_id=value)
    raise ValueError(f"model {spec.name!r}: source {spec.source!r} must start with package:, path: or hub:")


def device_unavailable_reason(device: str) -> str | None:
    """Why torch cannot use ``device`` here, or None."""
    if device == "cpu":
        return None
    if device == "cuda":
        if not torch.cuda.is_available():
            return f"CUDA is not available (torch {torch.__version__}, no GPU found)"
        return None
    if device == "mps":
        if not torch.backends.mps.is_available():
            return f"MPS is not available (torch {torch.__version__}, no Apple GPU found)"
        return None
    return f"unknown device {device!r}; known: cpu, cuda, mps"


@functools.cache
def bitsandbytes_unavailable_reason() -> str | None:
    """Why bitsandbytes (int8, nf4, fp4) cannot be used, or None."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as error:  # a missing package or a broken native library
        return (
            f"bitsandbytes is not importable ({type(error).__name__}: {error}); "
            "pip install 'pytest-llmbench[bitsandbytes]'"
        )
    return None


def source_unavailable_reason(spec: ModelSpec) -> str | None:
    """Why the weights of ``spec`` cannot be had here, or None. Never waits more than a few seconds."""
    kind, value = spec.source_kind, spec.source_value
    if kind == "package":
        return package_missing_reason(value)
    if kind == "path":
        directory = Path(value).expanduser()
        if not (directory / "config.json").is_file():
            what = "has no config.json" if directory.is_dir() else "does not exist"
            return f"model {spec.name!r}: source path {directory} {what} (expected a Hugging Face model directory)"
        return None
    if kind == "hub":
        if cached_hub_snapshot(value) is not None:
            return None
        if hub_offline():
            return (
                f"not available offline: {value} is not in the local Hugging Face cache "
                "(set HF_HUB_OFFLINE=0 with network access, or use a local path)"
            )
        unreachable = hub_unreachable_reason()
        if unreachable is not None:
            return (
                f"not available offline: {value} is not in the local Hugging Face cache and {unreachable} "
                "(download it where there is network access, or use a local path)"
            )
        return None
    return f"model {spec.name!r}: source {spec.source!r} must start with package:, path: or hub:"


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now (huggingface_hub reads it at import)."""
    return any(os.environ.get(name, "").upper() in _TRUE_VALUES for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE"))


@functools.cache
def hub_unreachable_reason() -> str | None:
    """Why the hub endpoint cannot be reached (one quick request per process), or None."""
    from huggingface_hub import constants, get_session

    endpoint = constants.ENDPOINT
    try:
        get_session().head(endpoint, timeout=_HUB_PROBE_TIMEOUT_S)
    except Exception as error:  # DNS, connection, proxy, TLS: all mean "cannot download now"
        return f"{endpoint} cannot be reached ({type(error).__name__}: {error})"
    return None


def cached_hub_snapshot(repo_id: str) -> Path | None:
    """The local snapshot directory of ``repo_id`` (revision main) if config and all weights are cached."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    files, _ = weight_files(snapshot)
    if not files or not all(f.is_file() for f in files):
        return None
    return snapshot


def weight_files(directory: Path) -> tuple[list[Path], bool]:
    """The weight files of a Hugging Face directory and whether they are safetensors.

    Safetensors win where both formats are present (transformers loads those); sharded checkpoints
    are read from their index.
    """
    for stem, safetensors in (("model.safetensors", True), ("pytorch_model.bin", False)):
        index = directory / f"{stem}.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError):
                return [], safetensors
            return [directory / name for name in sorted(set(weight_map.values()))], safetensors
        if (directory / stem).is_file():
            return [directory / stem], safetensors
    return [], False
