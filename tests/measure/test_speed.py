"""Speed, size and MBU figures: exact arithmetic on synthetic step times, and one end-to-end check
with a fake model whose prefill and per-token costs are known sleeps."""

from __future__ import annotations

import time
from collections.abc import Sequence

import pytest

from llmbench.engine_types import Generation, KVLayout
from llmbench.measure.probes import probes_for
from llmbench.measure.speed import (
    file_bytes_metric,
    kv_cache_bytes,
    kv_cache_metric,
    load_s_metric,
    mbu_metric,
    model_bandwidth_utilization,
    round_speed,
    speed_metrics,
    weight_bytes_metric,
)
from llmbench.metrics import Metric


def batched(prompts: Sequence[int], generated: Sequence[int], steps: Sequence[float]) -> Generation:
    return Generation(
        texts=tuple("" for _ in prompts),
        prompt_tokens=tuple(prompts),
        generated_tokens=tuple(generated),
        token_ids=tuple(tuple(range(g)) for g in generated),
        step_times_s=tuple(steps),
    )


def sequential(
    prompts: Sequence[int], generated: Sequence[int], steps: Sequence[Sequence[float]]
) -> Generation:
    return Generation(
        texts=tuple("" for _ in prompts),
        prompt_tokens=tuple(prompts),
        generated_tokens=tuple(generated),
        token_ids=tuple(tuple(range(g)) for g in generated),
        sequence_step_times_s=tuple(tuple(s) for s in steps),
        batch_mode="sequential",
    )


def by_name(metrics: list[Metric]) -> dict[str, Metric]:
    return {m.name: m for m in metrics}


# Prompts of 10 and 30 tokens; sequence 0 generates 4 tokens, sequence 1 stops after 2.
BATCHED = batched([10, 30], [4, 2], [0.5, 0.55, 0.7, 0.8])
# Sequence 0: 10 prompt tokens, 3 generated; sequence 1: 20 prompt tokens, 5 generated.
SEQUENTIAL = sequential([10, 20], [3, 5], [[0.1, 0.3, 0.5], [0.4, 0.45, 0.5, 0.55, 0.6]])

# 4 layers x 2 KV heads x head_dim 8 x 2 bytes x 2 (K and V) = 64 bytes per token per layer.
LAYOUT = KVLayout(layers=4, kv_heads=2, head_dim=8, bytes_per_element=2)


def test_batched_round_by_hand() -> None:
    speed = round_speed(BATCHED)
    assert speed.ttft_s == 0.5
    assert speed.prefill_tok_s == pytest.approx(40 / 0.5)  # the whole batch's prompts
    # Sequence 0: 3 tokens after its first in 0.8 - 0.5 s; sequence 1: 1 token in 0.55 - 0.5 s.
    assert speed.decode_tok_s_per_seq == pytest.approx((3 / 0.3 + 1 / 0.05) / 2)
    # The batch: 3 + 1 tokens after the first step, between the first and the last step.
    assert speed.decode_tok_s_total == pytest.approx(4 / 0.3)
    assert speed.decode_steps_per_s == pytest.approx(3 / 0.3)
    # Padded rows: longest prompt (30) + half the longest generation (4 / 2), both rows read.
    assert speed.kv_tokens_per_seq == 32
    assert speed.kv_batch == 2


def test_sequential_round_by_hand() -> None:
    speed = round_speed(SEQUENTIAL)
    assert speed.ttft_s == pytest.approx((0.1 + 0.4) / 2)
    assert speed.prefill_tok_s == pytest.approx((10 / 0.1 + 20 / 0.4) / 2)
    # Sequence 0: 2 tokens in 0.4 s (5 tok/s); sequence 1: 4 tokens in 0.2 s (20 tok/s).
    assert speed.decode_tok_s_per_seq == pytest.approx((5 + 20) / 2)
    # All sequences: 6 tokens after the first in 0.4 + 0.2 s of decoding.
    assert speed.decode_tok_s_total == pytest.approx(6 / 0.6)
    assert speed.decode_steps_per_s == speed.decode_tok_s_total
    # Mean cache length over the 2 + 4 decode steps: (2 x (10 + 3/2) + 4 x (20 + 5/2)) / 6.
    assert speed.kv_tokens_per_seq == pytest.approx((2 * 11.5 + 4 * 22.5) / 6)
    assert speed.kv_batch == 1


def test_the_same_timestamps_read_batched_and_sequentially_differ() -> None:
    steps = [0.1, 0.2, 0.3]
    as_batch = round_speed(batched([5, 5], [3, 3], steps))
    as_sequence = round_speed(sequential([5, 5], [3, 3], [steps, steps]))
    assert as_batch.decode_tok_s_per_seq == as_sequence.decode_tok_s_per_seq == pytest.approx(10)
    # One batched step yields a token for both rows; one after the other, the time adds up.
    assert as_batch.decode_tok_s_total == pytest.approx(20)
    assert as_sequence.decode_tok_s_total == pytest.approx(10)
    assert as_batch.prefill_tok_s == pytest.approx(100)
    assert as_sequence.prefill_tok_s == pytest.approx(50)


