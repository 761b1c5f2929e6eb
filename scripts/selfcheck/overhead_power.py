"""Whether the selfcheck's overhead row fails a real 3% overhead, and what that costs (issue 21, docs/metrics.md).

Usage (from the repository root; one process, the sides interleaved in one go, their order rotated)::

    .venv/bin/python scripts/selfcheck/overhead_power.py measure --triplets 60 --threads 1 \\
        --out scripts/selfcheck/data/overhead_power.json
    .venv/bin/python scripts/selfcheck/overhead_power.py decide scripts/selfcheck/data/overhead_power.json

``measure`` loads the default model on llama.cpp (q4_k_m, as ``llmbench selfcheck`` does) and times,
``triplets`` times, three calls in an order that rotates from triplet to triplet: the bare call
(:func:`llmbench.selfcheck.agreement.bare_llama_cpp`), the harness's call inside the memory probe (as a
timed round runs it), and the same harness call made 3% slower for real: after it, still inside the
timed span, a sleep of 3% of its own duration. It writes every call's seconds, the load average at the
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
        began = time.perf_counter()
        harness()
        time.sleep(INJECTED * (time.perf_counter() - began))

    sides: dict[str, Callable[[], None]] = {"bare": bare, "harness": harness, "slowed": slowed}
    times: dict[str, list[float]] = {name: [] for name in sides}
    for call in sides.values():  # warm-up
        call()
    names = list(sides)
    for index in range(args.triplets):
        for k in range(len(names)):
            name = names[(index + k) % len(names)]
            began = time.perf_counter()
            sides[name]()
            times[name].append(time.perf_counter() - began)
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
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"wrote {args.out}")


def _rates(verdicts: list[str]) -> str:
    return "  ".join(f"{v} {verdicts.count(v) / len(verdicts):4.0%}" for v in ("ok", "noisy", "DISAGREES"))


def decide(args: argparse.Namespace) -> None:
    record = json.loads(Path(args.data).read_text())
    seconds = record["seconds"]
    bare, harness, slowed = seconds["bare"], seconds["harness"], seconds["slowed"]
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
        for rule in ("interval", "sequential"):
            line = []
            for name, side in (("A/A", harness), ("+3%", slowed)):
                verdicts = [_verdict([side[i] for i in draw], [bare[i] for i in draw], rule, rng) for draw in draws]
                line.append(f"{name}: {_rates(verdicts)}")
            print(f"  N={pairs:3d} {rule:10s} ~{2 * pairs * call_s:4.0f} s   " + "   ".join(line))
        windows = [range(start, start + pairs) for start in range(0, n - pairs + 1, pairs)]
        for name, side in (("A/A", harness), ("+3%", slowed)):
            found = [Overhead([side[i] for i in w], [bare[i] for i in w]).check("o", "w").status for w in windows]
            print(f"      disjoint runs of {pairs} consecutive triplets, {name}: {found}")


def _verdict(harness: list[float], bare: list[float], rule: str, rng: random.Random) -> str:
    if rule == "interval":
        return Overhead(harness, bare).check("o", "w").status
    # sequential: look after 10, 20, ... pairs of the draw, stop at the first decided verdict
    status = "noisy"
    for end in range(10, len(bare) + 1, 10):
        status = Overhead(harness[:end], bare[:end]).check("o", "w").status
        if status != "noisy":
            break
    return status


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
    d.add_argument("--draws", type=int, default=400)
    d.add_argument("--seed", type=int, default=21)
    args = parser.parse_args()
    measure(args) if args.what == "measure" else decide(args)


if __name__ == "__main__":
    main()
