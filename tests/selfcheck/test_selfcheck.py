"""``llmbench selfcheck`` and the cross-checks behind it: engine clocks, bare loops, memory, bandwidth."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest
import torch

from llmbench import cli
from llmbench.backends.hf_generation import StepClock
from llmbench.backends.transformers_backend import TransformersBackend, TransformersModel
from llmbench.commands import selfcheck as command
from llmbench.config.combination import Combination, ModelSpec
from llmbench.engine_types import Generation
from llmbench.measure.probes import probes_for
from llmbench.measure.speed import engine_decode_rate, round_speed
from llmbench.selfcheck.agreement import (
    BARE_LOOP_TOLERANCE,
    Overhead,
    bare_transformers,
    harness_overhead,
    transformers_checks,
)
from llmbench.selfcheck.checks import Check, render_checks
from llmbench.selfcheck.machine import cpu_memory_checks, numpy_read_bandwidth
from llmbench.units import MiB

if TYPE_CHECKING:  # llama-cpp-python is an optional extra
    from llmbench.backends.llama_cpp_backend import LlamaCppModel

PROMPTS = ["The fox saw some grapes hanging high on a vine."]


@pytest.fixture
def tiny(tiny_gemma3_dir: Path, one_torch_thread: None) -> Iterator[TransformersModel]:
    """The tiny Gemma 3 in fp32 on the CPU, on one torch thread (tests/conftest.py)."""
    spec = ModelSpec(name="tiny", family="causal", source=f"path:{tiny_gemma3_dir}")
    combination = Combination(spec, "fp32", "cpu", 1)
    model = TransformersBackend().load(combination, Path("/nonexistent"), probes_for("cpu").timer)
    yield model
    model.close()


def test_check_status_two_sided_one_sided_and_skipped() -> None:
    assert Check("a", 101.0, 100.0, "tok/s", 0.01).status == "ok"
    assert Check("a", 98.9, 100.0, "tok/s", 0.01).status == "DISAGREES"
    assert Check("a", 90.0, 100.0, "s", 0.01, bound="at_most").status == "ok"
    assert Check("a", 101.5, 100.0, "s", 0.01, bound="at_most").status == "DISAGREES"
    assert Check("a", None, 100.0, "s", 0.01).status == "DISAGREES"
    assert Check("a", None, None, "s", 0.01, skipped="no GPU").status == "skipped"
    # An overhead estimated from noisy pairs: beyond the budget, but its interval reaches back within it.
    assert Check("o", 1.02, 1.0, "s", 0.01, bound="at_most", interval=(0.995, 1.04)).status == "noisy"
    assert Check("o", 1.02, 1.0, "s", 0.01, bound="at_most", interval=(1.015, 1.03)).status == "DISAGREES"
    assert Check("o", 1.005, 1.0, "s", 0.01, bound="at_most", interval=(0.99, 1.03)).status == "ok"
    assert Check("b", 1.05, 1.0, "s", 0.01, interval=(0.98, 1.09)).status == "noisy"
    checks = [Check("engine", 41.0, 41.2, "tok/s", 0.01, how="h"), Check("x", None, None, "s", 0, skipped="why")]
    lines = render_checks(checks)
    assert lines[0].split() == ["check", "harness", "reference", "agrees", "within", "diff", "tolerance", "status"]
    assert lines[2].split() == ["engine", "41.0", "41.2", "40.8..41.6", "-0.49%", "±1%", "ok"]
    assert "x: why" in lines


def test_check_status_at_least_and_range_and_the_fix_printed() -> None:
    # at_least: a reading that can only be above its reference (the driver's GPU memory above the allocator's).
    assert Check("d", 1500.0, 1000.0, "bytes", 0.0, bound="at_least").status == "ok"
    assert Check("d", 999.0, 1000.0, "bytes", 0.0, bound="at_least").status == "DISAGREES"
    assert Check("d", 990.0, 1000.0, "bytes", 0.02, bound="at_least").status == "ok"
    # range: a plausibility range of measured / reference - 1 (mean power against the power limit).
    power = {w: Check("p", w, 700.0, "W", 0.0, bound="range", allowed=(-0.95, 0.10)) for w in (0.0, 35.0, 300.0, 800.0)}
    assert {w: c.status for w, c in power.items()} == {0.0: "DISAGREES", 35.0: "ok", 300.0: "ok", 800.0: "DISAGREES"}
    assert power[0.0].limit() == "-95%..+10%"
    assert Check("d", 1.0, 1.0, "bytes", 0.0, bound="at_least").limit() == ">= 0%"
    # An interval that reaches into the range is noisy, one beyond it is not.
    assert (
        Check("p", 800.0, 700.0, "W", 0.0, bound="range", allowed=(-0.95, 0.10), interval=(750, 850)).status == "noisy"
    )
    assert Check("p", 800.0, 700.0, "W", 0.0, bound="range", allowed=(-0.95, 0.10), interval=(790, 850)).status == (
        "DISAGREES"
    )
    lines = render_checks([Check("a", 1.0, 2.0, "s", 0.01, fix="do this"), Check("b", 2.0, 2.0, "s", 0.01)])
    assert lines[lines.index("what to fix:") + 1 :] == ["- a: do this"]


def test_forward_clock_times_one_forward_per_step_inside_the_step_clock(tiny: TransformersModel) -> None:
    generation = tiny.generate(PROMPTS * 2, 12)
    assert generation.generated_tokens == (12, 12)
    assert [tokens for tokens, _ in generation.engine_decode] == [11, 11]
    times = generation.step_times_s
    for _, seconds in generation.engine_decode:
        # The forwards of steps 1..11 run between the first and the last step's timestamps.
        assert 0 < seconds < times[11] - times[0]
    rate = engine_decode_rate(generation)
    end_to_end = round_speed(generation).decode_tok_s_per_seq
    assert rate is not None
    assert end_to_end is not None
    assert rate > end_to_end


def test_transformers_checks_and_overhead_run_on_a_tiny_model(tiny: TransformersModel) -> None:
    checks = transformers_checks(tiny, PROMPTS, 6, rounds=1)
    assert [c.name for c in checks] == ["end-to-end decode vs bare generate", "engine decode vs bare forward loop"]
    assert all(c.measured and c.reference and c.status in ("ok", "DISAGREES") for c in checks)
    bare = bare_transformers(tiny, PROMPTS, 6)
    overhead = harness_overhead(lambda: tiny.generate(PROMPTS, 6), bare, probes_for("cpu").memory, 2)
    assert len(overhead.harness_s) == len(overhead.bare_s) == 2
    assert overhead.check("o", "w").bound == "range"
    # Synthetic pairs: the overhead's interval is the median's bootstrap interval of the pairs' ratios.
    noisy = Overhead([1.00, 1.03, 0.99, 1.04, 1.02, 1.00, 1.05, 1.02], [1.0] * 8).check("o", "w")
    assert noisy.status == "noisy"
    assert noisy.interval is not None
    assert noisy.interval[0] <= 1.01 < noisy.interval[1]
    assert "95% interval of the ratio" in noisy.how
    clear = Overhead([1.03, 1.031, 1.029, 1.032, 1.03, 1.028], [1.0] * 6).check("o", "w")
    assert clear.status == "DISAGREES"


class VirtualClock:
    """``time.perf_counter`` for a test: it stands still but for what the test's hooks add, so every
    timing the harness and the bare references take is decided by the test, not by the machine's load."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


