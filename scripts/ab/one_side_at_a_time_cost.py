"""What ``llmbench ab --one-side-at-a-time`` costs in wall time against the default (docs/ab.md).

Usage (from the repository root; a repetition takes about 2.5 minutes on 2 cores)::

    .venv/bin/python scripts/ab/one_side_at_a_time_cost.py --repetitions 3 --out results/one-side-cost

What it measures: ``measure_pair`` (the interleaved measurement of ``llmbench ab``) with real workers
(``start_worker_model``, as the command starts them) on the tiny Gemma 3 of the tests
(``llmbench.testing.tiny_models``; fp32, batch size 1, 4 new tokens, one thread per worker, quality
off), 3 load pairs of 2 timed rounds and 1 warm-up round. Both sides run this working tree's ``src``:
the cost of the mode, not a change, is measured. Each repetition runs both modes, one after the
other, and the mode that runs first alternates (the default first in even repetitions), so a drift
of the machine's speed falls on both alike.

Per run: the wall clock around ``measure_pair`` and the in-worker ``load_s`` of its loads. Per mode,
over all runs: each worker's start in the parent (from spawning it to its model loaded), close and
timed round (warm-up included), and how many other workers were alive as each worker started (1 at
every second load by default, the other side's; 0 one side at a time). Prints the figures and writes
them to ``OUT/results.txt`` and ``OUT/results.json`` (``OUT`` defaults to a new temporary folder; the
tiny model, the suite, the saved runs and the workers' logs go there too).

Data: ``scripts/ab/data/one_side_at_a_time/run2.txt``, ``run3.txt``, ``run4.txt`` are the outputs
behind the figures docs/ab.md quotes, from the earlier version of this script (the same measurement,
not committed), 2026-12-07 on the 2-core development machine while other test suites ran on it (the
``uptime`` lines in them give the load average); 3, 2 and 2 repetitions, in that order (run3.txt with
the order the other way round: one side at a time first in its first repetition). The close, start
and round sums are in run4.txt only. The docs' table counts 9 pairs: the output of the other 2 (an
earlier run) was not kept.
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, TextIO

from llmbench.ab.collect import Plan, collect_plan
from llmbench.ab.interleave import ModelHandle, Progress, Schedule, measure_pair, start_worker_model
from llmbench.ab.sides import Side
from llmbench.config.combination import Combination
from llmbench.engine_types import Generation, KVLayout
from llmbench.runs import write_atomically
from llmbench.testing.tiny_models import build_tiny_gemma3
from llmbench.workers import WorkerModel
from llmbench.workers.protocol import TimedRound

REPO = Path(__file__).resolve().parents[2]
TOGETHER = "together"
ALONE = "one-side-at-a-time"
#: The suite's matrix: the tiny model at fp32 on the CPU, batch size 1, 4 new tokens.
MATRIX = """[matrix]
models = ["tiny"]
precisions = ["fp32"]
devices = ["cpu"]
batch_sizes = [1]

[models.tiny]
source = "path:{path}"
family = "causal"
max_new_tokens = 4
"""


@dataclass
class ModeFigures:
    """Everything measured in one mode, over all its runs (seconds)."""

    walls: list[float] = field(default_factory=list)
    #: Per run: the in-worker load_s of each of its loads.
    load_s: list[list[float]] = field(default_factory=list)
    starts: list[float] = field(default_factory=list)
    closes: list[float] = field(default_factory=list)
    rounds: list[float] = field(default_factory=list)
    #: Other workers alive as each worker started, in start order.
    alive_at_load: list[int] = field(default_factory=list)


class TimedModel:
    """A :class:`WorkerModel` whose closes and timed rounds are timed in the parent (a ``ModelHandle``)."""

    def __init__(self, model: WorkerModel, figures: ModeFigures) -> None:
        self.model = model
        self.figures = figures
        self.load_s = model.load_s

    @property
    def combination_key(self) -> tuple[str, str, str]:
        return self.model.combination_key

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        return self.model.generate(prompts, max_new_tokens)

    def timed_generate(self, prompts: Sequence[str], max_new_tokens: int) -> TimedRound:
        started = time.perf_counter()
        reply = self.model.timed_generate(prompts, max_new_tokens)
        self.figures.rounds.append(time.perf_counter() - started)
        return reply

    def weight_bytes(self) -> int:
        return self.model.weight_bytes()

    def file_bytes(self) -> int | None:
        return self.model.file_bytes()

    def kv_cache_layout(self) -> KVLayout | None:
        return self.model.kv_cache_layout()

    def close(self) -> None:
        started = time.perf_counter()
        self.model.close()
        self.figures.closes.append(time.perf_counter() - started)


def suite(out: Path) -> Plan:
    """Build the tiny model and a suite of the repository's timed ``generate`` on it; its plan."""
    root = out / "suite"
    shutil.rmtree(root, ignore_errors=True)
    (root / "benchmarks").mkdir(parents=True)
    model = build_tiny_gemma3(out / "tiny")
    (root / "pytest.ini").write_text("[pytest]\n", encoding="utf-8")  # the suite's own rootdir
    (root / "benchmarks" / "matrix.toml").write_text(MATRIX.format(path=model), encoding="utf-8")
    shutil.copy(REPO / "benchmarks" / "test_generate.py", root / "benchmarks")
    args = ["benchmarks", "--llmbench-quality-items=0", "--llmbench-peak-bandwidth=10GB/s", "--llmbench-threads=1",
            "--benchmark-storage=runs"]  # fmt: skip
    return collect_plan(args, root, root)


