"""The one interface every model backend implements."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

from llmbench.config.combination import Combination, ModelSpec

BLANK_LINE = "\n\n"


def cut_at_blank_line(text: str) -> str:
    """``text`` up to its first blank line after the first non-blank text, stripped.

    Leading blank lines do not count: a base model may start its answer on a new line.
    """
    return text.strip().split(BLANK_LINE, 1)[0].strip()


def has_blank_line_after_text(text: str) -> bool:
    """Whether ``text`` holds a blank line after some non-blank text (where generation stops)."""
    return BLANK_LINE in text.lstrip()


class BackendUnavailable(Exception):
    """The combination cannot run here (missing library, hardware or weights): a skip, not an error."""


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


class Backend(Protocol):
    name: str

    def unavailable_reason(self, spec: ModelSpec, precision: str, device: str) -> str | None:
        """Why this combination cannot run here, or None. Cheap: called at collection."""
        ...

    def prepare(self, combination: Combination, cache_dir: Path) -> None:
        """Make the weights local (assemble, convert or download once) so that ``load`` times only loading."""
        ...

    def load(self, combination: Combination, cache_dir: Path) -> LoadedModel:
        """Load the model; raise :class:`BackendUnavailable` for a reason found only when loading."""
        ...
