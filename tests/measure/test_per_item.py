"""Per-item figures: each sequence's speed, the records of a timed call, the timer of a pass (warm-up, call and
item counters), and the quality pass recording every item through the timer it is handed."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from llmbench.config.combination import Combination, ModelSpec
from llmbench.data import Item
from llmbench.engine_types import Generation, KVLayout
from llmbench.measure.memory import MemoryReading
from llmbench.measure.per_item import RECORD_FIELDS, ItemTimer, TimedCall, in_process_call, item_records, time_pass
from llmbench.measure.probes import probes_for
from llmbench.measure.speed import SequenceSpeed, sequence_speeds
from llmbench.metrics import Metric
from llmbench.quality.runs import QualityRuns, TimedBatch
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml
from llmbench.units import MiB
from tests.measure.test_speed import BATCHED, SEQUENTIAL
from tests.support.fake_cuda import FakeCudaRuntime, fake_cuda_device


class Reading(MemoryReading):
    """A memory reading with fixed figures: RSS and a GPU driver figure, and one the probe could not read."""

    def peak_bytes(self) -> int:
        return 2_000

    def before_bytes(self) -> int:
        return 1_000

    def after_bytes(self) -> int:
        return 1_500

    def metrics(self) -> list[Metric]:
        return [
            Metric.of("peak_rss_bytes", 2_000.0),
            Metric.of("rss_before_bytes", 1_000.0),
            Metric.of("peak_gpu_process_bytes", 9_000.0),
            Metric.of("peak_cuda_allocated_bytes", None, note="n/a: not read"),
        ]


class FakeModel:
    """A loaded model whose ``generate`` echoes its prompts: one token per word, ``max_new_tokens`` generated."""

    combination_key = ("fake", "fp32", "cpu")

    def __init__(self) -> None:
        self.calls: list[list[str]] = []

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        self.calls.append(list(prompts))
        steps = tuple(0.1 * (step + 1) for step in range(max_new_tokens))
        return Generation(
            texts=tuple(f"out {p}" for p in prompts),
            prompt_tokens=tuple(len(p.split()) for p in prompts),
            generated_tokens=tuple(max_new_tokens for _ in prompts),
            token_ids=tuple(tuple(range(max_new_tokens)) for _ in prompts),
            step_times_s=steps,
        )

    def weight_bytes(self) -> int:
        return 0

    def file_bytes(self) -> int | None:
        return None

    def kv_cache_layout(self) -> KVLayout | None:
        return None

    def close(self) -> None:
        pass


def fixed_call(seconds: float = 0.5) -> Any:
    """A CallFn that runs the model and reports ``seconds`` and :class:`Reading`."""

    def call(llm: Any, prompts: Sequence[str], max_new_tokens: int) -> TimedCall:
        return TimedCall(llm.generate(prompts, max_new_tokens), seconds, Reading())

    return call


def test_each_sequence_has_its_own_ttft_and_decode_rate() -> None:
    # Batched: one prefill (0.5 s) for both rows; row 0 decodes 3 tokens in 0.3 s, row 1 one token in 0.05 s.
    assert sequence_speeds(BATCHED) == [
        SequenceSpeed(0.5, pytest.approx(3 / 0.3)),
        SequenceSpeed(0.5, pytest.approx(1 / 0.05)),
    ]
    # Sequential: each sequence from its own start.
    assert sequence_speeds(SEQUENTIAL) == [
        SequenceSpeed(0.1, pytest.approx(2 / 0.4)),
        SequenceSpeed(0.4, pytest.approx(4 / 0.2)),
    ]
    one_token = Generation(("a",), (3,), (1,), ((0,),), step_times_s=(0.2,))
    assert sequence_speeds(one_token) == [SequenceSpeed(0.2, None)]
    unrecorded = Generation(("a", "b"), (3, 4), (2, 2), ((0, 1), (0, 1)), batch_mode="sequential")
    assert sequence_speeds(unrecorded) == [SequenceSpeed(None, None), SequenceSpeed(None, None)]
    with pytest.raises(ValueError, match="batch_mode 'speculative'"):
        sequence_speeds(Generation((), (), (), (), batch_mode="speculative"))


def test_a_call_gives_one_record_per_item_with_the_calls_latency_and_peaks() -> None:
    call = TimedCall(BATCHED, 0.9, Reading())
    first, second = item_records(call, ["a", "b"], 6, "quality", 4, 3)
    assert list(first)[: len(RECORD_FIELDS)] == list(RECORD_FIELDS)
    assert first == {
        "item": "a", "index": 6, "source": "quality", "batch_size": 4, "call": 3, "call_items": 2,
        "latency_s": 0.9, "ttft_s": 0.5, "prompt_tokens": 10, "generated_tokens": 4,
        "decode_tok_s": pytest.approx(10.0), "peak_rss_bytes": 2_000.0, "peak_gpu_process_bytes": 9_000.0,
    }  # fmt: skip
    # The unread figure and the before-figure are left out; the item's own tokens and rate differ.
    assert (second["index"], second["prompt_tokens"], second["generated_tokens"]) == (7, 30, 2)
    assert second["latency_s"] == 0.9
    with pytest.raises(ValueError, match="1 item ids for a call that generated 2 sequences"):
        item_records(call, ["a"], 0, "quality", 4, 0)


def test_a_pass_warms_up_once_then_times_every_call() -> None:
    model = FakeModel()
    timer = ItemTimer(fixed_call(), "test", 2)
    ids = ["a", "b", "c", "d", "e"]
    prompts = ["one", "two words", "three more words", "four", "five"]
    records = time_pass(timer, model, ids, prompts, max_new_tokens=3)  # type: ignore[arg-type]
    # One untimed call of the first batch, then 3 timed calls (2 + 2 + 1 items).
    assert model.calls == [["one", "two words"], ["one", "two words"], ["three more words", "four"], ["five"]]
    assert [r["item"] for r in records] == ids
    assert [r["index"] for r in records] == [0, 1, 2, 3, 4]
    assert [r["call"] for r in records] == [0, 0, 1, 1, 2]
    assert [r["call_items"] for r in records] == [2, 2, 2, 2, 1]
    assert [r["prompt_tokens"] for r in records] == [1, 2, 3, 1, 1]
    assert {r["source"] for r in records} == {"test"}
    assert {r["batch_size"] for r in records} == {2}
    with pytest.raises(ValueError, match="2 item ids for 1 prompts"):
        time_pass(timer, model, ["a", "b"], ["one"], 3)  # type: ignore[arg-type]


def test_the_in_process_call_reads_the_clock_and_memory_around_generate() -> None:
    model = FakeModel()
    timed = in_process_call(probes_for("cpu"))(model, ["a b c"], 2)  # type: ignore[arg-type]
    assert timed.generation.prompt_tokens == (3,)
    assert timed.seconds > 0
    assert timed.memory.peak_bytes() > 0
    (record,) = item_records(timed, ["x"], 0, "quality", 1, 0)
    assert record["peak_rss_bytes"] > 0


def test_on_cuda_a_record_has_the_host_rss_and_each_gpu_figure_named_for_its_source(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # FAKE torch.cuda and FAKE NVML (tests/support/fake_cuda.py): the probes probes_for("cuda:0") builds, no GPU.
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    gpu = FakeGpu(name="NVIDIA H100 80GB HBM3")
    runtime = FakeCudaRuntime(gpu, context_bytes=500 * MiB)
    probes = fake_cuda_device(runtime, FakeNvml([gpu])).probes

    class OnTheGpu(FakeModel):
        def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
            held = runtime.allocate(64 * MiB)  # the call's activations and KV cache, freed at its end
            del held
            return super().generate(prompts, max_new_tokens)

    runtime.allocate(1 * MiB)  # torch has initialised CUDA in this process: the allocator's figures are read
    timed = in_process_call(probes)(OnTheGpu(), ["a b"], 2)  # type: ignore[arg-type]
    (record,) = item_records(timed, ["x"], 0, "test", 1, 0)
    peaks = {name: value for name, value in record.items() if name.startswith("peak_")}
    assert set(peaks) >= {"peak_rss_bytes", "peak_gpu_process_bytes", "peak_cuda_allocated_bytes"}
    assert peaks["peak_cuda_allocated_bytes"] >= 64 * MiB
    assert peaks["peak_gpu_process_bytes"] >= 500 * MiB + 64 * MiB
    assert peaks["peak_rss_bytes"] > 0


def test_the_quality_pass_records_every_item_through_the_timer_it_is_handed(tmp_path: Path) -> None:
    items = [Item(id=f"item-{n}", text=f"text number {n}", reference=f"ref {n}") for n in range(5)]
    handed: list[Combination] = []

    def timers(combination: Combination) -> TimedBatch:
        handed.append(combination)
        return ItemTimer(fixed_call(0.25), "quality", 2, warmup=False)

    quality = QualityRuns(items, 2, None, 0.99, tmp_path, timed_batches=timers)
    combination = Combination(ModelSpec(name="fake", family="causal", source="path:/nowhere"), "fp32", "cpu", 1)
    run = quality.get(combination, FakeModel(), 3)  # type: ignore[arg-type]
    assert handed == [combination]
    assert [r["item"] for r in run.per_item] == [item.id for item in items]
    assert [r["call"] for r in run.per_item] == [0, 0, 1, 1, 2]
    assert {r["latency_s"] for r in run.per_item} == {0.25}
    assert len(run.texts) == 5
    # Without a timer the pass records nothing (llmbench ab, --llmbench-per-item=off).
    untimed = QualityRuns(items, 2, None, 0.99, tmp_path / "plain").get(combination, FakeModel(), 3)  # type: ignore[arg-type]
    assert untimed.per_item == ()
    assert untimed.texts == run.texts
