"""Known faults injected into one side of a comparison, to show what the harness catches (docs/fault-injection.md).

A fault is asked for in the environment of the processes it should change, never in production code::

    LLMBENCH_FAULTS="decode_slow=0.05"  PYTHONPATH=<SITE_DIR>  pytest benchmarks ...
    llmbench ab main main --head-env "LLMBENCH_FAULTS=decode_slow=0.05" --head-env "PYTHONPATH=<SITE_DIR>" -- ...

:data:`SITE_DIR` holds a ``sitecustomize`` module: an interpreter that has it on its path at start loads
this file (by its path, under a private name: it never imports ``llmbench``, so an A/B side's worker still
imports its own checkout) and, where :data:`ENV` asks for faults, patches the libraries as they are imported.
Model workers inherit the environment; :func:`environment` and :func:`ab_side_options` build it.

:data:`ENV` is a comma-separated list of ``NAME=VALUE`` entries (:func:`parse_faults`):

- ``slow=SHARE``, ``prefill_slow=SHARE``, ``decode_slow=SHARE`` (0 to 10): each step of the engine takes
  SHARE of its own duration longer, both steps, the prompt's only, or the generated tokens' only. The step is
  llama.cpp's ``llama_decode`` call (a batch of more than one token is the prompt) and a transformers
  model's ``forward`` (the first call of each ``generate``, and an encoder-decoder's encoder, are the prompt).
  The wait follows the step inside the timed call, and llama.cpp's own counters (``llama_perf_context``)
  include it, as they would for a slower engine.
- ``hold_mib=N``, ``hold_share=SHARE`` (0 to 10): once a model is loaded (``llama_cpp.Llama`` or a
  transformers ``from_pretrained``), the process allocates N MiB, or SHARE of its resident memory at that
  moment, writes every page (so it is resident) and holds it: every later peak RSS is that much higher.
- ``degrade=SHARE`` (0 to 1): a deterministic SHARE of items get damaged outputs: an item is damaged when a
  hash of its prompt falls below SHARE, the same items on every run; its text becomes as many filler words
  as it had words and its token ids are reversed (ROUGE and accuracy drop; token counts and timing stay).
- ``kill=REQUEST[:KEY]``, ``raise=REQUEST[:KEY]``, ``hang=REQUEST[:KEY]`` (repeatable): a model worker
  fails on purpose on a request of that kind (``prepare``, ``load``, ``timed_generate``, ..., or ``*``),
  in every worker or the one whose KEY (``model-precision-device``) is given: SIGKILL (as the OOM killer
  would), a RuntimeError, or no answer at all.
- ``clock=fixed`` (model workers only): a controlled clock for deterministic tests. ``time.perf_counter``
  of the worker moves only when the engine runs a step: :data:`FIXED_PREFILL_S` per prompt step,
  :data:`FIXED_DECODE_S` per generated-token step (times ``1 + SHARE`` where a slow fault applies), so every
  timed figure comes from these durations and not from the machine. ``memory=fixed`` (model workers only)
  reports every timed round's memory figures as :data:`FIXED_MEMORY_BYTES` plus what ``hold_*`` holds.

:data:`RECORD_ENV` names a file to which each faulted process appends, at exit, one JSON line of what it
did (:func:`read_records`): steps seen and seconds added per kind, bytes held, items damaged.
"""

from __future__ import annotations

import atexit
import dataclasses
import functools
import hashlib
import importlib.abc
import importlib.machinery
import json
import os
import signal
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Any, Literal

__all__ = [
    "ENV",
    "FIXED_DECODE_S",
    "FIXED_MEMORY_BYTES",
    "FIXED_PREFILL_S",
    "RECORD_ENV",
    "SITE_DIR",
    "FaultSpecError",
    "Faults",
    "WorkerFault",
    "ab_side_options",
    "environment",
    "install",
    "parse_faults",
    "read_records",
]

