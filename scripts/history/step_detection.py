"""Measure ``llmbench history``'s change points on histories built from real saved runs (docs/history.md).

Each synthetic run draws one real run of unchanged code (``--storage``) at random and resamples its
rounds; steps of 3%, 5% and 10% are injected at known runs. Prints, for the change points, a fixed 5%
against the previous run and the gate's drift-range rule: recall (at the run, within 2 runs),
precision, false alarms in 100 unchanged runs, how soon a step is found, and the time to re-analyse
1,000 runs.

Usage: python scripts/history/step_detection.py --storage DIR [--histories N] [--seed S] [--spread 0.053]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import os
import random
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.cli import build_parser
from llmbench.history.detect import MIN_MAGNITUDE as DEFAULT_MIN_MAGNITUDE
from llmbench.history.detect import change_points
from llmbench.history.series import MetricHistory, Point, benchmark_values, gated_metrics
from llmbench.metrics import Direction, metrics_of
from llmbench.runs import benchmark_label, list_runs, load_run

#: The gate's default speed threshold (src/llmbench/gate/rules.py) and drift history (runs).
THRESHOLD = 0.05
DRIFT_RUNS = 10
STEPS = (0.03, 0.05, 0.10)
#: A flag within this many runs of the step counts as finding it ("off by k").
NEAR = 2
#: The change points' smallest step (``--min-magnitude``; default the command's own).
MIN_MAGNITUDE = [DEFAULT_MIN_MAGNITUDE]


@dataclass(frozen=True)
class Noise:
    """Where one metric of one combination takes its values from: real runs' values and rounds."""

    label: str
    metric: str
    unit: str
    direction: Direction
    values: tuple[float, ...]
    rounds: tuple[tuple[float, ...], ...]
    #: Deviations from the median of the run values are multiplied by this (1: as measured).
    scale: float = 1.0

    def draw(self, rng: random.Random) -> float:
        index = rng.randrange(len(self.values))
        rounds = self.rounds[index]
        value = self.values[index] if len(rounds) < 2 else statistics.median(rng.choices(rounds, k=len(rounds)))
        centre = statistics.median(self.values)
        return centre + (value - centre) * self.scale

    def spread(self) -> float:
        """How far the run values spread, max / min - 1, after scaling."""
        centre = statistics.median(self.values)
        low, high = (centre + (v - centre) * self.scale for v in (min(self.values), max(self.values)))
        return high / low - 1

    def scaled_to(self, spread: float | None) -> Noise:
        """The same noise, its deviations scaled so that the run values spread by ``spread``."""
        if spread is None:
            return self
        raw = max(self.values) / min(self.values) - 1
        centre = statistics.median(self.values)
        # Solve (c + (hi - c) k) / (c + (lo - c) k) = 1 + spread for k.
        hi, lo = max(self.values) - centre, min(self.values) - centre
        factor = spread * centre / (hi - (1 + spread) * lo) if raw > 0 else 1.0
        return Noise(self.label, self.metric, self.unit, self.direction, self.values, self.rounds, factor)


def read_noise(storage: Path) -> list[Noise]:
    """Every gated timed metric (seconds, tokens per second) that varies between the real runs."""
    found: dict[tuple[str, str], tuple[str, Direction, list[float], list[tuple[float, ...]]]] = {}
    for path in list_runs(storage):
        run = load_run(path)
        for bench in run.benchmarks.values():
            saved = metrics_of(bench)
            for name, (value, unit, direction) in benchmark_values(bench).items():
                if name not in gated_metrics() or unit not in ("s", "tok/s"):  # timed figures only
                    continue
                rounds = saved[name].samples if name in saved and name not in ("rouge1", "rouge2", "rougeLsum") else ()
                entry = found.setdefault((benchmark_label(bench), name), (unit, direction, [], []))
                entry[2].append(value)
                entry[3].append(tuple(rounds))
    return [
        Noise(label, metric, unit, direction, tuple(values), tuple(rounds))
        for (label, metric), (unit, direction, values, rounds) in found.items()
        if len(values) >= 2 and max(values) > min(values)
    ]


def history(noise: Noise, length: int, step: float, at: int | None, rng: random.Random) -> list[float]:
    """``length`` values; from index ``at`` on, ``step`` worse (slower, bigger, lower throughput)."""
    worse = 1 + step if noise.direction == "lower" else 1 - step
    return [noise.draw(rng) * (worse if at is not None and i >= at else 1.0) for i in range(length)]


def _bad(direction: Direction, before: float, after: float) -> float:
    """How much worse ``after`` is than ``before`` (a share; negative: better)."""
    return after / before - 1 if direction == "lower" else 1 - after / before


