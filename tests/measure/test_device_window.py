"""The figures read around the timed rounds (src/llmbench/measure/generate.py, DeviceWindow): energy per token
on a fake RAPL tree and on the FAKE NVML, the throttle record, the CUDA memory figures, and a CPU session without
readable RAPL left as it was. In process, a fixed clock, a fake model: no GPU, no real model."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import pytest

from llmbench.config.combination import Combination
from llmbench.config.models import ModelSpec
from llmbench.engine_types import Generation, KVLayout
from llmbench.gpu_driver import THROTTLE_INFO_KEY, LazyGpuDriver, throttle_note
from llmbench.measure.driver_memory import CombinedMemoryProbe, GpuProcessMemoryProbe
from llmbench.measure.energy import NvmlEnergyMeter, RaplEnergyMeter
from llmbench.measure.generate import GenerateBenchmark
from llmbench.measure.probes import CpuBandwidthMeter, CpuMemoryProbe, CpuTimer, Probes
from llmbench.metrics import METRICS_KEY
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml
from llmbench.units import MiB

ROUND_S = 0.25
TOKENS = 8


class FixedClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


class FakeBenchmark:
    """pytest-benchmark's fixture as GenerateBenchmark uses it: pedantic rounds timed on the fixed clock."""

    def __init__(self, clock: FixedClock) -> None:
        self.clock = clock
        self.extra_info: dict[str, Any] = {}
        self.data: list[float] = []
        self.stats: Any = None

    def pedantic(
        self, target: Callable[[], Generation], setup: Callable[[], None], rounds: int, warmup_rounds: int,
        iterations: int,
    ) -> Generation:  # fmt: skip
        result = None
        for index in range(warmup_rounds + rounds):
            setup()
            started = self.clock()
            result = target()
            if index >= warmup_rounds:
                self.data.append(self.clock() - started)
        self.stats = type("Stats", (), {"stats": type("Data", (), {"data": self.data})()})()
        assert result is not None
        return result


class FakeModel:
    """A model whose every ``generate`` takes ROUND_S on the fixed clock, makes TOKENS tokens and costs ``watts``
    (``spend`` moves the fake energy counter)."""

    def __init__(self, clock: FixedClock, spend: Callable[[float], None]) -> None:
        self.clock, self.spend = clock, spend
        self.calls = 0

    @property
    def combination_key(self) -> tuple[str, str, str]:
        return ("fake", "fp32", "cpu")

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        self.calls += 1
        self.clock.now += ROUND_S
        self.spend(ROUND_S)
        steps = tuple(0.05 + i * 0.025 for i in range(TOKENS))
        return Generation(("text",), (20,), (TOKENS,), (tuple(range(TOKENS)),), step_times_s=steps)

    def weight_bytes(self) -> int:
        return 1000

    def file_bytes(self) -> int | None:
        return None

    def kv_cache_layout(self) -> KVLayout | None:
        return None

    def close(self) -> None:
        pass


def _combination(device: str) -> Combination:
    return Combination(ModelSpec(name="fake", family="causal", source="path:/none"), "fp32", device, 1)


def _run(probes: Probes, model: FakeModel, clock: FixedClock, rounds: int = 3) -> tuple[dict[str, Any], FakeBenchmark]:
    benchmark = FakeBenchmark(clock)
    measured = GenerateBenchmark(
        benchmark=benchmark, combination=_combination(probes.device), probes=probes, peak_bandwidth=None,
        load_s=None, rounds=rounds, warmup_rounds=1, clock=clock,
    )  # fmt: skip
    measured.run(model, ["prompt"], TOKENS)
    return benchmark.extra_info[METRICS_KEY], benchmark


def _rapl(root: Path, uj: int) -> None:
    zone = root / "intel-rapl:0"
    zone.mkdir(parents=True, exist_ok=True)
    (zone / "name").write_text("package-0\n")
    (zone / "max_energy_range_uj").write_text("262143328850\n")
    (zone / "energy_uj").write_text(f"{uj}\n")


def test_cpu_with_readable_rapl_gives_energy_per_token_over_an_extended_window(tmp_path: Path) -> None:
    clock, energy = FixedClock(), {"uj": 5_000_000}
    _rapl(tmp_path, energy["uj"])

    def spend(seconds: float) -> None:  # 40 W
        energy["uj"] += round(40 * seconds * 1e6)
        _rapl(tmp_path, energy["uj"])

    model = FakeModel(clock, spend)
    probes = Probes("cpu", CpuTimer(), CpuMemoryProbe(), CpuBandwidthMeter(), RaplEnergyMeter(tmp_path))
    metrics, _ = _run(probes, model, clock)
    # 3 timed rounds of 0.25 s are shorter than RAPL's 1 s minimum: one extra call makes it 1 s.
    assert model.calls == 1 + 3 + 1
    assert metrics["energy_per_token_j"]["value"] == pytest.approx(40 * 1.0 / (4 * TOKENS))
    assert metrics["energy_per_token_j"]["unit"] == "J/tok"
    assert metrics["mean_power_w"]["value"] == pytest.approx(40.0)
    assert "extended by 1 untimed calls to reach 1 s" in metrics["energy_per_token_j"]["note"]
    assert metrics["latency_s"]["samples"] == [ROUND_S] * 3  # the extra call is not a timed round


