"""Sampling the GPU's clock event reasons during the timed rounds (src/llmbench/measure/throttle.py), on the
FAKE NVML: no GPU here."""

from __future__ import annotations

from llmbench.gpu_driver import LazyGpuDriver
from llmbench.measure.throttle import ClockEventSampler
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml


def _sampler(masks: list[int]) -> ClockEventSampler:
    """A sampler over a fake GPU whose reasons are ``masks``, one per sample (the last one repeats)."""
    queue = list(masks)
    gpu = FakeGpu(clock_event_reasons=lambda: queue.pop(0) if len(queue) > 1 else queue[0])
    return ClockEventSampler(LazyGpuDriver(0, FakeNvml([gpu])))


def test_idle_and_settings_are_not_throttling() -> None:
    sampler = _sampler([0x1, 0x2, 0x10, 0x100, 0x0])
    for _ in range(5):
        sampler.sample()
    events = sampler.result()
    assert events.samples == 5
    assert events.throttled_samples == 0
    assert events.reasons == ("gpu_idle", "applications_clocks_setting", "sync_boost", "display_clock_setting")
    assert events.throttling == ()


def test_power_and_thermal_throttling_are_counted_per_sample() -> None:
    sampler = _sampler([0x0, 0x4, 0x4 | 0x20, 0x1, 0x0])
    for _ in range(5):
        sampler.sample()
    events = sampler.result()
    assert (events.samples, events.throttled_samples) == (5, 2)
    assert events.throttling == ("sw_power_cap", "sw_thermal_slowdown")
    assert events.as_info() == {
        "samples": 5, "throttled_samples": 2, "reasons": ["gpu_idle", "sw_power_cap", "sw_thermal_slowdown"],
        "throttling": ["sw_power_cap", "sw_thermal_slowdown"], "source": "NVML device 0", "interval_s": 0.1,
    }  # fmt: skip


def test_the_thread_samples_from_start_to_stop() -> None:
    gpu = FakeGpu(clock_event_reasons=0x8)
    fake = FakeNvml([gpu])
    sampler = ClockEventSampler(LazyGpuDriver(0, fake), interval_s=0.001)
    sampler.start()
    events = sampler.stop()
    assert events.samples >= 2  # one at the start, one at the stop, any in between
    assert events.samples == fake.calls.count("nvmlDeviceGetCurrentClocksEventReasons")
    assert events.throttling == ("hw_slowdown",)
    assert events.throttled_samples == events.samples


def test_without_nvml_the_result_says_why_and_nothing_is_sampled() -> None:
    sampler = ClockEventSampler(LazyGpuDriver(0, FakeNvml(library_missing=True)))
    sampler.start()
    events = sampler.stop()
    assert (events.samples, events.throttling) == (0, ())
    assert events.unavailable == "NVML cannot read CUDA device 0: Driver Not Loaded"
    assert events.as_info()["unavailable"] == events.unavailable


def test_failing_samples_are_reported_not_raised() -> None:
    gpu = FakeGpu(not_supported={"nvmlDeviceGetCurrentClocksEventReasons", "nvmlDeviceGetCurrentClocksThrottleReasons"})
    sampler = ClockEventSampler(LazyGpuDriver(0, FakeNvml([gpu])))
    sampler.start()
    events = sampler.stop()
    assert events.samples == 0
    assert events.unavailable == "every sample failed: FakeNvmlError: Not Supported"
