"""The measured ``generate`` benchmark: timed rounds through pytest-benchmark, plus every figure.

pytest-benchmark times each round (``latency_s``); inside the same call the backend records the
time of each decoding step (``ttft_s``, prefill and decode rates) and the memory probe reads the
peak of the call with the peak reset first. Around the timed rounds as a whole (never inside a call),
:class:`DeviceWindow` reads the device's energy counter where there is one (``energy_per_token_j``,
``mean_power_w``; the window extended with untimed calls where the rounds are too short for the
counter) and, on CUDA, samples the GPU's clock event reasons (the throttle warning). All figures go
into the benchmark's ``extra_info`` under ``metrics`` (see :mod:`llmbench.metrics`).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from llmbench.benchmark_storage import round_times
from llmbench.config.combination import Combination
from llmbench.engine_types import Generation, LoadedModel
from llmbench.gpu_driver import THROTTLE_INFO_KEY
from llmbench.measure.distribution import distribution_metrics
from llmbench.measure.energy import EnergyUnavailable, EnergyWindow, energy_metrics
from llmbench.measure.per_item import PER_ITEM_KEY
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
from llmbench.measure.throttle import ClockEventSampler
from llmbench.metrics import METRICS_KEY, Metric, MetricSet
from llmbench.quality.runs import QualityRun


def _peak_over_rounds(readings: Sequence[MemoryReading]) -> list[Metric]:
    """Each memory figure's worst round (the value) with every round's reading (the samples), matched by
    name (a probe may report a figure in some rounds only), in the order first seen."""
    per_round = [{metric.name: metric for metric in reading.metrics()} for reading in readings]
    names = list(dict.fromkeys(name for metrics in per_round for name in metrics))
    out = []
    for name in names:
        rounds = [metrics[name] for metrics in per_round if name in metrics]
        first = rounds[0]
        samples = tuple(v for m in rounds if (v := m.value) is not None)
        value = max(samples) if samples and first.direction == "lower" and "peak" in first.name else first.value
        note = next((m.note for m in rounds if m.value is not None), first.note)
        out.append(Metric(first.name, value, first.unit, first.direction, samples, note=note))
    return out


def _tokens(generation: Generation) -> int:
    return sum(generation.generated_tokens)


@dataclass
class DeviceWindow:
    """What is read around the timed rounds as a whole: the energy counter and the GPU's clock events.

    :meth:`start` just before the first timed round, :meth:`finish` after the last; nothing runs inside
    a timed call. Where the device has no readable energy counter (a CPU without readable RAPL), nothing is
    read at all and the energy figures are n/a with the reason. On CUDA a thread samples the clock event
    reasons every 100 ms meanwhile (:mod:`llmbench.measure.throttle`).
    """

    probes: Probes
    clock: Callable[[], float] = time.perf_counter
    energy: EnergyWindow | None = None
    energy_reason: str = "the timed rounds did not run (--benchmark-disable?)"
    clock_events: ClockEventSampler | None = None

    def start(self) -> None:
        try:
            self.energy = EnergyWindow(self.probes.energy.counter(), self.clock)
        except EnergyUnavailable as error:
            self.energy_reason = str(error)
        if self.probes.gpu is not None:
            self.clock_events = ClockEventSampler(self.probes.gpu)
            self.clock_events.start()
        if self.energy is not None:
            self.energy.start()  # last: right before the first timed round

    def finish(
        self, generations: Sequence[Generation], repeat: Callable[[], Generation]
    ) -> tuple[list[Metric], dict[str, Any]]:
        """The energy figures and the ``extra_info`` entries, after the last timed round. ``generations``:
        the timed rounds'; ``repeat``: one more untimed call of the same ``generate``, to extend a window
        shorter than the counter needs."""
        info: dict[str, Any] = {}
        reading = None
        if self.energy is not None and self.energy.started:
            self.energy.add_tokens(sum(_tokens(g) for g in generations))
            self.energy.extend(lambda: _tokens(repeat()))
            reading = self.energy.stop()
        if self.clock_events is not None:
            info[THROTTLE_INFO_KEY] = self.clock_events.stop().as_info()
        return energy_metrics(reading, self.energy_reason), info


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
    device_window: DeviceWindow | None = None
    #: The energy figures of the window, added by :meth:`record` beside the memory figures.
    device_metrics: list[Metric] = field(default_factory=list)
    #: The clock of the energy window (tests give a fixed one).
    clock: Callable[[], float] = time.perf_counter

    def start_device_window(self) -> None:
        """Start the energy window and the clock event sampling: just before the first timed round. Not with
        ``--benchmark-disable`` (one untimed call, no rounds: the figures are n/a)."""
        if getattr(self.benchmark, "disabled", False):
            return
        self.device_window = DeviceWindow(self.probes, self.clock)
        self.device_window.start()

    def finish_device_window(
        self, llm: LoadedModel, prompts: Sequence[str], max_new_tokens: int, generations: Sequence[Generation]
    ) -> None:
        """End the window after the last timed round (extended with untimed ``generate`` calls where it is
        too short for the energy counter) and add its figures."""
        window = self.device_window or DeviceWindow(self.probes, self.clock)
        self.device_metrics, info = window.finish(generations, lambda: llm.generate(list(prompts), max_new_tokens))
        self.benchmark.extra_info.update(info)

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
            if calls["n"] == self.warmup_rounds:
                self.start_device_window()  # before pytest-benchmark starts the first timed round's clock
            calls["n"] += 1

        calls = {"n": 0}
        result: Generation = self.benchmark.pedantic(
            target, setup=setup, rounds=self.rounds, warmup_rounds=self.warmup_rounds, iterations=1
        )
        self.finish_device_window(llm, prompts, max_new_tokens, generations)
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
        self.metrics.extend(self.device_metrics)
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
        """Add the ROUGE and drift figures of this combination's model, the texts it generated and, where its
        pass was timed item by item, every item's figures (``extra_info["per_item"]``)."""
        self.benchmark.extra_info["quality_items"] = len(quality.ids)
        self.benchmark.extra_info["outputs"] = dict(zip(quality.ids, quality.texts, strict=True))
        # Token ids and scores per item, the reference wanted: comparisons from saved outputs (quality/comparison.py).
        self.benchmark.extra_info.update(quality.saved_info())
        if quality.outputs_file is not None:
            self.benchmark.extra_info["outputs_file"] = str(quality.outputs_file)
        if quality.per_item:
            # Every item's figures (--llmbench-per-item; docs/metrics.md, Per-item figures).
            self.benchmark.extra_info[PER_ITEM_KEY] = [dict(record) for record in quality.per_item]
        self.add(quality.metrics)

    def save(self) -> None:
        self.benchmark.extra_info[METRICS_KEY] = self.metrics.to_json()
