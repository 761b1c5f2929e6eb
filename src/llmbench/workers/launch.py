"""The one way a model gets into a worker: start the process, prepare the weights (untimed), load the
model (timed in the worker).

:class:`WorkerLauncher` holds how workers are started (threads, log folder, interpreter, timeouts) and
runs those steps; the session's model cache (:mod:`llmbench.workers.session`) runs the first two when
the cache prepares and the last when it loads, ``llmbench ab`` (:mod:`llmbench.ab.interleave`) all
three at once. On a failure in a step the worker is closed and the error goes up:
:class:`~llmbench.backends.BackendUnavailable` (a skip) or :class:`~llmbench.workers.WorkerFailed`.
See docs/isolation.md.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.backends import BackendUnavailable
from llmbench.config.combination import Combination
from llmbench.workers.client import DEFAULT_LOAD_TIMEOUT_S, DEFAULT_TIMEOUT_S, Worker, WorkerFailed, WorkerModel
from llmbench.workers.protocol import Load, Loaded, Prepare, Unavailable

__all__ = ["WorkerLauncher", "load_in", "prepare_in"]


def prepare_in(worker: Worker) -> None:
    """Make the weights local in a started worker; on :class:`BackendUnavailable` or :class:`WorkerFailed`
    the worker is closed."""
    try:
        reply = worker.request(Prepare())
        if isinstance(reply, Unavailable):
            raise BackendUnavailable(reply.reason)
    except BaseException:
        worker.close()
        raise


def load_in(worker: Worker) -> WorkerModel:
    """Load the model in a started worker; on :class:`BackendUnavailable` or :class:`WorkerFailed` the
    worker is closed."""
    try:
        reply = worker.request(Load())
        if isinstance(reply, Unavailable):
            raise BackendUnavailable(reply.reason)
        if not isinstance(reply, Loaded):
            raise WorkerFailed(f"worker for {worker.name} answered a load with {reply!r}")
    except BaseException:
        worker.close()
        raise
    return WorkerModel(worker, reply)


@dataclass(frozen=True)
class WorkerLauncher:
    """How to start the workers of one session or one A/B side, and the start sequence itself.

    ``python``: another interpreter for the workers; ``sys_path``: their module search path (see
    :class:`~llmbench.workers.Worker`). ``log_dir``: where each worker's log goes (a temporary folder
    when None).
    """

    threads: int | None = None
    log_dir: Path | None = None
    python: str | os.PathLike[str] | None = None
    sys_path: Sequence[str] | None = None
    timeout_s: float = DEFAULT_TIMEOUT_S
    load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S

    def start(self, combination: Combination, cache_dir: Path) -> Worker:
        """Step 1: a fresh worker for ``combination``'s (model, precision, device)."""
        return Worker.start(
            combination, cache_dir, threads=self.threads, log_dir=self.log_dir, python=self.python,
            sys_path=self.sys_path, timeout_s=self.timeout_s, load_timeout_s=self.load_timeout_s,
        )  # fmt: skip

    def prepared(self, combination: Combination, cache_dir: Path) -> Worker:
        """Steps 1 and 2: a fresh worker with the weights made local in it (untimed)."""
        worker = self.start(combination, cache_dir)
        prepare_in(worker)
        return worker

    def launch(self, combination: Combination, cache_dir: Path, *, prepare: bool = True) -> WorkerModel:
        """Steps 1 to 3: a fresh worker, prepared (unless ``prepare`` is False) and loaded (timed in it).

        Raises :class:`BackendUnavailable` (a skip) or :class:`WorkerFailed`; the worker is closed then.
        """
        worker = self.prepared(combination, cache_dir) if prepare else self.start(combination, cache_dir)
        return load_in(worker)