#: The environment variable that asks for faults (see the module docstring).
ENV = "LLMBENCH_FAULTS"
#: The environment variable naming the file each faulted process appends its record to.
RECORD_ENV = "LLMBENCH_FAULTS_RECORD"
#: The folder to put on an interpreter's PYTHONPATH: its ``sitecustomize`` installs the faults at start.
SITE_DIR = Path(__file__).resolve().parent / "faults_site"
#: ``clock=fixed``: a prompt step's duration, a generated token's step, and ``memory=fixed``'s figure.
FIXED_PREFILL_S = 0.1
FIXED_DECODE_S = 0.01
FIXED_MEMORY_BYTES = 400 * 2**20
MiB = 2**20
WORKER_ACTIONS = ("kill", "raise", "hang")
_SHARES = {"slow": 10.0, "prefill_slow": 10.0, "decode_slow": 10.0, "hold_share": 10.0, "degrade": 1.0}
_NAMES = (*_SHARES, "hold_mib", "clock", "memory", *WORKER_ACTIONS)
#: A damaged item's text is this word, as many times as the item's text had words.
FILLER = "lorem"
StepKind = Literal["prefill", "decode"]


class FaultSpecError(ValueError):
    """A fault specification that cannot be read; the message names the entry, the value and what is allowed."""


@dataclass(frozen=True)
class WorkerFault:
    """A model worker fails on purpose: ``action`` on a request of kind ``request`` (or ``*``), in the worker
    whose key is ``key`` (``model-precision-device``; empty: every worker)."""

    action: Literal["kill", "raise", "hang"]
    request: str
    key: str = ""

    def applies(self, request_kind: str, key: str) -> bool:
        return self.request in (request_kind, "*") and self.key in ("", key)


@dataclass(frozen=True)
class Faults:
    """What to inject (all off by default); :meth:`spec` gives the text :func:`parse_faults` reads back."""

    prefill_slow: float = 0.0
    decode_slow: float = 0.0
    hold_mib: int = 0
    hold_share: float = 0.0
    degrade: float = 0.0
    clock: Literal["real", "fixed"] = "real"
    memory: Literal["real", "fixed"] = "real"
    worker: tuple[WorkerFault, ...] = ()

    def slow(self, kind: StepKind) -> float:
        return self.prefill_slow if kind == "prefill" else self.decode_slow

    @property
    def active(self) -> bool:
        return self != Faults()

    def spec(self) -> str:
        shares = ("prefill_slow", "decode_slow", "hold_share", "degrade")
        entries = [f"{name}={getattr(self, name)!r}" for name in shares if getattr(self, name)]
        entries += [f"hold_mib={self.hold_mib}"] if self.hold_mib else []
        entries += [f"{name}=fixed" for name in ("clock", "memory") if getattr(self, name) == "fixed"]
        entries += [f"{f.action}={f.request}{':' + f.key if f.key else ''}" for f in self.worker]
        return ",".join(entries)


def _share(name: str, value: str, origin: str) -> float:
    top = _SHARES[name]
    try:
        share = float(value)
    except ValueError:
        share = -1.0
    if not 0 <= share <= top:
        raise FaultSpecError(f"{origin}: {name} must be a share from 0 to {top:g} (0.05 is 5%), not {value!r}")
    return share


def parse_faults(text: str, origin: str = ENV) -> Faults:
    """The faults ``text`` asks for (see the module docstring); :class:`FaultSpecError` for a bad entry."""
    fields: dict[str, Any] = {}
    given: set[str] = set()
    worker: list[WorkerFault] = []
    for entry in filter(None, (part.strip() for part in text.split(","))):
        name, equals, value = (part.strip() for part in entry.partition("="))
        if name not in _NAMES or not equals:
            raise FaultSpecError(f"{origin}: entry {entry!r} must be NAME=VALUE with NAME one of {', '.join(_NAMES)}")
        if name in WORKER_ACTIONS:
            request, _, key = value.partition(":")
            if not request:
                raise FaultSpecError(f"{origin}: {entry!r} must be {name}=REQUEST[:KEY] (a request kind such as "
                                     "load or timed_generate, or *)")  # fmt: skip
            worker.append(WorkerFault(name, request, key))  # type: ignore[arg-type]
            continue
        if (
            name in given
            or (name == "slow" and {"prefill_slow", "decode_slow"} & given)
            or (name in ("prefill_slow", "decode_slow") and "slow" in given)
        ):
            raise FaultSpecError(f"{origin}: {name} is given twice (in {text!r})")
        given.add(name)
        if name == "hold_mib":
            if not value.isdigit():
                raise FaultSpecError(f"{origin}: hold_mib must be a whole number of MiB, not {value!r}")
            fields[name] = int(value)
        elif name in ("clock", "memory"):
            if value not in ("real", "fixed"):
                raise FaultSpecError(f"{origin}: {name} must be real or fixed, not {value!r}")
            fields[name] = value
        elif name == "slow":
            fields["prefill_slow"] = fields["decode_slow"] = _share(name, value, origin)
        else:
            fields[name] = _share(name, value, origin)
    if fields.get("hold_mib") and fields.get("hold_share"):
        raise FaultSpecError(f"{origin}: give hold_mib or hold_share, not both (in {text!r})")
    return Faults(**fields, worker=tuple(worker))


