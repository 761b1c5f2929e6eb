"""What the transformers backend hooks into ``generate``: the per-step clock, the forward clock and
the blank-line stop."""

from __future__ import annotations

import functools
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from llmbench.backends.base import has_blank_line_after_text
from llmbench.engine_types import Timer

__all__ = ["FORWARD_CLOCK", "BlankLineStop", "ForwardClock", "StepClock"]

#: How the transformers engine decode figure is measured (see docs/metrics.md).
FORWARD_CLOCK = "the model's forward calls inside generate, timed by forward hooks with the device's timer"


class StepClock(BaseStreamer):  # type: ignore[misc]
    """Records when each decoding step's tokens reach the host, inside ``generate``.

    ``generate`` calls ``put`` once with the prompt (the decoder's start ids for an encoder-decoder)
    before decoding, then once per step with that step's tokens, copied to the host: on CUDA that copy
    waits for the step, so the time stamp follows the token. (On MPS transformers defers the stop
    check and hands each token over during the following step, so stamps there are approximate.)
    A LogitsProcessor would fire before the token is chosen, and without a device sync. Its overhead is
    within timing noise (see docs/metrics.md).
    """

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.prompt_length = -1

    def put(self, value: torch.Tensor) -> None:
        if self.prompt_length < 0:
            self.prompt_length = int(value.shape[-1])
        else:
            self.stamps.append(time.perf_counter())

    def end(self) -> None:
        """Nothing to flush."""


class BlankLineStop(StoppingCriteria):  # type: ignore[misc]
    """Stops each sequence once its generated text has a blank line after some text, per row.

    Runs after every step and decodes the generated tokens of the rows still running (tens of
    microseconds for a few dozen tokens, against steps of tens of milliseconds); leading blank lines
    do not count, as in the llama.cpp backend. ``stopped_at[row]`` is the number of generated tokens
    when the row stopped.
    """

    def __init__(self, tokenizer: Any, batch_size: int) -> None:
        self._decode = functools.partial(tokenizer.decode, skip_special_tokens=True)
        self.stopped_at: list[int | None] = [None] * batch_size
        self._start = -1
        self._done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        length = int(input_ids.shape[1])
        if self._start < 0:  # the first call comes after the first generated token
            self._start = length - 1
        generated = length - self._start
        tail = input_ids[:, self._start :].tolist()
        changed = False
        for row, ids in enumerate(tail):
            if self.stopped_at[row] is None and has_blank_line_after_text(self._decode(ids)):
                self.stopped_at[row] = generated
                changed = True
        if self._done is None or changed:
            self._done = torch.tensor(
                [s is not None for s in self.stopped_at], dtype=torch.bool, device=input_ids.device
            )
        return self._done


class ForwardClock:
    """Times every call of the model's own ``forward`` inside ``generate``, apart from the loop around it.

    A pre-hook and a hook on the top-level module mark the device's timer (CUDA events on a GPU, so
    nothing waits inside the loop); ``generate`` calls that forward once per step (an encoder-decoder
    runs its encoder apart, before the first step). ``durations_s[k]`` is the forward that produced
    step ``k``'s tokens: step 0 holds the prefill, the later ones the decode.
    """

    def __init__(self, model: torch.nn.Module, timer: Timer) -> None:
        self._model = model
        self._timer = timer
        self.durations_s: tuple[float, ...] = ()

    @contextmanager
    def measure(self) -> Iterator[None]:
        with self._timer.measure() as reading:
            before = self._model.register_forward_pre_hook(lambda module, args: reading.mark())
            after = self._model.register_forward_hook(lambda module, args, output: reading.mark())
            try:
                yield
            finally:
                before.remove()
                after.remove()
        marks = reading.marks_s()
        self.durations_s = tuple(end - start for start, end in zip(marks[0::2], marks[1::2], strict=False))

    def engine_decode(self, generated_tokens: Sequence[int]) -> tuple[tuple[int, float], ...]:
        """Per sequence, (tokens after the first, seconds of the forwards that made them); empty where
        fewer forwards ran than a sequence has tokens (the clock missed calls, e.g. a compiled forward)."""
        if any(g > len(self.durations_s) for g in generated_tokens):
            return ()
        return tuple((max(g - 1, 0), sum(self.durations_s[1:g])) for g in generated_tokens)
