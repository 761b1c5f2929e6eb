"""Shard costs: measured in saved runs, else estimated (model size included), skipped tests free; and the
shipped plan's two CPU shards balanced within a third."""

from __future__ import annotations

import json
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import pytest

from llmbench.plugin.shard_hooks import SELECTION_KEY, Selection
from llmbench.shards.costs import (
    COST_RUNS,
    DURATIONS_KEY,
    Candidate,
    CostError,
    CostHistory,
    cost_work,
    read_cost_history,
)
from llmbench.shards.plan import REFERENCE_MODEL_BYTES, assign_shards, expected_cost
from tests.support.paths import REPO


def saved_run(
    path: Path, durations: Mapping[str, float] | None = None, benchmarks: list[dict[str, Any]] | None = None
) -> Path:
    """A saved run as pytest-benchmark writes one, holding only what the costs read."""
    machine_info: dict[str, Any] = {"system": "Linux"}
    if durations is not None:
        machine_info[DURATIONS_KEY] = dict(durations)
    data = {
        "machine_info": machine_info,
        "commit_info": {},
        "benchmarks": benchmarks or [],
        "datetime": "",
        "version": "5.1.0",
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data))
    return path


def sized(model: str, precision: str, weight_bytes: float) -> dict[str, Any]:
    """A benchmark that says how many bytes its weights take."""
    metric = {"value": weight_bytes, "unit": "bytes", "direction": "lower"}
    extra = {"model": model, "precision": precision, "metrics": {"weight_bytes": metric}}
    return {"fullname": f"test_generate[{model}-{precision}]", "extra_info": extra}


def test_a_bigger_model_is_estimated_to_cost_more() -> None:
    assert expected_cost("bf16", 4, 32) == 4 * 32  # unknown size: the reference model's
    assert expected_cost("bf16", 4, 32, 4 * REFERENCE_MODEL_BYTES) == 4 * expected_cost("bf16", 4, 32)
    assert expected_cost("q4_k_m", None, 32) == pytest.approx(0.4 * 32)  # a load test counts as batch size 1


def test_measured_costs_win_estimates_are_scaled_to_seconds_and_skipped_tests_are_free() -> None:
    tests = [
        Candidate("gen[m-bf16-bs1]", "m", "bf16", "cpu", 1, 32),
        Candidate("gen[m-bf16-bs4]", "m", "bf16", "cpu", 4, 32),
        Candidate("gen[m-q4_k_m-bs1]", "m", "q4_k_m", "cpu", 1, 32),  # never measured
        Candidate("gen[m-fp16-bs1]", "m", "fp16", "cpu", 1, 32, skipped=True),
    ]
    # Measured: 64 s for an estimate of 32 (2 s per unit), 512 s for 128 (4 s per unit); median 3 s per unit.
    history = CostHistory({"gen[m-bf16-bs1]": 64.0, "gen[m-bf16-bs4]": 512.0, "gen[m-fp16-bs1]": 99.0}, {})
    work, kinds = cost_work(tests, history)
    costs = {w.name: w.cost for w in work}
    assert costs == {
        "gen[m-bf16-bs1]": 64.0,
        "gen[m-bf16-bs4]": 512.0,
        "gen[m-q4_k_m-bs1]": pytest.approx(0.4 * 32 * 3.0),
        "gen[m-fp16-bs1]": 0.0,  # skipped here, whatever it cost where it ran
    }
    assert kinds == {"gen[m-bf16-bs1]": "measured", "gen[m-bf16-bs4]": "measured",
                     "gen[m-q4_k_m-bs1]": "estimated", "gen[m-fp16-bs1]": "skipped"}  # fmt: skip
    # Without saved runs: the relative estimates as they are.
    assert {w.name: w.cost for w in cost_work(tests, None)[0]}["gen[m-bf16-bs4]"] == 128.0


