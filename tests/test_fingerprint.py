"""The machine fingerprint's GPU fields (src/llmbench/fingerprint.py) from the FAKE NVML, and which changes make
two runs different machines. No GPU here: the CPU fingerprint is checked for real."""

from __future__ import annotations

import sys
from typing import Any

import pytest

from llmbench.fingerprint import (
    describe_gpu_state,
    fingerprint_differences,
    gpu_fields,
    machine_fingerprint,
)
from llmbench.testing.fake_nvml import FakeGpu, FakeNvml


def _h100(**changes: Any) -> FakeGpu:
    gpu = FakeGpu(
        name="NVIDIA H100 80GB HBM3", sm_clock=345, max_sm_clock=1980, memory_clock=2619, max_memory_clock=2619,
        power_limit_mw=700_000, enforced_power_limit_mw=700_000, persistence=1,
    )  # fmt: skip
    for key, value in changes.items():
        setattr(gpu, key, value)
    return gpu


def test_the_gpu_fields_from_the_driver(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    fields = gpu_fields(1, FakeNvml([_h100()], driver_version="550.54.15", cuda_driver_version=12040))
    assert fields["cuda_driver"] == "550.54.15"
    assert fields["gpu_state_unavailable"] is None
    (state,) = fields["gpu_state"]
    assert {key: state[key] for key in (
        "name", "driver_version", "cuda_driver_version", "sm_clock_mhz", "max_sm_clock_mhz", "memory_clock_mhz",
        "max_memory_clock_mhz", "power_limit_w", "enforced_power_limit_w", "persistence_mode",
    )} == {
        "name": "NVIDIA H100 80GB HBM3", "driver_version": "550.54.15", "cuda_driver_version": "12.4",
        "sm_clock_mhz": 345, "max_sm_clock_mhz": 1980, "memory_clock_mhz": 2619, "max_memory_clock_mhz": 2619,
        "power_limit_w": 700.0, "enforced_power_limit_w": 700.0, "persistence_mode": True,
    }  # fmt: skip
    assert describe_gpu_state(state) == (
        "GPU 0 NVIDIA H100 80GB HBM3, driver 550.54.15 (CUDA 12.4), SM 345 of 1980 MHz, memory 2619 of 2619 MHz, "
        "power limit 700.0 W (enforced 700.0 W), persistence on"
    )


def test_without_nvml_the_state_is_none_with_the_reason() -> None:
    fields = gpu_fields(1, FakeNvml(library_missing=True))
    assert fields["gpu_state"] is None
    assert fields["gpu_state_unavailable"] == "NVML cannot read CUDA device 0: Driver Not Loaded"


def test_a_cpu_machine_never_imports_pynvml(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delitem(sys.modules, "pynvml", raising=False)
    fingerprint = machine_fingerprint(torch_fields=True)
    if fingerprint["gpus"]:
        pytest.skip("this machine has a CUDA GPU")
    assert (fingerprint["gpu_state"], fingerprint["gpu_state_unavailable"], fingerprint["cuda_driver"]) == (
        None, None, None
    )  # fmt: skip
    assert "pynvml" not in sys.modules


def _fingerprint(**gpu: Any) -> dict[str, Any]:
    state = gpu_fields(1, FakeNvml([_h100(**gpu)]))["gpu_state"]
    return {"cpu": "Xeon", "gpus": ["NVIDIA H100 80GB HBM3"], "gpu_state": state}


def test_power_limit_max_clocks_and_persistence_make_a_different_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    base = _fingerprint()
    assert fingerprint_differences(base, _fingerprint(sm_clock=1980, memory_clock=1593)) == []  # clocks now: shown
    assert fingerprint_differences(base, _fingerprint(enforced_power_limit_mw=350_000, persistence=0)) == [
        "GPU 0 enforced_power_limit_w: 700.0 -> 350.0",
        "GPU 0 persistence_mode: True -> False",
    ]
    assert fingerprint_differences(base, _fingerprint(max_sm_clock=1755)) == ["GPU 0 max_sm_clock_mhz: 1980 -> 1755"]


def test_runs_saved_before_the_gpu_state_existed_are_still_this_machine(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
    older = {"cpu": "Xeon", "gpus": ["NVIDIA H100 80GB HBM3"]}
    assert fingerprint_differences(older, _fingerprint()) == []
    assert fingerprint_differences(_fingerprint(), {**_fingerprint(), "gpu_state": None}) == [
        "gpu_state: [{'memory_total_bytes': 85899345920, 'max_sm_clock_mhz': 1980, 'max_memory_clock_mhz': 2619, "
        "'enforced_power_limit_w': 700.0, 'persistence_mode': True}] -> None"
    ]