#: Virtual seconds a forward call takes per input token (a decode step feeds one token per row).
SECONDS_PER_TOKEN = 0.001


@pytest.fixture
def virtual_clock(tiny: TransformersModel, monkeypatch: pytest.MonkeyPatch) -> Iterator[VirtualClock]:
    """Every clock of the harness and of the bare references reads virtual time (all read
    ``time.perf_counter``: the step clock, the CPU timer of the forward clock and of the bare calls),
    and each forward of the tiny model takes 1 ms per input token, inside the forward call. The model
    still computes every token for real; only the clock is the test's."""
    clock = VirtualClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    embed = tiny.model.get_input_embeddings()
    handle = embed.register_forward_pre_hook(lambda module, args: clock.advance(SECONDS_PER_TOKEN * args[0].shape[-1]))
    yield clock
    handle.remove()


def test_transformers_figures_agree_with_bare_calls_on_a_controlled_clock(
    tiny: TransformersModel, virtual_clock: VirtualClock
) -> None:
    """One process, interleaved (issue 14): the step clock's decode rate against a bare ``model.generate``
    from the prompt's cached KV, the forward clock's against the model's forward in a bare loop. On the
    virtual clock a decode step takes exactly 1 ms in every call, and the prompt's forward more, so both
    figures equal their references (1000 tok/s) exactly: a harness that counted a step too many or too
    few, or the prefill into the decode, would not. Whether they agree within 3%
    on a real machine is what ``llmbench selfcheck`` measures (docs/metrics.md)."""
    checks = {c.name: c for c in transformers_checks(tiny, PROMPTS, 12, rounds=3)}
    print(*render_checks(list(checks.values())), sep="\n")
    for name in ("end-to-end decode vs bare generate", "engine decode vs bare forward loop"):
        check = checks[name]
        assert check.status == "ok", check
        assert check.reference == pytest.approx(1 / SECONDS_PER_TOKEN, rel=1e-9), check
        assert check.measured == pytest.approx(1 / SECONDS_PER_TOKEN, rel=1e-9), check


