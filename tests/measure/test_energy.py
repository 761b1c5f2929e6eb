"""The energy counters and the energy window (src/llmbench/measure/energy.py), on a fake RAPL tree in tmp_path
and the FAKE NVML (no readable RAPL and no GPU on the development machines), with a fixed clock."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

from llmbench.gpu_driver import LazyGpuDriver
from llmbench.measure.energy import (
    MAX_EXTRA_CALLS,
    EnergyCounter,
    EnergyUnavailable,
    EnergyWindow,
    NvmlEnergyMeter,
    RaplEnergyMeter,
    energy_metrics,
    min_window_s,
    rapl_zones,
)
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml


def write_rapl(root: Path, zone: str, name: str, energy_uj: int, max_uj: int = 262_143_328_850) -> Path:
    """A powercap zone directory as the kernel lays it out (name, energy_uj, max_energy_range_uj)."""
    directory = root / zone
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "name").write_text(f"{name}\n")
    (directory / "energy_uj").write_text(f"{energy_uj}\n")
    (directory / "max_energy_range_uj").write_text(f"{max_uj}\n")
    return directory / "energy_uj"


class FixedClock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class Advance:
    """One more call: moves the fixed clock by ``seconds`` and gives ``tokens``."""

    def __init__(self, clock: FixedClock, seconds: float, tokens: int = 1) -> None:
        self.clock, self.seconds, self.tokens = clock, seconds, tokens

    def __call__(self) -> int:
        self.clock.now += self.seconds
        return self.tokens


class TickingCounter(EnergyCounter):
    """A counter of constant power that, like NVML's, moves only every ``update_period_s`` of the fixed clock."""

    def __init__(self, clock: FixedClock, watts: float, update_period_s: float) -> None:
        self.clock, self.watts, self.update_period_s = clock, watts, update_period_s
        self.description = "a ticking test counter"

    def read(self) -> tuple[int, ...]:
        ticks = int(self.clock.now / self.update_period_s + 1e-9)
        return (round(ticks * self.update_period_s * self.watts * 1000),)  # mJ at the last tick

    def joules(self, before: Sequence[int], after: Sequence[int]) -> float:
        return (after[0] - before[0]) / 1e3


# ------------------------------------------------------------------------------------------ RAPL


def test_rapl_sums_the_packages_and_leaves_out_subzones_and_psys(tmp_path: Path) -> None:
    write_rapl(tmp_path, "intel-rapl:0", "package-0", 1_000_000)
    write_rapl(tmp_path, "intel-rapl:1", "package-1", 2_000_000)
    write_rapl(tmp_path, "intel-rapl:0:0", "core", 500_000)  # part of package 0: not counted twice
    write_rapl(tmp_path, "intel-rapl:2", "psys", 9_000_000)  # the platform: overlaps the packages
    counter = RaplEnergyMeter(tmp_path).counter()
    before = counter.read()
    assert before == (1_000_000, 2_000_000)
    write_rapl(tmp_path, "intel-rapl:0", "package-0", 3_500_000)
    write_rapl(tmp_path, "intel-rapl:1", "package-1", 2_250_000)
    assert counter.joules(before, counter.read()) == pytest.approx(2.75)
    assert counter.description == "RAPL package energy: package-0 (intel-rapl:0), package-1 (intel-rapl:1)"


def test_rapl_wraparound_at_max_energy_range(tmp_path: Path) -> None:
    write_rapl(tmp_path, "intel-rapl:0", "package-0", 999_000_000, max_uj=1_000_000_000)
    counter = RaplEnergyMeter(tmp_path).counter()
    before = counter.read()
    write_rapl(tmp_path, "intel-rapl:0", "package-0", 4_000_000, max_uj=1_000_000_000)  # wrapped to 0 and on
    assert counter.joules(before, counter.read()) == pytest.approx(5.0)


def test_rapl_unreadable_or_missing_is_a_reason_not_an_error(tmp_path: Path) -> None:
    assert "does not exist" in (RaplEnergyMeter(tmp_path / "absent").unavailable_reason() or "")
    assert "no RAPL package zones" in (RaplEnergyMeter(tmp_path).unavailable_reason() or "")
    energy = write_rapl(tmp_path, "intel-rapl:0", "package-0", 1)
    energy.write_text("not a number\n")  # what a read refused or garbled amounts to
    with pytest.raises(EnergyUnavailable, match=r"intel-rapl:0/energy_uj cannot be read \(ValueError"):
        rapl_zones(tmp_path)


def test_rapl_on_this_machine_is_read_for_real_where_it_is_readable() -> None:
    """The real /sys/class/powercap: readable RAPL counts up; elsewhere the reason names the path."""
    meter = RaplEnergyMeter()
    reason = meter.unavailable_reason()
    if reason is not None:
        assert "RAPL" in reason
        return
    counter = meter.counter()
    before = counter.read()
    sum(i * i for i in range(2_000_000))
    assert counter.joules(before, counter.read()) > 0


# ------------------------------------------------------------------------------------------ NVML


