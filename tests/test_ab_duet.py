"""llmbench ab --duet: both sides' rounds at the same time, each side's worker on CPUs of its own.

The schedule is tested with fake models whose rounds meet at a barrier (a round pair that ran one after
the other would time out there); the pinning with real processes: a Python child with threads, and a real
worker loading the tiny model.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

import pytest

from llmbench.ab.collect import Plan, collect_plan
from llmbench.ab.duet import DuetError, Placement, at_once, split_cpus
from llmbench.ab.interleave import Progress, Schedule, measure_pair, start_worker_model
from llmbench.ab.sides import Side, SideName
from llmbench.backends import Generation
from llmbench.cli import build_parser
from llmbench.cli import main as cli_main
from llmbench.commands import ab as ab_command
from llmbench.config.combination import Combination, ModelSpec
from llmbench.metrics import Metric
from llmbench.workers.client import pin_threads
from llmbench.workers.protocol import MemoryFigures, TimedRound
from tests.support.fake_models import FakeModelFacts
from tests.support.matrices import tiny_matrix

pytestmark = pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="CPU affinity is Linux's")

CPUS = frozenset({0, 1})


def _allowed(pid: int) -> dict[int, str]:
    """Each thread of ``pid`` and its allowed CPUs as the kernel lists them ("0", "0-1")."""
    out = {}
    for task in Path(f"/proc/{pid}/task").iterdir():
        status = (task / "status").read_text()
        allowed = next(line for line in status.splitlines() if line.startswith("Cpus_allowed_list"))
        out[int(task.name)] = allowed.split()[1]
    return out


def test_split_cpus_gives_two_disjoint_halves_of_one_size_and_refuses_what_cannot_run() -> None:
    assert split_cpus(frozenset({0, 1})) == (frozenset({0}), frozenset({1}))
    assert split_cpus(frozenset({3, 1, 7, 5, 9})) == (frozenset({1, 3}), frozenset({5, 7}))  # 9 idle
    with pytest.raises(DuetError, match=r"--duet needs at least 2 CPUs, one per side; this process may run on 1 \(4\)"):
        split_cpus(frozenset({4}))
    with pytest.raises(DuetError, match=r"--llmbench-threads=2: --duet gives each side 1 of this process's 2 CPUs"):
        split_cpus(frozenset({0, 1}), threads=2)
    assert split_cpus(frozenset(range(4)), threads=2) == (frozenset({0, 1}), frozenset({2, 3}))


def test_a_placement_swaps_the_halves_every_round_pair_starting_from_the_drawn_side() -> None:
    lower, upper = frozenset({0, 1}), frozenset({2, 3})
    placement = Placement((lower, upper), first="head")
    assert [placement.cpus("head", k) for k in range(4)] == [lower, upper, lower, upper]
    assert [placement.cpus("base", k) for k in range(4)] == [upper, lower, upper, lower]


def test_at_once_runs_the_calls_together_and_hands_back_results_and_errors() -> None:
    meeting = threading.Barrier(2, timeout=10)  # one call alone would wait here until it breaks

    def call(value: int) -> int:
        meeting.wait()
        return value

    assert at_once({"base": lambda: call(1), "head": lambda: call(2)}) == {"base": 1, "head": 2}

    def fails() -> int:
        raise ValueError("the worker died")

    with pytest.raises(ValueError, match="the worker died"):
        at_once({"base": lambda: 1, "head": fails})


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning to one of two CPUs needs two")
def test_pin_moves_every_thread_and_the_threads_started_later_inherit_it() -> None:
    code = (
        "import sys, threading, time\n"
        "stop = threading.Event()\n"
        "for _ in range(3): threading.Thread(target=stop.wait, daemon=True).start()\n"
        "print('ready', flush=True); sys.stdin.readline()\n"
        "threading.Thread(target=stop.wait, daemon=True).start()\n"
        "print('more', flush=True); sys.stdin.readline()\n"
    )
    with subprocess.Popen([sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                          text=True) as child:  # fmt: skip
        assert child.stdin is not None
        assert child.stdout is not None
        try:
            assert child.stdout.readline().strip() == "ready"
            first = min(os.sched_getaffinity(0))
            assert len(_allowed(child.pid)) == 4
            assert set(_allowed(child.pid).values()) != {str(first)}
            pin_threads(child.pid, frozenset({first}))
            assert set(_allowed(child.pid).values()) == {str(first)}
            child.stdin.write("\n")
            child.stdin.flush()
            assert child.stdout.readline().strip() == "more"
            threads = _allowed(child.pid)
            assert len(threads) == 5
            assert set(threads.values()) == {str(first)}
        finally:
            child.kill()


class DuetModel(FakeModelFacts):
    """A fake loaded model: its rounds meet the other side's at a barrier, so they must run together."""

    def __init__(self, device: DuetDevice, side: Side, load: int) -> None:
        self.device, self.side, self.load = device, side, load
        self.load_s = 0.5
        self.cpus = side.cpus
        self.combination_key = ("tiny", "fp32", "cpu")

    def timed_generate(self, prompts: Sequence[str], max_new_tokens: int) -> TimedRound:
        self.device.meeting.wait()  # breaks (BrokenBarrierError) unless the other side's round runs now
        self.device.rounds.append((self.side.name, threading.current_thread().name, self.cpus))
        seconds = 0.2 * (1.2 if self.side.name == "head" else 1.0)
        steps = (0.05, 0.05, 0.05, 0.05)
        generation = Generation(tuple(p[:20] for p in prompts), (10,) * len(prompts), (4,) * len(prompts),
                                ((1, 2, 3, 4),) * len(prompts), steps)  # fmt: skip
        memory = MemoryFigures(2**20, 2**20, 2**20, (Metric("peak_rss_bytes", float(2**20), "bytes", "lower"),))
        return TimedRound(generation, seconds, memory)

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        raise AssertionError("no quality pass in these tests")

    def close(self) -> None:
        pass


