"""Splitting the matrix across machines (``--llmbench-shard=K/N``): which shard runs which test.

The unit that loads once is a (model, precision) pair: its tests go to one shard whenever there are at
least as many such groups with a cost as shards. Groups are balanced by cost, largest first, each onto
the least-loaded shard (ties: the lower shard number; equal costs in name order), so the same tests and
costs give the same shards on every machine. With fewer groups that cost anything than shards, the
largest pieces are split in two, by device first and then by batch size. Each test's cost comes from
:mod:`llmbench.shards.costs`: its measured seconds in saved runs, else :func:`expected_cost`, and 0 for a
test skipped at collection. See docs/ci-and-security.md.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from llmbench.config.options import SettingError
from llmbench.config.precisions import cost_factor

__all__ = [
    "REFERENCE_MODEL_BYTES",
    "SHARD_INFO_KEY",
    "Shard",
    "Work",
    "assign_shards",
    "expected_cost",
    "parse_shard",
    "plan_digest",
    "shard_loads",
]

#: The machine_info key of a run that says which shard made it (written by ``llmbench.plugin.shard_hooks``).
SHARD_INFO_KEY = "llmbench_shard"


#: fp32 weight bytes of the model an estimate is relative to: Gemma 3 270M's (1.07 GB, the shipped default).
REFERENCE_MODEL_BYTES = 1.07e9


def expected_cost(
    precision: str, batch_size: int | None, max_new_tokens: int, model_bytes: float | None = None
) -> float:
    """A test's estimated cost (relative, unitless) where no saved run measured it:
    ``cost_factor(precision) x model size x batch size x max_new_tokens``.

    The factor is the time per generated token relative to fp32 (:func:`llmbench.config.precisions.cost_factor`);
    the model size is its fp32 weight bytes relative to :data:`REFERENCE_MODEL_BYTES` (decoding reads every
    weight once per token: docs/metrics.md, ``mbu``), 1 where unknown; a load test counts as batch size 1.
    It depends on nothing of the machine, so every shard estimates the same.
    """
    size = model_bytes / REFERENCE_MODEL_BYTES if model_bytes is not None and model_bytes > 0 else 1.0
    return cost_factor(precision) * size * (batch_size or 1) * max_new_tokens


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
            # Equal loads (tests that cost nothing too): the side with fewer values, so neither stays empty.
            side = min((0, 1), key=lambda index: (loads[index], len(sides[index]), index))
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

    Groups by (model, precision); with more shards than groups that cost anything, splits the largest
    groups by device, then batch size; places groups largest first onto the least-loaded shard (ties:
    lower shard). Groups that cost nothing (every test skipped) go last, onto the least-loaded shard.
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
    while sum(1 for piece in pieces if piece.cost > 0) < n:
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


def shard_loads(work: Iterable[Work], shard_of: Mapping[str, int], n: int) -> list[float]:
    """Each shard's cost (shard 1 first): the sum of its tests' costs."""
    loads = [0.0] * n
    for w in sorted(work, key=lambda w: w.name):
        loads[shard_of[w.name] - 1] += w.cost
    return loads


def plan_digest(shard_of: Mapping[str, int]) -> str:
    """A short fingerprint of a split (which test goes to which shard): equal on every shard of one plan."""
    text = json.dumps(sorted(shard_of.items()), separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()[:16]


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
