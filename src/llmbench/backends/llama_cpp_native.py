"""llama-cpp-python's native side: importing it, routing llama.cpp's log messages to Python logging,
loading with model parameters ``Llama()`` does not take, and reading token pieces.
"""

from __future__ import annotations

import atexit
import contextlib
import ctypes
import functools
import importlib.util
import logging
import os
import sys
from collections.abc import Iterator
from types import ModuleType
from typing import Any

__all__ = [
    "INSTALL_HINT",
    "default_threads",
    "ends_with_blank_line",
    "import_llama_cpp",
    "model_params_override",
    "route_llama_cpp_logs",
    "system_info",
    "token_piece",
]

#: llama.cpp's messages go to the backend's logger (its name is what users configure).
logger = logging.getLogger("llmbench.backends.llama_cpp_backend")
# Without a handler configured they are dropped instead of reaching logging's last-resort stderr handler.
logger.addHandler(logging.NullHandler())

INSTALL_HINT = "llama-cpp-python is not installed (pip install 'pytest-llmbench[llama-cpp]')"


def import_llama_cpp() -> tuple[ModuleType | None, str | None]:
    """The ``llama_cpp`` module, or None and the reason it cannot be used."""
    if importlib.util.find_spec("llama_cpp") is None:
        return None, INSTALL_HINT
    try:
        import llama_cpp
    except (ImportError, OSError, RuntimeError) as error:  # a broken build: the shared library fails
        return None, f"llama-cpp-python is installed but cannot be imported: {error}"
    _close_devnull_at_exit()
    return llama_cpp, None


@functools.cache
def _close_devnull_at_exit() -> None:
    """llama-cpp-python opens /dev/null twice at import and never closes it: at interpreter exit that
    prints two ResourceWarnings (as errors under pytest's ``filterwarnings = error``). Close them."""
    utils = sys.modules.get("llama_cpp._utils")
    for name in ("outnull_file", "errnull_file"):
        handle = getattr(utils, name, None)
        if handle is not None and hasattr(handle, "close"):
            atexit.register(handle.close)


# llama.cpp logs through one process-wide callback. llama-cpp-python's own callback maps the log
# levels of an older ggml (0.3.36 still assumes INFO=1, WARN=2, ERROR=3), so with verbose=False it
# prints llama.cpp's warnings to stderr and drops its errors. This one follows ggml.h
# (NONE=0, DEBUG=1, INFO=2, WARN=3, ERROR=4, CONT=5) and hands every message to ``logger``.
_GGML_LEVELS = {0: logging.INFO, 1: logging.DEBUG, 2: logging.INFO, 3: logging.WARNING, 4: logging.ERROR}
_log_state = {"level": logging.DEBUG}
#: Where the installed callback is kept: on the llama_cpp module, which lives as long as the
#: library that calls it (this module may be imported afresh, e.g. in pytester runs).
_CALLBACK_ATTRIBUTE = "_llmbench_log_callback"


def route_llama_cpp_logs(llama_cpp: ModuleType) -> None:
    """Send llama.cpp's log messages to :data:`logger` instead of stderr (once per process)."""
    if getattr(llama_cpp, _CALLBACK_ATTRIBUTE, None) is not None:
        return

    def forward(level: int, text: bytes | None, _user_data: Any) -> None:
        log_level = _log_state["level"] if level == 5 else _GGML_LEVELS.get(level, logging.INFO)
        _log_state["level"] = log_level
        message = (text or b"").decode("utf-8", errors="replace").rstrip("\n")
        if message and logger.isEnabledFor(log_level):
            logger.log(log_level, "%s", message)

    # The ctypes callback must stay referenced for as long as llama.cpp may call it.
    callback = llama_cpp.llama_log_callback(forward)
    setattr(llama_cpp, _CALLBACK_ATTRIBUTE, callback)
    llama_cpp.llama_log_set(callback, ctypes.c_void_p(0))


def system_info(llama_cpp: ModuleType) -> str:
    return bytes(llama_cpp.llama_print_system_info()).decode("utf-8", errors="replace").strip()


@contextlib.contextmanager
def model_params_override(llama_cpp: ModuleType, **fields: Any) -> Iterator[None]:
    """Set fields of the ``llama_model_params`` that :class:`llama_cpp.Llama` builds while loading.

    ``Llama()`` does not take every model parameter (``use_extra_bufts`` among them): it fills the
    struct returned by ``llama_model_default_params``, so that function is wrapped for the duration
    of the constructor (a module-level patch: do not load models from two threads at once).
    """
    if not fields:
        yield
        return
    module = llama_cpp.llama_cpp
    original = module.llama_model_default_params

    def with_fields() -> Any:
        params = original()
        for name, value in fields.items():
            setattr(params, name, value)
        return params

    module.llama_model_default_params = with_fields
    try:
        yield
    finally:
        module.llama_model_default_params = original


def token_piece(llama_cpp: ModuleType, vocab: Any, token: int) -> bytes:
    """The bytes of one token as text (special tokens give none)."""
    buffer = ctypes.create_string_buffer(64)
    size = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, False)
    if size < 0:  # a longer piece: -size is the length needed
        buffer = ctypes.create_string_buffer(-size)
        size = llama_cpp.llama_token_to_piece(vocab, token, buffer, len(buffer), 0, False)
    return buffer.raw[:size]


def ends_with_blank_line(generated: bytes, new_piece: bytes) -> bool:
    """Whether ``new_piece`` (the tail of ``generated``) completed a blank line after some text.

    Leading blank lines do not count: a base model may start its answer on a new line.
    """
    content = generated.lstrip()
    return b"\n\n" in content[-(len(new_piece) + 1) :]


def default_threads() -> int:
    """The CPUs this process may run on (the affinity mask: a container's share, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return max(len(os.sched_getaffinity(0)), 1)
    return os.cpu_count() or 1
