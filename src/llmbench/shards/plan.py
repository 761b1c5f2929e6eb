"""Splitting the matrix across machines (``--llmbench-shard=K/N``): which shard runs which test.

The unit that loads once is a (model, precision) pair: its tests go to one shard whenever there are at
least as many pairs as shards. Pairs are balanced by expected cost, largest first, each onto the
least-loaded shard (ties: the lower shard number; equal costs in name order), so the same matrix gives
the same shards on every machine. With more shards than pairs, the largest pieces are split in two, by
device first and then by batch size. The cost (relative, unitless) is
``cost_factor(precision) * batch_size * max_new_tokens`` (:func:`llmbench.config.precisions.cost_factor`;
a load test counts as batch size 1); it must not depend on the machine. See docs/ci-and-security.md.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from llmbench.config.options import SettingError
from llmbench.config.precisions import cost_factor

__all__ = ["SHARD_INFO_KEY", "Shard", "Work", "assign_shards", "expected_cost", "parse_shard"]

#: The machine_info key of a run that says which shard made it (written by ``llmbench.plugin.shard_hooks``).
SHARD_INFO_KEY = "llmbench_shard"


def expected_cost(precision: str, batch_size: int | None, max_new_tokens: int) -> float:
    """The cost model above: precision factor x batch size x new tokens."""
    return cost_factor(precision) * (batch_size or 1) * max_new_tokens


@dataclass(frozen=True)
class Work:
    """One test to place: its unique name (the test id), what it runs and its expected cost."""

    name: str
    model: str
    precision: str
    device: str
    batch_size: int | None
    cost: float


@dataclass(frozen=True)
class _Piece:
    name: str
    work: tuple[Work, ...]

    @property
    def cost(self) -> float:
        return sum(sorted(w.cost for w in self.work))


def _axis_values(piece: _Piece, axis: str) -> dict[str, Any]:
    """Each work's value on ``axis`` ("device" or "bs"); a load test (no batch size) goes with the
    smallest batch size of its piece, so splitting by batch size does not add a load."""
    if axis == "device":
        return {w.name: w.device for w in piece.work}
    sizes = [w.batch_size for w in piece.work if w.batch_size is not None]
    smallest = min(sizes) if sizes else None
    return {w.name: w.batch_size if w.batch_size is not None else smallest for w in piece.work}


def _halves(piece: _Piece) -> tuple[_Piece, _Piece] | None:
    """Split a piece in two by device, else by batch size (balanced by cost), or None if it cannot be."""
    for axis in ("device", "bs"):
        value_of = _axis_values(piece, axis)
        values = sorted(set(value_of.values()), key=str)
        if len(values) < 2:
            continue
        costs = {v: sum(sorted(w.cost for w in piece.work if value_of[w.name] == v)) for v in values}
        sides: tuple[list[Any], list[Any]] = ([], [])
        loads = [0.0, 0.0]
        for value in sorted(values, key=lambda v: (-costs[v], str(v))):
            side = 0 if loads[0] <= loads[1] else 1
            sides[side].append(value)
            loads[side] += costs[value]
        halves = tuple(
            _Piece(
                f"{piece.name}/{axis}={'+'.join(sorted(str(v) for v in side))}",
                tuple(w for w in piece.work if value_of[w.name] in side),
            )
            for side in sides
        )
        return halves[0], halves[1]
    return None


def assign_shards(work: Iterable[Work], n: int) -> dict[str, int]:
    """Each work name -> its shard (1..n); deterministic, every name in exactly one shard.

    Groups by (model, precision); with more shards than groups, splits the largest groups by device,
    then batch size; places groups largest first onto the least-loaded shard (ties: lower shard).
    """
    if n < 1:
        raise ValueError(f"shard count must be positive, got {n}")
    items = list(work)
    names = [w.name for w in items]
    if len(set(names)) != len(names):
        duplicates = sorted({name for name in names if names.count(name) > 1})
        raise ValueError(f"work names must be unique; repeated: {', '.join(duplicates)}")
    groups: dict[tuple[str, str], list[Work]] = {}
    for w in sorted(items, key=lambda w: w.name):
        groups.setdefault((w.model, w.precision), []).append(w)
    pieces = [_Piece(f"{model}-{precision}", tuple(ws)) for (model, precision), ws in groups.items()]
    while len(pieces) < n:
        for piece in sorted(pieces, key=lambda p: (-p.cost, p.name)):
            halves = _halves(piece)
            if halves is not None:
                pieces.remove(piece)
                pieces.extend(halves)
                break
        else:
            break  # nothing left to split: some shards stay empty
    loads = [0.0] * n
    shard_of: dict[str, int] = {}
    for piece in sorted(pieces, key=lambda p: (-p.cost, p.name)):
        shard = min(range(n), key=lambda index: (loads[index], index))
        loads[shard] += piece.cost
        for w in piece.work:
            shard_of[w.name] = shard + 1
    return shard_of


@dataclass(frozen=True)
class Shard:
    """Shard ``index`` (1-based) of ``count``."""

    index: int
    count: int

    def __str__(self) -> str:
        return f"{self.index}/{self.count}"


def parse_shard(text: str, what: str, origin: str) -> Shard:
    """``K/N`` with 1 <= K <= N; a :class:`llmbench.config.options.SettingError` otherwise."""
    parts = text.strip().split("/")
    try:
        index, count = (int(part) for part in parts) if len(parts) == 2 else (None, None)
    except ValueError:
        index = count = None
    if index is None or count is None or count < 1 or not 1 <= index <= count:
        raise SettingError(f"{what}: {text!r} is not a shard (from {origin}); expected K/N with 1 <= K <= N, e.g. 2/3")
    return Shard(index, count)
