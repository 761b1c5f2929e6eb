"""The fixtures a benchmark test asks for besides ``llm`` and ``llm_benchmark``: data, prompts, quality.

They ship with the plugin, so a project outside this repository writes a benchmark with nothing but a
matrix file and a test file (see docs/writing-benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import replace
from typing import Any

import pytest

from llmbench.backends import LoadedModel
from llmbench.config.combination import Combination
from llmbench.config.settings import SETTINGS_KEY, Settings, option_value
from llmbench.data import DataError, Item, load_dataset
from llmbench.measure.per_item import ItemTimer, time_pass
from llmbench.plugin.prompt_lengths import long_prompt_batch
from llmbench.quality.comparison import OutputKey, OutputSet
from llmbench.quality.runs import QualityRun, QualityRuns, TimedBatch, prompt_of
from llmbench.workers.benchmark import timed_call

#: The session's data sets, read and checked once when pytest starts (name -> items, in matrix order).
DATASETS_KEY = pytest.StashKey[dict[str, list[Item]]]()
#: The session's ``--llmbench-per-item`` mode, checked when pytest starts.
PER_ITEM_MODE_KEY = pytest.StashKey[str]()


def read_datasets(settings: Settings) -> dict[str, list[Item]]:
    """Every data set of the matrix, read and checked; a bad one is a usage error naming where it was set,
    the file, the line and the problem."""
    axis = settings.matrix.datasets
    out = {}
    for entry in axis.values:
        try:
            out[entry.name] = load_dataset(entry.name, entry.path)
        except DataError as error:
            raise pytest.UsageError(f"data set {entry.name} (from {axis.origin}): {error}") from None
    return out


def per_item_mode(config: pytest.Config, settings: Settings) -> str:
    """``--llmbench-per-item`` (docs/metrics.md, Per-item figures). Its items are the quality items: with
    ``--llmbench-quality-items=0`` the default turns off, a mode asked for is a usage error naming both."""
    mode = option_value(config, "--llmbench-per-item")
    if settings.quality_items == 0 and mode.value != "off":
        if mode.kind == "default":
            return "off"
        raise pytest.UsageError(
            f"--llmbench-per-item: {mode.value!r} (from {mode.origin}) times the quality items, but "
            f"--llmbench-quality-items is 0 (from {settings.origins.get('--llmbench-quality-items', 'the default')}); "
            "give --llmbench-quality-items a number or 'all', or set --llmbench-per-item=off"
        )
    return str(mode.value)


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Read the data sets before collection: a bad file stops the session before any model loads (a bad
    ``--llmbench-per-item`` too)."""
    if SETTINGS_KEY in config.stash:
        config.stash[DATASETS_KEY] = read_datasets(config.stash[SETTINGS_KEY])
        config.stash[PER_ITEM_MODE_KEY] = per_item_mode(config, config.stash[SETTINGS_KEY])


@pytest.fixture(scope="session")
def llmbench_per_item(pytestconfig: pytest.Config, llmbench_settings: Settings) -> str:
    """``--llmbench-per-item``: ``quality`` (the quality pass's calls are timed item by item), ``batch-sizes``
    (each test times every quality item at its own batch size) or ``off``."""
    if PER_ITEM_MODE_KEY not in pytestconfig.stash:
        pytestconfig.stash[PER_ITEM_MODE_KEY] = per_item_mode(pytestconfig, llmbench_settings)
    return pytestconfig.stash[PER_ITEM_MODE_KEY]


@pytest.fixture(scope="session")
def llmbench_datasets(pytestconfig: pytest.Config, llmbench_settings: Settings) -> dict[str, list[Item]]:
    """Every data set of the matrix by name (``[matrix] datasets`` or ``--llmbench-data``), in matrix order."""
    if DATASETS_KEY not in pytestconfig.stash:
        pytestconfig.stash[DATASETS_KEY] = read_datasets(llmbench_settings)
    return pytestconfig.stash[DATASETS_KEY]


@pytest.fixture(scope="session")
def summaries(llmbench_datasets: Mapping[str, list[Item]]) -> list[Item]:
    """The items of the matrix's first data set (the only one, unless the matrix lists several: a test's own
    are ``dataset_items``)."""
    return next(iter(llmbench_datasets.values()))


@pytest.fixture
def dataset_items(llm_combination: Combination, llmbench_datasets: Mapping[str, list[Item]]) -> list[Item]:
    """The items of this test's data set (the combination's)."""
    return llmbench_datasets[llm_combination.dataset_name]