def flags_otava(values: Sequence[float], noise: Noise) -> tuple[list[int], int]:
    """Regression change points (indexes), and all change points found (any direction)."""
    points = tuple(Point(f"{i + 1:04d}", "", v) for i, v in enumerate(values))
    series = MetricHistory("m", "f", noise.label, noise.label, noise.metric, noise.unit, noise.direction, points)
    found = change_points(series, min_magnitude=MIN_MAGNITUDE[0])
    return [c.index for c in found if c.kind == "regression"], len(found)


def flags_fixed(values: Sequence[float], noise: Noise) -> tuple[list[int], int]:
    """Flag run i when it is worse than run i-1 by more than the threshold (a fixed compare-fail)."""
    flags = [i for i in range(1, len(values)) if _bad(noise.direction, values[i - 1], values[i]) > THRESHOLD]
    return flags, len(flags)


def flags_drift(values: Sequence[float], noise: Noise) -> tuple[list[int], int]:
    """The gate's drift-range rule against the previous run: worse by more than the threshold, and beyond
    the extreme of the last DRIFT_RUNS runs widened by the threshold (the rank test over rounds and the
    busy-machine check are left out: they only hold back more)."""
    flags = []
    for i in range(1, len(values)):
        if _bad(noise.direction, values[i - 1], values[i]) <= THRESHOLD:
            continue
        window = values[max(0, i - DRIFT_RUNS) : i]
        if len(window) >= 2:
            extreme = max(window) if noise.direction == "lower" else min(window)
            if _bad(noise.direction, extreme, values[i]) <= THRESHOLD:
                continue
        flags.append(i)
    return flags, len(flags)


METHODS: dict[str, Callable[[Sequence[float], Noise], tuple[list[int], int]]] = {
    "change points (Otava)": flags_otava,
    "fixed 5% vs previous run": flags_fixed,
    "drift range (gate rule)": flags_drift,
}


