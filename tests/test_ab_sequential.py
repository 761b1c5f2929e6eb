"""llmbench ab --one-side-at-a-time: one side's worker resident at a time, load pairs still interleaved.

A fake device stands in for the workers: it notes which sides' models are resident whenever a model
loads, and every load, round, quality call and close in order. Its fake models' round times are fixed
per side and load pair, so both modes measure the same figures and the verdicts can be compared.
"""

from __future__ import annotations

import io
import json
import random
import shutil
import sys
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmbench.ab.collect import Plan, collect_plan
from llmbench.ab.interleave import Measured, Progress, Schedule, measure_pair
from llmbench.ab.save import save_pair, side_json
from llmbench.ab.sides import Side, SideName
from llmbench.ab.verdict import compare_pair
from llmbench.backends import Generation
from llmbench.cli import build_parser
from llmbench.cli import main as cli_main
from llmbench.commands import ab as ab_command
from llmbench.config.combination import Combination
from llmbench.gate.verdict import Verdict
from llmbench.metrics import Metric
from llmbench.quality import runs as quality_runs
from llmbench.runs import load_run
from llmbench.workers.protocol import MemoryFigures, TimedRound
from tests.support.fake_models import FakeModelFacts
from tests.support.matrices import TINY_FP32_MATRIX
from tests.support.paths import REPO

#: The head side's extra share of round time in each load pair (1-based load of that side): the second
#: load pair in a mode of its own, so the verdict rests on the per-load ratios, not on one constant.
HEAD_SLOWER = {1: 0.10, 2: 0.30, 3: 0.12, 4: 0.11}


class FakeModel(FakeModelFacts):
    """A fake loaded model (no worker, no weights): fixed round times, every call noted on its device."""

    def __init__(self, device: FakeDevice, side: SideName, load: int, combination: Combination) -> None:
        self.device, self.side, self.load = device, side, load
        self.load_s = 0.5 + 0.01 * load  # per load: its own figure, so a mix-up of loads would show
        self.combination_key = combination.load_key

    def _generation(self, prompts: Sequence[str]) -> Generation:
        steps = tuple(0.1 + 0.01 * i for i in range(4))
        return Generation(tuple(p[:20] for p in prompts), (10,) * len(prompts), (4,) * len(prompts),
                          ((1, 2, 3, 4),) * len(prompts), steps)  # fmt: skip

    def timed_generate(self, prompts: Sequence[str], max_new_tokens: int) -> TimedRound:
        self.device.note("round", self.side)
        seconds = 0.2 * len(prompts) * (1 + (self.device.head_slower[self.load] if self.side == "head" else 0.0))
        memory = MemoryFigures(
            100 * 2**20, 90 * 2**20, 95 * 2**20, (Metric("peak_rss_bytes", 100.0 * 2**20, "bytes", "lower"),)
        )
        return TimedRound(self._generation(prompts), seconds, memory)

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        self.device.note("quality", self.side)  # only the quality pass calls the untimed generate
        return self._generation(prompts)

    def close(self) -> None:
        self.device.resident.discard(self.side)
        self.device.note("exit", self.side)


@dataclass
class FakeDevice:
    """A fake device: which sides' models are resident, and what ran on it, in order."""

    #: The head side's extra share of round time, by its load (1-based).
    head_slower: dict[int, float] = field(default_factory=lambda: dict(HEAD_SLOWER))
    resident: set[str] = field(default_factory=set)
    #: (event, side): "load", "round", "quality", "exit".
    events: list[tuple[str, str]] = field(default_factory=list)
    #: The sides already resident when each model loaded.
    resident_at_load: list[set[str]] = field(default_factory=list)
    #: The sides resident during each call, at the time of the call.
    resident_at_call: list[set[str]] = field(default_factory=list)
    loads: Counter[str] = field(default_factory=Counter)

    def note(self, event: str, side: str) -> None:
        self.events.append((event, side))
        if event in ("round", "quality"):
            self.resident_at_call.append(set(self.resident))

    def start(self, side: Side, combination: Combination) -> FakeModel:
        self.resident_at_load.append(set(self.resident))
        self.loads[side.name] += 1
        self.resident.add(side.name)
        self.note("load", side.name)
        return FakeModel(self, side.name, self.loads[side.name], combination)

    def load_pairs(self) -> list[list[tuple[str, str]]]:
        """The events cut after every second exit (one load pair each)."""
        pairs: list[list[tuple[str, str]]] = [[]]
        for event in self.events:
            pairs[-1].append(event)
            if sum(e == "exit" for e, _ in pairs[-1]) == 2:
                pairs.append([])
        assert pairs[-1] == [], "a load pair did not end with both sides' exits"
        return pairs[:-1]