def environment(faults: Faults | str, record: Path | None = None,
                base: Mapping[str, str] | None = None) -> dict[str, str]:  # fmt: skip
    """The variables that give a process (and its model workers) ``faults``: :data:`ENV`, PYTHONPATH with
    :data:`SITE_DIR` first (after ``base``'s own PYTHONPATH, ``os.environ`` by default), and :data:`RECORD_ENV`
    where ``record`` is given. Merge them into the process's environment."""
    spec = faults.spec() if isinstance(faults, Faults) else parse_faults(faults).spec()
    base = os.environ if base is None else base
    path = os.pathsep.join(filter(None, [str(SITE_DIR), base.get("PYTHONPATH", "")]))
    env = {ENV: spec, "PYTHONPATH": path}
    if record is not None:
        env[RECORD_ENV] = str(record)
    return env


def ab_side_options(
    faults: Faults | str, side: Literal["base", "head"] = "head", record: Path | None = None
) -> list[str]:
    """``llmbench ab`` options that give one side's workers ``faults`` (``--head-env KEY=VALUE`` ...)."""
    return [item for key, value in environment(faults, record).items() for item in (f"--{side}-env", f"{key}={value}")]


def read_records(path: Path) -> list[dict[str, Any]]:
    """The records faulted processes appended to ``path`` (:data:`RECORD_ENV`), one per process."""
    if not path.exists():
        return []
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# --------------------------------------------------------------------------------------------------
# What runs in the faulted process


@dataclass
class _State:
    faults: Faults
    #: Steps seen and seconds added, per kind.
    steps: dict[str, int] = field(default_factory=lambda: {"prefill": 0, "decode": 0})
    added_s: dict[str, float] = field(default_factory=lambda: {"prefill": 0.0, "decode": 0.0})
    held: list[bytearray] = field(default_factory=list)
    items: int = 0
    damaged: int = 0
    #: The fixed clock's time, where it runs (None: the real clock).
    now: float | None = None
    #: llama.cpp context -> seconds added per kind since its counters were reset.
    engine_added: dict[Any, dict[str, float]] = field(default_factory=dict)
    #: llama.cpp context -> fixed-clock seconds per kind since its counters were reset.
    engine_fixed: dict[Any, dict[str, float]] = field(default_factory=dict)
    #: The transformers model whose forward calls are in a generate's first (prompt) step.
    first_forward: set[int] = field(default_factory=set)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def record(self) -> dict[str, Any]:
        return {
            "pid": os.getpid(), "faults": self.faults.spec(), "clock": "fixed" if self.now is not None else "real",
            "prefill_steps": self.steps["prefill"], "decode_steps": self.steps["decode"],
            "prefill_added_s": self.added_s["prefill"], "decode_added_s": self.added_s["decode"],
            "held_bytes": sum(len(block) for block in self.held), "items": self.items, "damaged": self.damaged,
        }  # fmt: skip


_state: _State | None = None
_real_perf_counter = time.perf_counter


def _wait(seconds: float) -> None:
    """Wait ``seconds`` exactly on the real clock: sleep the bulk, then spin (a sleep overshoots)."""
    deadline = _real_perf_counter() + seconds
    if seconds > 0.002:
        time.sleep(seconds - 0.001)
    while _real_perf_counter() < deadline:
        pass


