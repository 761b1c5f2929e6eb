"""``llmbench ab BASE HEAD [-- PYTEST-ARGS]``: two revisions measured side by side, interleaved.

Checks out both sides (:mod:`llmbench.ab.sides`), collects the pytest arguments in the head side's
checkout (:mod:`llmbench.ab.collect`), measures (:mod:`llmbench.ab.interleave`), saves both runs as
a pair (:mod:`llmbench.ab.save`) and prints the gate's verdict on them (:mod:`llmbench.ab.verdict`).
Exit status: 0 no regression, 1 a regression or a benchmark that failed, 2 bad input. See docs/ab.md.
"""

from __future__ import annotations

import argparse
import sys
from functools import partial
from pathlib import Path
from typing import Any

from llmbench.ab.collect import CollectError, Plan, collect_plan
from llmbench.ab.duet import DuetError, available_cpus, split_cpus
from llmbench.ab.interleave import PER_LOAD_CHOICES, Measured, Progress, Schedule, measure_pair, start_worker_model
from llmbench.ab.run import DEFAULT_LOADS, DEFAULT_MAX_LOADS, DEFAULT_ROUNDS, noisy_verdicts, timed_rounds
from llmbench.ab.save import pair_id, save_pair, side_json
from llmbench.ab.sides import AbError, Side, git, parse_env, prepare_sides, remove_worktrees
from llmbench.ab.verdict import compare_pair
from llmbench.commands.arguments import add_verbose_argument, non_negative_int, positive_int
from llmbench.config.combination import Combination
from llmbench.gate.compare import publish_markdown
from llmbench.measure.peak_bandwidth import PeakBandwidths
from llmbench.metrics import Metric
from llmbench.runs import load_run
from llmbench.workers import WorkerModel

__all__ = ["OPTION_FLAGS", "ab_main", "add_ab_arguments", "run_ab", "split_rest"]

#: The command's own options (they may also follow BASE HEAD, before ``--``).
OPTION_FLAGS = (
    "--loads",
    "--max-loads",
    "--rounds",
    "--warmup-rounds",
    "--seed",
    "--per-load",
    "--base-python",
    "--head-python",
    "--base-env",
    "--head-env",
    "--keep-worktrees",
    "--one-side-at-a-time",
    "--duet",
)


def _add_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--loads", metavar="N", type=positive_int, default=DEFAULT_LOADS,
                        help="load pairs per model: each a fresh worker per side. Default: %(default)r")  # fmt: skip
    parser.add_argument("--max-loads", metavar="N", type=positive_int, default=None,
                        help="load pairs per model at most: where a timed or memory verdict is still noisy after "
                        "--loads (the loads disagree), one more at a time up to N; N = --loads turns this off. "
                        f"Default: {DEFAULT_MAX_LOADS}, or --loads when that is more")  # fmt: skip
    parser.add_argument("--rounds", metavar="N", type=positive_int, default=None,
                        help=f"timed rounds per side in each load pair. Default: --llmbench-rounds where it is set, "
                        f"else {DEFAULT_ROUNDS}")  # fmt: skip
    parser.add_argument("--warmup-rounds", metavar="N", type=non_negative_int, default=None,
                        help="untimed rounds per side before each load pair's timed ones. "
                        "Default: --llmbench-warmup-rounds (1)")  # fmt: skip
    parser.add_argument("--per-load", choices=PER_LOAD_CHOICES, default="best",
                        help="each load pair's figure of a timed metric (latency, TTFT, prefill and decode rates): "
                        "its best round, which a slow burst of the machine in one round does not move, or the "
                        "median of its rounds (docs/ab.md, Measured). Default: %(default)s")  # fmt: skip
    parser.add_argument("--seed", metavar="N", type=non_negative_int, default=0,
                        help="seed of the order of sides and rounds. Default: %(default)r")  # fmt: skip
    parser.add_argument("--base-python", metavar="PATH", default=None,
                        help="interpreter for the base side's workers (e.g. another virtual environment). "
                        "Default: this one")  # fmt: skip
    parser.add_argument("--head-python", metavar="PATH", default=None,
                        help="interpreter for the head side's workers. Default: this one")  # fmt: skip
    parser.add_argument("--base-env", metavar="KEY=VALUE", action="append", default=[],
                        help="set a variable in the base side's workers' environment (over this one's); repeat "
                        "for more. Default: none")  # fmt: skip
    parser.add_argument("--head-env", metavar="KEY=VALUE", action="append", default=[],
                        help="the same for the head side's workers, e.g. the faults of llmbench.testing.faults on "
                        "one side only (docs/fault-injection.md). Default: none")  # fmt: skip
    parser.add_argument("--one-side-at-a-time", action="store_true",
                        help="one side's worker on the device at a time, for a model that does not fit twice: in "
                        "each load pair the side drawn first loads, runs all its rounds and exits before the other "
                        "side loads (the same loads, but rounds alternate per load pair, not per round). "
                        "Default: off, both sides' workers resident together (memory for two copies of the "
                        "model)")  # fmt: skip
    parser.add_argument("--duet", action="store_true",
                        help="both sides' rounds at the same time, each side's worker pinned to its own half of this "
                        "process's CPUs (the sides swap halves every round pair), so a change of the machine's speed "
                        "during a round hits both alike; CPU combinations only, not with --one-side-at-a-time "
                        "(docs/ab.md, Duet). Default: off, rounds alternate")  # fmt: skip
    parser.add_argument("--keep-worktrees", action="store_true",
                        help="leave the checked-out worktrees in place (their paths are printed)")  # fmt: skip
    add_verbose_argument(parser)