def test_nvml_counter_in_joules_and_its_update_period() -> None:
    fake = FakeNvml([FakeGpu(energy_mj=5_000)])
    counter = NvmlEnergyMeter(LazyGpuDriver(0, fake)).counter()
    before = counter.read()
    fake.gpus[0].energy_mj = 6_250
    assert counter.joules(before, counter.read()) == 1.25
    assert counter.update_period_s == 0.1
    assert min_window_s(counter.update_period_s) == 2.0  # 20 update periods


def test_nvml_counter_before_volta_or_without_nvml_gives_the_reason() -> None:
    old = FakeGpu(not_supported={"nvmlDeviceGetTotalEnergyConsumption"})
    reason = NvmlEnergyMeter(LazyGpuDriver(0, FakeNvml([old]))).unavailable_reason()
    assert reason == (
        "the GPU's energy counter cannot be read (FakeNvmlError: Not Supported); NVML has it on Volta and newer GPUs"
    )
    missing = NvmlEnergyMeter(LazyGpuDriver(0, FakeNvml(library_missing=True)))
    assert missing.unavailable_reason() == "NVML cannot read CUDA device 0: Driver Not Loaded"


# -------------------------------------------------------------------------------- the window


def test_the_minimum_window_follows_the_update_period() -> None:
    assert min_window_s(0.001) == 1.0  # RAPL: at least a second
    assert min_window_s(0.1) == 2.0  # NVML: 20 periods
    assert min_window_s(0.5) == 10.0


def test_a_long_enough_window_is_not_extended() -> None:
    clock = FixedClock()
    window = EnergyWindow(TickingCounter(clock, watts=300, update_period_s=0.1), clock)
    window.start()
    clock.now += 2.5  # the timed rounds
    window.add_tokens(500)
    window.extend(lambda: pytest.fail("no extra call is needed"))
    reading = window.stop()
    assert (reading.extra_calls, reading.tokens, reading.seconds) == (0, 500, 2.5)
    assert reading.joules == pytest.approx(750.0)
    assert reading.joules_per_token == pytest.approx(1.5)
    assert reading.watts == pytest.approx(300.0)


def test_a_short_window_is_extended_with_untimed_calls_until_it_spans_the_minimum() -> None:
    clock = FixedClock()
    window = EnergyWindow(TickingCounter(clock, watts=200, update_period_s=0.125), clock)
    assert window.min_window_s == 2.5  # 20 update periods
    window.start()
    clock.now += 0.75  # three timed rounds of 0.25 s
    window.add_tokens(3 * 8)

    def one_more_call() -> int:
        clock.now += 0.25
        return 8

    window.extend(one_more_call)
    reading = window.stop()
    assert reading.extra_calls == 7  # 0.75 s + 7 x 0.25 s = 2.5 s
    assert reading.seconds == 2.5
    assert reading.tokens == 10 * 8
    assert reading.joules_per_token == pytest.approx(200 * 2.5 / 80)


def test_a_stale_counter_reading_is_off_by_at_most_one_update_period_in_the_minimum_window() -> None:
    """The counter moves every 100 ms: a window of 20 periods reads the energy within 1/20 (5%)."""
    for offset in (0.0, 0.03, 0.05, 0.099):
        clock = FixedClock()
        clock.now += offset
        window = EnergyWindow(TickingCounter(clock, watts=100, update_period_s=0.1), clock)
        window.start()
        clock.now += 0.17  # between two ticks
        window.extend(Advance(clock, 0.11))
        reading = window.stop()
        assert reading.seconds >= 2.0
        true = 100 * reading.seconds
        assert abs(reading.joules - true) <= 100 * 0.1 + 1e-6
        assert abs(reading.joules - true) / true <= 0.05 + 1e-9


def test_the_window_cannot_run_forever() -> None:
    clock = FixedClock()
    window = EnergyWindow(TickingCounter(clock, watts=1, update_period_s=0.1), clock)
    window.start()
    window.extend(lambda: 0)  # a call that takes no time on the fixed clock
    assert window.extra_calls == MAX_EXTRA_CALLS


def test_energy_metrics_and_their_notes() -> None:
    clock = FixedClock()
    window = EnergyWindow(TickingCounter(clock, watts=50, update_period_s=0.001), clock)
    window.start()
    clock.now += 0.5
    window.add_tokens(100)
    window.extend(Advance(clock, 0.25, tokens=50))
    per_token, watts = energy_metrics(window.stop())
    assert (per_token.name, per_token.unit, per_token.direction) == ("energy_per_token_j", "J/tok", "lower")
    assert per_token.value == pytest.approx(50 * 1.0 / 200)
    assert (watts.name, watts.unit, watts.direction, watts.value) == ("mean_power_w", "W", "none", pytest.approx(50))
    assert per_token.note == (
        "a ticking test counter: 50 J over 1 s and 200 generated tokens "
        "(the timed rounds, extended by 2 untimed calls to reach 1 s)"
    )
    missing = energy_metrics(None, "no RAPL counters: /x does not exist")
    assert [(m.name, m.value, m.note) for m in missing] == [
        ("energy_per_token_j", None, "n/a: no RAPL counters: /x does not exist"),
        ("mean_power_w", None, "n/a: no RAPL counters: /x does not exist"),
    ]
