"""Hooks of ``--llmbench-shard=K/N``: keep shard K's tests, say so, and record the shard in the saved run;
and, in every session of the matrix, each test's duration, which later sessions balance shards by.

The split itself is :func:`llmbench.shards.plan.assign_shards`, over the costs of
:mod:`llmbench.shards.costs` (measured in the saved runs of ``--llmbench-shard-costs``, else estimated;
0 for a test skipped at collection). Every shard computes the same split from the collected tests, the
matrix settings and those saved runs, so N machines given 1/N ... N/N and the same saved runs run every
combination exactly once. Tests outside the matrix (no ``llm_combination`` or ``llm_load_combination``)
all go to shard 1.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Generator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmbench.config.combination import Combination
from llmbench.config.settings import Setting, resolve, resolve_path
from llmbench.plugin.keys import COMBINATION_ARG, LOAD_COMBINATION_ARG, SETTINGS_KEY
from llmbench.shards.costs import (
    DURATIONS_KEY,
    Candidate,
    CostError,
    CostHistory,
    CostKind,
    cost_work,
    read_cost_history,
)
from llmbench.shards.plan import SHARD_INFO_KEY, Shard, assign_shards, parse_shard, plan_digest, shard_loads

SHARD_KEY = pytest.StashKey[Shard]()
SELECTION_KEY = pytest.StashKey["Selection"]()
DURATIONS_STASH = pytest.StashKey["Durations"]()
#: The value of --llmbench-shard-costs as given ("" without it) and what its saved runs say.
HISTORY_KEY = pytest.StashKey[tuple[str, CostHistory | None]]()
FLAG = "--llmbench-shard"
COSTS_FLAG = "--llmbench-shard-costs"


@dataclass(frozen=True)
class Selection:
    """What this shard kept: matrix tests kept / in all shards, and other tests kept; the plan's costs."""

    kept: int
    total: int
    others: int
    #: Every shard's cost (shard 1 first): measured seconds, estimates scaled alike.
    loads: tuple[float, ...] = ()
    #: How many tests' costs were measured, estimated, skipped.
    kinds: dict[CostKind, int] = field(default_factory=dict)
    #: Where the measured costs came from: the option's value and the runs read ("" without the option).
    source: str = ""
    runs: int = 0
    notes: tuple[str, ...] = ()
    #: The split's fingerprint (:func:`llmbench.shards.plan.plan_digest`).
    plan: str = ""
    #: Tests each shard runs (shard 1 first): not skipped at collection; shard 1's tests outside the matrix too.
    runnable: tuple[int, ...] = ()


@dataclass
class Durations:
    """Seconds of each matrix test not skipped at collection (setup, call and teardown), as they finish."""

    tracked: frozenset[str]
    seconds: dict[str, float] = field(default_factory=dict)


def pytest_configure(config: pytest.Config) -> None:
    unsharded: Setting[Shard | None] = Setting(None, "the default")
    shard = resolve(config, FLAG, parse_shard, unsharded).value
    if shard is not None:
        config.stash[SHARD_KEY] = shard
        config.stash[HISTORY_KEY] = _history(config)


def _skipped(item: pytest.Item) -> bool:
    return item.get_closest_marker("skip") is not None


def _candidate(item: pytest.Item, config: pytest.Config) -> Candidate | None:
    callspec = getattr(item, "callspec", None)
    if callspec is None:
        return None
    settings = config.stash[SETTINGS_KEY]
    for argname, has_batch in ((COMBINATION_ARG, True), (LOAD_COMBINATION_ARG, False)):
        combination = callspec.params.get(argname)
        if isinstance(combination, Combination):
            return Candidate(
                name=item.nodeid,
                model=combination.model.name,
                precision=combination.precision,
                device=combination.device,
                batch_size=combination.batch_size if has_batch else None,
                max_new_tokens=settings.max_new_tokens_for(combination),
                skipped=_skipped(item),
            )
    return None


def _history(config: pytest.Config) -> tuple[str, CostHistory | None]:
    """The saved runs of ``--llmbench-shard-costs`` (its value as given), or ("", None) without it."""
    setting = resolve(config, COSTS_FLAG, lambda text, what, origin: text, Setting("", "the default"))
    if not setting.value:
        return "", None
    path = resolve_path(config, setting)
    try:
        return setting.value, read_cost_history(path)
    except CostError as error:
        raise pytest.UsageError(
            f"{COSTS_FLAG}: {error} (from {setting.origin}); expected a saved run (pytest-benchmark JSON) "
            "or a storage folder"
        ) from None


