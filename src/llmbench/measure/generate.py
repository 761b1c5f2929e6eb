"""The measured ``generate`` benchmark: timed rounds through pytest-benchmark, plus every figure.

pytest-benchmark times each round (``latency_s``); inside the same call the backend records the
time of each decoding step (``ttft_s``, prefill and decode rates) and the memory probe reads the
peak of the call with the peak reset first. All figures go into the benchmark's ``extra_info``
under ``metrics`` (see :mod:`llmbench.metrics`).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from llmbench.benchmark_storage import round_times
from llmbench.config.combination import Combination
from llmbench.engine_types import Generation, LoadedModel
from llmbench.measure.distribution import distribution_metrics
from llmbench.measure.probes import MemoryReading, Probes
from llmbench.measure.speed import (
    engine_decode_metric,
    file_bytes_metric,
    kv_cache_metric,
    load_s_metric,
    mbu_metric,
    speed_metrics,
    weight_bytes_metric,
)
from llmbench.metrics import METRICS_KEY, Metric, MetricSet
from llmbench.quality.runs import QualityRun


def _peak_over_rounds(readings: Sequence[MemoryReading]) -> list[Metric]:
    """Each memory figure's worst round (the value) with every round's reading (the samples)."""
    per_round = [reading.metrics() for reading in readings]
    if not per_round:
        return []
    out = []
    for position, first in enumerate(per_round[0]):
        samples = tuple(v for m in per_round if (v := m[position].value) is not None)
        value = max(samples) if samples and first.direction == "lower" and "peak" in first.name else first.value
        out.append(Metric(first.name, value, first.unit, first.direction, samples, note=first.note))
    return out


@dataclass
class GenerateBenchmark:
    """Runs and records the timed ``generate`` rounds of one combination."""

    benchmark: Any
    combination: Combination
    probes: Probes
    peak_bandwidth: Metric | None
    load_s: float | None
    rounds: int
    warmup_rounds: int
    metrics: MetricSet = field(default_factory=MetricSet)

    def run(self, llm: LoadedModel, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        """Time ``rounds`` calls of ``llm.generate(prompts, max_new_tokens)`` and record the figures."""
        generations: list[Generation] = []
        readings: list[MemoryReading] = []
        timed = {"on": False}

        def target() -> Generation:
            with self.probes.memory.measure() as reading:
                generation = llm.generate(prompts, max_new_tokens)
            if timed["on"]:
                generations.append(generation)
                readings.append(reading)
            return generation

        def setup() -> None:
            # pytest-benchmark calls setup before every round, warm-up rounds included; the
            # warm-up rounds come first, so the timed ones are the last `rounds` calls.
            timed["on"] = calls["n"] >= self.warmup_rounds
            calls["n"] += 1

        calls = {"n": 0}
        result: Generation = self.benchmark.pedantic(
            target, setup=setup, rounds=self.rounds, warmup_rounds=self.warmup_rounds, iterations=1
        )
        latencies = round_times(self.benchmark)
        self.record(llm, generations, latencies, readings, max_new_tokens)
        return result

    def record(
        self,
        llm: LoadedModel,
        generations: Sequence[Generation],
        latencies_s: Sequence[float],
        readings: Sequence[MemoryReading],
        max_new_tokens: int,
    ) -> None:
        weight_bytes = llm.weight_bytes()
        layout = llm.kv_cache_layout()
        self.metrics.extend(speed_metrics(generations, latencies_s))
        self.metrics.add(engine_decode_metric(generations))
        self.metrics.extend(distribution_metrics(generations))
        self.metrics.extend(_peak_over_rounds(readings))
        self.metrics.add(weight_bytes_metric(weight_bytes))
        self.metrics.add(file_bytes_metric(llm.file_bytes()))
        if generations:
            self.metrics.add(kv_cache_metric(layout, generations[-1]))
        bandwidth = self.peak_bandwidth.value if self.peak_bandwidth else None
        self.metrics.add(mbu_metric(generations, weight_bytes, layout, bandwidth))
        if self.peak_bandwidth is not None:
            self.metrics.add(self.peak_bandwidth)
        if self.load_s is not None:
            self.metrics.add(load_s_metric(self.load_s, note="first load in this session, from the local cache"))
        last = generations[-1] if generations else None
        self.benchmark.extra_info.update(self.combination.as_info())
        self.benchmark.extra_info.update(
            max_new_tokens=max_new_tokens,
            prompt_tokens=sum(last.prompt_tokens) if last else None,
            generated_tokens=sum(last.generated_tokens) if last else None,
            batch_mode=last.batch_mode if last else None,
        )
        self.save()

    def add(self, metrics: Sequence[Metric]) -> None:
        """Add figures measured outside the timed rounds (quality, ...) and save them."""
        self.metrics.extend(metrics)
        self.save()

    def add_quality(self, quality: QualityRun) -> None:
        """Add the ROUGE and drift figures of this combination's model and the texts it generated."""
        self.benchmark.extra_info["quality_items"] = len(quality.ids)
        self.benchmark.extra_info["outputs"] = dict(zip(quality.ids, quality.texts, strict=True))
        if quality.outputs_file is not None:
            self.benchmark.extra_info["outputs_file"] = str(quality.outputs_file)
        self.add(quality.metrics)

    def save(self) -> None:
        self.benchmark.extra_info[METRICS_KEY] = self.metrics.to_json()
