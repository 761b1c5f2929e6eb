"""The parent's side: start a worker for one (model, precision, device) and drive it by requests.

:class:`Worker` starts the process (multiprocessing's spawn context, optionally on another
interpreter, whose own ``sys.path`` the worker then gets), sends one request at a time and waits
for the reply within a timeout. A worker that
dies (a signal, an exit), hangs past the timeout (it is then killed) or raises in a request is
reported as :class:`WorkerFailed` with the reason and the last lines of the worker's log; after a
death or a hang every later request fails fast with the same reason. :class:`WorkerModel` wraps a
loaded worker as a :class:`llmbench.backends.LoadedModel`; :mod:`llmbench.workers.launch` starts, prepares
and loads one. See docs/isolation.md.
"""

from __future__ import annotations

import functools
import json
import multiprocessing
import multiprocessing.connection
import multiprocessing.spawn
import os
import signal
import subprocess
import sys
import tempfile
import threading
from collections.abc import Sequence
from pathlib import Path

from llmbench.config.combination import Combination
from llmbench.data.long_prompts import BuiltPrompt, PromptLengthError
from llmbench.engine_types import Generation, KVLayout
from llmbench.workers.protocol import (
    BuildPrompts,
    Close,
    Failed,
    Generate,
    Generated,
    Load,
    Loaded,
    LoadMeasured,
    MeasureLoad,
    Prepare,
    PromptsBuilt,
    Ready,
    Reply,
    Request,
    TimedGenerate,
    TimedRound,
    Unavailable,
    WorkerSetup,
)
from llmbench.workers.serve import run_worker

#: How long a generate request may take before the worker counts as hung and is killed.
DEFAULT_TIMEOUT_S = 600.0
#: The same for ``prepare`` and loads: a first conversion or download can take many minutes.
DEFAULT_LOAD_TIMEOUT_S = 3600.0
#: How long a worker may take to start (a fresh interpreter importing torch) before its first answer.
DEFAULT_START_TIMEOUT_S = 300.0
#: Log lines quoted in a failure's reason.
TAIL_LINES = 15

_EXECUTABLE_LOCK = threading.Lock()