def _step(state: _State, kind: StepKind, call: Callable[[], Any], context: Any = None) -> Any:
    """Run one engine step of ``kind``, slowed by its share (on the fixed clock: its fixed duration)."""
    share = state.faults.slow(kind)
    if state.now is not None:
        result = call()
        base = FIXED_PREFILL_S if kind == "prefill" else FIXED_DECODE_S
        state.now += base * (1 + share)
        extra = base * share
        if context is not None:
            fixed = state.engine_fixed.setdefault(context, {"prefill": 0.0, "decode": 0.0})
            fixed[kind] += base * (1 + share)
    else:
        started = _real_perf_counter()
        result = call()
        extra = share * (_real_perf_counter() - started)
        if extra > 0:
            _wait(extra)
    state.steps[kind] += 1
    state.added_s[kind] += extra
    if context is not None and extra:
        added = state.engine_added.setdefault(context, {"prefill": 0.0, "decode": 0.0})
        added[kind] += extra
    return result


def _hold(state: _State) -> None:
    """Allocate and write what ``hold_*`` asks for, once per process (right after the first load)."""
    faults = state.faults
    if state.held or not (faults.hold_mib or faults.hold_share):
        return
    size = faults.hold_mib * MiB
    if faults.hold_share:
        import psutil  # imported here: a process without hold_share never needs it

        size = int(faults.hold_share * psutil.Process().memory_info().rss)
    if size > 0:
        block = bytearray(size)
        block[::4096] = b"\x01" * len(range(0, size, 4096))  # write every page: resident, not just reserved
        state.held.append(block)


def damaged(prompt: str, share: float) -> bool:
    """Whether ``degrade=share`` damages the item whose prompt is ``prompt`` (the same answer on every run)."""
    digest = int.from_bytes(hashlib.sha256(prompt.encode("utf-8")).digest()[:8], "big")
    return digest / 2**64 < share


def _degrade(state: _State, prompts: Sequence[str], generation: Any) -> Any:
    share = state.faults.degrade
    texts, ids = list(generation.texts), list(generation.token_ids)
    for i, prompt in enumerate(prompts):
        state.items += 1
        if damaged(prompt, share):
            state.damaged += 1
            texts[i] = " ".join([FILLER] * max(len(texts[i].split()), 1))
            if i < len(ids):
                ids[i] = tuple(reversed(ids[i]))
    return dataclasses.replace(generation, texts=tuple(texts), token_ids=tuple(ids))


def _context_key(ctx: Any) -> Any:
    return getattr(ctx, "value", ctx)


def _patch_llama_cpp(state: _State, package: ModuleType) -> None:
    """The engine step (``llama_decode``), its counters (``llama_perf_context``) and the load (``Llama``)."""
    module = package.llama_cpp
    decode, perf, reset = module.llama_decode, module.llama_perf_context, module.llama_perf_context_reset

    def llama_decode(ctx: Any, batch: Any) -> Any:
        kind: StepKind = "prefill" if int(batch.n_tokens) > 1 else "decode"
        return _step(state, kind, lambda: decode(ctx, batch), _context_key(ctx))

    def llama_perf_context(ctx: Any) -> Any:
        data = perf(ctx)
        key = _context_key(ctx)
        if state.now is not None:
            fixed = state.engine_fixed.get(key, {"prefill": 0.0, "decode": 0.0})
            data.t_p_eval_ms, data.t_eval_ms = fixed["prefill"] * 1e3, fixed["decode"] * 1e3
        else:
            added = state.engine_added.get(key, {"prefill": 0.0, "decode": 0.0})
            data.t_p_eval_ms += added["prefill"] * 1e3
            data.t_eval_ms += added["decode"] * 1e3
        return data

    def llama_perf_context_reset(ctx: Any) -> Any:
        state.engine_added.pop(_context_key(ctx), None)
        state.engine_fixed.pop(_context_key(ctx), None)
        return reset(ctx)

    targets: tuple[Any, ...] = (module, package)
    for target in targets:
        target.llama_decode = llama_decode
        target.llama_perf_context = llama_perf_context
        target.llama_perf_context_reset = llama_perf_context_reset
    llama = package.Llama
    init = llama.__init__

    @functools.wraps(init)
    def loaded(self: Any, *args: Any, **kwargs: Any) -> None:
        init(self, *args, **kwargs)
        _hold(state)

    llama.__init__ = loaded