def test_very_different_prompt_lengths_in_a_batch() -> None:
    speed = round_speed(batched([3, 700], [2, 2], [0.25, 0.5]))
    assert speed.prefill_tok_s == pytest.approx(703 / 0.25)
    assert speed.decode_tok_s_per_seq == pytest.approx(4)
    assert speed.kv_tokens_per_seq == 701


def test_metrics_are_medians_over_rounds_with_per_round_samples() -> None:
    rounds = [batched([8], [3], [t, t + 0.1, t + 0.2]) for t in (0.1, 0.3, 0.2)]
    metrics = by_name(speed_metrics(rounds, [1.0, 3.0, 2.0]))
    assert list(metrics) == [
        "latency_s",
        "ttft_s",
        "prefill_tok_s",
        "decode_tok_s_per_seq",
        "decode_tok_s_total",
    ]
    assert metrics["latency_s"].value == 2.0
    assert metrics["latency_s"].samples == (1.0, 3.0, 2.0)
    assert metrics["ttft_s"].value == pytest.approx(0.2)
    assert metrics["ttft_s"].samples == pytest.approx((0.1, 0.3, 0.2))
    assert metrics["prefill_tok_s"].value == pytest.approx(8 / 0.2)
    assert metrics["decode_tok_s_per_seq"].value == pytest.approx(10)
    units = {name: (m.unit, m.direction) for name, m in metrics.items()}
    assert units == {
        "latency_s": ("s", "lower"),
        "ttft_s": ("s", "lower"),
        "prefill_tok_s": ("tok/s", "higher"),
        "decode_tok_s_per_seq": ("tok/s", "higher"),
        "decode_tok_s_total": ("tok/s", "higher"),
    }
    assert metrics["decode_tok_s_total"].note.startswith("batched:")


def test_sequential_rounds_say_so_in_the_note() -> None:
    metrics = by_name(speed_metrics([SEQUENTIAL], [1.0]))
    assert metrics["decode_tok_s_total"].note.startswith("sequential:")
    assert metrics["decode_tok_s_total"].value == pytest.approx(10)


@pytest.mark.parametrize(
    "generation",
    [
        pytest.param(batched([12, 7], [0, 0], []), id="batched-zero-tokens-no-steps"),
        pytest.param(batched([12, 7], [0, 0], [0.2]), id="batched-zero-tokens-one-step"),
        pytest.param(batched([12], [3], []), id="batched-empty-step-times"),
        pytest.param(sequential([12, 7], [0, 0], [[], []]), id="sequential-zero-tokens"),
        pytest.param(sequential([12, 7], [2, 2], []), id="sequential-no-step-times"),
    ],
)
def test_nothing_to_measure_is_none(generation: Generation) -> None:
    metrics = by_name(speed_metrics([generation, generation], [0.5, 0.5]))
    for name in ("ttft_s", "prefill_tok_s", "decode_tok_s_per_seq", "decode_tok_s_total"):
        assert metrics[name].value is None, name
        assert metrics[name].samples == ()
    assert mbu_metric([generation], 10**9, LAYOUT, 20e9).value is None


@pytest.mark.parametrize(
    "generation",
    [
        pytest.param(batched([12, 7], [1, 1], [0.2]), id="batched"),
        pytest.param(sequential([12, 7], [1, 1], [[0.2], [0.1]]), id="sequential"),
    ],
)
def test_a_single_token_has_a_ttft_but_no_decode_phase(generation: Generation) -> None:
    speed = round_speed(generation)
    assert speed.ttft_s is not None
    assert speed.prefill_tok_s is not None
    assert speed.decode_tok_s_per_seq is None
    assert speed.decode_tok_s_total is None
    assert speed.decode_steps_per_s is None
    assert mbu_metric([generation], 10**9, LAYOUT, 20e9).value is None


def test_zero_elapsed_time_is_none_not_a_division_error() -> None:
    speed = round_speed(batched([4], [3], [0.0, 0.0, 0.0]))
    assert speed.ttft_s is None
    assert speed.prefill_tok_s is None
    assert speed.decode_tok_s_per_seq is None


def test_rounds_without_a_value_are_counted_in_the_note() -> None:
    rounds = [batched([8], [3], [0.1, 0.2, 0.3]), batched([8], [1], [0.1])]
    decode = by_name(speed_metrics(rounds, [1.0, 1.0]))["decode_tok_s_per_seq"]
    assert decode.value == pytest.approx(10)
    assert decode.samples == pytest.approx((10,))
    assert "n/a in 1 of 2 rounds" in decode.note


