"""Wall time of ``llmbench ab`` against a one-sided run of the same pytest arguments, interleaved (docs/ab.md).

Usage (from the repository root)::

    .venv/bin/python scripts/ab/ab_vs_one_sided.py --repetitions 3 --out results/ab-vs-one-sided.json -- \\
        benchmarks --llmbench-model=gemma3-270m --llmbench-precision=q4_k_m --llmbench-device=cpu \\
        --llmbench-batch-size=1 --llmbench-max-new-tokens=8 --llmbench-peak-bandwidth=26GB/s --llmbench-threads=1 \\
        --llmbench-quality-items=0

Each repetition runs the one-sided run (``python -m pytest ARGS``, the run ``make bench`` makes, saving into a
scratch storage) and ``llmbench ab HEAD HEAD`` with the A/B options given (``--ab-option``, repeatable; by
default llmbench ab's own), the one that runs first alternating, so the machine's drift falls on both alike.
Prints and writes each wall time and the ratio of the medians.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def timed(command: Sequence[str]) -> float:
    started = time.monotonic()
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, check=False)
    if done.returncode not in (0, 1):
        sys.exit(f"ab_vs_one_sided.py: {' '.join(command)} exited {done.returncode}:\n{done.stderr[-3000:]}")
    return time.monotonic() - started


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--repetitions", type=int, default=3, help="Default: %(default)r")
    parser.add_argument("--ab-option", action="append", default=[], help="an llmbench ab option, e.g. --rounds=3")
    parser.add_argument("--out", type=Path, required=True, help="the JSON file to write")
    parser.add_argument("pytest_args", nargs="+", help="after --: the pytest arguments of both")
    args = parser.parse_args(argv)
    times: dict[str, list[float]] = {"one-sided": [], "ab": []}
    with tempfile.TemporaryDirectory(prefix="ab-vs-one-sided-") as scratch:
        storage = f"--benchmark-storage={scratch}/runs"
        one_sided = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *args.pytest_args,
                     "--benchmark-autosave", storage]  # fmt: skip
        ab = [sys.executable, "-m", "llmbench.cli", "ab", "HEAD", "HEAD", *args.ab_option, "--", *args.pytest_args,
              storage]  # fmt: skip
        for repetition in range(args.repetitions):
            order = [("one-sided", one_sided), ("ab", ab)]
            for name, command in order if repetition % 2 == 0 else order[::-1]:
                times[name].append(round(timed(command), 1))
                print(f"repetition {repetition + 1}: {name} {times[name][-1]} s", flush=True)
    ratio = statistics.median(times["ab"]) / statistics.median(times["one-sided"])
    date = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    result = {"pytest_args": args.pytest_args, "ab_options": args.ab_option, "seconds": times,
              "ratio_of_medians": round(ratio, 2), "date": date}  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=1) + "\n")
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
