"""The harness's speed figures against the engines' own counters and bare calls, in one process.

Separate processes drift apart by up to 10% on a shared machine (docs/gate-validation.md), so each
comparison runs both sides in the same process, interleaved round by round.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

import torch

from llmbench.backends.base import Generation
from llmbench.measure.memory import MemoryProbe
from llmbench.measure.speed import engine_decode_metric, round_speed, speed_metrics
from llmbench.metrics import Unit
from llmbench.selfcheck.checks import Check
from llmbench.selfcheck.hf_bare import PrefilledPrompt
from llmbench.stats import bootstrap_ci

if TYPE_CHECKING:
    from llmbench.backends.llama_cpp_backend import LlamaCppModel
    from llmbench.backends.transformers_backend import TransformersModel

__all__ = [
    "BARE_LOOP_TOLERANCE",
    "END_TO_END_TOLERANCE",
    "ENGINE_TOLERANCE",
    "OVERHEAD_BUDGET",
    "Overhead",
    "bare_llama_cpp",
    "bare_transformers",
    "harness_overhead",
    "llama_cpp_checks",
    "paired_check",
    "transformers_checks",
]

#: The engine figure against llama.cpp's counters: the same decode steps, so only rounding apart.
ENGINE_TOLERANCE = 0.01
#: The end-to-end figure against llama.cpp's counters: sampling and detokenization per token are in one
#: and not the other (about 3% on a CPU, more where steps are short: docs/metrics.md).
END_TO_END_TOLERANCE = 0.05
#: The transformers figures against a bare timed ``model.generate``.
BARE_LOOP_TOLERANCE = 0.03
#: What the harness may add to a timed call (streamer, step clock, forward clock, memory probe).
OVERHEAD_BUDGET = 0.01


def _counter_rate(counters: dict[str, float]) -> float | None:
    seconds = counters["t_eval_ms"] / 1e3
    return counters["n_eval"] / seconds if counters["n_eval"] > 0 and seconds > 0 else None


def llama_cpp_checks(model: LlamaCppModel, prompts: Sequence[str], max_new_tokens: int, rounds: int) -> list[Check]:
    """Engine and end-to-end decode figures against llama.cpp's ``n_eval / t_eval_ms``, and the token count.

    Each round's counters are read straight from llama.cpp after its call; the harness's figures come
    through the same functions the benchmarks save with (:mod:`llmbench.measure.speed`).
    """
    generations: list[Generation] = []
    counter_rates: list[float] = []
    counted, evaluated = 0, 0
    for _ in range(rounds):
        generation = model.generate(list(prompts), max_new_tokens)
        generations.append(generation)
        counters = [model.perf_counters(i) for i in range(len(prompts))]
        rates = [r for r in (_counter_rate(c) for c in counters) if r is not None]
        if rates:
            counter_rates.append(statistics.fmean(rates))
        counted += sum(max(g - 1, 0) for g in generation.generated_tokens)
        evaluated += sum(int(c["n_eval"]) for c in counters)
    reference = statistics.median(counter_rates) if counter_rates else None
    engine = engine_decode_metric(generations).value
    end_to_end = next(m for m in speed_metrics(generations, []) if m.name == "decode_tok_s_per_seq").value
    how = f"{rounds} rounds of {len(prompts)} x {max_new_tokens} tokens; reference: llama.cpp's n_eval / t_eval_ms"
    return [
        Check(
            "decode tokens vs llama.cpp n_eval", float(counted), float(evaluated), "tokens", 0.0,
            how=f"harness: generated tokens after the first; {how}",
        ),
        Check(
            "engine decode vs llama.cpp counters", engine, reference, "tok/s", ENGINE_TOLERANCE,
            how=f"harness: engine_decode_tok_s; {how}",
        ),
        Check(
            "end-to-end decode vs llama.cpp counters", end_to_end, reference, "tok/s", END_TO_END_TOLERANCE,
            how=f"harness: decode_tok_s_per_seq (per-token timestamps); {how}",
        ),
    ]  # fmt: skip


def bare_llama_cpp(model: LlamaCppModel, prompts: Sequence[str], tokens: Sequence[int]) -> Callable[[], None]:
    """A bare call of llama-cpp-python: per prompt, ``Llama.generate`` greedily for ``tokens[i]`` tokens,
    from an empty cache, then detokenized; no timestamps, no counters, no probe."""
    from llmbench.backends.llama_cpp_backend import GREEDY

    llama = model.llama
    encoded = [model.prompt_tokens(p) for p in prompts]

    def call() -> None:
        for prompt_tokens, count in zip(encoded, tokens, strict=True):
            llama.reset()
            ids: list[int] = []
            iterator = llama.generate(prompt_tokens, reset=True, **GREEDY)
            for token in iterator:
                ids.append(token)
                if len(ids) >= count:
                    break
            iterator.close()
            llama.detokenize(ids)

    return call


def bare_transformers(model: TransformersModel, prompts: Sequence[str], new_tokens: int) -> Callable[[], None]:
    """A bare call of transformers: the same encoded batch through ``model.generate`` for ``new_tokens``,
    greedy, no streamer, no stopping criteria, no hooks."""
    hf = model.model

    def call() -> None:
        input_ids, attention_mask = model.encode(prompts)
        with torch.inference_mode():
            hf.generate(input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=new_tokens)  # type: ignore[operator]

    return call


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


def transformers_checks(
    model: TransformersModel, prompts: Sequence[str], max_new_tokens: int, rounds: int
) -> list[Check]:
    """The end-to-end and engine decode figures against bare transformers calls, interleaved.

    End-to-end (the step clock's decode steps/s) against a bare ``model.generate``:
    ``(g - 1) / (T(g) - T(1))``, both calls from a copy of the prompt's KV cache, so the difference is
    ``g - 1`` decode steps with generate's loop and no prefill in either call (a prefill in each would
    bring its noise into the difference: docs/metrics.md). Engine (the forward clock) against the
    model's forward called in a bare loop, each call timed. Per round the four calls run in an order
    that rotates from round to round; each check compares the median over rounds of the ratio within a round.
    """
    first = model.generate(list(prompts), max_new_tokens)
    longest = max(first.generated_tokens)
    names = ("end-to-end decode vs bare generate", "engine decode vs bare forward loop")
    if longest < 2:
        skipped = f"the model generated {longest} token(s): no decode phase to compare"
        return [Check(name, None, None, "tok/s", BARE_LOOP_TOLERANCE, skipped=skipped) for name in names]
    if model.model.config.is_encoder_decoder:
        skipped = "an encoder-decoder: the bare references run causal models"
        return [Check(name, None, None, "tok/s", BARE_LOOP_TOLERANCE, skipped=skipped) for name in names]
    prefilled = PrefilledPrompt(model, prompts)
    found: dict[str, list[float]] = {"harness": [], "engine": [], "full": [], "one": [], "forwards": []}

    def harness() -> None:
        generation = model.generate(list(prompts), longest)
        speed = round_speed(generation)
        found["harness"].append(speed.decode_steps_per_s or math.nan)
        found["engine"].append(engine_decode_metric([generation]).value or math.nan)

    sides: list[Callable[[], None]] = [
        harness,
        lambda: found["full"].append(prefilled.generate_s(longest)),
        lambda: found["one"].append(prefilled.generate_s(1)),
        lambda: found["forwards"].append(prefilled.forward_decode_s(longest)),
    ]
    for side in sides:  # warm-up: first calls allocate
        side()
    for values in found.values():
        values.clear()
    for round_ in range(rounds):
        for k in range(len(sides)):
            sides[(round_ + k) % len(sides)]()
    steps = longest - 1
    bare = [
        steps / (full - one) if full > one else math.nan for full, one in zip(found["full"], found["one"], strict=True)
    ]
    forwards = [steps / seconds if seconds > 0 else math.nan for seconds in found["forwards"]]
    how = (
        f"{rounds} interleaved rounds of {len(prompts)} x {longest} tokens; the harness's figure shown is the "
        f"reference's median times the median over rounds of harness / reference in the same round"
    )
    return [
        paired_check(
            names[0], found["harness"], bare,
            how=(
                f"harness: decode steps/s from the step clock; reference: bare model.generate from the prompt's "
                f"cached KV, (g - 1) / (T(g) - T(1)); {how}"
            ),
        ),
        paired_check(
            names[1], found["engine"], forwards,
            how=(
                f"harness: engine_decode_tok_s (forward hooks inside generate); reference: the model's forward "
                f"in a bare loop from the prompt's cached KV, each call timed; {how}"
            ),
        ),
    ]  # fmt: skip


def paired_check(
    name: str, harness: Sequence[float], reference: Sequence[float], how: str, unit: Unit = "tok/s",
    tolerance: float = BARE_LOOP_TOLERANCE, fix: str = "",
) -> Check:  # fmt: skip
    """A figure against its reference, round by round: a busy moment slows both calls of a round alike,
    so the ratio within a round is steadier than either side over the rounds. The check's harness figure
    is the reference's median times the median of the ratios."""
    pairs = [(h, r) for h, r in zip(harness, reference, strict=True) if math.isfinite(h) and math.isfinite(r)]
    if not pairs:
        return Check(name, None, None, unit, tolerance, how=how, fix=fix)
    middle = statistics.median(r for _, r in pairs)
    ratio = statistics.median(h / r for h, r in pairs)
    return Check(name, middle * ratio, middle, unit, tolerance, how=how, fix=fix)