def sides() -> tuple[Side, Side]:
    """Both sides on this working tree's ``src`` and this interpreter."""
    path = (str(REPO / "src"), *sys.path)
    return (Side("base", "base", "a" * 40, REPO, sys.executable, path),
            Side("head", "head", "b" * 40, REPO, sys.executable, path))  # fmt: skip


def run_once(plan: Plan, schedule: Schedule, figures: ModeFigures, logs: Path) -> tuple[float, list[float]]:
    """One ``measure_pair``: its wall time and the in-worker load_s of its loads."""
    live: list[WorkerModel] = []

    def start(side: Side, combination: Combination) -> ModelHandle:
        figures.alive_at_load.append(sum(model.worker.is_alive() for model in live))
        started = time.perf_counter()
        model = start_worker_model(side, combination, plan.settings.cache_dir, 1, logs)
        figures.starts.append(time.perf_counter() - started)
        live.append(model)
        return TimedModel(model, figures)

    started = time.perf_counter()
    measured = measure_pair(plan, sides(), schedule, start, Progress(io.StringIO()))
    wall = time.perf_counter() - started
    if measured.failed or measured.skipped:
        raise SystemExit(f"measure_pair did not measure everything: failed {measured.failed}, "
                         f"skipped {measured.skipped}")  # fmt: skip
    loads = [s for name in ("base", "head") for record in measured.records[name].values() for s in record.load_s]
    return wall, loads


def summary(figures: dict[str, ModeFigures]) -> list[str]:
    """The per-mode lines (the earlier version's, with the medians)."""
    lines = []
    for mode, f in figures.items():
        lines.append(f"{mode} walls {[round(w, 1) for w in f.walls]} (median {statistics.median(f.walls):.1f} s); "
                     f"worker start+prepare+load per worker (parent) median {statistics.median(f.starts):.2f} s; "
                     f"other workers alive at each load: {f.alive_at_load}")  # fmt: skip
        lines.append(f"{mode} sum start {sum(f.starts):.1f} s, sum close {sum(f.closes):.1f} s, "
                     f"sum rounds {sum(f.rounds):.1f} s; "
                     f"n {len(f.starts)} {len(f.closes)} {len(f.rounds)}")  # fmt: skip
    if all(len(f.walls) == len(figures[TOGETHER].walls) for f in figures.values()):
        slower = [a - t for a, t in zip(figures[ALONE].walls, figures[TOGETHER].walls, strict=True)]
        lines.append(f"one side at a time minus together, per repetition: {[round(d, 1) for d in slower]} s "
                     f"(median {statistics.median(slower):.1f} s)")  # fmt: skip
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--repetitions", type=int, default=3, help="runs per mode (default: %(default)s)")
    parser.add_argument("--out", type=Path, help="folder for the results and the scratch files (default: a new "
                        "temporary folder)")  # fmt: skip
    args = parser.parse_args(argv)
    if args.repetitions < 1:
        parser.error(f"--repetitions must be 1 or more, not {args.repetitions}")
    out: Path = args.out or Path(tempfile.mkdtemp(prefix="one-side-cost-"))
    out.mkdir(parents=True, exist_ok=True)
    text: list[str] = []

    def say(line: str) -> None:
        text.append(line)
        print(line, flush=True)

    say(f"load average at start: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    plan = suite(out)
    figures = {TOGETHER: ModeFigures(), ALONE: ModeFigures()}
    runs: list[dict[str, Any]] = []
    for rep in range(args.repetitions):
        for alone in (True, False) if rep % 2 else (False, True):
            mode = ALONE if alone else TOGETHER
            schedule = Schedule(loads=3, rounds=2, warmup_rounds=1, seed=rep, one_side_at_a_time=alone)
            wall, loads = run_once(plan, schedule, figures[mode], out / "logs")
            figures[mode].walls.append(wall)
            figures[mode].load_s.append(loads)
            runs.append({"repetition": rep, "mode": mode, "wall_s": wall, "load_s": loads})
            say(f"rep {rep} {mode}: wall {wall:.1f} s, in-worker load_s sum {sum(loads):.2f} s over {len(loads)} loads")
    for line in summary(figures):
        say(line)
    say(f"load average at end: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    results = {
        "schedule": {"loads": 3, "rounds": 2, "warmup_rounds": 1, "threads": 1, "batch_size": 1},
        "runs": runs,
        "modes": {mode: asdict(f) for mode, f in figures.items()},
    }

    def write_json(stream: TextIO) -> None:
        json.dump(results, stream, indent=1)

    write_atomically(out / "results.json", write_json)
    write_atomically(out / "results.txt", lambda stream: stream.write("\n".join(text) + "\n"))
    print(f"wrote {out / 'results.txt'} and {out / 'results.json'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