@pytest.mark.parametrize(
    ("generation", "message"),
    [
        (batched([8], [5], [0.1, 0.2]), "2 step times but a sequence generated 5"),
        (sequential([8], [3], [[0.1]]), "1 step times for a sequence that generated 3"),
        (sequential([8, 8], [3, 3], [[0.1, 0.2, 0.3]]), "1 sequence_step_times_s entries for a batch of 2"),
        (batched([8, 8], [3], [0.1, 0.2, 0.3]), "2 prompt_tokens entries for a batch of 1"),
        (Generation((), (), (), (), batch_mode="speculative"), "batch_mode 'speculative'"),
    ],
)
def test_inconsistent_generations_are_refused(generation: Generation, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        round_speed(generation)


# ------------------------------------------------------------------------------ KV cache and MBU


def test_kv_cache_bytes_by_hand() -> None:
    assert kv_cache_bytes(LAYOUT, 100, 3) == 64 * 4 * 100 * 3
    assert kv_cache_bytes(LAYOUT, 0, 3) == 0
    assert kv_cache_bytes(None, 100, 3) is None


def test_kv_cache_bytes_caps_sliding_window_layers() -> None:
    # 3 of the 4 layers keep at most 32 tokens.
    layout = KVLayout(
        layers=4, kv_heads=2, head_dim=8, bytes_per_element=2, sliding_window=32, sliding_layers=3
    )
    assert kv_cache_bytes(layout, 100, 3) == 64 * (1 * 100 + 3 * 32) * 3
    assert kv_cache_bytes(layout, 20, 3) == 64 * 4 * 20 * 3  # below the window: no cap
    # A window without sliding layers caps nothing.
    uncapped = KVLayout(layers=4, kv_heads=2, head_dim=8, bytes_per_element=2, sliding_window=32)
    assert kv_cache_bytes(uncapped, 100, 3) == 64 * 4 * 100 * 3


def test_kv_cache_bytes_of_gemma3_270m_at_bf16() -> None:
    # Gemma 3 270M: 18 layers, 1 KV head of 256, 5 in 6 layers local with a 512-token window.
    layout = KVLayout(
        layers=18, kv_heads=1, head_dim=256, bytes_per_element=2, sliding_window=512, sliding_layers=15
    )
    assert kv_cache_bytes(layout, 1024, 1) == 2 * 256 * 2 * (3 * 1024 + 15 * 512)


def test_kv_cache_bytes_refuses_negative_sizes() -> None:
    with pytest.raises(ValueError, match="non-negative"):
        kv_cache_bytes(LAYOUT, -1, 1)


def test_kv_cache_metric_at_the_end_of_generation() -> None:
    padded = kv_cache_metric(LAYOUT, BATCHED)
    assert padded.value == 64 * 4 * (30 + 4) * 2
    assert (padded.unit, padded.direction) == ("bytes", "lower")
    # Sequential: the cache is emptied between sequences; the largest is 20 + 5 tokens.
    assert kv_cache_metric(LAYOUT, SEQUENTIAL).value == 64 * 4 * 25
    missing = kv_cache_metric(None, BATCHED)
    assert missing.value is None
    assert "n/a" in missing.note


def test_model_bandwidth_utilization_by_hand() -> None:
    # DESIGN.md: bf16 Gemma 3 270M reads about 0.54 GB per token; 16 tok/s against 26 GB/s.
    assert model_bandwidth_utilization(0.54e9, 16, 26e9) == pytest.approx(0.54 * 16 / 26)
    assert model_bandwidth_utilization(None, 16, 26e9) is None
    assert model_bandwidth_utilization(0.54e9, None, 26e9) is None
    assert model_bandwidth_utilization(0.54e9, 16, None) is None
    assert model_bandwidth_utilization(0.54e9, 16, 0) is None


def test_mbu_batched_reads_the_weights_once_per_step_and_every_rows_cache() -> None:
    mbu = mbu_metric([BATCHED], 10**9, LAYOUT, 20e9)
    # 10 steps/s (3 steps after the first in 0.3 s); KV: 2 rows of 32 tokens, 64 B x 4 layers each.
    assert mbu.value == pytest.approx((10**9 + 64 * 4 * 32 * 2) * 10 / 20e9)
    assert (mbu.unit, mbu.direction) == ("ratio", "higher")


def test_mbu_sequential_reads_the_weights_once_per_token() -> None:
    mbu = mbu_metric([SEQUENTIAL], 10**9, LAYOUT, 20e9)
    # 10 steps/s (6 tokens in 0.6 s); KV: one sequence of 18.83 -> 19 tokens on average.
    assert mbu.value == pytest.approx((10**9 + 64 * 4 * 19) * 10 / 20e9)


@pytest.mark.parametrize(
    ("weights", "layout", "peak", "missing"),
    [
        (None, LAYOUT, 20e9, "no weight bytes"),
        (10**9, None, 20e9, "no KV cache layout"),
        (10**9, LAYOUT, None, "no peak bandwidth"),
    ],
)
def test_mbu_is_none_where_anything_is_missing(
    weights: int | None, layout: KVLayout | None, peak: float | None, missing: str
) -> None:
    mbu = mbu_metric([BATCHED], weights, layout, peak)
    assert mbu.value is None
    assert missing in mbu.note


def test_size_and_load_metrics() -> None:
    assert weight_bytes_metric(536_870_912) == Metric("weight_bytes", 536_870_912.0, "bytes", "lower")
    assert file_bytes_metric(253_000_000).value == 253_000_000
    assert file_bytes_metric(None).value is None
    load = load_s_metric([4.0, 2.0, 3.0], note="from the local cache")
    assert (load.name, load.value, load.unit, load.direction) == ("load_s", 3.0, "s", "lower")
    assert load.samples == (4.0, 2.0, 3.0)
    assert load.note == "from the local cache"
    assert load_s_metric(1.5).value == 1.5


# ------------------------------------------------------------- end to end, with known delays


class FakeDelayModel:
    """A stand-in model whose costs are known sleeps: ``prefill_s`` before the first token, then
    ``per_token_s`` per token; timestamps taken with the harness's own CPU timer marks."""

    def __init__(self, prefill_s: float, per_token_s: float, batch_mode: str) -> None:
        self.prefill_s = prefill_s
        self.per_token_s = per_token_s
        self.batch_mode = batch_mode
        self.timer = probes_for("cpu").timer

    def _steps(self, max_new_tokens: int) -> tuple[float, ...]:
        with self.timer.measure() as clock:
            time.sleep(self.prefill_s)
            clock.mark()
            for _ in range(max_new_tokens - 1):
                time.sleep(self.per_token_s)
                clock.mark()
        return clock.marks_s()

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        lengths = tuple(len(p.split()) for p in prompts)
        steps: tuple[float, ...] = ()
        per_sequence: tuple[tuple[float, ...], ...] = ()
        if self.batch_mode == "batched":
            steps = self._steps(max_new_tokens)
        else:
            per_sequence = tuple(self._steps(max_new_tokens) for _ in prompts)
        return Generation(
            texts=tuple("x" * max_new_tokens for _ in prompts),
            prompt_tokens=lengths,
            generated_tokens=tuple(max_new_tokens for _ in prompts),
            token_ids=tuple(tuple(range(max_new_tokens)) for _ in prompts),
            step_times_s=steps,
            sequence_step_times_s=per_sequence,
            batch_mode=self.batch_mode,
        )


# sleep() never returns early, so every measured time is at least the injected delay; it may
# overshoot on a busy machine, hence the loose tolerance on the other side.
PREFILL_S, PER_TOKEN_S, TOKENS, SLACK = 0.05, 0.01, 16, 1.15
PROMPTS = ["one two three four five", "six seven eight nine ten"]


@pytest.mark.parametrize(("batch_mode", "rows_per_step"), [("batched", 2), ("sequential", 1)])
def test_fake_model_with_known_delays_end_to_end(batch_mode: str, rows_per_step: int) -> None:
    model = FakeDelayModel(PREFILL_S, PER_TOKEN_S, batch_mode)
    generations, latencies = [], []
    timer = probes_for("cpu").timer
    for _ in range(2):
        with timer.measure() as call:
            generations.append(model.generate(PROMPTS, TOKENS))
        latencies.append(call.seconds())
    metrics = by_name(speed_metrics(generations, latencies))

    ttft = metrics["ttft_s"].value
    assert ttft is not None
    assert PREFILL_S <= ttft <= PREFILL_S * SLACK
    prefill = metrics["prefill_tok_s"].value
    assert prefill is not None
    assert 5 * rows_per_step / PREFILL_S / SLACK <= prefill <= 5 * rows_per_step / PREFILL_S * 1.001
    # 15 tokens after the first in 15 x 10 ms: 100 tok/s (counting 16 would give 107 and fail).
    per_seq = metrics["decode_tok_s_per_seq"].value
    assert per_seq is not None
    assert 1 / PER_TOKEN_S / SLACK <= per_seq <= 1 / PER_TOKEN_S * 1.001
    total = metrics["decode_tok_s_total"].value
    assert total is not None
    expected_total = rows_per_step / PER_TOKEN_S
    assert expected_total / SLACK <= total <= expected_total * 1.001
    calls_per_round = 1 if batch_mode == "batched" else len(PROMPTS)
    latency = metrics["latency_s"].value
    assert latency is not None
    assert latency >= calls_per_round * (PREFILL_S + (TOKENS - 1) * PER_TOKEN_S)