def test_bare_generate_check_catches_a_slow_step_clock(
    tiny: TransformersModel, virtual_clock: VirtualClock, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agreement check can fail: 0.1 ms more per step in the streamer (1 ms steps) disagrees, by
    exactly the time added: 1 / 1.1 ms against 1 / 1 ms. The engine figure, timed inside the forwards,
    still agrees."""
    put = StepClock.put

    def slow_put(self: StepClock, value: torch.Tensor) -> None:
        virtual_clock.advance(0.0001)
        put(self, value)

    monkeypatch.setattr(StepClock, "put", slow_put)
    checks = {c.name: c for c in transformers_checks(tiny, PROMPTS, 8, rounds=3)}
    end_to_end = checks["end-to-end decode vs bare generate"]
    assert end_to_end.status == "DISAGREES", end_to_end
    assert end_to_end.difference is not None
    assert end_to_end.difference < -BARE_LOOP_TOLERANCE
    assert end_to_end.difference == pytest.approx(1 / 1.1 - 1, rel=1e-6)
    assert checks["engine decode vs bare forward loop"].status == "ok", checks


def test_forward_loop_check_catches_time_the_forward_clock_misses(
    tiny: TransformersModel, virtual_clock: VirtualClock
) -> None:
    """The engine check can fail too: 0.5 ms of each forward spent before the forward clock's first
    mark (a hook registered ahead of it) is in the bare loop's timing and not in the engine figure."""
    handle = tiny.model.register_forward_pre_hook(lambda module, args: virtual_clock.advance(0.0005))
    try:
        checks = {c.name: c for c in transformers_checks(tiny, PROMPTS, 8, rounds=3)}
    finally:
        handle.remove()
    engine = checks["engine decode vs bare forward loop"]
    assert engine.status == "DISAGREES", engine
    assert engine.difference == pytest.approx(1.5 - 1, rel=1e-6)


def test_memory_checks_agree_on_a_held_allocation() -> None:
    def allocate() -> None:
        block = bytearray(96 * MiB)  # zero-filled: every page touched
        time.sleep(0.05)  # held long enough for the 1 ms sampler
        del block

    sampled, known = cpu_memory_checks(allocate, touched=64 * MiB)
    if sampled.status != "skipped":
        assert sampled.status == "ok", sampled
        assert known.status == "ok", known
        assert known.measured is not None
        assert known.reference is not None
        assert known.reference - known.measured < 1 * MiB  # the 64 MiB block is in the probe's peak
    assert sampled.measured is not None
    assert sampled.measured >= 96 * MiB


def test_sequential_overhead_adds_pairs_only_while_noisy(monkeypatch: pytest.MonkeyPatch) -> None:
    """On a virtual clock: a harness 5% slower in every pair decides at the first 10 pairs; one whose
    pairs read +2% and +0.5% in turn (median +1.25%, an interval across the 1% budget) is noisy at 10
    pairs and gets 10 more each time, up to the most allowed (30); pairs of +5% and -1% in turn spread
    too far to tell (robust SD 4.4%): noisy at 10 pairs, and no more pairs."""
    clock = VirtualClock()
    monkeypatch.setattr(time, "perf_counter", clock)
    monkeypatch.setattr(time, "process_time", clock)  # the row decides on CPU time
    memory = probes_for("cpu").memory
    steady = harness_overhead(lambda: clock.advance(1.05), lambda: clock.advance(1.0), memory, 10, max_pairs=30)
    assert len(steady.bare_s) == 10
    assert steady.check("o", "w").status == "DISAGREES"
    shares = iter([1.02, 1.005] * 40)
    mixed = harness_overhead(lambda: clock.advance(next(shares)), lambda: clock.advance(1.0), memory, 10, 30)
    assert len(mixed.bare_s) == 30
    check = mixed.check("o", "w")
    assert check.status == "noisy"
    assert not check.undecided
    assert "on the wall clock the pairs' median ratio reads +1.25%" in check.how
    assert "CPU time" in check.how
    spread = iter([1.05, 0.99] * 40)
    busy = harness_overhead(lambda: clock.advance(next(spread)), lambda: clock.advance(1.0), memory, 10, 30)
    assert len(busy.bare_s) == 10
    assert busy.check("o", "w").undecided


def test_numpy_read_bandwidth_is_a_plausible_rate() -> None:
    assert 1e8 < numpy_read_bandwidth(64 * MiB, threads=2, repeats=2) < 1e13


def test_exit_status_follows_the_checks(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    found = [Check("engine", 41.0, 41.2, "tok/s", 0.01)]

    def fake(args: argparse.Namespace, say: object) -> list[Check]:
        return found

    monkeypatch.setattr(command, "run_selfcheck", fake)
    assert cli.main(["selfcheck"]) == 0
    assert "engine" in capsys.readouterr().out
    found.append(Check("bandwidth", 20e9, 30e9, "bytes/s", 0.15))
    assert cli.main(["selfcheck"]) == 1
    assert cli.main(["selfcheck", "--model", "nope"]) == 2


class Batch:
    """The one field of llama.cpp's ``llama_batch`` the stopwatch reads."""

    def __init__(self, n_tokens: int) -> None:
        self.n_tokens = n_tokens


class CountedModel:
    """A stand-in for a llama.cpp model on a virtual clock: each sequence's prompt and decode steps go
    through ``llama_cpp.llama_cpp.llama_decode`` (the test's fake, which advances the clock by a step),
    its counters say ``n_eval`` decodes in ``t_eval_ms`` (``counted_share`` of the steps' real time), and
    its timestamps add ``gap_s`` per token around each decode (sampling, detokenization, the loop)."""

    def __init__(self, clock: VirtualClock, rate: float, gap_s: float, uncounted: int = 0, counted_share: float = 1.0):
        self.clock = clock
        self.rate = rate
        self.gap_s = gap_s
        self.uncounted = uncounted
        self.counted_share = counted_share
        self.counters: list[dict[str, float]] = []

    def generate(self, prompts: list[str], max_new_tokens: int) -> Generation:
        import llama_cpp.llama_cpp as lib

        step = 1 / self.rate
        decodes = max_new_tokens - 1
        sequences = []
        for _ in prompts:
            started = self.clock.now
            lib.llama_decode(step * 20, Batch(20))  # the prompt (the fake's context argument: its seconds)
            times = [self.clock.now - started]
            for _ in range(decodes):
                self.clock.advance(self.gap_s)
                lib.llama_decode(step, Batch(1))
                times.append(self.clock.now - started)
            sequences.append(tuple(times))
        seconds = (decodes - self.uncounted) * step * self.counted_share
        counter = {"n_eval": decodes - self.uncounted, "t_eval_ms": seconds * 1e3}
        self.counters = [dict(counter) for _ in prompts]
        n = len(prompts)
        return Generation(
            texts=("text",) * n, prompt_tokens=(20,) * n, generated_tokens=(max_new_tokens,) * n,
            token_ids=((7,) * max_new_tokens,) * n, sequence_step_times_s=tuple(sequences), batch_mode="sequential",
            engine_decode=tuple((int(c["n_eval"]), c["t_eval_ms"] / 1e3) for c in self.counters),
            engine_clock="counters",
        )  # fmt: skip

    def perf_counters(self, sequence: int = -1) -> dict[str, float]:
        return self.counters[sequence]


@pytest.fixture
def llama_clock(monkeypatch: pytest.MonkeyPatch) -> VirtualClock:
    """A virtual ``time.perf_counter``, and a fake ``llama_decode`` that takes the seconds it is passed on it."""
    lib = pytest.importorskip("llama_cpp.llama_cpp", reason="llama-cpp-python is not installed")
    clock = VirtualClock()
    monkeypatch.setattr(time, "perf_counter", clock)

    def fake_decode(seconds: float, batch: Batch) -> int:
        clock.advance(seconds)
        return 0

    monkeypatch.setattr(lib, "llama_decode", fake_decode)
    return clock


def _llama_checks(model: CountedModel) -> dict[str, Check]:
    from llmbench.selfcheck.agreement import llama_cpp_checks

    return {c.name: c for c in llama_cpp_checks(model, PROMPTS * 2, 16, rounds=3)}  # type: ignore[arg-type]


def test_llama_cpp_checks_decide_agreement_from_counters_and_timed_decodes(llama_clock: VirtualClock) -> None:
    """On a virtual clock: the decode calls timed from Python take exactly what the counters say, so the
    engine row agrees exactly; 2% of a step around each decode is within the end-to-end row's range, 10%
    is not; counters that miss 5% of the decode time fail the engine row; a decode the counters missed
    fails the token count. The stopwatch is gone after the rows (the real ``llama_decode`` is back)."""
    import llama_cpp.llama_cpp as lib

    fake = lib.llama_decode
    close = _llama_checks(CountedModel(llama_clock, rate=50.0, gap_s=0.02 / 50))
    assert lib.llama_decode is fake
    assert {name: c.status for name, c in close.items()} == {
        "decode tokens vs llama.cpp n_eval": "ok",
        "engine decode vs timed llama_decode calls": "ok",
        "end-to-end decode vs llama.cpp counters": "ok",
    }
    engine = close["engine decode vs timed llama_decode calls"]
    assert engine.measured == pytest.approx(50.0)
    assert engine.reference == pytest.approx(50.0)
    assert close["end-to-end decode vs llama.cpp counters"].difference == pytest.approx(1 / 1.02 - 1)
    assert close["decode tokens vs llama.cpp n_eval"].measured == 3 * 2 * 15
    far = _llama_checks(CountedModel(llama_clock, rate=50.0, gap_s=0.1 / 50))
    end_to_end = far["end-to-end decode vs llama.cpp counters"]
    assert end_to_end.status == "DISAGREES", end_to_end
    assert end_to_end.difference == pytest.approx(1 / 1.1 - 1)
    assert far["engine decode vs timed llama_decode calls"].status == "ok"
    short = _llama_checks(CountedModel(llama_clock, rate=50.0, gap_s=0.0, counted_share=0.95))
    assert short["engine decode vs timed llama_decode calls"].status == "DISAGREES"
    assert short["engine decode vs timed llama_decode calls"].difference == pytest.approx(1 / 0.95 - 1)
    missed = _llama_checks(CountedModel(llama_clock, rate=50.0, gap_s=0.0, uncounted=1))
    assert missed["decode tokens vs llama.cpp n_eval"].status == "DISAGREES"


@pytest.mark.real_model
def test_llama_cpp_rows_agree_on_the_real_model(real_llama_model: LlamaCppModel) -> None:
    """One process, two 8-token generations of the real model: the harness counts the tokens llama.cpp
    evaluated, its engine figure (the counters) agrees with the decode calls timed from Python, and its
    end-to-end figure, which adds the loop around each decode, is never above the counters' rate. How
    far below it is depends on the machine's load: ``llmbench selfcheck`` measures it, and
    ``test_llama_cpp_checks_decide_agreement_from_counters_and_timed_decodes`` proves the rows' logic."""
    from llmbench.config.models import BUILTIN_MODELS
    from llmbench.data import SHIPPED_DATA, load_items
    from llmbench.selfcheck.agreement import llama_cpp_checks

    spec = BUILTIN_MODELS["gemma3-270m"]
    model = real_llama_model  # the session's, on one thread (tests/conftest.py)
    prompts = [spec.format_prompt(item.text) for item in load_items(SHIPPED_DATA)[:1]]
    checks = {c.name: c for c in llama_cpp_checks(model, prompts, 8, rounds=2)}
    print(*render_checks(list(checks.values())), sep="\n")
    tokens = checks["decode tokens vs llama.cpp n_eval"]
    assert tokens.status == "ok", checks
    assert tokens.measured is not None
    assert tokens.measured > 0
    engine = checks["engine decode vs timed llama_decode calls"]
    assert engine.reference is not None
    assert engine.reference > 0  # the stopwatch saw the decode calls
    end_to_end = checks["end-to-end decode vs llama.cpp counters"]
    assert end_to_end.measured is not None
    assert end_to_end.reference is not None
    assert 0 < end_to_end.measured <= end_to_end.reference * 1.001  # the loop around the steps only adds time


def test_overhead_row_decides_only_when_its_interval_does() -> None:
    """The overhead row is ``ok`` only with its whole interval within the budget, DISAGREES only with it
    wholly beyond, and ``noisy`` where pairs spread too far to tell (a busy machine), whatever the median."""
    quiet = [1.0, 1.002, 0.999, 1.001, 0.998, 1.0, 1.003, 0.997, 1.001, 0.999]
    assert Overhead(quiet, [1.0] * 10).check("o", "w").status == "ok"
    assert Overhead([r * 1.03 for r in quiet], [1.0] * 10).check("o", "w").status == "DISAGREES"
    assert Overhead([r * 0.95 for r in quiet], [1.0] * 10).check("o", "w").status == "DISAGREES"  # faster: skipped work
    busy = [1.0, 1.06, 0.95, 1.04, 0.97, 1.05, 0.96, 1.03, 0.98, 1.0]
    check = Overhead([r * 1.03 for r in busy], [1.0] * 10).check("o", "w")
    assert check.status == "noisy"
    assert "the machine is too busy to tell" in check.how
