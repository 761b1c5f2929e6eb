"""Hooks of ``--llmbench-shard=K/N``: keep shard K's tests, say so, and record the shard in the saved run.

The split itself is :func:`llmbench.shards.plan.assign_shards`; every shard computes the same split from
the collected tests and the matrix settings (nothing machine-specific), so N machines given 1/N ... N/N
run every combination exactly once. Tests outside the matrix (no ``llm_combination`` or
``llm_load_combination``) all go to shard 1.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from llmbench.config.combination import Combination
from llmbench.config.settings import Setting, resolve
from llmbench.plugin.keys import COMBINATION_ARG, LOAD_COMBINATION_ARG, SETTINGS_KEY
from llmbench.shards.plan import SHARD_INFO_KEY, Shard, Work, assign_shards, expected_cost, parse_shard

SHARD_KEY = pytest.StashKey[Shard]()
SELECTION_KEY = pytest.StashKey["Selection"]()
FLAG = "--llmbench-shard"


@dataclass(frozen=True)
class Selection:
    """What this shard kept: matrix tests kept / in all shards, and other tests kept."""

    kept: int
    total: int
    others: int


def pytest_configure(config: pytest.Config) -> None:
    unsharded: Setting[Shard | None] = Setting(None, "the default")
    shard = resolve(config, FLAG, parse_shard, unsharded).value
    if shard is not None:
        config.stash[SHARD_KEY] = shard


def _work(item: pytest.Item, config: pytest.Config) -> Work | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    settings = config.stash[SETTINGS_KEY]
    for argname, has_batch in ((COMBINATION_ARG, True), (LOAD_COMBINATION_ARG, False)):
        combination = callspec.params.get(argname)
        if isinstance(combination, Combination):
            batch_size = combination.batch_size if has_batch else None
            return Work(
                name=item.nodeid,
                model=combination.model.name,
                precision=combination.precision,
                device=combination.device,
                batch_size=batch_size,
                cost=expected_cost(combination.precision, batch_size, settings.max_new_tokens_for(combination)),
            )
    return None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only this shard's tests; report the others as deselected."""
    shard = config.stash.get(SHARD_KEY, None)
    if shard is None:
        return
    work = {item.nodeid: _work(item, config) for item in items}
    matrix = [w for w in work.values() if w is not None]
    shard_of = assign_shards(matrix, shard.count)
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        w = work[item.nodeid]
        mine = shard_of[w.name] == shard.index if w is not None else shard.index == 1
        (kept if mine else deselected).append(item)
    config.stash[SELECTION_KEY] = Selection(
        kept=sum(1 for item in kept if work[item.nodeid] is not None),
        total=len(matrix),
        others=sum(1 for item in kept if work[item.nodeid] is None),
    )
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = kept


def shard_line(config: pytest.Config) -> str | None:
    """``llmbench shard 2/3: 8 of 24 combinations`` (after collection), or None when not sharding."""
    shard = config.stash.get(SHARD_KEY, None)
    selection = config.stash.get(SELECTION_KEY, None)
    if shard is None or selection is None:
        return None
    line = f"llmbench shard {shard}: {selection.kept} of {selection.total} combinations"
    if selection.others:
        line += f" (and {selection.others} tests outside the matrix)"
    return line


def pytest_report_collectionfinish(config: pytest.Config, start_path: Path, items: list[pytest.Item]) -> str | None:
    return shard_line(config)


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record the shard in the saved run (``llmbench merge`` checks it and drops it from the merged run)."""
    shard = config.stash.get(SHARD_KEY, None)
    if shard is not None:
        machine_info[SHARD_INFO_KEY] = {"index": shard.index, "count": shard.count}
