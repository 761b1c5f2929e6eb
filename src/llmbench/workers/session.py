"""The session model cache's preparer and loader in process mode: a worker per (model, precision, device).

:class:`WorkerLoader` plugs into :class:`llmbench.backends.loaded_models.LoadedModels`: ``prepare``
starts the worker and makes the weights local there (untimed), ``load`` loads the model in it (timed
by the worker). A key whose worker failed to prepare or load fails again at once, with the same
reason, without a second worker; a failure after the load is kept by the worker itself.
"""

from __future__ import annotations

from pathlib import Path

from llmbench.config.combination import Combination
from llmbench.workers.client import DEFAULT_TIMEOUT_S, Worker, WorkerFailed, WorkerModel, prepare_in
from llmbench.workers.protocol import LoadKey


class WorkerLoader:
    """Starts, prepares and loads the workers of one session; remembers the keys that failed."""

    def __init__(self, log_dir: Path, threads: int | None = None, timeout_s: float = DEFAULT_TIMEOUT_S) -> None:
        self.log_dir = log_dir
        self.threads = threads
        self.timeout_s = timeout_s
        self._prepared: dict[LoadKey, Worker] = {}
        self.failures: dict[LoadKey, str] = {}

    def _start(self, combination: Combination, cache_dir: Path) -> Worker:
        return Worker.start(
            combination, cache_dir, threads=self.threads, log_dir=self.log_dir, timeout_s=self.timeout_s
        )

    def prepare(self, combination: Combination, cache_dir: Path) -> None:
        """Start the worker and prepare the weights in it (assembly or conversion, outside the timed load)."""
        key = combination.load_key
        if key in self.failures:
            raise WorkerFailed(self.failures[key])
        if key in self._prepared:
            return
        worker = self._start(combination, cache_dir)
        try:
            prepare_in(worker)
        except WorkerFailed as error:
            self.failures[key] = str(error)
            raise
        self._prepared[key] = worker

    def load(self, combination: Combination, cache_dir: Path) -> WorkerModel:
        """Load the model in its prepared worker (started here if ``prepare`` was not called)."""
        key = combination.load_key
        if key in self.failures:
            raise WorkerFailed(self.failures[key])
        worker = self._prepared.pop(key, None) or self._start(combination, cache_dir)
        try:
            return WorkerModel.load_in(worker)
        except WorkerFailed as error:
            self.failures[key] = str(error)
            raise

    def close(self) -> None:
        """Close workers that were prepared but never loaded."""
        for worker in self._prepared.values():
            worker.close()
        self._prepared.clear()