@pytest.fixture
def prompt_batch(request: pytest.FixtureRequest, llm_combination: Combination, dataset_items: list[Item]) -> list[str]:
    """The first ``batch_size`` items of the data set, formatted with the model's prompt template (an item
    with an accuracy check: its text as it is, :func:`llmbench.quality.runs.prompt_of`). On the prompt-length
    axis: prompts of exactly that many tokens of the model's tokenizer (:mod:`llmbench.plugin.prompt_lengths`)."""
    if llm_combination.prompt_length is not None:
        return long_prompt_batch(request, llm_combination, dataset_items)
    if llm_combination.batch_size > len(dataset_items):
        pytest.skip(f"batch size {llm_combination.batch_size} exceeds the {len(dataset_items)} items of the data "
                    f"set {llm_combination.dataset_name}")  # fmt: skip
    return [prompt_of(llm_combination.model, item) for item in dataset_items[: llm_combination.batch_size]]


@pytest.fixture
def max_new_tokens(llm_combination: Combination, llmbench_settings: Settings) -> int:
    """Tokens generated per sequence in the timed call (option, matrix file or the model's setting)."""
    return llmbench_settings.max_new_tokens_for(llm_combination)


def _quality_pass_timer(batch_size: int) -> Callable[[Combination], TimedBatch]:
    """A fresh per-item timer of each combination's quality pass (``--llmbench-per-item=quality``)."""
    return lambda combination: ItemTimer(timed_call(combination.device), "quality", batch_size)


@pytest.fixture(scope="session")
def quality_runs(
    llmbench_datasets: Mapping[str, list[Item]],
    llmbench_settings: Settings,
    llmbench_per_item: str,
    llmbench_reference_outputs: Mapping[OutputKey, OutputSet],
) -> dict[str, QualityRuns] | None:
    """The session's quality generations, one :class:`QualityRuns` per data set (None with
    ``--llmbench-quality-items=0``). Where the test ids name the data set, its outputs are written to a
    folder of its own under the outputs folder."""
    settings = llmbench_settings
    count = settings.quality_items
    if count == 0:
        return None
    named = settings.matrix.names_datasets
    return {
        name: QualityRuns(
            items=items if count is None else items[:count],
            batch_size=settings.quality_batch_size,
            max_new_tokens=settings.max_new_tokens.value,
            target_share=settings.quality_target,
            outputs_dir=settings.outputs_dir / name if named else settings.outputs_dir,
            dataset=name,
            timed_batches=_quality_pass_timer(settings.quality_batch_size) if llmbench_per_item == "quality" else None,
            references=llmbench_reference_outputs,
        )
        for name, items in llmbench_datasets.items()
    }


@pytest.fixture(scope="session")
def _llmbench_item_passes() -> dict[tuple[Any, ...], tuple[dict[str, Any], ...]]:
    """The per-item records of each test's own pass (``--llmbench-per-item=batch-sizes``), by data set, model,
    precision, device and batch size: the tests of one such combination (prompt lengths) share one pass."""
    return {}


@pytest.fixture
def quality(
    quality_runs: dict[str, QualityRuns] | None,
    llm: LoadedModel,
    llm_combination: Combination,
    max_new_tokens: int,
    llmbench_per_item: str,
    _llmbench_item_passes: dict[tuple[Any, ...], tuple[dict[str, Any], ...]],
) -> QualityRun | None:
    """ROUGE (with intervals) and drift of this combination's model, precision and device on its data set;
    n/a with the reason where the data set has no references; with the per-item figures of its pass
    (``per_item``, see ``--llmbench-per-item``).

    Generated once per session for each (model, precision, device) and data set, outside the timed rounds.
    With ``--llmbench-per-item=batch-sizes`` every quality item is also generated, timed call by call, in
    batches of this test's batch size (once per batch size), before the test's timed rounds.
    """
    if quality_runs is None:
        return None
    runs = quality_runs[llm_combination.dataset_name]
    run = runs.get(llm_combination, llm, max_new_tokens)
    if llmbench_per_item != "batch-sizes":
        return run
    c = llm_combination
    key = (c.dataset_name, *c.load_key, c.batch_size)
    if key not in _llmbench_item_passes:
        timer = ItemTimer(timed_call(c.device), "test", c.batch_size)
        ids, prompts = [item.id for item in runs.items], [prompt_of(c.model, item) for item in runs.items]
        records = time_pass(timer, llm, ids, prompts, runs.max_new_tokens or max_new_tokens)
        _llmbench_item_passes[key] = tuple(records)
    return replace(run, per_item=_llmbench_item_passes[key])
