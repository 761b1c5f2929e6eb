"""The machine's figures against a second method: peak bandwidth, and the peak-memory probe."""

from __future__ import annotations

import math
import resource
import threading
import time
from collections.abc import Callable

import numpy as np
import torch

from llmbench.measure.bandwidth import CpuBandwidthMeter
from llmbench.measure.memory import CpuMemoryProbe, peak_rss_reset_unsupported
from llmbench.selfcheck.checks import Check
from llmbench.units import MiB

__all__ = [
    "BANDWIDTH_TOLERANCE",
    "MEMORY_TOLERANCE",
    "cpu_bandwidth_check",
    "cpu_memory_checks",
    "numpy_read_bandwidth",
]

#: Two read kernels on one memory system: within 20% (different loops, threads and vector widths; one
#: thread reads about 15% slower through numpy's max than through torch's sum here: docs/metrics.md).
BANDWIDTH_TOLERANCE = 0.20
#: The kernel's reset high-water mark against RSS sampled every millisecond over the same call.
MEMORY_TOLERANCE = 0.05
#: The probe's peak may exceed ``ru_maxrss`` by the kernel's per-thread RSS counter batching (a few dozen
#: pages per thread, folded in lazily): measured +0.02% on a 794 MiB process.
RUSAGE_SLACK = 0.005


def numpy_read_bandwidth(buffer_bytes: int, threads: int, repeats: int = 10) -> float:
    """Bytes/s of ``numpy.max`` over a float32 buffer split among ``threads`` Python threads (numpy
    releases the GIL inside the reduction), best of ``repeats`` passes: a second read kernel beside
    torch's. (``numpy.sum`` sums pairwise, which is slower than memory on one thread.)"""
    data = np.ones(buffer_bytes // 4, dtype=np.float32)
    parts = np.array_split(data, threads)
    best = math.inf
    for _ in range(repeats + 1):  # the first pass warms up
        workers = [threading.Thread(target=np.max, args=(part,)) for part in parts]
        started = time.perf_counter()
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
        best = min(best, time.perf_counter() - started)
    return data.nbytes / best


def cpu_bandwidth_check(buffer_bytes: int = 512 * MiB) -> Check:
    """The bandwidth ``mbu`` divides by (torch.sum, all torch threads) against numpy on as many threads."""
    threads = torch.get_num_threads()
    harness = CpuBandwidthMeter(buffer_bytes=buffer_bytes).measure().bytes_per_s
    reference = numpy_read_bandwidth(buffer_bytes, threads)
    return Check(
        "peak bandwidth vs numpy read", harness, reference, "bytes/s", BANDWIDTH_TOLERANCE,
        how=(
            f"harness: best torch.sum pass over {buffer_bytes // MiB} MiB; reference: best numpy.max pass over "
            f"the same size on {threads} Python threads"
        ),
    )  # fmt: skip


def cpu_memory_checks(call: Callable[[], object]) -> list[Check]:
    """The peak-RSS probe around ``call`` against RSS sampled over the same call and the kernel's maximum.

    Sampling misses peaks shorter than its interval, so it reads at most the probe's value; the
    process's ``getrusage`` maximum covers its whole life, so it reads at least the probe's value.
    """
    sampled, kernel = CpuMemoryProbe("sample"), CpuMemoryProbe("auto")
    with sampled.measure() as outer, kernel.measure() as inner:
        call()
    lifetime = float(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024)  # Linux: kilobytes
    peak = float(inner.peak_bytes())
    reset = peak_rss_reset_unsupported()
    return [
        Check(
            "peak RSS vs sampled RSS", peak, float(outer.peak_bytes()), "bytes", MEMORY_TOLERANCE,
            how="harness: VmHWM after a reset (clear_refs); reference: RSS sampled every 1 ms over the same call",
            skipped=f"the probe samples here too: {reset}" if reset else "",
        ),
        Check(
            "peak RSS vs getrusage maximum", peak, lifetime, "bytes", RUSAGE_SLACK, bound="at_most",
            how="harness: the call's peak RSS; reference: ru_maxrss, the process's lifetime maximum (an upper bound)",
        ),
    ]  # fmt: skip
