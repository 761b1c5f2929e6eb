"""Writes the hand-made saved runs of tests/report/test_report.py (run once; the JSON files are the test data).

Three runs of gemma3-270m (fp32, bf16, q4_k_m; cpu; batch sizes 1 and 4) on one machine:

- 0001: an old run, saved before the metrics object existed: only pytest-benchmark's stats (latency
  comes from its median) and the combination fields; every newer metric must show as n/a.
- 0002: every metric, ROUGE with intervals, outputs and an outputs file with the references.
- 0003: like 0002 with q4_k_m bs4 latency 30% slower (a regression for the gate: one earlier run cannot show
  the machine's drift, but 30% is beyond the threshold plus the assumed first-baseline allowance) and peak RSS
  30% higher (a regression for the gate), plus a benchmark
  that failed before saving its fields (empty extra_info) and a load benchmark.

Usage: python tests/data/report_runs/make_runs.py
"""

from __future__ import annotations

import json
import statistics
from pathlib import Path

HERE = Path(__file__).resolve().parent
MACHINE = HERE / "Linux-CPython-3.11-64bit"
PRECISIONS = {"fp32": (1.07e9, 16.0), "bf16": (0.54e9, 17.0), "q4_k_m": (0.25e9, 42.0)}
BATCHES = (1, 4)
ITEMS = ("a1", "a2", "a3")
REFERENCES = {
    "a1": "The council approved the new park budget on Monday.",
    "a2": "Heavy rain closed the coastal road for two days.",
    "a3": "The team won the final after extra time.",
}
OUTPUTS = {
    "fp32": {"a1": "The council approved the park budget on Monday.",
             "a2": "Heavy rain closed the coastal road for two days.",
             "a3": "The team won the final in extra time."},
    "bf16": {"a1": "The council approved the park budget on Monday.",
             "a2": "Heavy rain closed the road for two days.",
             "a3": "The team won the final in extra time."},
    "q4_k_m": {"a1": "The city council approved a park budget.",
               "a2": "Rain closed the coastal road for days.",
               "a3": "The team won the cup final after extra time."},
}  # fmt: skip
ROUGE = {"fp32": 0.62, "bf16": 0.6, "q4_k_m": 0.55}
FINGERPRINT = {
    "cpu": "Intel(R) Xeon(R) Platinum 8480+", "cpu_count": 2, "memory_bytes": 25769803776, "gpus": [],
    "cuda_driver": None, "cuda_runtime": None, "torch_threads": 2,
    "libraries": {"torch": "2.13.0", "transformers": "5.1.0", "llama-cpp-python": "0.3.36",
                  "bitsandbytes": None, "accelerate": "1.10.0", "pytest-benchmark": "5.1.0"},
    "python": "3.11.2",
}  # fmt: skip


def stats(samples: list[float]) -> dict[str, float | int | str]:
    ordered = sorted(samples)
    return {
        "min": ordered[0], "max": ordered[-1], "mean": statistics.mean(ordered),
        "stddev": statistics.stdev(ordered), "rounds": len(ordered), "median": statistics.median(ordered),
        "iqr": 0.0, "q1": ordered[1], "q3": ordered[-2], "iqr_outliers": 0, "stddev_outliers": 0,
        "outliers": "0;0", "ld15iqr": ordered[0], "hd15iqr": ordered[-1],
        "ops": 1 / statistics.mean(ordered), "total": sum(ordered), "iterations": 1,
    }  # fmt: skip


def metric(value: float | None, unit: str, direction: str, samples: list[float] | None = None,
           ci: list[float] | None = None) -> dict[str, object]:  # fmt: skip
    out: dict[str, object] = {"value": value, "unit": unit, "direction": direction}
    if samples:
        out["samples"] = samples
    if ci:
        out["ci"] = ci
    return out


