"""What an A/B run measures: the pytest arguments collected (not run) in the head side's checkout.

The plugin resolves the matrix and settings from the arguments as in any session (matrix file,
``--llmbench-*`` options, ini, environment) and parametrizes the suite; every collected test that
asks for ``llm_benchmark`` and is not skipped becomes one benchmark of the pair, under the name
and node id the plugin's own run would save it with. Skipped combinations are listed with their reason.
"""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from llmbench import benchmark_storage
from llmbench.config.combination import COMBINATION_ARG, Combination
from llmbench.config.settings import SETTINGS_KEY, Settings
from llmbench.data import DataError, Item, load_dataset
from llmbench.gate.rules import Rule
from llmbench.gate.settings import gate_settings
from llmbench.quality.runs import prompt_of
from llmbench.runs import machine_id_here

__all__ = ["Benchmark", "Plan", "collect_plan"]

#: The fixture that marks a test as a timed ``generate`` benchmark.
BENCHMARK_FIXTURE = "llm_benchmark"


@dataclass(frozen=True)
class Benchmark:
    """One timed ``generate`` benchmark: a combination with its prompts, named as the plugin saves it."""

    name: str
    fullname: str
    combination: Combination
    prompts: tuple[str, ...]
    max_new_tokens: int


@dataclass(frozen=True)
class Plan:
    """The benchmarks of the pair and the settings they were resolved with."""

    benchmarks: tuple[Benchmark, ...]
    settings: Settings
    rules: Mapping[str, Rule]
    storage: Path
    machine_id: str
    #: machine_info as the plugin saves it (pytest-benchmark's, with the llmbench fingerprint).
    machine_info: Mapping[str, Any]
    verdict_path: Path | None
    #: The quality items of each data set (none with --llmbench-quality-items=0).
    quality_items: Mapping[str, tuple[Item, ...]]
    skipped: tuple[str, ...] = ()

    def groups(self) -> list[list[Benchmark]]:
        """The benchmarks by loaded model (model, precision, device), in collection order."""
        out: dict[tuple[str, str, str], list[Benchmark]] = {}
        for bench in self.benchmarks:
            out.setdefault(bench.combination.load_key, []).append(bench)
        return list(out.values())


class CollectError(Exception):
    """The pytest arguments did not collect (a usage error, a collection error)."""


@dataclass
class _Collector:
    """A pytest plugin that keeps what the session resolved and collected."""

    invocation_dir: Path
    plan: Plan | None = None
    errors: list[str] = field(default_factory=list)

    def pytest_collection_finish(self, session: pytest.Session) -> None:
        config = session.config
        settings = config.stash[SETTINGS_KEY]
        datasets = _datasets(settings)
        benchmarks, skipped = [], []
        for item in session.items:
            callspec = getattr(item, "callspec", None)
            combination = callspec.params.get(COMBINATION_ARG) if callspec is not None else None
            if not isinstance(combination, Combination) or BENCHMARK_FIXTURE not in getattr(item, "fixturenames", ()):
                continue
            skip = item.get_closest_marker("skip")
            if skip is not None:
                skipped.append(str(skip.kwargs.get("reason", skip.args[0] if skip.args else item.name)))
                continue
            if combination.prompt_length is not None:
                # Prompts of a length are built with the loaded model's tokenizer, which this plan has not.
                reason = "llmbench ab does not build prompts of a length (the prompt-length axis): measure lengths "
                skipped.append(f"{combination.id}: {reason}with pytest, compare versions without the axis")
                continue
            items = datasets[combination.dataset_name]
            if combination.batch_size > len(items):
                skipped.append(f"{combination.id}: batch size {combination.batch_size} exceeds the {len(items)} "
                               f"items of the data set {combination.dataset_name}")  # fmt: skip
                continue
            prompts = tuple(prompt_of(combination.model, i) for i in items[: combination.batch_size])
            benchmarks.append(
                Benchmark(item.name, item.nodeid, combination, prompts, settings.max_new_tokens_for(combination))
            )
        gate = gate_settings(config)
        machine_info = benchmark_storage.machine_info(config)
        count = settings.quality_items
        quality = {name: tuple(items if count is None else items[:count]) for name, items in datasets.items()}
        self.plan = Plan(
            benchmarks=tuple(benchmarks), settings=settings, rules=gate.paired_rules,
            storage=_storage(config, self.invocation_dir), machine_id=machine_id_here(), machine_info=machine_info,
            verdict_path=gate.verdict_path, quality_items=quality if count != 0 else {},
            skipped=tuple(skipped),
        )  # fmt: skip


def _datasets(settings: Settings) -> dict[str, list[Item]]:
    axis = settings.matrix.datasets
    try:
        return {entry.name: load_dataset(entry.name, entry.path) for entry in axis.values}
    except DataError as error:
        raise pytest.UsageError(f"data set (from {axis.origin}): {error}") from None


def _storage(config: pytest.Config, invocation_dir: Path) -> Path:
    try:
        return benchmark_storage.file_storage_path(config, invocation_dir)
    except benchmark_storage.NotFileStorage as error:
        message = f"--benchmark-storage: llmbench ab saves to file storage only, not {error.uri!r}"
        raise pytest.UsageError(message) from None


def collect_plan(pytest_args: Sequence[str], root: Path, invocation_dir: Path) -> Plan:
    """Collect ``pytest_args`` in ``root`` (the head side's checkout). Raises :class:`CollectError`.

    ``invocation_dir`` is where ``llmbench ab`` was started: relative storage paths are relative to it.
    """
    collector = _Collector(invocation_dir)
    args = [
        *pytest_args,
        "--collect-only",
        "-qq",
        "-p",
        "no:cacheprovider",
        "--import-mode=importlib",
        "--assert=plain",
    ]
    # pytest's collection output goes to stderr with the progress: stdout is the verdict's
    with contextlib.chdir(root), contextlib.redirect_stdout(sys.stderr):
        status = pytest.main(args, plugins=[collector])
    if collector.plan is None or status not in (pytest.ExitCode.OK, pytest.ExitCode.NO_TESTS_COLLECTED):
        raise CollectError(f"pytest could not collect {' '.join(pytest_args) or 'the suite'} in {root} "
                           f"(exit status {int(status)}; its output is above)")  # fmt: skip
    return collector.plan
