"""How far whole-call harness/bare pairs spread on this machine (issue 14, docs/metrics.md).

Usage (from the repository root)::

    .venv/bin/python scripts/selfcheck/overhead_pairs.py --model tiny --pairs 40 --repeats 3 --threads 1

Runs ``harness_overhead`` (the selfcheck's and benchmarks/test_overhead.py's measurement: the probed
``TransformersModel.generate`` against a bare ``model.generate``, ABBA pairs in one process) ``repeats``
times and prints each median with the quartiles of the pairs' ratios: what one such figure can resolve.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bare_loop import load

from llmbench.measure.probes import probes_for
from llmbench.selfcheck.agreement import bare_transformers, harness_overhead


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny' (built offline) or a built-in model")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--pairs", type=int, default=40)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        model, prompt = load(args.model, args.precision, Path(scratch))
    g = max(model.generate([prompt], args.tokens).generated_tokens)
    bare = bare_transformers(model, [prompt], g)
    memory = probes_for("cpu").memory
    for _ in range(args.repeats):
        overhead = harness_overhead(lambda: model.generate([prompt], args.tokens), bare, memory, args.pairs)
        ratios = [h / b - 1 for h, b in zip(overhead.harness_s, overhead.bare_s, strict=True)]
        q = statistics.quantiles(ratios, n=4)
        print(
            f"{args.pairs} pairs: median {overhead.ratio - 1:+.2%}, quartiles of the pairs {q[0]:+.2%} {q[2]:+.2%}; "
            f"median calls {statistics.median(overhead.harness_s) * 1e3:.1f} ms (harness), "
            f"{statistics.median(overhead.bare_s) * 1e3:.1f} ms (bare)",
            flush=True,
        )
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
