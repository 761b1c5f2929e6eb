"""``llmbench selfcheck`` and the cross-checks behind it: engine clocks, bare loops, memory, bandwidth."""

from __future__ import annotations

import argparse
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from llmbench import cli
from llmbench.backends.hf_generation import StepClock
from llmbench.backends.transformers_backend import TransformersBackend, TransformersModel
from llmbench.commands import selfcheck as command
from llmbench.config.combination import Combination, ModelSpec
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

PROMPTS = ["The fox saw some grapes hanging high on a vine."]


@pytest.fixture
def tiny(tiny_gemma3_dir: Path) -> Iterator[TransformersModel]:
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
    assert lines[0].split() == ["check", "harness", "reference", "diff", "tolerance", "status"]
    assert lines[2].split() == ["engine", "41.0", "41.2", "-0.49%", "±1%", "ok"]
    assert "x: why" in lines


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
    assert overhead.check("o", "w").bound == "at_most"
    # Synthetic pairs: the overhead's interval is the median's bootstrap interval of the pairs' ratios.
    noisy = Overhead([1.00, 1.03, 0.99, 1.04, 1.02, 1.00, 1.05, 1.02], [1.0] * 8).check("o", "w")
    assert noisy.status == "noisy"
    assert noisy.interval is not None
    assert noisy.interval[0] <= 1.01 < noisy.interval[1]
    assert "95% interval of the ratio" in noisy.how
    clear = Overhead([1.03, 1.031, 1.029, 1.032, 1.03, 1.028], [1.0] * 6).check("o", "w")
    assert clear.status == "DISAGREES"


@pytest.fixture
def one_thread() -> Iterator[None]:
    """torch on one thread: on a shared machine a busy core stalls every op's thread barrier, which
    turns a tiny model's millisecond steps into tens of milliseconds of noise."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.usefixtures("one_thread")
def test_transformers_figures_agree_with_bare_calls_within_3_percent(tiny: TransformersModel) -> None:
    """One process, interleaved (issue 14): the step clock's decode rate within 3% of a bare
    ``model.generate`` from the prompt's cached KV, the forward clock's within 3% of the model's forward
    in a bare loop. About 5 s here: 15 rounds of four 32-token calls of about 20 ms.

    A busy machine (another process on the other core) moved both by 7-9% in one attempt on CI's fresh
    clone, so up to three attempts are made: a harness that really disagrees fails every one of them."""
    attempts = []
    for _ in range(3):
        checks = {c.name: c for c in transformers_checks(tiny, PROMPTS, 32, rounds=15)}
        print(*render_checks(list(checks.values())), sep="\n")
        attempts.append(checks)
        if all(c.status == "ok" for c in checks.values()):
            break
    checks = attempts[-1]
    assert checks["end-to-end decode vs bare generate"].status == "ok", attempts
    assert checks["engine decode vs bare forward loop"].status == "ok", attempts


@pytest.mark.usefixtures("one_thread")
def test_bare_generate_check_catches_a_slow_step_clock(
    tiny: TransformersModel, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The agreement test can fail: 1 ms more per step in the streamer (a few ms steps) disagrees."""
    put = StepClock.put

    def slow_put(self: StepClock, value: torch.Tensor) -> None:
        time.sleep(0.001)
        put(self, value)

    monkeypatch.setattr(StepClock, "put", slow_put)
    checks = {c.name: c for c in transformers_checks(tiny, PROMPTS, 16, rounds=5)}
    end_to_end = checks["end-to-end decode vs bare generate"]
    assert end_to_end.status == "DISAGREES", end_to_end
    assert end_to_end.difference is not None
    assert end_to_end.difference < -BARE_LOOP_TOLERANCE


def test_memory_checks_agree_on_a_held_allocation() -> None:
    def allocate() -> None:
        block = bytearray(96 * MiB)  # zero-filled: every page touched
        time.sleep(0.05)  # held long enough for the 1 ms sampler
        del block

    sampled, lifetime = cpu_memory_checks(allocate)
    if sampled.status != "skipped":
        assert sampled.status == "ok", sampled
    assert lifetime.status == "ok", lifetime
    assert lifetime.measured is not None
    assert lifetime.reference is not None
    assert lifetime.measured >= 96 * MiB


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


@pytest.mark.real_model
def test_llama_cpp_engine_and_end_to_end_agree_with_its_counters(tmp_path_factory: pytest.TempPathFactory) -> None:
    """One process, a few 16-token generations: engine figure within 1%, end-to-end within 5%."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from llmbench.backends.llama_cpp_backend import LlamaCppBackend
    from llmbench.config.models import BUILTIN_MODELS
    from llmbench.data import SHIPPED_DATA, load_items
    from llmbench.selfcheck.agreement import llama_cpp_checks

    spec = BUILTIN_MODELS["gemma3-270m"]
    backend = LlamaCppBackend(n_threads=1)  # one thread: a shared machine does not stall a thread barrier
    reason = backend.unavailable_reason(spec, "q4_k_m", "cpu")
    if reason is not None:
        pytest.skip(reason)
    model = backend.load(Combination(spec, "q4_k_m", "cpu", 1), tmp_path_factory.mktemp("cache"))
    try:
        prompts = [spec.format_prompt(item.text) for item in load_items(SHIPPED_DATA)[:1]]
        model.generate(prompts[:1], 4)  # warm-up
        checks = {c.name: c for c in llama_cpp_checks(model, prompts, 16, rounds=2)}
    finally:
        model.close()
    assert checks["decode tokens vs llama.cpp n_eval"].status == "ok", checks
    assert checks["engine decode vs llama.cpp counters"].status == "ok", checks
    assert checks["end-to-end decode vs llama.cpp counters"].status == "ok", checks
    end_to_end = checks["end-to-end decode vs llama.cpp counters"]
    assert end_to_end.measured is not None
    assert end_to_end.reference is not None
    assert end_to_end.measured <= end_to_end.reference * 1.001  # the loop around the steps only adds time
