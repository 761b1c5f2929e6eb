"""Bare transformers references for the decode figures: ``model.generate`` and the model's forward, nothing attached.

Both start from a copy of the prompt's KV cache, filled once beforehand, so no prefill runs inside the
timed calls: a difference of two calls that each ran the prefill carries the prefill's noise, which
is most of the call where the prefill is slow (bf16 on a CPU without bf16 instructions: docs/metrics.md).
"""

from __future__ import annotations

import copy
import inspect
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import torch

from llmbench.measure.probes import probes_for

if TYPE_CHECKING:
    from llmbench.backends.transformers_backend import TransformersModel

__all__ = ["PrefilledPrompt"]


def _cache_keyword(hf: torch.nn.Module) -> str:
    """transformers 5.x renamed ``past_key_values`` to ``cache`` (the old name warns)."""
    return "cache" if "cache" in inspect.signature(hf.forward).parameters else "past_key_values"


class PrefilledPrompt:
    """A causal model's prompt batch with the KV cache of all its tokens but the last, filled once.

    Each timed call works on a fresh copy of that cache (copied before its clock starts) and first
    feeds the prompt's last token: one single-token forward, as a decode step is, then the decode.
    """

    def __init__(self, model: TransformersModel, prompts: Sequence[str]) -> None:
        hf = model.model
        if hf.config.is_encoder_decoder:
            raise ValueError(f"{type(hf).__name__} is an encoder-decoder: the bare references need a causal model")
        self._hf: Any = hf
        self._keyword = _cache_keyword(hf)
        self.input_ids, self.attention_mask = model.encode(prompts)
        self._timer = probes_for(self.input_ids.device.type).timer
        with torch.inference_mode():
            output = hf(input_ids=self.input_ids[:, :-1], attention_mask=self.attention_mask[:, :-1], use_cache=True)
        self._cache = output[self._keyword]

    def _fresh_cache(self) -> dict[str, Any]:
        return {self._keyword: copy.deepcopy(self._cache)}

    def generate_s(self, new_tokens: int, **attached: Any) -> float:
        """Seconds of one bare ``model.generate`` for ``new_tokens`` greedy tokens from the cached prompt:
        no streamer, no stopping criteria, no hooks. ``generate_s(g) - generate_s(1)`` is ``g - 1`` decode
        steps with generate's loop around them (the logits copy, the argmax, the stop check). ``attached``:
        more keywords of ``generate`` (a streamer, stopping criteria), to time one part of the harness's
        call at a time (scripts/selfcheck/bare_loop.py)."""
        cache = self._fresh_cache()
        with torch.inference_mode(), self._timer.measure() as reading:
            self._hf.generate(
                input_ids=self.input_ids, attention_mask=self.attention_mask, max_new_tokens=new_tokens, **cache,
                **attached,
            )  # fmt: skip
        return reading.seconds()

    def forward_decode_s(self, new_tokens: int) -> float:
        """Seconds of the ``new_tokens - 1`` decode forwards of a greedy generation from the cached prompt,
        each bare ``model(...)`` call timed on its own with the device's timer. The inputs are those
        ``generate`` passes (the token, its position, the cache; the attention mask only where the batch
        is padded, as ``generate`` drops an all-ones mask); the argmax and the first token's forward are
        outside the clock, as the forward clock leaves them."""
        cache = self._fresh_cache()
        mask = self.attention_mask
        padded = not bool(mask.all())
        token = self.input_ids[:, -1:]
        with torch.inference_mode(), self._timer.measure() as reading:
            for _ in range(new_tokens):
                inputs = {"input_ids": token, "position_ids": mask.sum(dim=1, keepdim=True) - 1, **cache}
                if padded:
                    inputs["attention_mask"] = mask
                reading.mark()
                output = self._hf(**inputs, use_cache=True, return_dict=True)
                reading.mark()
                token = output.logits[:, -1:].argmax(dim=-1)
                mask = torch.cat([mask, torch.ones_like(mask[:, :1])], dim=1)
        marks = reading.marks_s()
        # The first pair is the prompt's last token: the forward that gives the first token.
        return sum(end - start for start, end in zip(marks[2::2], marks[3::2], strict=True))