def add_ab_arguments(parser: argparse.ArgumentParser) -> None:
    """``BASE HEAD [options] [-- PYTEST-ARGS]``; options may come before or after the two revisions."""
    _add_options(parser)
    parser.add_argument("base", metavar="BASE", help="the base revision: a git ref (branch, tag, commit)")
    parser.add_argument(
        "head", metavar="HEAD",
        help="the head revision: a git ref, or HEAD (or .) for the working tree as it is, uncommitted changes included",
    )  # fmt: skip
    parser.add_argument(
        "rest", metavar="-- PYTEST-ARGS", nargs=argparse.REMAINDER,
        help="pytest arguments that select the suite, matrix and settings (e.g. -- benchmarks "
        "--llmbench-precision=q4_k_m); also --llmbench-fail, --llmbench-verdict and --benchmark-storage",
    )  # fmt: skip


def split_rest(args: argparse.Namespace) -> list[str]:
    """The pytest arguments (after ``--``); options given between HEAD and ``--`` are parsed into ``args``."""
    rest = list(args.rest)
    again = argparse.ArgumentParser(prog="llmbench ab", add_help=False)
    _add_options(again)
    if "--" in rest:
        cut = rest.index("--")
    else:  # argparse drops a "--" right after HEAD; without one, only our own options may follow HEAD
        ours = bool(rest) and rest[0].split("=")[0] in OPTION_FLAGS
        cut = len(rest) if ours else 0
    options, pytest_args = rest[:cut], rest[cut + 1 :] if cut < len(rest) and rest[cut] == "--" else rest[cut:]
    if options:
        again.parse_args(options, namespace=args)  # a bad or unknown option exits with status 2
    return pytest_args


def _error(message: str) -> int:
    print(f"llmbench ab: error: {message}", file=sys.stderr)
    return 2


def _bandwidths(plan: Plan) -> dict[str, Metric | None]:
    peaks = PeakBandwidths(plan.settings.peak_bandwidth.value)
    return {device: peaks.metric(device) for device in dict.fromkeys(b.combination.device for b in plan.benchmarks)}


def _report(measured: Measured) -> list[str]:
    lines = [f"skipped {name}: {reason}" for name, reason in measured.skipped]
    lines += [f"FAILED {name}: {reason}" for name, reason in measured.failed]
    return lines