def test_saved_runs_give_median_durations_and_model_sizes(tmp_path: Path) -> None:
    storage = tmp_path / "history"
    machine = storage / "Linux-CPython-3.11-64bit"
    # Seven runs: only the newest COST_RUNS count; run 1 says 1000 s, which would move no median of 5 anyway.
    for number in range(1, 8):
        seconds = 1000.0 if number == 1 else float(number)
        saved_run(machine / f"{number:04d}_run.json", {"t": seconds} if number != 7 else {},
                  [sized("big", "bf16", 8e9), sized("big", "q4_k_m", 2.25e9)] if number == 7 else [])  # fmt: skip
    (machine / "0008_broken.json").write_text("{not json")
    history = read_cost_history(storage)
    assert COST_RUNS == 5
    assert [Path(run).name[:4] for run in history.runs] == ["0004", "0005", "0006", "0007"]  # and 0008, unread
    assert history.durations == {"t": 5.0}  # runs 4, 5, 6 (7 holds no durations, 8 is unreadable)
    assert len(history.notes) == 1
    assert "0008_broken.json: corrupted JSON" in history.notes[0]
    # bf16 weights at 2 bytes each and Q4_K_M's at 4.5 bits: 16 GB and 16 GB at fp32.
    assert history.model_bytes == {"big": pytest.approx(16e9)}

    one = read_cost_history(machine / "0003_run.json")
    assert one.durations == {"t": 3.0}
    assert read_cost_history(tmp_path / "nowhere") == CostHistory({}, {})
    with pytest.raises(CostError, match=r"0008_broken\.json: corrupted JSON"):
        read_cost_history(machine / "0008_broken.json")


def test_a_known_model_size_moves_its_estimate(tmp_path: Path) -> None:
    tests = [Candidate("a", "small", "bf16", "cpu", 1, 32), Candidate("b", "big", "bf16", "cpu", 1, 32)]
    history = read_cost_history(saved_run(tmp_path / "run.json", {}, [sized("big", "bf16", REFERENCE_MODEL_BYTES)]))
    costs = {w.name: w.cost for w in cost_work(tests, history)[0]}
    # bf16 at the reference's fp32 bytes: twice its weights; a model no saved run describes: the reference.
    assert costs["b"] == pytest.approx(2 * costs["a"])


# --- the shipped plan ------------------------------------------------------------------------------

GROUPS = ("fp32", "bf16", "fp16", "q4_k_m")


def node_id(test: str, precision: str, batch: int | None) -> str:
    combination = f"gemma3-270m-{precision}-cpu" + (f"-bs{batch}" if batch is not None else "")
    return f"benchmarks/{test}.py::{test.replace('overhead', 'harness_overhead')}[{combination}]"


def shipped_durations() -> dict[str, float]:
    """Durations of the shipped CPU plan's tests from the figures measured on the 2-core development
    machine (docs/matrix-and-models.md, DESIGN's facts): fp32 and bf16 decode about 16 tokens/s and
    Q4_K_M about 42, so 32 new tokens take about 2.2, 2.1 and 0.96 s at batch size 1 (bs4 about 1.5
    times that); 6 calls per test (5 timed rounds, 1 warm-up); the first test of a model holds its
    load (about 4 s from the cache with transformers, 1 s with llama.cpp) and the quality pass (32
    items in batches of 4); a load test times 4 loads; the overhead test is skipped in its call."""
    bs1 = {"fp32": 2.2, "bf16": 2.1, "q4_k_m": 0.96}
    load = {"fp32": 4.0, "bf16": 4.0, "q4_k_m": 1.0}
    out = {}
    for precision, latency in bs1.items():
        out[node_id("test_generate", precision, 1)] = 6 * latency + load[precision] + 8 * 1.5 * latency
        out[node_id("test_generate", precision, 4)] = 6 * 1.5 * latency
        out[node_id("test_load", precision, None)] = 4 * load[precision]
        for batch in (1, 4):
            out[node_id("test_overhead", precision, batch)] = 0.05
    return out


class Catch:
    """Keeps the collected ids and the shard selection of an in-process session."""

    ids: list[str]
    selection: Selection

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        self.ids = [item.nodeid for item in session.items]
        self.selection = session.config.stash[SELECTION_KEY]


