"""Whether the selfcheck's overhead row fails a real 3% overhead, and what that costs (issue 21, docs/metrics.md).

Usage (from the repository root; one process, the sides interleaved in one go, their order rotated)::

    .venv/bin/python scripts/selfcheck/overhead_power.py measure --triplets 60 --threads 1 \\
        --out scripts/selfcheck/data/overhead_power.json
    .venv/bin/python scripts/selfcheck/overhead_power.py decide scripts/selfcheck/data/overhead_power.json

``measure`` loads the default model on llama.cpp (q4_k_m, as ``llmbench selfcheck`` does) and times,
``triplets`` times, three calls in an order that rotates from triplet to triplet: the bare call
(:func:`llmbench.selfcheck.agreement.bare_llama_cpp`), the harness's call inside the memory probe (as a
timed round runs it), and the same harness call made 3% slower for real: after it, still inside the
timed span, 3% of its own CPU time spent spinning (CPU work, as the probes' is). Each call is timed on
the wall clock (``time.perf_counter``) and in CPU time (``time.process_time``: the process's CPU, which
other processes' load leaves out). It writes every call's seconds, the load average at the
start and the end, the date and the command to ``--out`` (small JSON, committed).

``decide`` re-decides the overhead row from that file, without the model: for each number of pairs and
each rule, the share of draws that read ``ok``, ``noisy`` and ``DISAGREES`` for the unchanged harness
(A/A: the probes' own cost, about 0.03%) and for the 3% one, each draw a random choice of that many
triplets (pairs drawn from the same triplets for both, so the two sides see the same moments of the
machine), and over disjoint runs of consecutive triplets (what one selfcheck sees; few of them). The
rules are :func:`llmbench.selfcheck.agreement.overhead_verdict`'s.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

from llmbench.selfcheck.agreement import OVERHEAD_BUDGET, Overhead

#: The overhead put into the harness's call for real (a sleep of this share of the call's own time).
INJECTED = 0.03
PAIR_COUNTS = (10, 20, 30, 40)


def measure(args: argparse.Namespace) -> None:
    from llmbench.backends import get_backend
    from llmbench.backends.llama_cpp_backend import LlamaCppModel
    from llmbench.config.combination import Combination
    from llmbench.config.models import BUILTIN_MODELS
    from llmbench.config.options import default_cache_dir
    from llmbench.data import SHIPPED_DATA, load_items
    from llmbench.measure.probes import probes_for
    from llmbench.selfcheck.agreement import bare_llama_cpp

    spec = BUILTIN_MODELS["gemma3-270m"]
    prompts = [spec.format_prompt(load_items(SHIPPED_DATA)[0].text)]
    load_before = os.getloadavg()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    model = get_backend("llama_cpp", args.threads).load(
        Combination(spec, "q4_k_m", "cpu", 1), default_cache_dir(), probes_for("cpu").timer
    )
    assert isinstance(model, LlamaCppModel)
    memory = probes_for("cpu").memory
    counts = model.generate(prompts, args.tokens).generated_tokens
    bare = bare_llama_cpp(model, prompts, counts)

    def harness() -> None:
        with memory.measure():
            model.generate(prompts, args.tokens)

    def slowed() -> None:
        began = time.process_time()
        harness()
        spin_until = time.process_time() + INJECTED * (time.process_time() - began)
        while time.process_time() < spin_until:  # CPU work, as the harness's own probes are
            pass

    sides: dict[str, Callable[[], None]] = {"bare": bare, "harness": harness, "slowed": slowed}
    times: dict[str, list[float]] = {name: [] for name in sides}
    cpu: dict[str, list[float]] = {name: [] for name in sides}
    for call in sides.values():  # warm-up
        call()
    names = list(sides)
    for index in range(args.triplets):
        for k in range(len(names)):
            name = names[(index + k) % len(names)]
            began, began_cpu = time.perf_counter(), time.process_time()
            sides[name]()
            times[name].append(time.perf_counter() - began)
            cpu[name].append(time.process_time() - began_cpu)
        if index % 10 == 9:
            print(f"{index + 1} triplets, load {os.getloadavg()[0]:.2f}", flush=True)
    model.close()
    record = {
        "command": " ".join(["scripts/selfcheck/overhead_power.py", *sys.argv[1:]]),
        "started_utc": started_at,
        "load_average_before": load_before,
        "load_average_after": os.getloadavg(),
        "model": "gemma3-270m q4_k_m cpu, llama.cpp",
        "threads": args.threads,
        "tokens": args.tokens,
        "injected": INJECTED,
        "order": "bare, harness, slowed, rotated by one each triplet",
        "seconds": times,
        "cpu_seconds": cpu,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


def _rates(verdicts: list[str]) -> str:
    return "  ".join(f"{v} {verdicts.count(v) / len(verdicts):4.0%}" for v in ("ok", "noisy", "DISAGREES"))


def decide(args: argparse.Namespace) -> None:
    record = json.loads(Path(args.data).read_text())
    seconds = record[args.clock]
    bare, harness, slowed = seconds["bare"], seconds["harness"], seconds["slowed"]
    print(f"clock: {args.clock} (seconds: time.perf_counter; cpu_seconds: time.process_time, this process's CPU)")
    n = len(bare)
    print(
        f"{record['model']}, {record['tokens']} tokens, {record['threads']} thread(s), {n} triplets from "
        f"{record['started_utc']}; load average {record['load_average_before'][0]:.2f} before, "
        f"{record['load_average_after'][0]:.2f} after; median calls: bare {statistics.median(bare):.3f} s"
    )
    for name, side in (("harness", harness), ("slowed", slowed)):
        ratios = [h / b - 1 for h, b in zip(side, bare, strict=True)]
        q = statistics.quantiles(ratios, n=4)
        print(f"  {name} / bare - 1: median {statistics.median(ratios):+.2%}, quartiles {q[0]:+.2%} {q[2]:+.2%}")
    rng = random.Random(args.seed)
    call_s = statistics.median(bare)
    print(f"budget {OVERHEAD_BUDGET:.0%}; {args.draws} random draws of N triplets (with replacement)")
    for pairs in PAIR_COUNTS:
        draws = [[rng.randrange(n) for _ in range(pairs)] for _ in range(args.draws)]
        for rule in ("before", "fixed", "sequential"):
            line = []
            for name, side in (("A/A", harness), ("+3%", slowed)):
                found = [_verdict([side[i] for i in draw], [bare[i] for i in draw], rule) for draw in draws]
                verdicts = [verdict for verdict, _ in found]
                used = statistics.fmean(used for _, used in found)
                line.append(f"{name}: {_rates(verdicts)} ({used:.0f} pairs, ~{2 * used * call_s:.0f} s)")
            label = {
                "before": f"{pairs} pairs, the rule before",
                "fixed": f"{pairs} pairs",
                "sequential": f"10 more while noisy, up to {pairs}",
            }[rule]
            print(f"  {label:32s} " + "   ".join(line))
        windows = [range(start, start + pairs) for start in range(0, n - pairs + 1, pairs)]
        for name, side in (("A/A", harness), ("+3%", slowed)):
            statuses = [Overhead([side[i] for i in w], [bare[i] for i in w]).check("o", "w").status for w in windows]
            print(f"      disjoint runs of {pairs} consecutive triplets, {name}: {statuses}")


def _verdict(harness: list[float], bare: list[float], rule: str) -> tuple[str, int]:
    """The row's status and the pairs it used: all of them (``fixed``), or as ``harness_overhead`` adds
    them (``sequential``): 10, then 10 more while the row reads noisy (not where the pairs are too spread)."""
    if rule == "before":  # issue 21's starting point: noisy while the interval reaches back under the budget
        check = replace(
            Overhead(harness, bare).check("o", "w"), bound="at_most", allowed=None, noisy_when="limits", undecided=""
        )
        return check.status, len(bare)
    if rule == "fixed":
        return Overhead(harness, bare).check("o", "w").status, len(bare)
    status, end = "noisy", 0
    for end in range(10, len(bare) + 1, 10):
        check = Overhead(harness[:end], bare[:end]).check("o", "w")
        status = check.status
        if status != "noisy" or check.undecided:
            break
    return status, end


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = parser.add_subparsers(dest="what", required=True)
    m = sub.add_parser("measure")
    m.add_argument("--triplets", type=int, default=60)
    m.add_argument("--tokens", type=int, default=32)
    m.add_argument("--threads", type=int, default=1)
    m.add_argument("--out", default="scripts/selfcheck/data/overhead_power.json")
    d = sub.add_parser("decide")
    d.add_argument("data")
    d.add_argument("--draws", type=int, default=200)
    d.add_argument("--seed", type=int, default=21)
    d.add_argument("--clock", choices=("seconds", "cpu_seconds"), default="cpu_seconds")
    args = parser.parse_args()
    measure(args) if args.what == "measure" else decide(args)


if __name__ == "__main__":
    main()
