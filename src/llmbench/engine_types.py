"""What the backends and the measurement share: a generation's record, the KV cache layout, the loaded-model
interface and the timer interface.

The bottom of the two: :mod:`llmbench.backends` produces these, :mod:`llmbench.measure` reads them and
implements the timers (one per device kind, :mod:`llmbench.measure.timers`). A backend is handed its
device's :class:`Timer` by whoever loads the model (the session's loader, a worker, the self-check);
it never imports the measurement. Nothing here imports more than the standard library.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from contextlib import AbstractContextManager
from dataclasses import dataclass
from typing import Protocol

__all__ = ["Generation", "KVLayout", "LoadedModel", "ReadingNotFinished", "TimeReading", "Timer"]


@dataclass(frozen=True)
class Generation:
    """What one ``generate`` call on a batch produced.

    ``step_times_s`` are the times, in seconds after the call started, at which each decoding
    step's tokens were ready (step 0 is the first generated token: prefill included). For a backend
    that runs a batch sequentially (llama.cpp), ``sequence_step_times_s`` holds one such list per
    sequence and ``step_times_s`` is empty.
    """

    texts: tuple[str, ...]
    prompt_tokens: tuple[int, ...]
    generated_tokens: tuple[int, ...]
    #: The token ids generated for each sequence (after the prompt, before text clean-up).
    token_ids: tuple[tuple[int, ...], ...]
    step_times_s: tuple[float, ...] = ()
    sequence_step_times_s: tuple[tuple[float, ...], ...] = ()
    #: How the batch was run: "batched" (one padded forward per step) or "sequential".
    batch_mode: str = "batched"
    #: Per sequence, the engine's own account of its decode (tokens after the first, seconds): the
    #: decode steps alone, without the Python loop around them. Empty where the backend cannot tell.
    engine_decode: tuple[tuple[int, float], ...] = ()
    #: How ``engine_decode`` was measured, for the metric's note.
    engine_clock: str = ""


@dataclass(frozen=True)
class KVLayout:
    """What the KV cache of a decoder holds per token, from the model config.

    Bytes per token = 2 (K and V) x layers x kv_heads x head_dim x bytes_per_element; layers with
    sliding-window attention keep at most ``sliding_window`` tokens.
    """

    layers: int
    kv_heads: int
    head_dim: int
    bytes_per_element: int
    sliding_window: int | None = None
    sliding_layers: int = 0


class LoadedModel(Protocol):
    """A model ready on its device."""

    @property
    def combination_key(self) -> tuple[str, str, str]: ...

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        """Greedy generation for a batch of already formatted prompts."""
        ...

    def weight_bytes(self) -> int:
        """Bytes held by the loaded weights (quantized storage counted as stored)."""
        ...

    def file_bytes(self) -> int | None:
        """Bytes of the weight files on disk, where known."""
        ...

    def kv_cache_layout(self) -> KVLayout | None:
        """The KV cache layout from the config, or None where the config does not say."""
        ...

    def close(self) -> None:
        """Release the weights (and device memory) now."""
        ...


class ReadingNotFinished(RuntimeError):
    """A reading was read inside its ``with`` block."""

    def __init__(self, what: str) -> None:
        super().__init__(f"{what} can be read only after its `with` block has ended")


class TimeReading(ABC):
    """The elapsed time of one ``with timer.measure()`` block, and the marks taken inside it."""

    @abstractmethod
    def mark(self) -> None:
        """Take a timestamp now (e.g. when a token is ready)."""

    @abstractmethod
    def seconds(self) -> float:
        """Seconds from the start to the end of the block."""

    @abstractmethod
    def marks_s(self) -> tuple[float, ...]:
        """Seconds from the start of the block to each :meth:`mark`, in order."""


class Timer(ABC):
    """Times a block of code on one device (implementations: :mod:`llmbench.measure.timers`)."""

    @abstractmethod
    def measure(self) -> AbstractContextManager[TimeReading]:
        """A context manager; its reading can be read after the block."""