def _side(name: SideName, root: Path) -> Side:
    commit = "a" * 40 if name == "base" else "b" * 40
    return Side(name, "main" if name == "base" else "HEAD", commit, root, sys.executable, (str(root / "src"),))


def _suite(root: Path, tiny_gemma3_dir: Path) -> None:
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "matrix.toml").write_text(TINY_FP32_MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", root / "benchmarks")


def _plan(root: Path, tiny_gemma3_dir: Path) -> Plan:
    """The tiny fp32 matrix (batch sizes 1 and 2), one quality item, saving under ``root/runs``."""
    _suite(root, tiny_gemma3_dir)
    args = ["benchmarks", "--llmbench-quality-items=1", "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs"]
    return collect_plan(args, root, root)


def _verdict(plan: Plan, sides: tuple[Side, Side], measured: Measured, schedule: Schedule, pair: str) -> Verdict:
    data: dict[str, dict[str, Any]] = {
        s.name: side_json(s, o, plan, measured, schedule, pair, {"cpu": None})
        for s, o in (sides, sides[::-1])
    }  # fmt: skip
    paths = save_pair(plan.storage, plan.machine_id, pair, data)
    return compare_pair(load_run(paths["base"]), load_run(paths["head"]), plan.rules)


def _decisions(verdict: Verdict) -> list[tuple[str, str, str, float | None, tuple[float, float] | None, int]]:
    return [(r.fullname, d.metric, d.verdict, d.change, d.interval, d.n_current)
            for r in verdict.results for d in r.decisions]  # fmt: skip


def test_one_side_at_a_time_never_has_both_resident_and_decides_as_together(
    pytester: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    monkeypatch.setattr(quality_runs, "semantic_available", lambda: False)  # ROUGE alone: the scheduling is tested
    plan = _plan(pytester.path, tiny_gemma3_dir)
    sides = (_side("base", pytester.path), _side("head", pytester.path))
    fullnames = [b.fullname for b in plan.benchmarks]
    assert [b.combination.batch_size for b in plan.benchmarks] == [1, 2]
    asked: dict[bool, list[int]] = {True: [], False: []}
    runs: dict[bool, tuple[FakeDevice, Measured, str]] = {}
    for alone in (True, False):

        def undecided(group: Sequence[Any], measured: Measured, alone: bool = alone) -> list[str]:
            asked[alone].append(len(measured.records["base"][group[0].fullname].load_s))
            return ["bs1 latency_s"] if asked[alone][-1] < 4 else []  # noisy until 4 load pairs ran

        device, stream = FakeDevice(), io.StringIO()
        schedule = Schedule(loads=3, rounds=2, warmup_rounds=1, seed=5, max_loads=6, one_side_at_a_time=alone)
        measured = measure_pair(plan, sides, schedule, device.start, Progress(stream), undecided)  # type: ignore[arg-type]
        runs[alone] = (device, measured, stream.getvalue())
    device, measured, progress = runs[True]

    # Never both resident: each load finds nothing resident, and every round and quality call runs alone.
    assert len(device.resident_at_load) == 8  # 3 load pairs and one extra (the figures noisy until 4)
    assert device.resident_at_load == [set()] * 8
    assert all(len(live) == 1 for live in device.resident_at_call)
    assert device.resident == set()
    # The control: together, the second side of each pair loads while the first is resident.
    assert [len(live) for live in runs[False][0].resident_at_load] == [0, 1] * 4
    assert all(len(live) == 2 for live in runs[False][0].resident_at_call)

    # Still interleaved per load pair: each pair is one side's load, rounds (1 warm-up + 2, both batch
    # sizes), quality in the first pair, exit, then the other side's; the first side as the seeded draw says.
    rng = random.Random(5)
    drawn = [rng.sample(["base", "head"], 2) for _ in range(4)]
    pairs = device.load_pairs()
    assert len(pairs) == 4
    for load, (events, order) in enumerate(zip(pairs, drawn, strict=True)):
        expected: list[tuple[str, str]] = []
        for name in order:
            quality = [("quality", name)] if load == 0 else []
            expected += [("load", name), *[("round", name)] * 6, *quality, ("exit", name)]
        assert events == expected, f"load pair {load}"
    assert {order[0] for order in drawn} == {"base", "head"}  # this seed puts either side first
    assert measured.orders[fullnames[0]] == [tuple(order) for order in drawn for _ in range(2)]
    assert f"load 1 of 3: {drawn[0][0]} loaded (0.51 s), alone (--one-side-at-a-time)" in progress
    assert f"load 4 (extra): {drawn[3][1]} loaded (0.54 s), alone" in progress
    assert asked == {True: [3, 4], False: [3, 4]}  # extra load pairs are asked for alike

    # The figures of a side keep their meaning: load_s one per load, rounds by load pair.
    names: tuple[SideName, SideName] = ("base", "head")
    for name in names:
        record = measured.records[name][fullnames[0]]
        assert record.load_s == [0.51, 0.52, 0.53, 0.54]
        assert record.round_loads == [0, 0, 1, 1, 2, 2, 3, 3]
        assert record.quality is not None
        assert record.round_loads == runs[False][1].records[name][fullnames[0]].round_loads

    # The verdict is computed the same way: the same per-load figures give the same decisions.
    alone_verdict = _verdict(plan, sides, measured, Schedule(3, 2, 1, 5, 6, one_side_at_a_time=True), "P1")
    together_verdict = _verdict(plan, sides, runs[False][1], Schedule(3, 2, 1, 5, 6), "P2")
    assert _decisions(alone_verdict) == _decisions(together_verdict)
    latency = next(d for d in alone_verdict.results[0].decisions if d.metric == "latency_s")
    # head/base per load pair: 1.10, 1.30, 1.12, 1.11; four loads: Student's t over the log-ratios
    assert (latency.verdict, latency.n_current) == ("regressed", 4)
    assert latency.change == pytest.approx(0.115, abs=1e-9)  # the median of the per-load ratios, less one
    assert any("one side's worker at a time" in note for note in alone_verdict.notes)
    assert not any("one side's worker at a time" in note for note in together_verdict.notes)


def test_the_command_runs_one_side_at_a_time_and_marks_the_pair(
    pytester: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    # The option as a user gives it (after HEAD), through the command's own run: collection, the
    # schedule, the save and the verdict; only the workers are the fake device's.
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    _suite(pytester.path, tiny_gemma3_dir)
    device = FakeDevice(head_slower={1: 0.2, 2: 0.2})
    monkeypatch.setattr(ab_command, "start_worker_model", lambda side, combination, *_: device.start(side, combination))
    args = build_parser(only="ab").parse_args([
        "ab", "main", "HEAD", "--loads=2", "--max-loads=2", "--rounds=1", "--warmup-rounds=0",
        "--one-side-at-a-time", "--", "benchmarks", "--llmbench-quality-items=0",
        "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs",
    ])  # fmt: skip
    base, head = _side("base", pytester.path), _side("head", pytester.path)
    status = ab_command.run_ab(args, base, head, pytester.path / "scratch", pytester.path, pytester.path)
    out, err = capsys.readouterr()
    assert status == 1, out + err  # head 20% slower in both loads
    assert device.resident_at_load == [set()] * 4
    assert "2 load pairs of 1 rounds per side, one side's worker at a time, each load pair's best round (seed 0)" in err
    assert "alone (--one-side-at-a-time)" in err
    assert "tiny fp32 cpu bs1: latency 200 → 240 ms (+20.0%" in out
    saved = sorted((pytester.path / "runs").rglob("*-head.json"))
    marks = json.loads(saved[0].read_text())["machine_info"]["llmbench_ab"]
    assert (marks["one_side_at_a_time"], marks["loads"], marks["rounds"]) == (True, 2, 1)


def test_the_option_takes_no_value(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:  # fmt: skip
    monkeypatch.chdir(tmp_path)  # not a git repository: refused before anything is checked out
    with pytest.raises(SystemExit) as exited:
        cli_main(["ab", "main", "HEAD", "--one-side-at-a-time=yes", "--", "benchmarks"])
    assert exited.value.code == 2
    assert "argument --one-side-at-a-time: ignored explicit argument 'yes'" in capsys.readouterr().err
