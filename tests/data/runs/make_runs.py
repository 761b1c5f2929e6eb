"""Writes the hand-made saved runs used by tests/gate/test_gate.py (run once; the JSON files are committed).

Small pytest-benchmark runs of two combinations with llmbench metrics, plus an old-format run (stats
only), a corrupted file, a run from another machine and one with NaN values.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

HERE = Path(__file__).parent
MACHINE = HERE / "Linux-CPython-3.11-64bit"
FULL = "benchmarks/test_generate.py::test_generate[gemma3-270m-q4_k_m-cpu-bs{bs}]"
MiB = 1024 * 1024

FINGERPRINT = {
    "cpu": "Intel(R) Xeon(R) Platinum 8481C CPU @ 2.70GHz", "cpu_count": 2, "memory_bytes": 25769803776,
    "gpus": [], "cuda_driver": None, "cuda_runtime": None, "torch_threads": 2,
    "libraries": {"torch": "2.13.0+cpu", "transformers": "5.24.0", "llama-cpp-python": "0.3.36",
                  "bitsandbytes": "0.50.2", "accelerate": "1.15.0", "pytest-benchmark": "5.3.1"},
    "python": "3.11.7",
}  # fmt: skip


def median(values: list[float]) -> float:
    ordered = sorted(values)
    return ordered[len(ordered) // 2]


def stats(latencies: list[float], data: bool = False) -> dict[str, Any]:
    out: dict[str, Any] = {
        "min": min(latencies), "max": max(latencies), "mean": sum(latencies) / len(latencies),
        "stddev": 0.01, "rounds": len(latencies), "median": median(latencies), "iqr": 0.01,
        "q1": sorted(latencies)[1], "q3": sorted(latencies)[-2], "iqr_outliers": 0, "stddev_outliers": 1,
        "outliers": "1;0", "ld15iqr": min(latencies), "hd15iqr": max(latencies),
        "ops": 1 / (sum(latencies) / len(latencies)), "total": sum(latencies), "iterations": 1,
    }  # fmt: skip
    if data:
        out["data"] = latencies
    return out


def metric(value: float, unit: str, direction: str, samples: list[float] | None = None, **extra: Any) -> dict[str, Any]:
    out: dict[str, Any] = {"value": value, "unit": unit, "direction": direction}
    if samples is not None:
        out["samples"] = samples
    out.update(extra)
    return out


def bench(bs: int, latency: list[float], decode: list[float], rss: list[float], rouge: list[float]) -> dict[str, Any]:
    rouge_value = sum(rouge) / len(rouge)
    metrics = {
        "latency_s": metric(median(latency), "s", "lower", latency),
        "decode_tok_s_total": metric(median(decode), "tok/s", "higher", decode),
        "peak_rss_bytes": metric(max(rss), "bytes", "lower", rss),
        "rouge1": metric(rouge_value, "F1", "higher", rouge, ci=[rouge_value - 0.05, rouge_value + 0.05]),
        "peak_bandwidth": metric(26e9, "bytes/s", "none", note="given"),
    }
    return {
        "group": None, "name": f"test_generate[gemma3-270m-q4_k_m-cpu-bs{bs}]", "fullname": FULL.format(bs=bs),
        "params": {"llm_combination": f"gemma3-270m-q4_k_m-cpu-bs{bs}"}, "param": f"gemma3-270m-q4_k_m-cpu-bs{bs}",
        "extra_info": {"model": "gemma3-270m", "precision": "q4_k_m", "device": "cpu", "batch_size": bs,
                       "backend": "llama_cpp", "family": "causal", "metrics": metrics},
        "options": {"disable_gc": False, "timer": "perf_counter", "min_rounds": 5, "max_time": 1.0,
                    "min_time": 5e-06, "warmup": False},
        "stats": stats(latency),
    }  # fmt: skip


def run(benchmarks: list[dict[str, Any]], fingerprint: dict[str, Any] | None = FINGERPRINT) -> dict[str, Any]:
    machine_info: dict[str, Any] = {"node": "runner", "processor": "x86_64", "machine": "x86_64",
                                    "python_implementation": "CPython", "python_version": "3.11.7", "system": "Linux"}
    if fingerprint is not None:
        machine_info["llmbench"] = fingerprint
    return {"machine_info": machine_info, "commit_info": {"id": "0" * 40, "dirty": False},
            "benchmarks": benchmarks, "datetime": "2025-01-01T00:00:00+00:00", "version": "5.3.1"}  # fmt: skip


ROUGE = [0.62, 0.55, 0.71, 0.48, 0.66, 0.59, 0.64, 0.52]
LAT1 = [0.760, 0.766, 0.771, 0.763, 0.768]
LAT4 = [3.01, 3.03, 3.05, 3.02, 3.04]
DEC1 = [42.0, 41.6, 41.8, 42.2, 41.5]
DEC4 = [41.8, 41.5, 42.1, 41.7, 41.9]
RSS = [600.0 * MiB, 601.0 * MiB, 601.5 * MiB, 602.0 * MiB, 602.5 * MiB]


def scaled(values: list[float], factor: float) -> list[float]:
    return [round(v * factor, 6) for v in values]


def main() -> None:
    MACHINE.mkdir(exist_ok=True)
    base = run([bench(1, LAT1, DEC1, RSS, ROUGE), bench(4, LAT4, DEC4, RSS, ROUGE)])
    # An unchanged build: every figure within a percent of the first.
    same = run([bench(1, scaled(LAT1, 1.004), scaled(DEC1, 0.997), scaled(RSS, 1.001), ROUGE),
                bench(4, scaled(LAT4, 0.996), scaled(DEC4, 1.003), RSS, ROUGE)])  # fmt: skip
    # Regressed: bs4 decodes 15.8% slower and is 19% slower overall; bs1 grew 20% in memory and summarises worse.
    slow = run([bench(1, LAT1, DEC1, scaled(RSS, 1.2), [r - 0.1 for r in ROUGE]),
                bench(4, scaled(LAT4, 1.19), scaled(DEC4, 35.2 / 41.8), RSS, ROUGE)])  # fmt: skip
    nan = run([bench(1, LAT1, DEC1, RSS, ROUGE), bench(4, LAT4, DEC4, RSS, ROUGE)])
    nan["benchmarks"][0]["extra_info"]["metrics"]["decode_tok_s_total"]["value"] = float("nan")
    nan["benchmarks"][0]["extra_info"]["metrics"]["decode_tok_s_total"]["samples"] = [float("nan")] * 5
    nan["benchmarks"][1]["stats"]["median"] = float("nan")
    for number, name, data in ((1, "base", base), (2, "same", same), (3, "slow", slow), (4, "nan", nan)):
        (MACHINE / f"{number:04d}_{name}.json").write_text(json.dumps(data, indent=4))

    other = copy.deepcopy(same)
    other["machine_info"]["llmbench"] = dict(FINGERPRINT, cpu="AMD EPYC 9654 96-Core Processor", cpu_count=8)
    (HERE / "other_machine.json").write_text(json.dumps(other, indent=4))

    # An older run: no llmbench metrics or fingerprint, pytest-benchmark's stats only.
    old = run([bench(1, LAT1, DEC1, RSS, ROUGE), bench(4, LAT4, DEC4, RSS, ROUGE)], fingerprint=None)
    for entry in old["benchmarks"]:
        entry["extra_info"] = {}
    (HERE / "old_format.json").write_text(json.dumps(old, indent=4))
    old_data = copy.deepcopy(old)
    for entry, latencies in zip(old_data["benchmarks"], (LAT1, LAT4), strict=True):
        entry["stats"] = stats(latencies, data=True)
    (HERE / "old_format_data.json").write_text(json.dumps(old_data, indent=4))

    # A different set of combinations: bs1 removed, bs8 new; bs4 with a looser marker saved.
    changed = run([bench(4, LAT4, scaled(DEC4, 35.2 / 41.8), RSS, ROUGE), bench(8, LAT4, DEC4, RSS, ROUGE)])
    changed["benchmarks"][0]["extra_info"]["llmbench_fail"] = "decode_tok_s:-20%"
    (HERE / "new_removed.json").write_text(json.dumps(changed, indent=4))

    (HERE / "corrupted.json").write_text(json.dumps(base, indent=4)[:700])
    (HERE / "not_a_run.json").write_text(json.dumps({"hello": "world"}))


if __name__ == "__main__":
    main()
