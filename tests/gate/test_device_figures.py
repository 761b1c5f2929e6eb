"""The gate on the device figures of issue 22: energy per token and the driver's GPU memory gated like memory,
mean power shown only, energy n/a on both sides quiet, and a throttled GPU warned of in the verdict."""

from __future__ import annotations

from typing import Any

import pytest

from llmbench.gate import compare_runs
from llmbench.gate.baseline import Baseline
from llmbench.gate.decision import decide
from llmbench.gate.rules import DEFAULT_RULES
from llmbench.gpu_driver import THROTTLE_INFO_KEY
from llmbench.metrics import Metric
from llmbench.runs import run_from_json
from llmbench.units import MiB


def _decide(name: str, base: float | None, current: float | None) -> str:
    return decide(name, Metric.of(name, base), Metric.of(name, current), DEFAULT_RULES[name]).verdict


@pytest.mark.parametrize(
    ("name", "base", "current", "verdict"),
    [
        ("energy_per_token_j", 0.100, 0.112, "regressed"),  # +12%
        ("energy_per_token_j", 0.100, 0.108, "unchanged"),  # +8%: within the counter's reach
        ("energy_per_token_j", 0.100, 0.085, "improved"),
        ("energy_per_token_j", None, None, "n/a"),  # a CPU without readable RAPL, both sides
        ("mean_power_w", 300.0, 450.0, "n/a"),  # describes the draw: shown, not compared
        ("peak_gpu_process_bytes", 1000 * MiB, 1120 * MiB, "regressed"),
        ("peak_gpu_process_bytes", 1000 * MiB, 1080 * MiB, "unchanged"),
        ("peak_gpu_process_bytes", 100 * MiB, 114 * MiB, "unchanged"),  # +14% but under the 16 MiB floor
    ],
)
def test_the_device_figures_rules(name: str, base: float | None, current: float | None, verdict: str) -> None:
    assert _decide(name, base, current) == verdict


def test_which_device_figures_gate() -> None:
    gating = {name for name in DEFAULT_RULES if DEFAULT_RULES[name].gate}
    assert {"energy_per_token_j", "peak_gpu_process_bytes"} <= gating
    assert {"mean_power_w", "peak_gpu_used_bytes", "gpu_process_before_bytes"}.isdisjoint(gating)


def _run(energy: float, throttle: dict[str, Any] | None) -> dict[str, Any]:
    extra: dict[str, Any] = {
        "model": "m", "precision": "bf16", "device": "cuda", "batch_size": 1, "backend": "transformers",
        "metrics": {"energy_per_token_j": Metric.of("energy_per_token_j", energy).to_json()},
    }  # fmt: skip
    if throttle is not None:
        extra[THROTTLE_INFO_KEY] = throttle
    bench = {"name": "test_generate[m]", "fullname": "b.py::test_generate[m]", "extra_info": extra}
    return {"machine_info": {}, "benchmarks": [bench], "datetime": "2025-01-01T00:00:00", "commit_info": {}}


def test_a_throttled_gpu_is_a_note_of_the_verdict_in_every_rendering() -> None:
    throttled = {"throttling": ["sw_thermal_slowdown"], "samples": 10, "throttled_samples": 4, "reasons": []}
    baseline = run_from_json(_run(0.10, None), "0001", "0001")
    current = run_from_json(_run(0.10, throttled), "0002", "0002")
    verdict = compare_runs(Baseline((baseline,), "run 0001"), current)
    warning = (
        "current: the GPU throttled during the timed rounds (sw_thermal_slowdown in 4 of 10 samples): its speed "
        "and energy figures may read worse than the code is [m bf16 cuda bs1]"
    )
    assert warning in verdict.notes
    assert any("sw_thermal_slowdown in 4 of 10 samples" in line for line in verdict.lines())
    assert "sw_thermal_slowdown in 4 of 10 samples" in verdict.markdown()


def test_an_unthrottled_gpu_adds_no_note() -> None:
    calm = {"throttling": [], "samples": 10, "throttled_samples": 0, "reasons": ["gpu_idle"]}
    baseline = run_from_json(_run(0.10, calm), "0001", "0001")
    current = run_from_json(_run(0.10, calm), "0002", "0002")
    verdict = compare_runs(Baseline((baseline,), "run 0001"), current)
    assert not [note for note in verdict.notes if "throttled" in note]