@pytest.hookimpl(trylast=True)
def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Keep only this shard's tests; report the others as deselected. Track the matrix tests' durations."""
    candidates = {item.nodeid: _candidate(item, config) for item in items}
    shard = config.stash.get(SHARD_KEY, None)
    if shard is not None:
        _select(config, shard, items, candidates)
    tracked = frozenset(c.name for c in candidates.values() if c is not None and not c.skipped)
    config.stash[DURATIONS_STASH] = Durations(tracked.intersection(item.nodeid for item in items))


def _select(
    config: pytest.Config, shard: Shard, items: list[pytest.Item], candidates: dict[str, Candidate | None]
) -> None:
    source, history = config.stash[HISTORY_KEY]
    work, kinds = cost_work([c for c in candidates.values() if c is not None], history)
    shard_of = assign_shards(work, shard.count)
    runnable = Counter(shard_of[name] for name, kind in kinds.items() if kind != "skipped")
    runnable[1] += sum(1 for item in items if candidates[item.nodeid] is None and not _skipped(item))
    kept: list[pytest.Item] = []
    deselected: list[pytest.Item] = []
    for item in items:
        candidate = candidates[item.nodeid]
        mine = shard_of[candidate.name] == shard.index if candidate is not None else shard.index == 1
        (kept if mine else deselected).append(item)
    config.stash[SELECTION_KEY] = Selection(
        kept=sum(1 for item in kept if candidates[item.nodeid] is not None),
        total=len(work),
        others=sum(1 for item in kept if candidates[item.nodeid] is None),
        loads=tuple(shard_loads(work, shard_of, shard.count)),
        kinds=dict(Counter(kinds.values())),
        source=source,
        runs=len(history.runs) if history is not None else 0,
        notes=history.notes if history is not None else (),
        plan=plan_digest(shard_of),
        runnable=tuple(runnable[index] for index in range(1, shard.count + 1)),
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


def cost_line(config: pytest.Config) -> str | None:
    """``llmbench shard 2/3 costs: 34% of the matrix's (12 tests measured in 5 saved runs of history, 6
    estimated, 6 skipped)``, or None when not sharding. The share is of the costs: seconds where measured
    (and estimates scaled to them), relative units where nothing was."""
    shard = config.stash.get(SHARD_KEY, None)
    selection = config.stash.get(SELECTION_KEY, None)
    if shard is None or selection is None:
        return None
    total = sum(selection.loads)
    share = f"{selection.loads[shard.index - 1] / total:.0%} of the matrix's" if total > 0 else "nothing"
    kinds = selection.kinds
    measured = f"{kinds.get('measured', 0)} tests measured in {selection.runs} saved runs of {selection.source}"
    if not selection.source:
        measured = f"no saved runs given ({COSTS_FLAG})"
    parts = [measured, f"{kinds.get('estimated', 0)} estimated", f"{kinds.get('skipped', 0)} skipped"]
    return f"llmbench shard {shard} costs: {share} ({', '.join(parts)})"


def pytest_report_collectionfinish(config: pytest.Config, start_path: Path, items: list[pytest.Item]) -> list[str]:
    selection = config.stash.get(SELECTION_KEY, None)
    lines = [line for line in (shard_line(config), cost_line(config)) if line is not None]
    return lines + [f"llmbench shard costs: {note}" for note in (selection.notes if selection else ())]


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo[None]) -> Generator[None, Any, Any]:
    """Add up each tracked test's setup, call and teardown, whatever their outcome."""
    report = yield
    durations = item.config.stash.get(DURATIONS_STASH, None)
    if durations is not None and item.nodeid in durations.tracked:
        durations.seconds[item.nodeid] = durations.seconds.get(item.nodeid, 0.0) + call.duration
    return report


@pytest.hookimpl(optionalhook=True)
def pytest_benchmark_update_machine_info(config: pytest.Config, machine_info: dict[str, Any]) -> None:
    """Record the shard and its plan in the saved run (``llmbench merge`` checks them and drops them from the
    merged run), and the durations of the matrix tests that ran (later sessions balance shards by them)."""
    shard = config.stash.get(SHARD_KEY, None)
    selection = config.stash.get(SELECTION_KEY, None)
    if shard is not None:
        record: dict[str, Any] = {"index": shard.index, "count": shard.count}
        if selection is not None:
            record.update(plan=selection.plan, runnable=list(selection.runnable))
        machine_info[SHARD_INFO_KEY] = record
    durations = config.stash.get(DURATIONS_STASH, None)
    if durations is not None and durations.seconds:
        machine_info[DURATIONS_KEY] = {name: round(seconds, 3) for name, seconds in sorted(durations.seconds.items())}