class WorkerFailed(Exception):
    """A worker died, hung or raised; ``str(error)`` is the reason, fit for a test report."""

    def __init__(self, reason: str, remote_traceback: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        #: The traceback text from the worker, where the request raised there.
        self.remote_traceback = remote_traceback


@functools.cache
def interpreter_sys_path(python: str) -> tuple[str, ...]:
    """``python``'s own ``sys.path`` (asked of the interpreter, in this environment; without the current
    folder entry). Raises :class:`WorkerFailed` when the interpreter cannot run."""
    code = "import json, sys; print(json.dumps(sys.path))"
    try:
        done = subprocess.run([python, "-c", code], capture_output=True, text=True, check=False,
                              cwd=tempfile.gettempdir())  # fmt: skip
    except OSError as error:
        raise WorkerFailed(f"cannot run the interpreter {python}: {error}") from None
    if done.returncode != 0:
        raise WorkerFailed(f"the interpreter {python} failed: {done.stderr.strip()[-500:]}")
    return tuple(p for p in json.loads(done.stdout) if p and p != tempfile.gettempdir())


def _is_this_interpreter(python: str | os.PathLike[str]) -> bool:
    return os.path.realpath(os.fspath(python)) == os.path.realpath(sys.executable)


def _signal_name(exitcode: int) -> str:
    try:
        return signal.Signals(-exitcode).name
    except ValueError:
        return f"signal {-exitcode}"


def pin_threads(pid: int, cpus: frozenset[int]) -> None:
    """Every thread of process ``pid`` on ``cpus`` (Linux: each task under /proc/PID/task; elsewhere the
    process's main thread, where the platform has CPU affinity at all)."""
    tasks = Path(f"/proc/{pid}/task")
    tids = [int(t.name) for t in tasks.iterdir()] if tasks.is_dir() else [pid]
    for tid in tids:
        try:
            os.sched_setaffinity(tid, cpus)
        except ProcessLookupError:  # a thread that ended meanwhile
            continue


class Worker:
    """One worker process serving one (model, precision, device); one request at a time."""

    def __init__(
        self,
        setup: WorkerSetup,
        *,
        python: str | os.PathLike[str] | None = None,
        sys_path: Sequence[str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S,
        start_timeout_s: float = DEFAULT_START_TIMEOUT_S,
    ) -> None:
        """Start the worker process (it imports its libraries before it answers the first request).

        ``python``: another interpreter for the worker; ``sys_path``: the worker's module search path.
        Spawn gives a child the parent's ``sys.path``, so with ``python`` alone the worker gets that
        interpreter's own path (its site-packages, not this one's)."""
        self.setup = setup
        self.timeout_s = timeout_s
        self.load_timeout_s = load_timeout_s
        self.start_timeout_s = start_timeout_s
        self._ready = False
        self.name = "-".join(setup.combination.load_key)
        self._failure: str | None = None
        self._closed = False
        context = multiprocessing.get_context("spawn")
        self._conn, child_conn = context.Pipe()
        self._process = context.Process(
            target=run_worker, args=(child_conn, setup), name=f"llmbench-worker-{self.name}", daemon=True
        )
        if sys_path is None and python is not None and not _is_this_interpreter(python):
            sys_path = interpreter_sys_path(os.fspath(python))
        with _EXECUTABLE_LOCK:  # the spawn executable and sys.path are process-wide state
            previous, previous_path = multiprocessing.spawn.get_executable(), sys.path[:]
            if python is not None:
                context.set_executable(os.fspath(python))
            if sys_path is not None:
                sys.path[:] = list(sys_path)  # spawn hands the child the parent's sys.path at start
            try:
                self._process.start()
            finally:
                context.set_executable(previous)  # type: ignore[arg-type]
                sys.path[:] = previous_path
        child_conn.close()

    @classmethod
    def start(
        cls,
        combination: Combination,
        cache_dir: Path,
        *,
        threads: int | None = None,
        log_dir: Path | None = None,
        python: str | os.PathLike[str] | None = None,
        sys_path: Sequence[str] | None = None,
        timeout_s: float = DEFAULT_TIMEOUT_S,
        load_timeout_s: float = DEFAULT_LOAD_TIMEOUT_S,
    ) -> Worker:
        """A worker for ``combination``'s (model, precision, device), logging under ``log_dir``."""
        log_dir = log_dir or Path(tempfile.gettempdir()) / "llmbench-workers"
        log_dir.mkdir(parents=True, exist_ok=True)
        name = "-".join(combination.load_key)
        fd, log_path = tempfile.mkstemp(prefix=f"{name}-", suffix=".log", dir=log_dir)
        os.close(fd)
        setup = WorkerSetup(combination, cache_dir, threads, Path(log_path))
        return cls(setup, python=python, sys_path=sys_path, timeout_s=timeout_s, load_timeout_s=load_timeout_s)

    @property
    def pid(self) -> int | None:
        return self._process.pid

    @property
    def log_path(self) -> Path:
        return self.setup.log_path

    @property
    def failure(self) -> str | None:
        """Why this worker can no longer answer (it died or hung), or None."""
        return self._failure

    def is_alive(self) -> bool:
        return self._process.is_alive()

    def log_tail(self, lines: int = TAIL_LINES) -> list[str]:
        """The last lines of the worker's stdout and stderr."""
        try:
            text = self.log_path.read_text(errors="replace")
        except OSError:
            return []
        return [line for line in text.splitlines() if line.strip()][-lines:]

    def _with_tail(self, reason: str) -> str:
        tail = self.log_tail()
        if not tail:
            return f"{reason} (its log {self.log_path} is empty)"
        quoted = "\n".join(f"  | {line}" for line in tail)
        return f"{reason}; last lines of its log {self.log_path}:\n{quoted}"

    def _fail(self, reason: str) -> WorkerFailed:
        self._failure = self._with_tail(reason)
        return WorkerFailed(self._failure)

    def _died(self, kind: str) -> WorkerFailed:
        self._process.join(5)
        code = self._process.exitcode
        hint = ""
        if code is None:
            how = "closed its pipe"
        elif code < 0:
            how = f"died with {_signal_name(code)}"
            if code == -signal.SIGKILL:
                hint = " (out of memory? the kernel's OOM killer sends SIGKILL)"
        else:
            how = f"exited with status {code}"
        return self._fail(f"worker for {self.name} {how} during a {kind!r} request{hint}")

    def pin(self, cpus: frozenset[int]) -> None:
        """Every thread of the worker on ``cpus`` from now on (threads it starts later inherit the mask)."""
        if self._process.pid is not None:
            pin_threads(self._process.pid, cpus)

    def kill(self) -> None:
        """End the worker now (SIGKILL) and wait for it."""
        if self._process.is_alive():
            self._process.kill()
        self._process.join(10)

    def request(self, request: Request, timeout_s: float | None = None) -> Reply:
        """Send one request and wait for its reply; raise :class:`WorkerFailed` if none comes or it failed."""
        if self._failure is not None:
            raise WorkerFailed(self._failure)
        if self._closed:
            raise WorkerFailed(f"worker for {self.name} is closed")
        if timeout_s is None:
            long = isinstance(request, Prepare | Load | MeasureLoad)
            timeout_s = self.load_timeout_s if long else self.timeout_s
        if not self._ready:
            hello = self._receive(request.kind, self.start_timeout_s, "start (its first message)")
            if not isinstance(hello, Ready):
                raise self._fail(f"worker for {self.name} started with {hello!r} instead of Ready")
            self._ready = True
        try:
            self._conn.send(request)
        except OSError:
            raise self._died(request.kind) from None
        reply = self._receive(request.kind, timeout_s, f"answer a {request.kind!r} request")
        if isinstance(reply, Failed):
            raise WorkerFailed(
                f"worker for {self.name}: {reply.error_type}: {reply.message} (in a {request.kind!r} request)",
                remote_traceback=reply.traceback,
            )
        return reply

    def _receive(self, kind: str, timeout_s: float, what: str) -> Reply:
        """The next message, or :class:`WorkerFailed` if the worker dies or is silent for ``timeout_s``."""
        ready = multiprocessing.connection.wait([self._conn, self._process.sentinel], timeout_s)
        if not ready:
            self.kill()
            raise self._fail(f"worker for {self.name} did not {what} within {timeout_s:g} s (hung?) and was killed")
        if not self._conn.poll():
            raise self._died(kind)
        try:
            reply: Reply = self._conn.recv()
        except (EOFError, OSError):
            raise self._died(kind) from None
        return reply

    def close(self, timeout_s: float = 30.0) -> None:
        """Ask the worker to free its model and exit; kill it if it does not. Idempotent."""
        if self._closed:
            return
        self._closed = True
        if self._failure is None and self._process.is_alive():
            try:
                self._conn.send(Close())
                if self._conn.poll(timeout_s):
                    self._conn.recv()
            except (OSError, EOFError):
                pass
            self._process.join(timeout_s)
        self.kill()
        self._conn.close()


class WorkerModel:
    """A model loaded in a worker, usable as a :class:`llmbench.backends.LoadedModel` (made by
    :class:`llmbench.workers.launch.WorkerLauncher`).

    ``generate`` runs untimed in the worker; :meth:`timed_generate` runs one measured round there.
    """

    def __init__(self, worker: Worker, loaded: Loaded) -> None:
        self.worker = worker
        self.load_s = loaded.load_s
        self.facts = loaded.facts

    @property
    def combination_key(self) -> tuple[str, str, str]:
        return self.facts.combination_key

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        reply = self.worker.request(Generate(tuple(prompts), max_new_tokens))
        assert isinstance(reply, Generated), reply
        return reply.generation

    def timed_generate(self, prompts: Sequence[str], max_new_tokens: int) -> TimedRound:
        """One round measured in the worker: its seconds, memory reading and generation."""
        reply = self.worker.request(TimedGenerate(tuple(prompts), max_new_tokens))
        assert isinstance(reply, TimedRound), reply
        return reply

    def measure_load(self) -> LoadMeasured:
        """Load (and free) another copy in the worker, timed and with its memory reading."""
        reply = self.worker.request(MeasureLoad())
        assert isinstance(reply, LoadMeasured), reply
        return reply

    def build_prompts(
        self, texts: Sequence[str], length: int, count: int, template: str, max_new_tokens: int
    ) -> tuple[BuiltPrompt, ...]:
        """Prompts of ``length`` tokens built in the worker with the model's tokenizer
        (:func:`llmbench.data.long_prompts.prompts_for_model`); :class:`PromptLengthError` with the reason
        where they cannot be."""
        reply = self.worker.request(BuildPrompts(tuple(texts), length, count, template, max_new_tokens))
        if isinstance(reply, Unavailable):
            raise PromptLengthError(reply.reason)
        assert isinstance(reply, PromptsBuilt), reply
        return reply.prompts

    def weight_bytes(self) -> int:
        return self.facts.weight_bytes

    def file_bytes(self) -> int | None:
        return self.facts.file_bytes

    def kv_cache_layout(self) -> KVLayout | None:
        return self.facts.kv_cache_layout

    def pin(self, cpus: frozenset[int]) -> None:
        """Every thread of the worker on ``cpus`` (``llmbench ab --duet``)."""
        self.worker.pin(cpus)

    def close(self) -> None:
        self.worker.close()
