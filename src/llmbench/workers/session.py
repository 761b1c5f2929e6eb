"""The session model cache's preparer and loader: in this process, or in a worker per (model, precision,
device).

Both plug into :class:`llmbench.backends.loaded_models.LoadedModels`. :class:`InProcessLoader`
(``--llmbench-isolation=none``) asks the backend itself, handing it the device's timer.
:class:`WorkerLoader` (process mode): ``prepare`` starts the worker and makes the weights local there
(untimed), ``load`` loads the model in it (timed by the worker). A key whose worker failed to prepare or
load fails again at once, with the same reason, without a second worker; a failure after the load is
kept by the worker itself.
"""

from __future__ import annotations

from pathlib import Path

from llmbench.backends import LoadedModel, get_backend
from llmbench.config.combination import Combination
from llmbench.measure.probes import probes_for
from llmbench.workers.client import DEFAULT_TIMEOUT_S, Worker, WorkerFailed, WorkerModel
from llmbench.workers.launch import WorkerLauncher, load_in
from llmbench.workers.protocol import LoadKey

__all__ = ["InProcessLoader", "WorkerLoader"]


class InProcessLoader:
    """Prepares and loads models in this process, each backend handed its device's timer."""

    def __init__(self, threads: int | None = None) -> None:
        self.threads = threads

    def prepare(self, combination: Combination, cache_dir: Path) -> None:
        """Make the weights local (assembly or conversion, outside the timed load)."""
        get_backend(combination.backend, self.threads).prepare(combination, cache_dir)

    def load(self, combination: Combination, cache_dir: Path) -> LoadedModel:
        """Load the model here; :class:`~llmbench.backends.BackendUnavailable` where it cannot."""
        timer = probes_for(combination.device).timer
        return get_backend(combination.backend, self.threads).load(combination, cache_dir, timer)


class WorkerLoader:
    """Starts, prepares and loads the workers of one session; remembers the keys that failed."""

    def __init__(self, log_dir: Path, threads: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.log_dir = log_dir
        self.threads = threads
        self.timeout_s = timeout_s
        self.launcher = WorkerLauncher(threads=threads, log_dir=log_dir, timeout_s=timeout_s)
        self._prepared: dict[LoadKey, Worker] = {}
        self.failures: dict[LoadKey, str] = {}

    def prepare(self, combination: Combination, cache_dir: Path) -> None:
        """Start the worker and prepare the weights in it (assembly or conversion, outside the timed load)."""
        key = combination.load_key
        if key in self.failures:
            raise WorkerFailed(self.failures[key])
        if key in self._prepared:
            return
        try:
            worker = self.launcher.prepared(combination, cache_dir)
        except WorkerFailed as error:
            self.failures[key] = str(error)
            raise
        self._prepared[key] = worker

    def load(self, combination: Combination, cache_dir: Path) -> WorkerModel:
        """Load the model in its prepared worker (started here if ``prepare`` was not called)."""
        key = combination.load_key
        if key in self.failures:
            raise WorkerFailed(self.failures[key])
        worker = self._prepared.pop(key, None) or self.launcher.start(combination, cache_dir)
        try:
            return load_in(worker)
        except WorkerFailed as error:
            self.failures[key] = str(error)
            raise

    def close(self) -> None:
        """Close workers that were prepared but never loaded."""
        for worker in self._prepared.values():
            worker.close()
        self._prepared.clear()
