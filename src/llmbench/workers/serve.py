"""The worker process: holds one loaded model and answers the parent's requests until ``Close``.

Runs in a process started with multiprocessing's spawn context (:mod:`llmbench.workers.client`).
Everything is measured here (the clock, the memory probe with its peak reset, the step times), so
peaks are this process's own. Its stdout and stderr go to the setup's log file, with Python's
fault handler on, so a crash leaves its last lines there. (Tests make a worker fail on purpose from the
outside, through the environment: :mod:`llmbench.testing.faults`.)
"""

from __future__ import annotations

import faulthandler
import os
import sys
import time
import traceback
from multiprocessing.connection import Connection

from llmbench.backends import Backend, BackendUnavailable, LoadedModel, get_backend
from llmbench.backends.loaded_models import return_freed_memory
from llmbench.data.long_prompts import PromptLengthError, prompts_for_model
from llmbench.measure.probes import probes_for
from llmbench.workers.protocol import (
    BuildPrompts,
    Close,
    Closed,
    Failed,
    Generate,
    Generated,
    Load,
    Loaded,
    LoadMeasured,
    MeasureLoad,
    MemoryFigures,
    ModelFacts,
    Prepare,
    Prepared,
    PromptsBuilt,
    Ready,
    Reply,
    Request,
    TimedGenerate,
    TimedRound,
    Unavailable,
    WorkerSetup,
)


def _send_output_to(path: os.PathLike[str]) -> None:
    """Point this process's stdout and stderr (file descriptors 1 and 2) at the log file."""
    for stream in (sys.stdout, sys.stderr):
        if stream is not None:
            stream.flush()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
    os.dup2(fd, 1)
    os.dup2(fd, 2)
    os.close(fd)
    if sys.stdout is not None:
        sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    faulthandler.enable(file=sys.stderr, all_threads=True)


class ModelServer:
    """Answers requests for one combination; the model is loaded on ``Load`` and kept until ``Close``."""

    def __init__(self, setup: WorkerSetup) -> None:
        self.setup = setup
        self.probes = probes_for(setup.combination.device)
        self.model: LoadedModel | None = None
        self._backend: Backend | None = None

    @property
    def backend(self) -> Backend:
        """The backend, imported on first use (a worker that only closes never imports it)."""
        if self._backend is None:
            self._backend = get_backend(self.setup.combination.backend, self.setup.threads)
        return self._backend

    def _loaded(self) -> LoadedModel:
        if self.model is None:
            raise RuntimeError("no model loaded: send a Load request first")
        return self.model

    def handle(self, request: Request) -> Reply:
        combination, cache_dir = self.setup.combination, self.setup.cache_dir
        if isinstance(request, Prepare):
            started = time.perf_counter()
            try:
                self.backend.prepare(combination, cache_dir)
            except BackendUnavailable as error:
                return Unavailable(str(error))
            seconds = time.perf_counter() - started
            return_freed_memory()  # what a conversion freed is not the model's
            return Prepared(seconds)
        if isinstance(request, Load):
            if self.model is not None:
                raise RuntimeError("the model is already loaded")
            started = time.perf_counter()
            try:
                model = self.backend.load(combination, cache_dir, self.probes.timer)
            except BackendUnavailable as error:
                return Unavailable(str(error))
            load_s = time.perf_counter() - started
            self.model = model
            facts = ModelFacts(model.combination_key, model.weight_bytes(), model.file_bytes(), model.kv_cache_layout())
            return Loaded(load_s, facts)
        if isinstance(request, TimedGenerate):
            model = self._loaded()
            # As in-process: the wall clock around the memory probe around the call.
            started = time.perf_counter()
            with self.probes.memory.measure() as reading:
                generation = model.generate(list(request.prompts), request.max_new_tokens)
            seconds = time.perf_counter() - started
            return TimedRound(generation, seconds, MemoryFigures.of(reading))
        if isinstance(request, Generate):
            return Generated(self._loaded().generate(list(request.prompts), request.max_new_tokens))
        if isinstance(request, MeasureLoad):
            started = time.perf_counter()
            with self.probes.memory.measure() as reading:
                extra = self.backend.load(combination, cache_dir, self.probes.timer)
            seconds = time.perf_counter() - started
            extra.close()
            del extra
            return_freed_memory()
            return LoadMeasured(seconds, MemoryFigures.of(reading))
        if isinstance(request, BuildPrompts):
            try:
                built = prompts_for_model(
                    self._loaded(), request.texts, request.length, request.count, request.template,
                    request.max_new_tokens, combination.model.name,
                )  # fmt: skip
            except PromptLengthError as error:
                return Unavailable(str(error))
            return PromptsBuilt(built)
        if isinstance(request, Close):
            self.close()
            return Closed()
        raise TypeError(f"unknown request {request!r}")

    def close(self) -> None:
        if self.model is not None:
            self.model.close()
            self.model = None


def run_worker(conn: Connection, setup: WorkerSetup) -> None:
    """The worker's main loop (the spawned process's target): one reply per request, until ``Close``."""
    _send_output_to(setup.log_path)
    if setup.threads is not None and setup.combination.backend == "transformers":  # llama.cpp takes n_threads
        import torch

        torch.set_num_threads(setup.threads)
    server: ModelServer | None = None
    conn.send(Ready(os.getpid(), sys.executable))
    while True:
        try:
            request: Request = conn.recv()
        except EOFError:  # the parent is gone
            break
        try:
            if server is None:
                server = ModelServer(setup)
            reply = server.handle(request)
        except Exception as error:
            reply = Failed(type(error).__name__, str(error), traceback.format_exc())
        try:
            conn.send(reply)
        except Exception as error:  # e.g. a reply that does not pickle
            conn.send(Failed(type(error).__name__, f"cannot send the reply: {error}", traceback.format_exc()))
        if isinstance(request, Close):
            break
    if server is not None:
        server.close()
    conn.close()