def jitter(value: float, count: int = 5, spread: float = 0.005) -> list[float]:
    return [value * (1 + spread * (i - count // 2)) for i in range(count)]


def generate_bench(precision: str, batch: int, run: int, full: bool) -> dict[str, object]:
    weights, decode = PRECISIONS[precision]
    slow = 1.3 if run == 3 and precision == "q4_k_m" and batch == 4 else 1.0
    latency = (0.2 + 32 / decode) * (1 + 0.15 * (batch - 1)) * slow
    samples = jitter(latency)
    combination = f"gemma3-270m-{precision}-cpu-bs{batch}"
    info: dict[str, object] = {
        "model": "gemma3-270m", "precision": precision, "device": "cpu", "batch_size": batch,
        "backend": "llama_cpp" if precision == "q4_k_m" else "transformers", "family": "causal",
    }  # fmt: skip
    if full:
        kv = 2 * 1 * 256 * 2 * 18 * batch * 230.0
        rss = (0.45e9 + weights * 1.1 + kv) * (1.3 if slow > 1 else 1.0)
        rouge = ROUGE[precision]
        info.update(max_new_tokens=32, prompt_tokens=195 * batch, generated_tokens=32 * batch, batch_mode="batched")
        info["metrics"] = {
            "latency_s": metric(statistics.median(samples), "s", "lower", samples),
            "ttft_s": metric(0.2 * batch, "s", "lower", jitter(0.2 * batch)),
            "prefill_tok_s": metric(975.0, "tok/s", "higher", jitter(975.0)),
            "decode_tok_s_per_seq": metric(decode / (1 + 0.1 * (batch - 1)), "tok/s", "higher", jitter(decode)),
            "decode_tok_s_total": metric(decode * batch / (1 + 0.1 * (batch - 1)), "tok/s", "higher",
                                         jitter(decode * batch)),
            "peak_rss_bytes": metric(rss, "bytes", "lower", jitter(rss, spread=0.001)),
            "rss_before_bytes": metric(rss * 0.9, "bytes", "lower"),
            "weight_bytes": metric(weights, "bytes", "lower"),
            "file_bytes": metric(weights * (1.0 if precision != "q4_k_m" else 1.01), "bytes", "lower"),
            "kv_cache_bytes": metric(kv, "bytes", "lower"),
            "mbu": metric(0.6, "ratio", "higher", jitter(0.6)),
            "peak_bandwidth": metric(26e9, "bytes/s", "none"),
            "load_s": metric(1.5, "s", "lower", [1.5]),
            "rouge1": metric(rouge, "F1", "higher", [rouge - 0.05, rouge, rouge + 0.05], [rouge - 0.08, rouge + 0.08]),
            "rouge2": metric(rouge - 0.2, "F1", "higher", [rouge - 0.25, rouge - 0.2, rouge - 0.15],
                             [rouge - 0.28, rouge - 0.12]),
            "rougeLsum": metric(rouge - 0.05, "F1", "higher", [rouge - 0.1, rouge - 0.05, rouge],
                                [rouge - 0.13, rouge + 0.03]),
        }  # fmt: skip
        if precision != "fp32":
            info["metrics"]["drift_identical_share"] = metric(  # type: ignore[index]
                1 / 3, "ratio", "higher", [1.0, 0.0, 0.0], [0.0, 1.0]
            )
        info["outputs"] = OUTPUTS[precision]
        info["outputs_file"] = f"report_runs/outputs/{run:04d}/gemma3-270m-{precision}-cpu.jsonl"
        info["quality_items"] = len(ITEMS)
    return {
        "group": None, "name": f"test_generate[{combination}]",
        "fullname": f"benchmarks/test_generate.py::test_generate[{combination}]",
        "params": {"llm_combination": f"UNSERIALIZABLE[{combination}]"}, "param": combination,
        "extra_info": info, "options": {"timer": "perf_counter", "min_rounds": 5}, "stats": stats(samples),
    }  # fmt: skip


def write_outputs(run: int) -> None:
    for precision, texts in OUTPUTS.items():
        path = HERE / "outputs" / f"{run:04d}" / f"gemma3-270m-{precision}-cpu.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        lines = [
            json.dumps(
                {
                    "id": item,
                    "reference": REFERENCES[item],
                    "output": texts[item],
                    "rouge1": 0.6,
                    "rouge2": 0.4,
                    "rougeLsum": 0.55,
                    "identical_to_reference_precision": None,
                }
            )
            for item in ITEMS
        ]
        path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def main() -> None:
    MACHINE.mkdir(parents=True, exist_ok=True)
    dates = {1: "2026-11-01T10:00:00.000000+00:00", 2: "2026-11-08T10:00:00.000000+00:00",
             3: "2026-11-15T10:00:00.000000+00:00"}  # fmt: skip
    commits = {1: "1111111aaaaaaa", 2: "2222222bbbbbbb", 3: "3333333ccccccc"}
    for run in (1, 2, 3):
        full = run > 1
        benchmarks = [generate_bench(p, b, run, full) for p in PRECISIONS for b in BATCHES]
        if run == 3:
            failed = dict(generate_bench("bf16", 1, run, False), extra_info={})
            failed["name"] = failed["fullname"] = "test_generate[broken]"
            load = generate_bench("q4_k_m", 1, run, False)
            load.update(name="test_load[gemma3-270m-q4_k_m-cpu]",
                        fullname="benchmarks/test_load.py::test_load[gemma3-270m-q4_k_m-cpu]",
                        extra_info={"model": "gemma3-270m", "precision": "q4_k_m", "device": "cpu",
                                    "backend": "llama_cpp", "metrics": {
                                        "load_s": metric(0.4, "s", "lower", [0.41, 0.4, 0.39]),
                                        "load_added_bytes": metric(3.1e8, "bytes", "lower")}})  # fmt: skip
            benchmarks += [failed, load]
        if full:
            write_outputs(run)
        machine_info = {"node": "dev", "processor": "x86_64", "machine": "x86_64", "python_version": "3.11.2",
                        "system": "Linux", "release": "6.1.0", "cpu": {"brand_raw": FINGERPRINT["cpu"]}}  # fmt: skip
        if full:
            machine_info["llmbench"] = FINGERPRINT
        data = {
            "machine_info": machine_info,
            "commit_info": {
                "id": commits[run],
                "time": dates[run],
                "author_time": dates[run],
                "dirty": False,
                "project": "pytest-llmbench",
                "branch": "main",
            },
            "benchmarks": benchmarks,
            "datetime": dates[run],
            "version": "5.1.0",
        }
        name = f"{run:04d}_{commits[run]}_{dates[run][:10].replace('-', '')}_100000.json"
        (MACHINE / name).write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
