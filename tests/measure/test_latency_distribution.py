"""The latency distribution (ITL, TPOT, TTFT percentiles) and the engine's decode figure."""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest

from llmbench.engine_types import Generation
from llmbench.measure.distribution import (
    distribution_metrics,
    inter_token_latencies,
    minimum_samples,
    percentile_metric,
    time_per_output_token,
    times_to_first_token,
)
from llmbench.measure.speed import engine_decode_metric, engine_decode_rate, round_speed
from llmbench.metrics import METRIC_FACTS, Metric, MetricSet, metrics_of
from llmbench.plugin import terminal_table


def sequential(*times: tuple[float, ...], engine: tuple[tuple[int, float], ...] = ()) -> Generation:
    n = len(times)
    return Generation(
        texts=("x",) * n,
        prompt_tokens=(10,) * n,
        generated_tokens=tuple(len(t) for t in times),
        token_ids=tuple(tuple(range(len(t))) for t in times),
        sequence_step_times_s=times,
        batch_mode="sequential",
        engine_decode=engine,
        engine_clock="test counters",
    )


def batched(times: tuple[float, ...], generated: tuple[int, ...]) -> Generation:
    return Generation(
        texts=("x",) * len(generated),
        prompt_tokens=(10,) * len(generated),
        generated_tokens=generated,
        token_ids=tuple(tuple(range(g)) for g in generated),
        step_times_s=times,
    )


def test_itl_tpot_ttft_of_one_sequential_round() -> None:
    generation = sequential((0.5, 0.6, 0.8, 0.9), (0.3, 0.35))
    assert inter_token_latencies(generation) == pytest.approx([0.1, 0.2, 0.1, 0.05])
    assert time_per_output_token(generation) == pytest.approx([0.4 / 3, 0.05])
    assert times_to_first_token(generation) == [0.5, 0.3]


def test_batched_rows_share_steps_but_count_their_own_tokens() -> None:
    # Row 0 stopped after 2 tokens, row 1 ran 3: ITLs are per row's own tokens; TTFT is the batch's.
    generation = batched((0.2, 0.3, 0.5), (2, 3))
    assert inter_token_latencies(generation) == pytest.approx([0.1, 0.1, 0.2])
    assert time_per_output_token(generation) == pytest.approx([0.1, 0.15])
    assert times_to_first_token(generation) == [0.2]


def test_minimum_samples_makes_a_percentile_more_than_the_maximum() -> None:
    assert [minimum_samples(p) for p in (50, 90, 99)] == [2, 10, 100]
    few = percentile_metric("itl", 99, [0.01] * 99)
    assert few.value is None
    assert "needs at least 100 samples, got 99" in few.note
    assert len(few.samples) == 99  # the samples are kept for the plot


def test_percentile_value_and_bootstrap_interval() -> None:
    values = list(np.random.default_rng(1).exponential(0.02, size=400))
    metric = percentile_metric("itl", 90, values)
    assert metric.name == "itl_p90_s"
    assert metric.value == pytest.approx(float(np.quantile(values, 0.9)))
    assert metric.ci is not None
    assert metric.value is not None
    low, high = metric.ci
    assert low < metric.value < high
    # The interval of the exponential's p90 (0.046) from 400 draws is a few ms wide, not the whole range.
    assert high - low < 0.02
    assert percentile_metric("itl", 90, values).ci == metric.ci  # seeded


def test_distribution_metrics_pool_every_round_and_skip_thin_tails() -> None:
    rounds = [sequential(tuple(0.1 + 0.01 * i + 0.001 * r for i in range(33))) for r in range(5)]
    metrics = {m.name: m for m in distribution_metrics(rounds)}
    assert set(metrics) == {
        "itl_p50_s", "itl_p90_s", "itl_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s", "ttft_p90_s", "ttft_p99_s",
    }  # fmt: skip
    assert len(metrics["itl_p50_s"].samples) == 5 * 32
    assert metrics["itl_p99_s"].value == pytest.approx(0.01)
    # 5 rounds of one sequence: 5 TPOT and TTFT samples, too few for p90 and p99.
    assert metrics["tpot_p50_s"].value == pytest.approx(0.01)
    assert metrics["tpot_p90_s"].value is None
    assert metrics["ttft_p90_s"].value is None
    for metric in metrics.values():
        assert (metric.unit, metric.direction) == (METRIC_FACTS[metric.name].unit, METRIC_FACTS[metric.name].direction)


