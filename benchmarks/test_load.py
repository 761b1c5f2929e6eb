"""Load time: from nothing in memory to a model ready on its device, once per model, precision, device."""

from __future__ import annotations

from typing import Any

import pytest

from llmbench.backends import BackendUnavailable, LoadedModel, get_backend
from llmbench.backends.loaded_models import LoadedModels
from llmbench.benchmark_storage import round_times
from llmbench.config.combination import Combination
from llmbench.config.settings import Settings
from llmbench.measure.probes import MemoryReading, probes_for
from llmbench.measure.speed import load_s_metric
from llmbench.metrics import METRICS_KEY, Metric, MetricSet
from llmbench.workers import WorkerModel
from llmbench.workers.benchmark import pedantic_in_worker

#: Loads are slow (seconds) and vary less than generation: three timed loads after one warm-up
#: (which fills the page cache, so every timed load reads the weights from memory, not disk).
LOAD_ROUNDS = 3


def test_load(
    benchmark: Any, llm_load_combination: Combination, llmbench_settings: Settings, llmbench_models: LoadedModels
) -> None:
    if llmbench_settings.isolation.value == "process":
        readings = _loads_in_worker(benchmark, llm_load_combination, llmbench_models)
    else:
        readings = _loads_here(benchmark, llm_load_combination, llmbench_settings)
    seconds = round_times(benchmark)
    metrics = MetricSet()
    metrics.add(load_s_metric(seconds, note="from the local cache (converted weights or GGUF file), page cache warm"))
    added = [r.added_bytes() for r in readings[-LOAD_ROUNDS:]]
    metrics.add(
        Metric("load_added_bytes", float(max(added)), "bytes", "lower", tuple(float(a) for a in added),
               note="memory the loaded model holds: after the load minus before")
    )  # fmt: skip
    benchmark.extra_info.update(
        {key: value for key, value in llm_load_combination.as_info().items() if key != "batch_size"}
    )
    benchmark.extra_info[METRICS_KEY] = metrics.to_json()


def _loads_here(benchmark: Any, combination: Combination, settings: Settings) -> list[MemoryReading]:
    """Timed loads in this process (--llmbench-isolation=none)."""
    backend = get_backend(combination.backend, settings.threads)
    probes = probes_for(combination.device)
    readings: list[MemoryReading] = []

    def load() -> LoadedModel:
        with probes.memory.measure() as reading:
            model = backend.load(combination, settings.cache_dir, probes.timer)
        readings.append(reading)
        return model

    loaded: list[LoadedModel] = []
    benchmark.pedantic(
        lambda: loaded.append(load()),
        teardown=lambda: loaded.pop().close(),
        rounds=LOAD_ROUNDS,
        warmup_rounds=1,
    )
    return readings


def _loads_in_worker(benchmark: Any, combination: Combination, models: LoadedModels) -> list[MemoryReading]:
    """Timed loads in the combination's worker, next to its session model; see docs/isolation.md."""
    try:
        model = models.get(combination)
    except BackendUnavailable as error:
        pytest.skip(f"{'-'.join(combination.load_key)}: {error}")
    assert isinstance(model, WorkerModel), model
    measured = pedantic_in_worker(benchmark, model.measure_load, lambda m: m.seconds, LOAD_ROUNDS, 1)
    return [m.memory for m in measured]
