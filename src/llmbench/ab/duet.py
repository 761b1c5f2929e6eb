"""Duet rounds (``llmbench ab --duet``): both sides' rounds at the same time, each side on its own CPUs.

Alternating rounds (the default) leave whatever the machine does between one side's round and the
other's in the pair's ratio. In a duet (Bulej et al., "Duet benchmarking", ICPE 2020) both sides'
workers run their round of a pair at the same moment, each pinned to its own half of this process's
CPUs, so a change of the machine's speed during the round hits both alike. The two halves still share
the memory bus and the last-level cache; the sides swap halves from one round pair to the next (which
side starts on which is drawn per load pair, seeded), so a faster half favours neither side. See docs/ab.md.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TypeVar

__all__ = ["DuetError", "Placement", "at_once", "available_cpus", "split_cpus"]

T = TypeVar("T")
K = TypeVar("K", bound=str)


class DuetError(Exception):
    """A duet that cannot run here (fewer than two CPUs; more threads per side than its CPUs)."""


def available_cpus() -> frozenset[int]:
    """The CPUs this process may run on (its affinity mask: a container's share, not the host's)."""
    if hasattr(os, "sched_getaffinity"):
        return frozenset(os.sched_getaffinity(0))
    return frozenset(range(os.cpu_count() or 1))


def split_cpus(cpus: frozenset[int], threads: int | None = None) -> tuple[frozenset[int], frozenset[int]]:
    """Two disjoint halves of ``cpus`` (the lower numbers first; an odd one out is left idle, so both
    halves are the same size). ``threads``: the threads each worker runs (``--llmbench-threads``), at
    most a half's CPUs."""
    ordered = sorted(cpus)
    half = len(ordered) // 2
    if half < 1:
        raise DuetError(f"--duet needs at least 2 CPUs, one per side; this process may run on {len(ordered)} "
                        f"({', '.join(map(str, ordered))})")  # fmt: skip
    if threads is not None and threads > half:
        raise DuetError(f"--llmbench-threads={threads}: --duet gives each side {half} of this process's "
                        f"{len(ordered)} CPUs, so at most {half} threads per worker are allowed")  # fmt: skip
    return frozenset(ordered[:half]), frozenset(ordered[half : 2 * half])


@dataclass(frozen=True)
class Placement:
    """Which half of a duet's CPUs each side runs on in a load pair: ``first`` (drawn per load pair) on the
    lower half in the load pair's even round pairs and on the upper half in its odd ones, the other side
    on the other half, so with an even number of rounds each side has each half as often."""

    halves: tuple[frozenset[int], frozenset[int]]
    first: str

    def cpus(self, side: str, round_pair: int) -> frozenset[int]:
        lower = (side == self.first) == (round_pair % 2 == 0)
        return self.halves[0] if lower else self.halves[1]


def at_once(calls: Mapping[K, Callable[[], T]]) -> dict[K, T]:
    """Each call on a thread of its own, released together; their results by name. The first error
    (by name order) is raised once every call has returned."""
    names = sorted(calls)
    barrier = threading.Barrier(len(names))
    results: dict[K, T] = {}
    errors: dict[K, BaseException] = {}

    def run(name: K) -> None:
        try:
            barrier.wait()
            results[name] = calls[name]()
        except BaseException as error:  # handed to the caller below
            errors[name] = error

    threads = [threading.Thread(target=run, args=(name,), name=f"llmbench-duet-{name}") for name in names]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    for name in names:
        if name in errors:
            raise errors[name]
    return results
