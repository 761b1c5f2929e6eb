"""What the transformers backend hooks into ``generate``: the per-step clock and the blank-line stop."""

from __future__ import annotations

import functools
import time
from typing import Any

import torch
from transformers import StoppingCriteria
from transformers.generation.streamers import BaseStreamer

from llmbench.backends.base import has_blank_line_after_text

__all__ = ["BlankLineStop", "StepClock"]


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
