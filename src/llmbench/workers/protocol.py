"""The messages between a parent and a model worker: plain picklable frozen dataclasses.

The parent sends one request at a time over a ``multiprocessing`` Pipe and waits for its reply;
every request gets exactly one reply, or a :class:`Failed` when it raised in the worker. The worker
first sends :class:`Ready` unasked, once it has started. The
order is ``Prepare`` (optional), ``Load``, then any number of ``TimedGenerate``, ``Generate``,
``MeasureLoad`` and ``BuildPrompts``, then ``Close``. See docs/isolation.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from llmbench.config.combination import Combination
from llmbench.data.long_prompts import BuiltPrompt
from llmbench.engine_types import Generation, KVLayout
from llmbench.measure.memory import MemoryReading
from llmbench.metrics import Metric

LoadKey = tuple[str, str, str]


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker is started with: the one (model, precision, device) it serves."""

    combination: Combination
    cache_dir: Path
    #: CPU threads for torch and llama.cpp (None: the libraries' defaults).
    threads: int | None
    #: Where the worker writes its stdout and stderr (and a traceback if it crashes).
    log_path: Path


# ------------------------------------------------------------------------------------- requests


@dataclass(frozen=True)
class Prepare:
    """Make the weights local (assemble, convert or download once), outside any timed load.

    Replies :class:`Prepared` or :class:`Unavailable`."""

    kind: ClassVar[str] = "prepare"


@dataclass(frozen=True)
class Load:
    """Load the model and keep it; timed in the worker. Replies :class:`Loaded` or :class:`Unavailable`."""

    kind: ClassVar[str] = "load"


@dataclass(frozen=True)
class TimedGenerate:
    """One timed round: ``generate`` inside the memory probe (peak reset first) and the clock."""

    prompts: tuple[str, ...]
    max_new_tokens: int
    kind: ClassVar[str] = "timed_generate"


@dataclass(frozen=True)
class Generate:
    """An untimed ``generate`` (quality passes). Replies :class:`Generated`."""

    prompts: tuple[str, ...]
    max_new_tokens: int
    kind: ClassVar[str] = "generate"


@dataclass(frozen=True)
class MeasureLoad:
    """Load a second copy of the model inside the memory probe and the clock, then free it."""

    kind: ClassVar[str] = "measure_load"


@dataclass(frozen=True)
class BuildPrompts:
    """Prompts of ``length`` tokens of the loaded model's tokenizer (:mod:`llmbench.data.long_prompts`).

    Replies :class:`PromptsBuilt`, or :class:`Unavailable` with the reason where they cannot be built
    (beyond the model's trained context, no tokenizer)."""

    texts: tuple[str, ...]
    length: int
    count: int
    template: str
    max_new_tokens: int
    kind: ClassVar[str] = "build_prompts"


@dataclass(frozen=True)
class Close:
    """Free the model and end the worker. Replies :class:`Closed`."""

    kind: ClassVar[str] = "close"


Request = Prepare | Load | TimedGenerate | Generate | MeasureLoad | BuildPrompts | Close

# --------------------------------------------------------------------------------------- replies


@dataclass(frozen=True)
class MemoryFigures(MemoryReading):
    """A memory reading taken in the worker, as plain data (the probe's figures and metrics)."""

    peak: int
    before: int
    after: int
    figures: tuple[Metric, ...]

    @classmethod
    def of(cls, reading: MemoryReading) -> MemoryFigures:
        return cls(reading.peak_bytes(), reading.before_bytes(), reading.after_bytes(), tuple(reading.metrics()))

    def peak_bytes(self) -> int:
        return self.peak

    def before_bytes(self) -> int:
        return self.before

    def after_bytes(self) -> int:
        return self.after

    def metrics(self) -> list[Metric]:
        return list(self.figures)


@dataclass(frozen=True)
class ModelFacts:
    """What the parent needs to know of the loaded model without asking again."""

    combination_key: LoadKey
    weight_bytes: int
    file_bytes: int | None
    kv_cache_layout: KVLayout | None


@dataclass(frozen=True)
class Ready:
    """Sent once, unasked, when the worker has started and imported its libraries."""

    pid: int
    python: str


@dataclass(frozen=True)
class Prepared:
    seconds: float


@dataclass(frozen=True)
class Loaded:
    """The model is loaded: ``load_s`` from nothing in memory to ready on its device."""

    load_s: float
    facts: ModelFacts


@dataclass(frozen=True)
class Unavailable:
    """The backend found, preparing or loading, that the combination cannot run here (a skip)."""

    reason: str


@dataclass(frozen=True)
class TimedRound:
    """One timed ``generate``: wall-clock seconds around the probed call, as the worker measured them."""

    generation: Generation
    seconds: float
    memory: MemoryFigures


@dataclass(frozen=True)
class Generated:
    generation: Generation


@dataclass(frozen=True)
class LoadMeasured:
    """One timed extra load: its seconds and the memory it added (the copy is freed again)."""

    seconds: float
    memory: MemoryFigures


@dataclass(frozen=True)
class PromptsBuilt:
    prompts: tuple[BuiltPrompt, ...]


@dataclass(frozen=True)
class Closed:
    pass


@dataclass(frozen=True)
class Failed:
    """The request raised in the worker: the exception's type, message and traceback text."""

    error_type: str
    message: str
    traceback: str


Reply = Ready | Prepared | Loaded | Unavailable | TimedRound | Generated | LoadMeasured | PromptsBuilt | Closed | Failed