class Overhead:
    """The harness's timed call against a bare call, interleaved in pairs whose order alternates."""

    def __init__(self, harness_s: Sequence[float], bare_s: Sequence[float]) -> None:
        self.harness_s = tuple(harness_s)
        self.bare_s = tuple(bare_s)

    @property
    def ratio(self) -> float:
        """The median over pairs of harness / bare (1.01: the harness adds 1%)."""
        return statistics.median(h / b for h, b in zip(self.harness_s, self.bare_s, strict=True))

    def check(self, name: str, what: str) -> Check:
        """Within the budget: ok; beyond it with the median's bootstrap interval reaching back within it:
        noisy (whole-call pairs on a shared machine spread by more than 1%: docs/metrics.md)."""
        harness, bare = statistics.median(self.harness_s), statistics.median(self.bare_s)
        ratios = [h / b for h, b in zip(self.harness_s, self.bare_s, strict=True)]
        low, high = bootstrap_ci(ratios, statistic="median")
        return Check(
            name, bare * self.ratio, bare, "s", OVERHEAD_BUDGET, bound="at_most", interval=(bare * low, bare * high),
            how=(
                f"harness: {what}, with the memory probe; reference: the bare call; {len(self.bare_s)} "
                f"interleaved pairs, median of the pairs' ratios (medians {harness:.4f} s and {bare:.4f} s; "
                f"95% interval of the ratio {(low - 1) * 100:+.2f}%..{(high - 1) * 100:+.2f}%)"
            ),
        )  # fmt: skip


def harness_overhead(
    harness: Callable[[], object], bare: Callable[[], None], memory: MemoryProbe, pairs: int
) -> Overhead:
    """Time ``harness()`` inside ``memory.measure()`` (as a timed round is) against ``bare()``, ``pairs``
    times each, alternating which goes first (ABBA), after one warm-up call of each."""

    def probed() -> None:
        with memory.measure():
            harness()

    probed()
    bare()
    harness_s: list[float] = []
    bare_s: list[float] = []
    for pair in range(pairs):
        if pair % 2:
            bare_s.append(_timed(bare))
            harness_s.append(_timed(probed))
        else:
            harness_s.append(_timed(probed))
            bare_s.append(_timed(bare))
    return Overhead(harness_s, bare_s)
