"""Timed ``generate`` rounds measured in a worker and given to pytest-benchmark as its own rounds.

pytest-benchmark's runner reads its timer before and after each round's target. For a model in a
worker the target is a request, and the round is timed in the worker; so, for the rounds of this
benchmark only, the fixture's timer (swapped through :mod:`llmbench.benchmark_storage`) is a
:class:`WorkerClock` that reads 0 before the round and the worker's seconds after it. pytest-benchmark's
statistics are then the in-worker latencies, not the round trip between the processes; its saved
options still name the session's timer.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any, TypeVar

from llmbench.backends import Generation, LoadedModel
from llmbench.benchmark_storage import fixture_timer, round_times, set_fixture_timer
from llmbench.measure.generate import GenerateBenchmark
from llmbench.measure.per_item import CallFn, TimedCall, in_process_call
from llmbench.measure.probes import Probes, probes_for
from llmbench.workers.client import WorkerModel
from llmbench.workers.protocol import TimedRound

R = TypeVar("R")


class WorkerClock:
    """A stand-in timer: 0.0 before a round, the worker's measured seconds after it."""

    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def pedantic_in_worker(
    benchmark: Any, measure: Callable[[], R], seconds: Callable[[R], float], rounds: int, warmup_rounds: int
) -> list[R]:
    """Run ``measure`` (a request to a worker) as pytest-benchmark pedantic rounds timed by the worker.

    ``seconds(result)`` is the round's time as the worker measured it; pytest-benchmark records that.
    Returns every round's result, warm-up rounds first (one untimed call with ``--benchmark-disable``).
    """
    session_timer = fixture_timer(benchmark)
    clock = WorkerClock()
    results: list[R] = []

    def setup() -> None:
        # Called before each round, warm-up included, after pytest-benchmark has recorded its options
        # and before it builds the round's runner (which reads the timer then).
        clock.now = 0.0
        set_fixture_timer(benchmark, clock)

    def target() -> None:
        result = measure()
        clock.now = seconds(result)
        results.append(result)

    try:
        benchmark.pedantic(target, setup=setup, rounds=rounds, warmup_rounds=warmup_rounds, iterations=1)
    finally:
        set_fixture_timer(benchmark, session_timer)
    return results


class WorkerGenerateBenchmark(GenerateBenchmark):
    """:class:`GenerateBenchmark` for a :class:`WorkerModel`: the rounds are measured in the worker.

    For an in-process model it behaves exactly as its base class.
    """

    def run(self, llm: LoadedModel, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        if not isinstance(llm, WorkerModel):
            return super().run(llm, prompts, max_new_tokens)
        sent = {"n": 0}

        def measure() -> TimedRound:
            if sent["n"] == self.warmup_rounds:
                self.start_device_window()  # device-wide readings (energy, clocks): the parent takes them
            sent["n"] += 1
            return llm.timed_generate(prompts, max_new_tokens)

        rounds = pedantic_in_worker(
            self.benchmark, measure, lambda timed: timed.seconds, self.rounds, self.warmup_rounds
        )
        timed = rounds[self.warmup_rounds :]  # the warm-up rounds come first, as in the base class
        self.finish_device_window(llm, prompts, max_new_tokens, [r.generation for r in timed])
        latencies = round_times(self.benchmark)
        self.record(llm, [r.generation for r in timed], latencies, [r.memory for r in timed], max_new_tokens)
        return rounds[-1].generation


def timed_call(device: str) -> CallFn:
    """Times one ``generate`` call of a model on ``device`` for the per-item figures
    (:mod:`llmbench.measure.per_item`): a :class:`WorkerModel`'s in its worker (where its memory is), any
    other's in this process (the device's probes, made on first use)."""
    probes: dict[str, Probes] = {}

    def call(llm: LoadedModel, prompts: Sequence[str], max_new_tokens: int) -> TimedCall:
        if isinstance(llm, WorkerModel):
            timed = llm.timed_generate(prompts, max_new_tokens)
            return TimedCall(timed.generation, timed.seconds, timed.memory)
        if device not in probes:
            probes[device] = probes_for(device)
        return in_process_call(probes[device])(llm, prompts, max_new_tokens)

    return call