def run_ab(args: argparse.Namespace, base: Side, head: Side, scratch: Path, invocation: Path, repo: Path) -> int:
    """Collect, measure, save and decide; the exit status."""
    pytest_args = split_rest(args)
    relative = invocation.relative_to(repo) if invocation.is_relative_to(repo) else Path()
    try:
        plan = collect_plan(pytest_args, head.root / relative, invocation)
    except CollectError as error:
        return _error(str(error))
    for reason in plan.skipped:
        print(f"llmbench ab: skipped {reason}", file=sys.stderr)
    if not plan.benchmarks:
        return _error("the pytest arguments select no generate benchmark that can run here")
    settings = plan.settings
    duet_cpus: frozenset[int] = frozenset()
    if args.duet:
        devices = sorted({b.combination.device for b in plan.benchmarks} - {"cpu"})
        if devices:
            return _error(f"--duet runs both sides at once on separate CPU cores, so it measures CPU "
                          f"combinations only; the pytest arguments select {', '.join(devices)} too "
                          "(--llmbench-device=cpu)")  # fmt: skip
        try:
            split_cpus(available_cpus(), settings.threads)
        except DuetError as error:
            return _error(str(error))
        duet_cpus = available_cpus()
    max_loads = max(DEFAULT_MAX_LOADS, args.loads) if args.max_loads is None else args.max_loads
    schedule = Schedule(
        loads=args.loads,
        max_loads=max_loads,
        rounds=timed_rounds(args.rounds, settings.rounds),
        warmup_rounds=settings.warmup_rounds.value if args.warmup_rounds is None else args.warmup_rounds,
        seed=args.seed,
        one_side_at_a_time=args.one_side_at_a_time,
        per_load=args.per_load,
        duet_cpus=duet_cpus,
    )
    progress = Progress()
    extra = f" (up to {schedule.load_limit} where they disagree)" if schedule.load_limit > schedule.loads else ""
    how = "one side's worker at a time" if schedule.one_side_at_a_time else "interleaved"
    if schedule.duet:
        halves = " and ".join(",".join(map(str, sorted(h))) for h in split_cpus(duet_cpus))
        how = f"duet (both sides' rounds at once, on CPUs {halves})"
    progress.line(f"{base.label} against {head.label}: {len(plan.benchmarks)} benchmarks, {schedule.loads} load "
                  f"pairs{extra} of {schedule.rounds} rounds per side, {how}, each load pair's {schedule.per_load} "
                  f"round (seed {schedule.seed})")  # fmt: skip
    bandwidths = _bandwidths(plan)
    starter = partial(_start, settings.cache_dir, settings.threads, scratch / "logs")
    undecided = partial(noisy_verdicts, plan, (base, head), schedule, bandwidths)
    measured = measure_pair(plan, (base, head), schedule, starter, progress, undecided)
    problems = _report(measured)
    if not any(measured.records[side].get(b.fullname) for side in ("base", "head") for b in plan.benchmarks):
        for line in problems:
            print(f"llmbench ab: {line}", file=sys.stderr)
        return _error("nothing was measured")
    pair = pair_id()
    data: dict[str, dict[str, Any]] = {
        side.name: side_json(side, other, plan, measured, schedule, pair, bandwidths)
        for side, other in ((base, head), (head, base))
    }
    paths = save_pair(plan.storage, plan.machine_id, pair, data)
    verdict = compare_pair(load_run(paths["base"]), load_run(paths["head"]), plan.rules, notes=problems)
    for line in verdict.lines(verbose=args.verbose):
        print(line)
    print(f"saved: base {paths['base']}, head {paths['head']} (llmbench compare reads them as a pair)")
    for problem in publish_markdown(verdict, plan.verdict_path):
        print(f"llmbench ab: error: {problem}", file=sys.stderr)
        return 2
    return 1 if measured.failed else verdict.exit_status


def _start(cache_dir: Path, threads: int | None, log_dir: Path, side: Side, combination: Combination) -> WorkerModel:
    return start_worker_model(side, combination, cache_dir, threads, log_dir)


def ab_main(args: argparse.Namespace) -> int:
    """``llmbench ab``: see the module docstring."""
    invocation = Path.cwd()
    split_rest(args)  # our options given after HEAD, checked before anything is checked out
    if args.duet and args.one_side_at_a_time:
        return _error("--duet runs both sides' workers at once; --one-side-at-a-time keeps one at a time: "
                      "choose one")  # fmt: skip
    if args.max_loads is not None and args.max_loads < args.loads:
        return _error(f"--max-loads {args.max_loads} is below --loads {args.loads}: it must be at least --loads "
                      "(equal to it turns extra load pairs off)")  # fmt: skip
    try:
        base_env, head_env = parse_env(args.base_env, "--base-env"), parse_env(args.head_env, "--head-env")
        repo = Path(git(["rev-parse", "--show-toplevel"], invocation))
        base, head, scratch = prepare_sides(args.base, args.head, repo, args.base_python, args.head_python,
                                            base_env, head_env)  # fmt: skip
    except AbError as error:
        return _error(str(error))
    try:
        return run_ab(args, base, head, scratch, invocation, repo)
    finally:
        if args.keep_worktrees:
            kept = [str(side.root) for side in (base, head) if side.created]
            if kept:
                print(f"llmbench ab: worktrees kept: {', '.join(kept)}", file=sys.stderr)
        else:
            remove_worktrees([base, head], repo, scratch)
