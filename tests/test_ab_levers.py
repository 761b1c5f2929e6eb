"""scripts/ab/levers.py re-decides saved pairs under smaller designs: its re-decision of the design a pair ran
must be llmbench ab's own verdict on that pair, and its levers must do what they say on controlled rounds."""

from __future__ import annotations

import copy
import importlib.util
import json
import sys
from types import ModuleType
from typing import Any

import pytest

from llmbench.ab.verdict import compare_pair
from llmbench.runs import load_run
from tests.support.paths import REPO

PILOT = REPO / "scripts" / "ab" / "data" / "ab-catch-rate-2026-12-07-pilot.tar.xz"


@pytest.fixture(scope="module")
def levers() -> ModuleType:
    """scripts/ab/levers.py (it puts its own folder on sys.path for catch_rate)."""
    spec = importlib.util.spec_from_file_location("levers", REPO / "scripts" / "ab" / "levers.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["levers"] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


def test_the_design_a_pair_ran_gives_llmbench_abs_own_verdict(levers: ModuleType) -> None:
    """Every saved pair of the pilot (3 to 6 load pairs of 2 rounds): the per-load figures rebuilt from the
    rounds, decided over all its load pairs, give the verdicts compare_pair gives on the saved files."""
    with levers.saved_data(PILOT) as folder:
        heads = sorted((folder / "runs").rglob("*-head.json"))
        assert len(heads) == 18
        for head in heads:
            base = levers.base_of(head)
            expected = {
                d.metric: d.verdict
                for result in compare_pair(load_run(base), load_run(head)).results
                for d in result.decisions
                if d.metric in levers.METRICS
            }
            [b] = json.loads(base.read_text())["benchmarks"]
            [h] = json.loads(head.read_text())["benchmarks"]
            found, loads = levers.decide(b, h, levers.Design(6, 6, 2))
            assert loads == len(b["extra_info"]["llmbench_ab"]["loads"])
            assert found == expected, head.name


def _pair(head_factor: float, spike: float) -> tuple[dict[str, Any], dict[str, Any]]:
    """A pair of 6 load pairs of 3 rounds: the head's rounds ``head_factor`` slower; the first round of every
    head load pair ``spike`` slower still (a burst of load in one round)."""
    rounds, loads = 3, 6
    round_loads = [k for k in range(loads) for _ in range(rounds)]

    def side(factor: float, first_round: float) -> dict[str, Any]:
        latency = [0.8 * factor * (first_round if i % rounds == 0 else 1) * (1 + 0.001 * (i % 5))
                   for i in range(len(round_loads))]  # fmt: skip
        metrics = {
            "latency_s": {"value": latency[0], "unit": "s", "direction": "lower", "samples": latency},
            "ttft_s": {"value": 0.6, "unit": "s", "direction": "lower", "samples": [x * 0.75 for x in latency]},
            "prefill_tok_s": {
                "value": 1.0,
                "unit": "tok/s",
                "direction": "higher",
                "samples": [178 / (x * 0.75) for x in latency],
            },
            "decode_tok_s_total": {
                "value": 1.0,
                "unit": "tok/s",
                "direction": "higher",
                "samples": [7 / (x * 0.25) for x in latency],
            },
            "peak_rss_bytes": {"value": 4e8, "unit": "bytes", "direction": "lower", "samples": [4e8] * len(latency)},
        }
        marks = {"round_loads": round_loads, "loads": [{}] * loads}
        return {"extra_info": {"metrics": metrics, "llmbench_ab": marks}, "stats": {"data": latency}}

    base = side(1.0, 1.0)
    head = side(head_factor, spike)
    return base, copy.deepcopy(head)


def test_a_change_is_caught_and_no_change_is_not(levers: ModuleType) -> None:
    base, head = _pair(1.05, 1.0)
    found, loads = levers.decide(base, head, levers.Design(3, 6, 3))
    assert found["latency_s"] == "regressed"
    assert found["decode_tok_s_total"] == "regressed"
    assert found["peak_rss_bytes"] == "unchanged"
    assert loads == 3
    same, _ = levers.decide(base, _pair(1.0, 1.0)[1], levers.Design(3, 6, 3))
    assert set(same.values()) == {"unchanged"}


def test_the_best_round_steps_over_a_burst_in_one_round_the_median_of_two_does_not(levers: ModuleType) -> None:
    """Unchanged code whose head has one 20% slower round per load pair: the median of the first 2 rounds
    (their mean) reads +10% in every load pair, a false regression; the best round reads no change."""
    base, head = _pair(1.0, 1.2)
    median, _ = levers.decide(base, head, levers.Design(3, 6, 2, "median"))
    best, _ = levers.decide(base, head, levers.Design(3, 6, 2, "best"))
    assert median["latency_s"] == "regressed"
    assert best["latency_s"] == "unchanged"


def test_the_threshold_lever_decides_a_change_between_thresholds(levers: ModuleType) -> None:
    base, head = _pair(1.025, 1.0)
    assert levers.decide(base, head, levers.Design(3, 6, 3, threshold=0.03))[0]["latency_s"] == "unchanged"
    assert levers.decide(base, head, levers.Design(3, 6, 3, threshold=0.02))[0]["latency_s"] == "regressed"


def test_leaving_out_a_load_in_a_mode_of_its_own_decides_the_change_the_other_loads_agree_on(
    levers: ModuleType,
) -> None:
    """The head 5% slower in every load, but its fourth load in a mode 30% faster (a load-long mode, as
    the duet campaign's saved pairs show): its ratio, 0.735, keeps six loads from deciding; left out (it lies
    26% off the head's median load), the five others decide the regression. A change in every load is no
    load's own deviation, so it is never left out."""
    base, head = _pair(1.05, 1.0)
    samples = head["extra_info"]["metrics"]["latency_s"]["samples"]
    for i in range(9, 12):  # load pair 3's three rounds
        samples[i] *= 0.7
    assert levers.decide(base, head, levers.Design(6, 6, 2, "best"))[0]["latency_s"] != "regressed"
    found, loads = levers.decide(base, head, levers.Design(6, 6, 2, "best", reject=0.05))
    assert (found["latency_s"], loads) == ("regressed", 6)
    assert levers._kept(([1.0] * 6, [1.05] * 6), 6, 0.05) == list(range(6))
    assert levers._kept(([1.0] * 6, [1.05, 1.05, 1.05, 0.735, 1.05, 1.05]), 6, 0.05) == [0, 1, 2, 4, 5]


def test_the_tables_cover_every_metric_and_scenario(levers: ModuleType) -> None:
    with levers.saved_data(PILOT) as folder:
        lines = "\n".join(levers.tables(folder, one_sided_s=10.0))
    for metric in levers.METRICS:
        assert f"#### {metric}" in lines
    # the pilot's pairs ran at least 3 load pairs of 2 rounds: its own design, decided as it ran
    assert "| loads 3, rounds 2, median, threshold 3.0% | 3.0 |" in lines
    assert "| A/A flagged | decode5 | prefill5 |" in lines


def test_a_duets_cost_counts_a_round_pair_as_one_call(levers: ModuleType) -> None:
    alternate, duet = levers.Cost(3.0, 1.0), levers.Cost(3.0, 1.0, calls_per_round_pair=1)
    assert alternate.seconds(3, 2) == 3 * (3.0 + 2 * 3 * 1.0)  # a warm-up and 2 timed round pairs, two calls each
    assert duet.seconds(3, 2) == 3 * (3.0 + 3 * 1.0)
    with levers.saved_data(PILOT) as folder:  # the pilot ran alternating: no pair of the duet mode
        assert levers.pairs(folder, "duet")[0] == []
        assert len(levers.pairs(folder, "alternate")[0]) == 18


def test_the_compact_table_has_each_design_and_the_spread_per_estimator(levers: ModuleType) -> None:
    with levers.saved_data(PILOT) as folder:
        lines = levers.compact(folder)
        spread = levers.round_spread(folder)
    assert lines[0].startswith("| design | seconds per pair | latency_s: A/A · decode5 · prefill5 |")
    rows = [line for line in lines if line.startswith("| loads")]
    # the pilot's pairs ran 2 rounds per load pair: the designs of 3 rounds are left out, not mislabelled
    assert [row.split(" | ")[0] for row in rows] == [f"| {d.label}" for d in levers.COMPACT if d.rounds == 2]
    assert len(rows) == 4
    assert "Pairs flagged `regressed`, of 6 aa, 6 decode5, 6 prefill5." in lines
    assert [line.split(":")[0] for line in lines if line.startswith("- ")] == ["- median", "- best", "- best+tokens"]
    assert spread.startswith("352 rounds: a median ")  # both sides of the 18 pairs, 3 to 6 load pairs of 2


def test_the_modes_table_compares_only_the_pair_indices_run_in_both_modes(levers: ModuleType) -> None:
    duet = REPO / "scripts" / "ab" / "data" / "ab-duet-2026-12-08.tar.xz"
    with levers.saved_data(duet) as folder:
        lines = levers.modes(folder)
        rows = [json.loads(line) for line in (folder / "results.jsonl").read_text().splitlines()]
    assert lines[0] == "Pair indices 0-9, each run in both modes:"
    table = [line.split(" | ") for line in lines if line.startswith(("| alternate", "| duet"))]
    assert [(r[0], r[1], r[2]) for r in table] == [
        ("| alternate", "aa", "10"), ("| alternate", "steps3", "10"),
        ("| duet", "aa", "10"), ("| duet", "steps3", "10"),
    ]  # fmt: skip
    # indices 10-19 ran the duet alone: left out, though the archive has them
    assert sum(r["mode"] == "duet" and r["pair"] >= 10 for r in rows) == 20
    # a duet's round pair takes one call's time: its pairs cost less than the alternating ones of the same indices
    assert float(table[2][4]) < float(table[0][4])
    assert float(table[3][4]) < float(table[1][4])