def _wrap_forward(state: _State, module: Any, first_is_prefill: bool) -> None:
    forward = module.forward

    def timed_forward(*args: Any, **kwargs: Any) -> Any:
        kind: StepKind = "decode"
        if not first_is_prefill or id(module) in state.first_forward:
            state.first_forward.discard(id(module))
            kind = "prefill"
        return _step(state, kind, lambda: forward(*args, **kwargs))

    module.forward = timed_forward


def _patch_transformers(state: _State, modeling_utils: ModuleType) -> None:
    """The engine step (the loaded model's ``forward``) and the load (``from_pretrained``)."""
    pretrained = modeling_utils.PreTrainedModel
    original = pretrained.__dict__["from_pretrained"].__func__

    def from_pretrained(cls: Any, *args: Any, **kwargs: Any) -> Any:
        model = original(cls, *args, **kwargs)
        # Only a model that generates has an engine step to slow: an encoder loaded beside it (the MiniLM of the
        # semantic similarity, a BertModel) has no ``generate`` to hook, and is left as it is.
        can_generate = getattr(model, "can_generate", None)
        generates = callable(can_generate) and bool(can_generate())
        if generates and (state.faults.prefill_slow or state.faults.decode_slow or state.now is not None):
            _wrap_forward(state, model, first_is_prefill=True)
            encoder = model.get_encoder() if getattr(model.config, "is_encoder_decoder", False) else None
            if encoder is not None and encoder is not model:
                _wrap_forward(state, encoder, first_is_prefill=False)
            generate = model.generate

            def first_step_is_prefill(*args: Any, **kwargs: Any) -> Any:
                state.first_forward.add(id(model))
                return generate(*args, **kwargs)

            model.generate = first_step_is_prefill
        _hold(state)
        return model

    pretrained.from_pretrained = classmethod(from_pretrained)


def _patch_backend(state: _State, backend: ModuleType, class_name: str) -> None:
    """``degrade``: the outputs of an llmbench backend's loaded model."""
    model_class = getattr(backend, class_name)
    generate = model_class.generate

    @functools.wraps(generate)
    def degraded(self: Any, prompts: Sequence[str], max_new_tokens: int) -> Any:
        return _degrade(state, prompts, generate(self, prompts, max_new_tokens))

    model_class.generate = degraded


def _fail_on_purpose(fault: WorkerFault, request_kind: str) -> None:
    said = f"llmbench.testing.faults: {ENV} asks for {fault.action!r} on a {request_kind!r} request"
    print(said, file=sys.stderr, flush=True)
    if fault.action == "kill":
        os.kill(os.getpid(), signal.SIGKILL)
    if fault.action == "hang":
        while True:
            time.sleep(60)
    raise RuntimeError(said)


def _fixed_perf_counter() -> float:
    now = _state.now if _state is not None else None
    assert now is not None, "the fixed clock runs only once installed"
    return now


def _patch_worker(state: _State, serve: ModuleType) -> None:
    """Worker faults, and the fixed clock and memory figures, in a model worker's request handler."""
    server = serve.ModelServer
    handle = server.handle

    @functools.wraps(handle)
    def faulted(self: Any, request: Any) -> Any:
        key = "-".join(self.setup.combination.load_key)
        for fault in state.faults.worker:
            if fault.applies(request.kind, key):
                _fail_on_purpose(fault, request.kind)
        if state.faults.clock == "fixed" and state.now is None:
            state.now = 1000.0
            time.perf_counter = _fixed_perf_counter
        reply = handle(self, request)
        if state.faults.memory == "fixed" and type(reply).__name__ == "TimedRound":
            fixed = FIXED_MEMORY_BYTES + sum(len(block) for block in state.held)
            figures = tuple(dataclasses.replace(m, value=float(fixed)) for m in reply.memory.figures)
            reply = dataclasses.replace(reply, memory=serve.MemoryFigures(fixed, fixed, fixed, figures))
        return reply

    server.handle = faulted