def test_a_slow_tail_shows_in_p99_and_not_in_the_median() -> None:
    steady = [0.02] * 190
    spiky = [0.02] * 187 + [0.2] * 3  # 1.6% of tokens slow
    assert percentile_metric("itl", 50, spiky).value == percentile_metric("itl", 50, steady).value
    p99 = percentile_metric("itl", 99, spiky).value
    assert p99 is not None
    assert p99 > 0.05


def test_engine_rate_is_tokens_over_engine_seconds_and_can_exceed_end_to_end() -> None:
    # 31 decode tokens in 0.62 s end to end (50 tok/s); the engine spent 0.6 s of it in its decode steps.
    times = tuple(0.1 + 0.02 * i for i in range(32))
    generation = sequential(times, engine=((31, 0.6),))
    end_to_end = round_speed(generation).decode_tok_s_per_seq
    assert end_to_end == pytest.approx(50.0)
    assert engine_decode_rate(generation) == pytest.approx(31 / 0.6)
    metric = engine_decode_metric([generation, generation])
    assert metric.value == pytest.approx(31 / 0.6)
    assert metric.note.startswith("engine: test counters")
    assert engine_decode_metric([sequential(times)]).value is None


def test_saved_metrics_round_trip_and_show_in_the_terminal_table(tmp_path: Path) -> None:
    rounds = [sequential(tuple(0.1 + 0.01 * i for i in range(33)), engine=((32, 0.3),)) for _ in range(5)]
    saved = MetricSet()
    saved.add(Metric("latency_s", 0.5, "s", "lower"))
    saved.add(engine_decode_metric(rounds))
    saved.extend(distribution_metrics(rounds))
    bench = {
        "name": "test_generate[m]",
        "extra_info": {"model": "m", "precision": "fp32", "device": "cpu", "batch_size": 1, "metrics": saved.to_json()},
    }
    path = tmp_path / "run.json"
    path.write_text(json.dumps({"benchmarks": [bench]}))
    loaded = metrics_of(json.loads(path.read_text())["benchmarks"][0])
    assert loaded["itl_p90_s"].ci is not None
    assert math.isclose(loaded["itl_p90_s"].value or 0, 0.01)
    lines = terminal_table.render([bench])
    header = next(line for line in lines if line.startswith("combination") and "engine/s" in line)
    row = lines[lines.index(header) + 2]
    assert row.split()[:2] == ["m", "fp32"]
    assert "106.7" in row.split()  # 32 / 0.3
    assert all(len(line) <= 120 for line in lines)


def test_itl_cdf_plot_pools_each_precisions_tokens(tmp_path: Path) -> None:
    from llmbench.report.frame import Table
    from llmbench.report.plots import itl_cdf_plot
    from llmbench.runs import load_run

    def bench(precision: str, step: float) -> dict[str, object]:
        rounds = [sequential(tuple(0.1 + step * i for i in range(11))) for _ in range(3)]
        saved = MetricSet()
        saved.add(Metric("latency_s", 0.5, "s", "lower"))
        saved.extend(distribution_metrics(rounds))
        info = {"model": "m", "precision": precision, "device": "cpu", "batch_size": 1, "metrics": saved.to_json()}
        name = f"test_generate[m-{precision}]"
        stats = {"median": 0.5, "data": [0.5]}
        return {"name": name, "fullname": f"benchmarks/test_generate.py::{name}", "stats": stats, "extra_info": info}

    path = tmp_path / "0001_run.json"
    path.write_text(json.dumps({"machine_info": {}, "commit_info": {}, "datetime": "2025-01-01T00:00:00",
                                "benchmarks": [bench("fp32", 0.02), bench("q4_k_m", 0.01)]}))  # fmt: skip
    plot = itl_cdf_plot(Table.of([load_run(path)]).rows)
    fp32, q4 = plot.series_named("fp32"), plot.series_named("q4_k_m")
    assert len(fp32.x) == len(q4.x) == 30  # 10 gaps x 3 rounds
    assert fp32.y[-1] == 1.0
    assert max(q4.x) == pytest.approx(10.0)  # ms
    assert min(fp32.x) == pytest.approx(20.0)
    assert plot.png()[:4] == b"\x89PNG"