class DuetDevice:
    def __init__(self) -> None:
        self.meeting = threading.Barrier(2, timeout=10)
        #: Each round's (side, the thread it ran on, its CPUs).
        self.rounds: list[tuple[str, str, frozenset[int] | None]] = []
        #: Each load's (side, its CPUs).
        self.cpus: list[tuple[str, frozenset[int] | None]] = []

    def start(self, side: Side, combination: Combination) -> DuetModel:
        self.cpus.append((side.name, side.cpus))
        return DuetModel(self, side, len(self.cpus))


def _side(name: SideName, root: Path) -> Side:
    commit = "a" * 40 if name == "base" else "b" * 40
    return Side(name, "main" if name == "base" else "HEAD", commit, root, sys.executable, (str(root / "src"),))


def _suite(root: Path, model_dir: Path) -> None:
    (root / "benchmarks").mkdir()
    (root / "benchmarks" / "matrix.toml").write_text(tiny_matrix(model_dir))
    (root / "benchmarks" / "test_generate.py").write_text(
        (Path(__file__).parents[1] / "benchmarks" / "test_generate.py").read_text()
    )


def _plan(root: Path, model_dir: Path) -> Plan:
    _suite(root, model_dir)
    args = ["benchmarks", "--llmbench-quality-items=0", "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs"]
    return collect_plan(args, root, root)


def test_a_duet_runs_each_round_pair_at_once_and_the_sides_swap_halves_every_round_pair(
    pytester: pytest.Pytester, tiny_gemma3_dir: Path
) -> None:
    plan = _plan(pytester.path, tiny_gemma3_dir)
    sides = (_side("base", pytester.path), _side("head", pytester.path))
    device, stream = DuetDevice(), io.StringIO()
    schedule = Schedule(loads=4, rounds=2, warmup_rounds=1, seed=3, duet_cpus=CPUS)
    measured = measure_pair(plan, sides, schedule, device.start, Progress(stream))  # type: ignore[arg-type]
    # Every round (1 warm-up and 2 timed per load pair) met the other side's at the barrier, each on a thread.
    assert len(device.rounds) == 2 * 4 * 3
    assert {thread for _, thread, _ in device.rounds} == {"llmbench-duet-base", "llmbench-duet-head"}
    # Each worker started on its half (pinned before its load); which side starts on the lower half is
    # drawn per load pair, and this seed draws both.
    by_load = [dict(device.cpus[i : i + 2]) for i in range(0, len(device.cpus), 2)]
    assert len(by_load) == 4
    assert all(sorted(sorted(cpus or ()) for cpus in d.values()) == [[0], [1]] for d in by_load)
    assert {d["base"] for d in by_load} == {frozenset({0}), frozenset({1})}
    assert "swapped every round pair" in stream.getvalue()
    # In each timed round pair the sides are on different halves, and each side swaps from one to the next.
    fullname = plan.benchmarks[0].fullname
    base, head = (measured.records[name][fullname] for name in ("base", "head"))
    assert head.round_loads == [0, 0, 1, 1, 2, 2, 3, 3]
    assert all(sorted([b, h]) == [[0], [1]] for b, h in zip(base.round_cpus, head.round_cpus, strict=True))
    assert all(head.round_cpus[k] != head.round_cpus[k + 1] for k in range(0, 8, 2))
    assert [cpus[0] for cpus in head.round_cpus[::2]] == [min(d["head"] or ()) for d in by_load]
    # What the fake models ran on matches what was recorded: each side ran on both halves.
    assert {(side, cpus) for side, _, cpus in device.rounds} == {
        (side, frozenset({cpu})) for side in ("base", "head") for cpu in (0, 1)
    }


