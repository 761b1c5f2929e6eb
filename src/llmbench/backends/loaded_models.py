"""The session cache of loaded models, keyed by (model, precision, device).

Each model is loaded at most once per session and released after the last test that needs it, so
a session's peak memory is that of its largest model, not the sum of all of them.
"""

from __future__ import annotations

import contextlib
import ctypes
import ctypes.util
import gc
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from llmbench.backends import BackendUnavailable, LoadedModel
from llmbench.config.combination import Combination

LoadKey = tuple[str, str, str]


@dataclass(frozen=True)
class LoadRecord:
    """How one load went: the time from nothing in memory to a model ready on its device."""

    key: LoadKey
    load_s: float


def return_freed_memory() -> None:
    """Give memory freed by a released model back to the OS (glibc keeps it otherwise).

    Without this the resident memory of the process, and with it the next model's ``peak_rss_bytes``,
    would include what earlier models left in the allocator's free lists.
    """
    if not sys.platform.startswith("linux"):
        return
    name = ctypes.util.find_library("c")
    if name is None:
        return
    with contextlib.suppress(OSError, AttributeError):  # not glibc (e.g. musl has no malloc_trim)
        ctypes.CDLL(name).malloc_trim(0)


class LoadedModels:
    """Loads models on first use, keeps them for the tests that share them, releases them on request."""

    def __init__(
        self,
        cache_dir: Path,
        loader: Callable[[Combination, Path], LoadedModel],
        preparer: Callable[[Combination, Path], None],
    ) -> None:
        """``loader`` and ``preparer``: in this process or in a worker (:mod:`llmbench.workers.session`)."""
        self.cache_dir = cache_dir
        self._loader = loader
        self._preparer = preparer
        self._models: dict[LoadKey, LoadedModel] = {}
        self._failures: dict[LoadKey, str] = {}
        self.loads: list[LoadRecord] = []
        self.releases: list[LoadKey] = []

    def get(self, combination: Combination) -> LoadedModel:
        """The loaded model for a combination; raise :class:`BackendUnavailable` (a skip) if it cannot load."""
        key = combination.load_key
        if key in self._failures:
            raise BackendUnavailable(self._failures[key])
        if key not in self._models:
            try:
                # Conversion or assembly happens once, outside the timed load.
                self._preparer(combination, self.cache_dir)
                start = time.perf_counter()
                model = self._loader(combination, self.cache_dir)
            except BackendUnavailable as error:
                self._failures[key] = str(error)
                raise
            load_s = time.perf_counter() - start
            # A model loaded in a worker process reports the load as the worker timed it.
            self.loads.append(LoadRecord(key, getattr(model, "load_s", load_s)))
            self._models[key] = model
        return self._models[key]

    def load_time(self, key: LoadKey) -> float | None:
        for record in reversed(self.loads):
            if record.key == key:
                return record.load_s
        return None

    def is_loaded(self, key: LoadKey) -> bool:
        return key in self._models

    def release(self, key: LoadKey) -> None:
        """Free a model now (device memory included); a later :meth:`get` loads it again."""
        model = self._models.pop(key, None)
        if model is not None:
            model.close()
            del model
            gc.collect()
            return_freed_memory()
            self.releases.append(key)

    def release_all(self) -> None:
        for key in list(self._models):
            self.release(key)