def _patches(faults: Faults) -> dict[str, Callable[[_State, ModuleType], None]]:
    """Module name -> the patch applied once it is imported."""
    patches: dict[str, Callable[[_State, ModuleType], None]] = {}
    engine = (
        faults.prefill_slow or faults.decode_slow or faults.clock == "fixed" or faults.hold_mib or faults.hold_share
    )
    if engine:
        patches["llama_cpp"] = _patch_llama_cpp
        patches["transformers.modeling_utils"] = _patch_transformers
    if faults.degrade:
        patches["llmbench.backends.llama_cpp_backend"] = lambda s, m: _patch_backend(s, m, "LlamaCppModel")
        patches["llmbench.backends.transformers_backend"] = lambda s, m: _patch_backend(s, m, "TransformersModel")
    if faults.worker or faults.clock == "fixed" or faults.memory == "fixed":
        patches["llmbench.workers.serve"] = _patch_worker
    return patches


class _PatchingLoader(importlib.abc.Loader):
    """Runs a module's own loader, then its patch."""

    def __init__(self, loader: Any, patch: Callable[[ModuleType], None]) -> None:
        self._loader = loader
        self._patch = patch

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType | None:
        module: ModuleType | None = self._loader.create_module(spec)
        return module

    def exec_module(self, module: ModuleType) -> None:
        self._loader.exec_module(module)
        self._patch(module)

    def __getattr__(self, name: str) -> Any:  # get_resource_reader, is_package, get_source, ...
        return getattr(self._loader, name)


class _Finder(importlib.abc.MetaPathFinder):
    """Finds the patched modules through the other finders and hands them a :class:`_PatchingLoader`."""

    def __init__(self, state: _State, patches: Mapping[str, Callable[[_State, ModuleType], None]]) -> None:
        self._state = state
        self._patches = dict(patches)

    def find_spec(self, fullname: str, path: Sequence[str] | None, target: ModuleType | None = None) -> Any:
        # Not consumed here: importlib.util.find_spec asks without importing (llama_cpp_native does).
        patch = self._patches.get(fullname)
        if patch is None:
            return None
        for finder in sys.meta_path:
            if finder is self or not hasattr(finder, "find_spec"):
                continue
            spec = finder.find_spec(fullname, path, target)
            if spec is not None and spec.loader is not None:
                spec.loader = _PatchingLoader(spec.loader, functools.partial(self._apply, fullname))
                return spec
        return None

    def _apply(self, fullname: str, module: ModuleType) -> None:
        patch = self._patches.pop(fullname, None)
        if patch is not None:
            patch(self._state, module)


def _write_record(state: _State) -> None:
    """Append this process's record to :data:`RECORD_ENV`'s file, where the faults did something here (not in
    the helper processes that inherit the environment too, such as multiprocessing's resource tracker)."""
    path = os.environ.get(RECORD_ENV)
    record = state.record()
    if not path or not any(record[key] for key in ("prefill_steps", "decode_steps", "held_bytes", "items")):
        return
    try:
        with open(path, "a") as file:  # one short line per process: appends do not interleave
            file.write(json.dumps(record) + "\n")
    except OSError as error:
        print(f"llmbench.testing.faults: cannot write the record {RECORD_ENV}={path}: {error}", file=sys.stderr)


def install(faults: Faults | None = None) -> Faults:
    """Install ``faults`` (read from :data:`ENV` when None) in this process: modules not imported yet are
    patched when they are, those already imported at once. Once per process; returns what is installed."""
    global _state
    if _state is not None:
        return _state.faults
    faults = parse_faults(os.environ.get(ENV, "")) if faults is None else faults
    state = _State(faults)
    _state = state
    if not faults.active:
        return faults
    patches = _patches(faults)
    for name in list(patches):
        if name in sys.modules:
            patches.pop(name)(state, sys.modules[name])
    sys.meta_path.insert(0, _Finder(state, patches))
    atexit.register(_write_record, state)
    return faults


def install_from_site() -> None:
    """What ``sitecustomize`` calls: install :data:`ENV`'s faults; a bad value stops the interpreter (status 2)."""
    try:
        install()
    except FaultSpecError as error:
        print(f"llmbench.testing.faults: {error}", file=sys.stderr, flush=True)
        os._exit(2)
