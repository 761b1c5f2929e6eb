"""The NVML wrapper (src/llmbench/gpu_driver.py) against the FAKE NVML of llmbench.testing.fake_nvml: no GPU here.

These show the wrapper's logic (names, units, device lookup, reasons), not that a real driver answers the
same: docs/gpu.md lists what has only run against the fake.
"""

from __future__ import annotations

import sys

import pytest

from llmbench.gpu_driver import (
    THROTTLING_REASONS,
    GpuDriver,
    GpuDriverUnavailable,
    LazyGpuDriver,
    gpu_states,
    load_nvml,
    reason_names,
    throttle_note,
    throttling_reasons,
)
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml
from llmbench.units import MiB


def test_pynvml_is_looked_up_where_the_code_imports_it(monkeypatch: pytest.MonkeyPatch) -> None:
    fake = FakeNvml()
    monkeypatch.setitem(sys.modules, "pynvml", fake)
    assert load_nvml() is fake
    assert GpuDriver.open(0).nvml is fake


def test_without_nvidia_ml_py_the_reason_says_how_to_install_it(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "pynvml", None)  # an import of it raises ImportError
    with pytest.raises(GpuDriverUnavailable, match=r"nvidia-ml-py is not installed .*pytest-llmbench\[cuda\]"):
        GpuDriver.open(0)
    lazy = LazyGpuDriver(0)
    assert "nvidia-ml-py is not installed" in (lazy.unavailable_reason() or "")


def test_without_a_driver_the_reason_is_nvmls() -> None:
    with pytest.raises(GpuDriverUnavailable, match="NVML cannot read CUDA device 0: Driver Not Loaded"):
        GpuDriver.open(0, nvml=FakeNvml(library_missing=True))


def test_a_process_memory_is_the_drivers_figure_for_its_pid() -> None:
    fake = FakeNvml()
    fake.gpus[0].processes = {111: 700 * MiB, 222: None}
    driver = GpuDriver.open(0, nvml=fake)
    assert driver.process_memory_bytes(111) == 700 * MiB
    assert driver.process_memory_bytes(222) is None  # listed, figure not available
    assert driver.process_memory_bytes(333) is None  # not listed
    assert driver.memory_used_bytes() == fake.gpus[0].memory_used


def test_energy_is_the_counter_in_millijoules() -> None:
    fake = FakeNvml()
    fake.gpus[0].energy_mj = 123_456
    assert GpuDriver.open(0, nvml=fake).energy_mj() == 123_456


def test_cuda_visible_devices_maps_cuda_indices_to_nvml_devices() -> None:
    fake = FakeNvml([FakeGpu(name=f"gpu{i}", uuid=f"GPU-{i}aaa-bbbb") for i in range(4)])
    assert GpuDriver.open(1, nvml=fake, environ={"CUDA_VISIBLE_DEVICES": "3,2"}).state().name == "gpu2"
    assert GpuDriver.open(0, nvml=fake, environ={"CUDA_VISIBLE_DEVICES": "GPU-1aaa"}).state().name == "gpu1"
    assert GpuDriver.open(2, nvml=fake, environ={}).state().name == "gpu2"
    with pytest.raises(GpuDriverUnavailable, match=r"CUDA device 2 is not visible: CUDA_VISIBLE_DEVICES='0,1'"):
        GpuDriver.open(2, nvml=fake, environ={"CUDA_VISIBLE_DEVICES": "0,1"})
    with pytest.raises(GpuDriverUnavailable, match="MIG instances are not"):
        GpuDriver.open(0, nvml=fake, environ={"CUDA_VISIBLE_DEVICES": "MIG-1234"})
    with pytest.raises(GpuDriverUnavailable, match="no GPU's UUID starts with 'GPU-9'"):
        GpuDriver.open(0, nvml=fake, environ={"CUDA_VISIBLE_DEVICES": "GPU-9"})
    with pytest.raises(GpuDriverUnavailable, match="NVML cannot read CUDA device 0: Invalid Argument"):
        GpuDriver.open(0, nvml=fake, environ={"CUDA_VISIBLE_DEVICES": "7"})


