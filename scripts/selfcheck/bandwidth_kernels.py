"""Read kernels against the harness's peak-bandwidth figure (torch.sum), interleaved (issue 21, docs/metrics.md).

Usage (from the repository root)::

    .venv/bin/python scripts/selfcheck/bandwidth_kernels.py --threads 1 --rounds 12 \\
        --out scripts/selfcheck/data/bandwidth_kernels_1thread.json

The selfcheck's bandwidth row needs a second read of the same memory whose figure does not depend on
torch. Per round, each kernel runs ``passes`` timed passes over the same 512 MiB float32 buffer (one
warm-up pass first), in an order that rotates from round to round; its round figure is bytes / its best
pass. Kernels: the harness's ``torch.sum`` (:class:`llmbench.measure.bandwidth.CpuBandwidthMeter`'s
pass), ``numpy.max`` (the selfcheck's reference, :func:`llmbench.selfcheck.machine.numpy_read_bandwidth`'s
pass), ``numpy.bitwise_or.reduce`` over the buffer as uint64 and ``numpy.count_nonzero`` over it as
bytes; each numpy kernel on ``threads`` Python threads (numpy releases the GIL inside them), torch on as
many torch threads. It prints, per kernel, its best over all rounds and the median and range of its
ratio to torch.sum within a round, and writes every round's figures with the date, the command and the
load average to ``--out`` (small JSON, committed).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch

from llmbench.units import MiB


def _threaded(kernel: Callable[[Any], object], parts: list[Any]) -> Callable[[], None]:
    def run() -> None:
        workers = [threading.Thread(target=kernel, args=(part,)) for part in parts]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()

    return run


def _best_s(call: Callable[[], object], passes: int) -> float:
    call()  # warm-up
    best = math.inf
    for _ in range(passes):
        started = time.perf_counter()
        call()
        best = min(best, time.perf_counter() - started)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=12)
    parser.add_argument("--passes", type=int, default=5)
    parser.add_argument("--out", default="scripts/selfcheck/data/bandwidth_kernels.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    load_before = os.getloadavg()
    started_at = datetime.datetime.now(datetime.UTC).isoformat(timespec="seconds")
    size = 512 * MiB
    buffer = torch.ones(size // 4, dtype=torch.float32)  # writing ones touches every page
    array = buffer.numpy()
    kernels: dict[str, Callable[[], object]] = {
        "torch.sum": buffer.sum,
        "numpy.max": _threaded(np.max, np.array_split(array, args.threads)),
        "numpy.bitwise_or.reduce uint64": _threaded(
            np.bitwise_or.reduce, np.array_split(array.view(np.uint64), args.threads)
        ),
        "numpy.count_nonzero uint8": _threaded(np.count_nonzero, np.array_split(array.view(np.uint8), args.threads)),
    }
    names = list(kernels)
    figures: dict[str, list[float]] = {name: [] for name in names}
    for index in range(args.rounds):
        for k in range(len(names)):
            name = names[(index + k) % len(names)]
            figures[name].append(size / _best_s(kernels[name], args.passes))
    load_after = os.getloadavg()
    record = {
        "command": " ".join(["scripts/selfcheck/bandwidth_kernels.py", *sys.argv[1:]]),
        "started_utc": started_at,
        "load_average_before": load_before,
        "load_average_after": load_after,
        "threads": args.threads,
        "passes": args.passes,
        "bytes": size,
        "bytes_per_s": figures,
    }
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    print(f"{args.threads} thread(s), {args.rounds} rounds; load average {load_before[0]:.2f} -> {load_after[0]:.2f}")
    for name in names:
        ratios = [v / t for v, t in zip(figures[name], figures["torch.sum"], strict=True)]
        print(
            f"{name:32s} best {max(figures[name]) / 1e9:6.2f} GB/s  ratio to torch.sum within a round: "
            f"median {statistics.median(ratios):.3f}, {min(ratios):.3f}..{max(ratios):.3f}"
        )


if __name__ == "__main__":
    main()