def collect_shipped(shard: str, *args: str) -> Catch:
    catch = Catch()
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        status = pytest.main(
            ["benchmarks", "--collect-only", "-qq", "-p", "no:cacheprovider", "--import-mode=importlib",
             "--llmbench-device=cpu", f"--llmbench-shard={shard}", *args],
            plugins=[catch],
        )  # fmt: skip
    assert status == pytest.ExitCode.OK
    return catch


def imbalance(loads: tuple[float, ...]) -> float:
    """How much two shards' costs differ, as a share of the larger."""
    return (max(loads) - min(loads)) / max(loads)


@pytest.mark.parametrize("measured", [True, False], ids=["measured", "estimated"])
def test_the_shipped_cpu_plan_splits_into_two_shards_within_a_third(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], measured: bool
) -> None:
    run = saved_run(tmp_path / "0001_run.json", shipped_durations())
    args = [f"--llmbench-shard-costs={run}"] if measured else []
    first = collect_shipped("1/2", *args)
    selection = first.selection
    assert len(selection.loads) == 2
    assert imbalance(selection.loads) < 1 / 3, selection.loads
    # fp16 gives NaN for Gemma 3 (skipped: free); int8 and nf4 are excluded on CPU by benchmarks/matrix.toml.
    assert selection.total == 20
    assert selection.kinds == ({"measured": 15, "skipped": 5} if measured else {"estimated": 15, "skipped": 5})
    assert sum(selection.runnable) == 15
    if not measured:
        # fp32 and bf16 estimated alike, Q4_K_M at 0.4 of them: 1.4 against 1 (a difference of 29%).
        assert selection.loads[0] / selection.loads[1] == pytest.approx(1.4)
        return
    out = capsys.readouterr().out
    # Shard 1: fp32 (79.5 s) and fp16 (skipped); shard 2: bf16 (76.8 s) and q4_k_m (31.0 s).
    assert "llmbench shard 1/2: 10 of 20 combinations" in out
    assert f"llmbench shard 1/2 costs: 42% of the matrix's (15 tests measured in 1 saved runs of {run}, " \
           "0 estimated, 5 skipped)" in out  # fmt: skip
    assert {i for i in first.ids if "fp16" not in i} == {i for i in shipped_durations() if "-fp32-" in i}
    second = collect_shipped("2/2", *args)
    assert second.selection == selection  # every shard computes the same split
    assert sorted(first.ids + second.ids) == sorted(set(first.ids + second.ids))
    assert len(first.ids + second.ids) == 20
    for precision in GROUPS:  # one load per model and precision: a group's tests stay together
        assert len({k for k, ids in enumerate((first.ids, second.ids)) for i in ids if f"-{precision}-" in i}) == 1


def test_a_cost_source_that_cannot_be_read_is_a_usage_error(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[]")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(REPO)
        status = pytest.main(["benchmarks", "--collect-only", "-qq", "-p", "no:cacheprovider",
                              "--llmbench-shard=1/2", f"--llmbench-shard-costs={bad}"])  # fmt: skip
    assert status == pytest.ExitCode.USAGE_ERROR
    assert (
        f"--llmbench-shard-costs: {bad}: not a pytest-benchmark run (expected a JSON object with a 'benchmarks' "
        "list) (from --llmbench-shard-costs on the command line); expected a saved run (pytest-benchmark JSON) "
        "or a storage folder"
    ) in capsys.readouterr().err


def test_the_split_follows_the_measured_costs() -> None:
    """The same tests split differently when the saved runs say another group is the expensive one."""
    tests = [Candidate(f"t[{p}]", "m", p, "cpu", 1, 32) for p in ("fp32", "bf16", "q4_k_m")]
    estimated = assign_shards(cost_work(tests, None)[0], 2)
    assert estimated["t[bf16]"] != estimated["t[fp32]"]
    history = CostHistory({"t[fp32]": 10.0, "t[bf16]": 10.0, "t[q4_k_m]": 30.0}, {})
    measured = assign_shards(cost_work(tests, history)[0], 2)
    assert measured["t[bf16]"] == measured["t[fp32]"] != measured["t[q4_k_m]"]