def test_the_state_snapshot_in_the_harness_units() -> None:
    gpu = FakeGpu(
        name="NVIDIA H100 80GB HBM3", sm_clock=1755, max_sm_clock=1980, memory_clock=2619, max_memory_clock=2619,
        power_limit_mw=700_000, enforced_power_limit_mw=650_500, persistence=1,
    )  # fmt: skip
    state = GpuDriver.open(0, nvml=FakeNvml([gpu], driver_version="550.54.15", cuda_driver_version=12040)).state()
    assert state.as_dict() == {
        "index": 0, "name": "NVIDIA H100 80GB HBM3", "uuid": gpu.uuid, "driver_version": "550.54.15",
        "cuda_driver_version": "12.4", "memory_total_bytes": gpu.memory_total, "sm_clock_mhz": 1755,
        "max_sm_clock_mhz": 1980, "memory_clock_mhz": 2619, "max_memory_clock_mhz": 2619, "power_limit_w": 700.0,
        "enforced_power_limit_w": 650.5, "persistence_mode": True,
    }  # fmt: skip


def test_a_field_the_driver_refuses_is_none_not_an_error() -> None:
    gpu = FakeGpu(not_supported={"nvmlDeviceGetPowerManagementLimit", "nvmlDeviceGetPersistenceMode"}, persistence=0)
    state = GpuDriver.open(0, nvml=FakeNvml([gpu])).state()
    assert state.power_limit_w is None
    assert state.persistence_mode is None
    assert state.enforced_power_limit_w == 700.0


def test_gpu_states_of_every_visible_device_or_the_reason(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    states, reason = gpu_states(2, nvml=FakeNvml([FakeGpu(name="a"), FakeGpu(name="b")]))
    assert reason is None
    assert [s["name"] for s in states or []] == ["a", "b"]
    assert gpu_states(1, nvml=FakeNvml(library_missing=True)) == (
        None, "NVML cannot read CUDA device 0: Driver Not Loaded"
    )  # fmt: skip


def test_clock_event_reasons_and_which_count_as_throttling() -> None:
    assert reason_names(0) == ()
    assert reason_names(0x1 | 0x4 | 0x40) == ("gpu_idle", "sw_power_cap", "hw_thermal_slowdown")
    assert throttling_reasons(0x1 | 0x2 | 0x10 | 0x100) == ()  # idle, application clocks, sync boost, display
    assert throttling_reasons(0x1 | 0x4 | 0x40) == ("sw_power_cap", "hw_thermal_slowdown")
    assert throttling_reasons(1 << 20) == ("bit_0x100000",)  # an unknown bit is not assumed benign
    assert {
        "sw_power_cap", "hw_slowdown", "sw_thermal_slowdown", "hw_thermal_slowdown", "hw_power_brake_slowdown",
        "board_limit", "reliability",
    } == THROTTLING_REASONS  # fmt: skip


def test_the_older_throttle_reasons_call_where_the_binding_lacks_the_newer_one() -> None:
    fake = FakeNvml(has_event_reasons=False)
    fake.gpus[0].clock_event_reasons = 0x20
    assert GpuDriver.open(0, nvml=fake).clock_event_reasons() == 0x20
    assert fake.calls[-1] == "nvmlDeviceGetCurrentClocksThrottleReasons"
    fake = FakeNvml()
    fake.gpus[0].clock_event_reasons = 0x20
    fake.gpus[0].not_supported = {"nvmlDeviceGetCurrentClocksEventReasons"}  # a driver older than the binding
    assert GpuDriver.open(0, nvml=fake).clock_event_reasons() == 0x20


def test_the_throttle_note() -> None:
    info = {"throttling": ["sw_power_cap"], "samples": 20, "throttled_samples": 5}
    assert throttle_note(info) == (
        "the GPU throttled during the timed rounds (sw_power_cap in 5 of 20 samples): "
        "its speed and energy figures may read worse than the code is"
    )
    assert throttle_note({"throttling": [], "samples": 20}) is None
    assert throttle_note(None) is None
    assert throttle_note("garbage") is None


def test_the_real_nvidia_ml_py_where_it_is_installed() -> None:
    """The real binding: on a machine without a GPU its failure is a reason; on a GPU the state reads."""
    pytest.importorskip("pynvml")
    lazy = LazyGpuDriver(0)
    reason = lazy.unavailable_reason()
    if reason is not None:
        assert reason.startswith("NVML cannot read CUDA device 0: ")  # here: NVML Shared Library Not Found
        return
    state = lazy.get().state()
    assert state.name
    assert state.driver_version
    assert lazy.get().memory_used_bytes() > 0