def test_cpu_without_readable_rapl_is_unchanged_and_says_why(tmp_path: Path) -> None:
    clock = FixedClock()
    model = FakeModel(clock, lambda seconds: None)
    probes = Probes("cpu", CpuTimer(), CpuMemoryProbe(), CpuBandwidthMeter(), RaplEnergyMeter(tmp_path / "none"))
    metrics, benchmark = _run(probes, model, clock)
    assert model.calls == 1 + 3  # warm-up and timed rounds only: nothing added
    assert metrics["energy_per_token_j"]["value"] is None
    assert metrics["energy_per_token_j"]["note"].startswith("n/a: no RAPL counters: ")
    assert THROTTLE_INFO_KEY not in benchmark.extra_info
    assert {"peak_gpu_process_bytes", "peak_cuda_allocated_bytes"}.isdisjoint(metrics)


def test_cuda_figures_from_the_driver_with_a_throttled_gpu() -> None:
    """A CUDA combination as the fake driver reports it: the process's memory, energy from the counter that
    moves every 100 ms, the power-cap throttling recorded and warned of."""
    clock = FixedClock()
    pid = os.getpid()
    gpu = FakeGpu(clock_event_reasons=0x4 | 0x1)  # power cap (throttling) and idle (not)
    gpu.processes[pid] = 1200 * MiB
    gpu.energy_mj = lambda: int(clock.now / 0.1) * 30_000  # 300 W, updated every 100 ms
    fake = FakeNvml([gpu])
    driver = LazyGpuDriver(0, fake)
    probes = Probes(
        "cuda:0", CpuTimer(), CombinedMemoryProbe([GpuProcessMemoryProbe(driver), CpuMemoryProbe()]),
        CpuBandwidthMeter(), NvmlEnergyMeter(driver), driver,
    )  # fmt: skip
    model = FakeModel(clock, lambda seconds: None)
    metrics, benchmark = _run(probes, model, clock)
    assert model.calls == 1 + 3 + 5  # NVML's minimum window is 2 s: 0.75 s of rounds and 5 extra calls
    assert metrics["peak_gpu_process_bytes"]["value"] == 1200 * MiB
    assert metrics["peak_gpu_process_bytes"]["samples"] == [1200 * MiB] * 3
    assert metrics["peak_rss_bytes"]["value"] > 0  # host RSS recorded on CUDA too
    assert metrics["energy_per_token_j"]["value"] == pytest.approx(300 * 2.0 / (8 * TOKENS), rel=0.05)
    assert metrics["mean_power_w"]["value"] == pytest.approx(300, rel=0.05)
    info = benchmark.extra_info[THROTTLE_INFO_KEY]
    assert info["throttling"] == ["sw_power_cap"]
    assert info["samples"] == info["throttled_samples"] >= 2
    assert (throttle_note(info) or "").startswith("the GPU throttled during the timed rounds (sw_power_cap in")


def test_cuda_without_nvidia_ml_py_records_na_with_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)
    clock = FixedClock()
    driver = LazyGpuDriver(0)
    probes = Probes(
        "cuda:0", CpuTimer(), CombinedMemoryProbe([GpuProcessMemoryProbe(driver), CpuMemoryProbe()]),
        CpuBandwidthMeter(), NvmlEnergyMeter(driver), driver,
    )  # fmt: skip
    model = FakeModel(clock, lambda seconds: None)
    metrics, benchmark = _run(probes, model, clock)
    assert model.calls == 1 + 3
    for name in ("peak_gpu_process_bytes", "energy_per_token_j"):
        assert metrics[name]["value"] is None
        assert "nvidia-ml-py is not installed" in metrics[name]["note"]
    assert metrics["peak_rss_bytes"]["value"] > 0
    assert "nvidia-ml-py is not installed" in benchmark.extra_info[THROTTLE_INFO_KEY]["unavailable"]


def test_with_benchmark_disable_nothing_is_read_or_repeated(tmp_path: Path) -> None:
    clock = FixedClock()
    _rapl(tmp_path, 1_000)
    model = FakeModel(clock, lambda seconds: None)
    benchmark = FakeBenchmark(clock)
    benchmark.disabled = True  # type: ignore[attr-defined]
    probes = Probes("cpu", CpuTimer(), CpuMemoryProbe(), CpuBandwidthMeter(), RaplEnergyMeter(tmp_path))
    measured = GenerateBenchmark(
        benchmark=benchmark, combination=_combination("cpu"), probes=probes, peak_bandwidth=None, load_s=None,
        rounds=3, warmup_rounds=0, clock=clock,
    )  # fmt: skip
    measured.run(model, ["prompt"], TOKENS)
    assert model.calls == 3  # the fake runs its rounds; no extra call extends an energy window
    assert benchmark.extra_info[METRICS_KEY]["energy_per_token_j"]["note"] == (
        "n/a: the timed rounds did not run (--benchmark-disable?)"
    )