def test_alternating_rounds_never_run_at_once(pytester: pytest.Pytester, tiny_gemma3_dir: Path) -> None:
    # The control of the test above: without a duet the first round waits alone at the barrier and breaks it.
    plan = _plan(pytester.path, tiny_gemma3_dir)
    sides = (_side("base", pytester.path), _side("head", pytester.path))
    device = DuetDevice()
    device.meeting = threading.Barrier(2, timeout=0.5)
    schedule = Schedule(loads=1, rounds=1, warmup_rounds=0, seed=3)
    with pytest.raises(threading.BrokenBarrierError):
        measure_pair(plan, sides, schedule, device.start, Progress(io.StringIO()))  # type: ignore[arg-type]
    assert {cpus for _, cpus in device.cpus} == {None}


def test_the_command_runs_a_duet_and_marks_the_pair(
    pytester: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    _suite(pytester.path, tiny_gemma3_dir)
    device = DuetDevice()
    monkeypatch.setattr(ab_command, "start_worker_model", lambda side, combination, *_: device.start(side, combination))
    monkeypatch.setattr(ab_command, "available_cpus", lambda: frozenset({2, 5}))
    args = build_parser(only="ab").parse_args([
        "ab", "main", "HEAD", "--loads=2", "--max-loads=2", "--rounds=1", "--warmup-rounds=0", "--duet", "--",
        "benchmarks", "--llmbench-quality-items=0", "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs",
    ])  # fmt: skip
    base, head = _side("base", pytester.path), _side("head", pytester.path)
    status = ab_command.run_ab(args, base, head, pytester.path / "scratch", pytester.path, pytester.path)
    out, err = capsys.readouterr()
    assert status == 1, out + err  # head 20% slower in both load pairs
    assert "2 load pairs of 1 rounds per side, duet (both sides' rounds at once, on CPUs 2 and 5)" in err
    assert {cpus for _, cpus in device.cpus} == {frozenset({2}), frozenset({5})}
    assert "each at the same time as the other side's, on CPUs of its own (duet)" in " ".join(out.split())
    saved = json.loads(sorted((pytester.path / "runs").rglob("*-head.json"))[0].read_text())
    marks = saved["machine_info"]["llmbench_ab"]
    assert (marks["duet"], marks["duet_cpus"], marks["one_side_at_a_time"]) == (True, [2, 5], False)
    assert sorted(map(tuple, saved["benchmarks"][0]["extra_info"]["llmbench_ab"]["round_cpus"])) == [(2,), (5,)]


@pytest.mark.parametrize(
    ("options", "cpus", "message"),
    [
        (["--duet", "--one-side-at-a-time"], CPUS, "--duet runs both sides' workers at once; --one-side-at-a-time"),
        (["--duet"], frozenset({0}), "--duet needs at least 2 CPUs, one per side; this process may run on 1 (0)"),
        (["--duet", "--", "benchmarks", "--llmbench-threads=2"], CPUS,
         "--llmbench-threads=2: --duet gives each side 1 of this process's 2 CPUs"),
    ],
)  # fmt: skip
def test_a_duet_that_cannot_run_here_is_refused_with_the_reason(
    options: list[str], cpus: frozenset[int], message: str, pytester: pytest.Pytester, tiny_gemma3_dir: Path,
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    _suite(pytester.path, tiny_gemma3_dir)
    monkeypatch.setattr(ab_command, "available_cpus", lambda: cpus)
    monkeypatch.setattr(ab_command, "start_worker_model", lambda *_: pytest.fail("nothing may be measured"))
    rest = options if "--" in options else [*options, "--", "benchmarks"]
    if "--one-side-at-a-time" in options:  # refused before anything is checked out
        monkeypatch.chdir(pytester.path)
        assert cli_main(["ab", "main", "HEAD", *rest]) == 2
    else:
        args = build_parser(only="ab").parse_args(["ab", "main", "HEAD", *rest, "--llmbench-quality-items=0"])
        base, head = _side("base", pytester.path), _side("head", pytester.path)
        assert ab_command.run_ab(args, base, head, pytester.path / "scratch", pytester.path, pytester.path) == 2
    assert message in capsys.readouterr().err


@pytest.mark.skipif(len(os.sched_getaffinity(0)) < 2, reason="pinning to one of two CPUs needs two")
def test_a_real_worker_of_a_duet_side_runs_every_thread_on_its_cpus(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    cpu = max(os.sched_getaffinity(0))
    spec = ModelSpec(name="tiny", family="causal", source=f"path:{tiny_gemma3_dir}", max_new_tokens=4)
    repo = Path(__file__).parents[1]
    side = Side("head", "HEAD", "b" * 40, repo, sys.executable, (str(repo / "src"), *sys.path), cpus=frozenset({cpu}))
    model = start_worker_model(side, Combination(spec, "fp32", "cpu", 1), tmp_path, None, tmp_path / "logs")
    try:
        pid = model.worker.pid
        assert pid is not None
        round_ = model.timed_generate(["The cat sat on the mat."], 4)  # the engine's threads exist now
        assert round_.generation.texts
        threads = _allowed(pid)
        assert len(threads) > 1
        assert set(threads.values()) == {str(cpu)}
        assert model.worker.setup.threads == 1  # one thread per CPU of its half
    finally:
        model.close()