def detection_table(noises: Sequence[Noise], histories: int, seed: int) -> list[str]:
    """Steps injected at run 41 of 60: recall exact / within NEAR runs, precision, flags per history."""
    out = [
        "| method | step | found at the run | found within 2 runs | precision | flags per history |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    length, at = 60, 40
    for name, method in METHODS.items():
        for step in STEPS:
            rng = random.Random(seed)
            exact = near = flags = good = 0
            total = 0
            for noise in noises:
                for _ in range(histories):
                    found, _count = method(history(noise, length, step, at, rng), noise)
                    total += 1
                    flags += len(found)
                    exact += at in found
                    hits = [i for i in found if abs(i - at) <= NEAR]
                    near += bool(hits)
                    good += len(hits)
            precision = f"{good / flags:.0%}" if flags else "n/a"
            out.append(f"| {name} | {step:.0%} | {exact / total:.0%} | {near / total:.0%} | {precision} | "
                       f"{flags / total:.2f} |")  # fmt: skip
    return out


def false_alarm_table(noises: Sequence[Noise], histories: int, seed: int) -> list[str]:
    """Unchanged histories of 100 runs: how many have a flag at all, and flags per history."""
    out = [
        "| method | histories of 100 unchanged runs with a regression flag | flags per history "
        "| with any change point (either direction) |",
        "|---|---:|---:|---:|",
    ]
    for name, method in METHODS.items():
        rng = random.Random(seed)
        flagged = flags = total = anything = 0
        for noise in noises:
            for _ in range(histories):
                found, count = method(history(noise, 100, 0.0, None, rng), noise)
                total += 1
                flags += len(found)
                flagged += bool(found)
                anything += bool(count)
        extra = f"{anything / total:.1%}" if name.startswith("change points") else ""
        out.append(f"| {name} | {flagged / total:.1%} | {flags / total:.2f} | {extra} |")
    return out


def delay_table(noises: Sequence[Noise], histories: int, seed: int) -> list[str]:
    """A 10% (and 5%) step k runs before the end of a 50-run history: found at its run by Otava?"""
    out = ["| step | runs since the step (incl.) | found at the run | found within 2 runs |", "|---:|---:|---:|---:|"]
    for step in (0.05, 0.10):
        for after in (1, 2, 3, 5, 10):
            rng = random.Random(seed)
            exact = near = total = 0
            at = 50 - after
            for noise in noises:
                for _ in range(histories):
                    found, _count = flags_otava(history(noise, 50, step, at, rng), noise)
                    total += 1
                    exact += at in found
                    near += any(abs(i - at) <= NEAR for i in found)
            out.append(f"| {step:.0%} | {after} | {exact / total:.0%} | {near / total:.0%} |")
    return out


def timing_lines(storage: Path, noises: Sequence[Noise], seed: int) -> list[str]:
    """Seconds to analyse one 1,000-point series, and the whole command over 1,000 saved run files."""
    rng = random.Random(seed)
    noise = next((n for n in noises if n.metric == "latency_s"), noises[0])
    values = history(noise, 1000, 0.10, 700, rng)
    series = MetricHistory("m", "f", noise.label, noise.label, noise.metric, noise.unit, noise.direction,
                    tuple(Point(f"{i + 1:04d}", "", v) for i, v in enumerate(values)))  # fmt: skip
    best = min(_seconds(lambda: change_points(series)) for _ in range(3))
    lines = [
        f"- one series of 1,000 runs: {best:.3f} s of CPU (best of 3), {len(change_points(series))} change point(s)"
    ]
    source = list_runs(storage)[0]
    with tempfile.TemporaryDirectory() as folder:
        machine = Path(folder) / source.parent.name
        machine.mkdir()
        data = json.loads(source.read_text(encoding="utf-8"))
        for number in range(1, 1001):
            (machine / f"{number:04d}_{number:012x}_20261130_000000.json").write_text(
                json.dumps(data), encoding="utf-8"
            )
        series_count = len(benchmark_values_of(data))
        # The command as `llmbench history --storage FOLDER` runs it, its arguments parsed outside the timing.
        arguments = build_parser().parse_args(["history", "--storage", folder])
        started, cpu = time.perf_counter(), time.process_time()
        with contextlib.redirect_stdout(io.StringIO()):
            status = arguments.handler(arguments)
        elapsed, cpu = time.perf_counter() - started, time.process_time() - cpu
        lines.append(f"- `llmbench history` over 1,000 saved runs of {source.stat().st_size // 1024} KiB each "
                     f"({series_count} series; reading the files included): {cpu:.2f} s of CPU, {elapsed:.2f} s "
                     f"wall at a load average of {os.getloadavg()[0]:.1f} (exit status {status})")  # fmt: skip
    return lines


def benchmark_values_of(data: dict[str, object]) -> list[tuple[str, str]]:
    benches = data.get("benchmarks")
    assert isinstance(benches, list)
    wanted = set(gated_metrics())
    return [(b["fullname"], name) for b in benches for name in benchmark_values(b) if name in wanted]


def _seconds(call: Callable[[], object]) -> float:
    started = time.process_time()
    call()
    return time.process_time() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0] if __doc__ else None)
    parser.add_argument("--storage", type=Path, required=True, help="saved runs of unchanged code")
    parser.add_argument("--histories", type=int, default=40, help="histories per metric and case. Default: 40")
    parser.add_argument("--seed", type=int, default=0, help="Default: 0")
    parser.add_argument(
        "--min-magnitude",
        type=float,
        default=DEFAULT_MIN_MAGNITUDE,
        help="the change points' smallest step. Default: %(default)s (llmbench history's)",
    )
    parser.add_argument("--spread", type=float, default=None,
                        help="scale each series' deviations so that its run values spread by this share (0.053: "
                        "5.3%%, the spread documented on a quiet machine). Default: as measured")  # fmt: skip
    args = parser.parse_args(argv)
    MIN_MAGNITUDE[0] = args.min_magnitude
    noises = [noise.scaled_to(args.spread) for noise in read_noise(args.storage)]
    if not noises:
        print(f"{args.storage}: no metric that varies between at least 2 saved runs", file=sys.stderr)
        return 2
    runs = len(list_runs(args.storage))
    print(f"Noise: {runs} saved runs of unchanged code in {args.storage}; {len(noises)} series:")
    for noise in noises:
        spread = (max(noise.values) / min(noise.values) - 1) * 100
        scaled = f" (scaled to {noise.spread() * 100:.1f}%)" if noise.scale != 1 else ""
        print(f"- {noise.label} {noise.metric}: run values spread {spread:.1f}%{scaled}, "
              f"{statistics.median(len(r) for r in noise.rounds):.0f} rounds a run")  # fmt: skip
    print(f"\n{args.histories} histories per series and case, seed {args.seed}, change points of at least "
          f"{args.min_magnitude:.0%}.\n")  # fmt: skip
    print("Steps injected at run 41 of 60 (20 runs after the step):\n")
    print("\n".join(detection_table(noises, args.histories, args.seed)))
    print("\nUnchanged histories:\n")
    print("\n".join(false_alarm_table(noises, args.histories, args.seed)))
    print("\nHow soon a step is found (change points; the step k runs before the end of 50):\n")
    print("\n".join(delay_table(noises, args.histories, args.seed)))
    print("\nTime:\n")
    print("\n".join(timing_lines(args.storage, noises, args.seed)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
