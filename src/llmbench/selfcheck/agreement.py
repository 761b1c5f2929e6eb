"""The harness's speed figures against the engines' own counters and bare calls, in one process.

Separate processes drift apart by up to 10% on a shared machine (docs/gate-validation.md), so each
comparison runs both sides in the same process, interleaved round by round.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

import torch

from llmbench.measure.memory import MemoryProbe
from llmbench.measure.speed import engine_decode_metric, engine_decode_rate, round_speed
from llmbench.metrics import Unit
from llmbench.selfcheck.checks import Bound, Check
from llmbench.selfcheck.hf_bare import PrefilledPrompt
from llmbench.stats import bootstrap_ci

if TYPE_CHECKING:
    from llmbench.backends.llama_cpp_backend import LlamaCppModel
    from llmbench.backends.transformers_backend import TransformersModel

__all__ = [
    "BARE_LOOP_TOLERANCE",
    "END_TO_END_ALLOWED",
    "ENGINE_TOLERANCE",
    "MAX_PAIRS",
    "OVERHEAD_ALLOWED",
    "OVERHEAD_BUDGET",
    "DecodeStopwatch",
    "Overhead",
    "bare_llama_cpp",
    "bare_transformers",
    "end_to_end_counters_check",
    "engine_decode_check",
    "harness_overhead",
    "llama_cpp_checks",
    "paired_check",
    "token_count_check",
    "transformers_checks",
]

#: The engine figure (llama.cpp's counters) against the same decode calls timed from Python: the same
#: steps on two clocks; measured by scripts/selfcheck/row_spread.py (docs/metrics.md, selfcheck).
ENGINE_TOLERANCE = 0.01
ENGINE_BASIS = "the same steps on two clocks; scripts/selfcheck/row_spread.py (docs/metrics.md)"
#: The end-to-end figure against llama.cpp's counters: sampling and detokenization per token are in one
#: and not the other, so it reads below them by that share, never above (scripts/selfcheck/row_spread.py).
END_TO_END_ALLOWED = (-0.05, 0.005)
END_TO_END_BASIS = "the loop around each step, measured by scripts/selfcheck/row_spread.py (docs/metrics.md)"
#: The transformers figures against bare calls, paired per round: scripts/selfcheck/bare_loop.py.
BARE_LOOP_TOLERANCE = 0.03
BARE_LOOP_BASIS = "scripts/selfcheck/bare_loop.py, paired per round (docs/metrics.md)"
#: What a transformers row that disagrees under load may be (docs/metrics.md: -5.5% and -6.4% seen at load
#: average 6 and more, within 3% at 3.4 or less).
BUSY_HINT = "under a load average above the cores it can read 5-7% off: rerun with --threads 1 on a quiet machine"
LLAMA_COUNT_FIX = "count a sequence's decode steps as its generated tokens after the first"
PAIRED_HOW = "the harness's figure shown is the reference's median times the median over rounds of harness / reference"
#: What the harness may add to a timed call (streamer, step clock, forward clock, memory probe), and how
#: much faster than the bare call its call may read (it cannot be: it does the same work and more) before
#: that is a fault; the pairs' noise behind the floor and the rule: scripts/selfcheck/overhead_power.py.
OVERHEAD_BUDGET = 0.01
OVERHEAD_ALLOWED = (-0.03, OVERHEAD_BUDGET)
#: The most overhead pairs ``llmbench selfcheck`` runs while the row reads noisy (``--max-pairs``).
MAX_PAIRS = 40
#: Pairs whose ratios spread more than this (robust SD) cannot tell a 3% overhead from the 1% budget in
#: MAX_PAIRS pairs (the median's 95% interval is about +-2.5 x 1.25 x spread / sqrt(40)), and under that
#: load their bootstrap interval is too narrow: the row reads noisy (docs/metrics.md).
OVERHEAD_MAX_SPREAD = 0.025
OVERHEAD_BASIS = "budget 1%; scripts/selfcheck/overhead_power.py, overhead_parts.py (docs/metrics.md)"


def _counter_rate(counters: dict[str, float]) -> float | None:
    seconds = counters["t_eval_ms"] / 1e3
    return counters["n_eval"] / seconds if counters["n_eval"] > 0 and seconds > 0 else None


class DecodeStopwatch:
    """Times every ``llama_decode`` call of llama-cpp-python from Python while installed: the reference
    of the engine figure, whose own source is llama.cpp's counters (``t_eval_ms``, its C clock inside
    the call). A call with more than one token (a prompt) starts a new sequence; each single-token call
    (a decode step) adds its seconds to the current one.

    Installed by replacing ``llama_cpp.llama_cpp.llama_decode`` for the duration (llama-cpp-python's
    ``LlamaContext.decode`` looks it up there on each call), in this process only; the clock reads sit
    right around the C call, so the wrapper's own Python stays outside them.
    """

    def __init__(self) -> None:
        #: Per sequence (a prompt's decode and the single-token decodes after it): each step's seconds.
        self.sequences: list[list[float]] = []

    @contextmanager
    def installed(self) -> Iterator[DecodeStopwatch]:
        import llama_cpp.llama_cpp as lib

        real = lib.llama_decode

        def timed(ctx: Any, batch: Any) -> Any:
            started = time.perf_counter()
            code = real(ctx, batch)
            elapsed = time.perf_counter() - started
            if int(batch.n_tokens) == 1 and self.sequences:
                self.sequences[-1].append(elapsed)
            elif int(batch.n_tokens) > 1:
                self.sequences.append([])
            return code

        lib.llama_decode = timed
        try:
            yield self
        finally:
            lib.llama_decode = real

    def rate(self) -> float | None:
        """The mean over sequences of decode steps / their seconds (as the engine figure is per sequence)."""
        rates = [len(steps) / sum(steps) for steps in self.sequences if steps and sum(steps) > 0]
        return statistics.fmean(rates) if rates else None


def token_count_check(counted: int, evaluated: int, how: str = "") -> Check:
    """The decode steps the harness counts (generated tokens after the first) against llama.cpp's
    ``n_eval``: counts, so exactly equal."""
    return Check(
        "decode tokens vs llama.cpp n_eval", float(counted), float(evaluated), "tokens", 0.0,
        how=f"harness: generated tokens after the first; reference: llama.cpp's n_eval{how}",
        basis="counts of the same steps: exact", fix=LLAMA_COUNT_FIX,
    )  # fmt: skip


def engine_decode_check(engine: Sequence[float], timed: Sequence[float], how: str = "") -> Check:
    """``engine_decode_tok_s`` (llama.cpp's counters) against each decode call timed from Python, per round."""
    return paired_check(
        "engine decode vs timed llama_decode calls", engine, timed,
        how=(
            "harness: engine_decode_tok_s, from llama.cpp's counters (n_eval / t_eval_ms, its C clock); reference: "
            f"each single-token llama_decode call timed with time.perf_counter around it, steps / seconds{how}"
        ),
        tolerance=ENGINE_TOLERANCE, basis=ENGINE_BASIS,
        fix="engine_decode_tok_s must be n_eval / t_eval_ms of each sequence alone (counters reset per sequence)",
    )  # fmt: skip


def end_to_end_counters_check(end_to_end: Sequence[float], counters: Sequence[float], how: str = "") -> Check:
    """``decode_tok_s_per_seq`` (Python timestamps of the tokens) against llama.cpp's counters, per round.

    The end-to-end time is the decode steps plus the sampling, detokenization and loop around each, so
    it reads below the counters by that share and never above them (beyond the clocks' rounding)."""
    return paired_check(
        "end-to-end decode vs llama.cpp counters", end_to_end, counters,
        how=(
            "harness: decode_tok_s_per_seq (per-token timestamps, time.perf_counter); reference: llama.cpp's "
            f"n_eval / t_eval_ms (its C clock, the decode steps only){how}"
        ),
        bound="range", allowed=END_TO_END_ALLOWED, basis=END_TO_END_BASIS,
        fix=(
            "above the counters: the timestamps miss decode time (a step timed twice or left out); far below: "
            "the loop around each decode does more than sampling and detokenizing"
        ),
    )  # fmt: skip


def llama_cpp_checks(model: LlamaCppModel, prompts: Sequence[str], max_new_tokens: int, rounds: int) -> list[Check]:
    """The token count, the engine figure and the end-to-end figure against llama.cpp's counters and
    its decode calls timed from Python, round by round (see each row's function).

    Each round's counters are read straight from llama.cpp after its call; the harness's figures come
    through the same functions the benchmarks save with (:mod:`llmbench.measure.speed`).
    """
    engine: list[float] = []
    timed: list[float] = []
    end_to_end: list[float] = []
    counter_rates: list[float] = []
    counted, evaluated = 0, 0
    for _ in range(rounds):
        with DecodeStopwatch().installed() as stopwatch:
            generation = model.generate(list(prompts), max_new_tokens)
        counters = [model.perf_counters(i) for i in range(len(prompts))]
        rates = [r for r in (_counter_rate(c) for c in counters) if r is not None]
        counter_rates.append(statistics.fmean(rates) if rates else math.nan)
        engine.append(engine_decode_rate(generation) or math.nan)
        timed.append(stopwatch.rate() or math.nan)
        end_to_end.append(round_speed(generation).decode_tok_s_per_seq or math.nan)
        counted += sum(max(g - 1, 0) for g in generation.generated_tokens)
        evaluated += sum(int(c["n_eval"]) for c in counters)
    how = f"; {rounds} rounds of {len(prompts)} x {max_new_tokens} tokens, {PAIRED_HOW}"
    return [
        token_count_check(counted, evaluated, f"; {rounds} rounds of {len(prompts)} x {max_new_tokens} tokens"),
        engine_decode_check(engine, timed, how),
        end_to_end_counters_check(end_to_end, counter_rates, how),
    ]


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
    how = f"{rounds} interleaved rounds of {len(prompts)} x {longest} tokens; {PAIRED_HOW} in the same round"
    return [
        paired_check(
            names[0], found["harness"], bare,
            how=(
                f"harness: decode steps/s from the step clock; reference: bare model.generate from the prompt's "
                f"cached KV, (g - 1) / (T(g) - T(1)); {how}"
            ),
            fix=f"the step clock must stamp each step as the streamer receives its token; {BUSY_HINT}",
        ),
        paired_check(
            names[1], found["engine"], forwards,
            how=(
                f"harness: engine_decode_tok_s (forward hooks inside generate); reference: the model's forward "
                f"in a bare loop from the prompt's cached KV, each call timed; {how}"
            ),
            fix=f"the forward clock must time each decode forward whole, and nothing else; {BUSY_HINT}",
        ),
    ]  # fmt: skip


def paired_check(
    name: str, harness: Sequence[float], reference: Sequence[float], how: str, unit: Unit = "tok/s",
    tolerance: float = BARE_LOOP_TOLERANCE, fix: str = "", basis: str = BARE_LOOP_BASIS, bound: Bound = "both",
    allowed: tuple[float, float] | None = None,
) -> Check:  # fmt: skip
    """A figure against its reference, round by round: a busy moment slows both calls of a round alike,
    so the ratio within a round is steadier than either side over the rounds. The check's harness figure
    is the reference's median times the median of the ratios, with the 95% bootstrap interval of that
    median: a reading beyond the tolerance whose interval reaches back within it is ``noisy`` (the rounds
    cannot tell), ``DISAGREES`` only wholly beyond it. The rounds of a shared machine spread by several
    percent, so a median of 9 ratios lands beyond a 3% tolerance by noise alone (docs/metrics.md).
    ``harness`` and ``reference`` are the rounds' readings as they are (the seam the tests put a reading off
    through)."""
    pairs = [(h, r) for h, r in zip(harness, reference, strict=True) if math.isfinite(h) and math.isfinite(r)]
    if not pairs:
        return Check(name, None, None, unit, tolerance, bound, how=how, fix=fix, basis=basis, allowed=allowed)
    middle = statistics.median(r for _, r in pairs)
    ratios = [h / r for h, r in pairs]
    ratio = statistics.median(ratios)
    low, high = bootstrap_ci(ratios, statistic="median")
    how = f"{how}; 95% interval of the median ratio {(low - 1) * 100:+.2f}%..{(high - 1) * 100:+.2f}%"
    return Check(name, middle * ratio, middle, unit, tolerance, bound, how=how, fix=fix, basis=basis, allowed=allowed,
                 interval=(middle * low, middle * high))  # fmt: skip


class Overhead:
    """The harness's timed call against a bare call, interleaved in pairs whose order alternates: each
    call's wall time (``harness_s``, ``bare_s``) and, where taken, its CPU time (``harness_cpu_s``,
    ``bare_cpu_s``: what the selfcheck's row decides on)."""

    def __init__(
        self, harness_s: Sequence[float], bare_s: Sequence[float], harness_cpu_s: Sequence[float] = (),
        bare_cpu_s: Sequence[float] = (),
    ) -> None:  # fmt: skip
        self.harness_s = tuple(harness_s)
        self.bare_s = tuple(bare_s)
        self.harness_cpu_s = tuple(harness_cpu_s)
        self.bare_cpu_s = tuple(bare_cpu_s)

    @property
    def ratio(self) -> float:
        """The median over pairs of harness / bare on the wall clock (1.01: the harness adds 1%)."""
        return statistics.median(h / b for h, b in zip(self.harness_s, self.bare_s, strict=True))

    def check(self, name: str, what: str) -> Check:
        """The median of the pairs' ratios (CPU time where taken, else wall) against the budget
        (``OVERHEAD_ALLOWED``), decided by the median's 95% bootstrap interval both ways: ``ok`` where it
        lies wholly within the budget (and above the floor: a harness call faster than the bare one
        skipped work), DISAGREES wholly beyond, ``noisy`` while it straddles a limit (the pairs cannot
        tell; :func:`harness_overhead` then adds pairs). Why CPU time, and how often a real 3% overhead
        fails: docs/metrics.md."""
        cpu = bool(self.harness_cpu_s and self.bare_cpu_s)
        harness_s, bare_s = (self.harness_cpu_s, self.bare_cpu_s) if cpu else (self.harness_s, self.bare_s)
        ratios = [h / b for h, b in zip(harness_s, bare_s, strict=True)]
        harness, bare, ratio = statistics.median(harness_s), statistics.median(bare_s), statistics.median(ratios)
        low, high = bootstrap_ci(ratios, statistic="median")
        spread = 1.4826 * statistics.median(abs(r - ratio) for r in ratios)  # robust SD (MAD), normal-consistent
        undecided = ""
        if spread > OVERHEAD_MAX_SPREAD:
            undecided = (
                f"the pairs spread by {spread * 100:.1f}% (robust SD of the ratios), beyond the "
                f"{OVERHEAD_MAX_SPREAD * 100:g}% at which {MAX_PAIRS} pairs resolve the budget: the machine is too "
                "busy to tell; rerun on a quiet one"
            )
        clock = "each call's CPU time (time.process_time)" if cpu else "each call's wall time"
        wall = f"; on the wall clock the pairs' median ratio reads {(self.ratio - 1) * 100:+.2f}%" if cpu else ""
        return Check(
            name, bare * ratio, bare, "s", OVERHEAD_BUDGET, bound="range", allowed=OVERHEAD_ALLOWED,
            interval=(bare * low, bare * high), noisy_when="undecided", basis=OVERHEAD_BASIS, undecided=undecided,
            how=(
                f"harness: {what}, with the memory probe; reference: the bare call; {clock}; {len(bare_s)} "
                f"interleaved pairs, median of the pairs' ratios (medians {harness:.4f} s and {bare:.4f} s; 95% "
                f"interval of the ratio {(low - 1) * 100:+.2f}%..{(high - 1) * 100:+.2f}%){wall}"
                + (f"; {undecided}" if undecided else "")
            ),
            fix=(
                "the probes add more than the budget to every timed call: time them one by one "
                "(scripts/selfcheck/overhead_parts.py)"
            ),
        )  # fmt: skip


def harness_overhead(
    harness: Callable[[], object], bare: Callable[[], None], memory: MemoryProbe, pairs: int,
    max_pairs: int | None = None,
) -> Overhead:  # fmt: skip
    """Time ``harness()`` inside ``memory.measure()`` (as a timed round is) against ``bare()``, ``pairs``
    times each, alternating which goes first (ABBA), after one warm-up call of each, in CPU time (the
    process's, which other processes' load leaves out) and on the wall clock; then, while the
    row reads ``noisy`` and fewer than ``max_pairs`` pairs ran, ``pairs`` more (sequential: a clear
    reading stops early, an unclear one gets more pairs, pairs too spread to tell get no more)."""

    def probed() -> None:
        with memory.measure():
            harness()

    probed()
    bare()
    times: dict[str, list[float]] = {"harness": [], "bare": [], "harness_cpu": [], "bare_cpu": []}

    def timed(name: str, call: Callable[[], object]) -> None:
        wall, cpu = time.perf_counter(), time.process_time()
        call()
        times[f"{name}_cpu"].append(time.process_time() - cpu)
        times[name].append(time.perf_counter() - wall)

    while True:
        for _ in range(pairs):
            first, second = (("bare", bare), ("harness", probed))[:: 1 if len(times["bare"]) % 2 else -1]
            timed(*first)
            timed(*second)
        found = Overhead(times["harness"], times["bare"], times["harness_cpu"], times["bare_cpu"])
        check = found.check("", "")
        if len(times["bare"]) + pairs > (max_pairs or pairs) or check.status != "noisy" or check.undecided:
            return found  # decided, or as many pairs as allowed, or too spread for more pairs to help
