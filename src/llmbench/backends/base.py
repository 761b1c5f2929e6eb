"""The one interface every model backend implements.

What a backend produces and the measurement reads (:class:`Generation`, :class:`KVLayout`,
:class:`LoadedModel`) lives in :mod:`llmbench.engine_types` and is importable from here too (a worker
of an older version pickles a ``Generation`` under this module's name).
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

from llmbench.config.combination import Combination, ModelSpec
from llmbench.engine_types import Generation, KVLayout, LoadedModel, Timer

__all__ = [
    "Backend", "BackendUnavailable", "Generation", "KVLayout", "LoadedModel", "cut_at_blank_line",
    "has_blank_line_after_text",
]  # fmt: skip

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


class Backend(Protocol):
    """A way to run models (transformers, llama.cpp): says what it cannot run here, prepares and loads."""

    name: str

    def unavailable_reason(self, spec: ModelSpec, precision: str, device: str) -> str | None:
        """Why this combination cannot run here, or None. Cheap: called at collection."""
        ...

    def prepare(self, combination: Combination, cache_dir: Path) -> None:
        """Make the weights local (assemble, convert or download once) so that ``load`` times only loading."""
        ...

    def load(self, combination: Combination, cache_dir: Path, timer: Timer) -> LoadedModel:
        """Load the model; raise :class:`BackendUnavailable` for a reason found only when loading.

        ``timer`` is the device's timer (``llmbench.measure.probes.probes_for(device).timer``), given by
        the caller: a backend that times its engine's own steps uses it; one that has its own counters
        may ignore it.
        """
        ...
