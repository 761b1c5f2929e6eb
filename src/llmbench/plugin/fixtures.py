"""The fixtures a benchmark test asks for besides ``llm`` and ``llm_benchmark``: data, prompts, quality.

They ship with the plugin, so a project outside this repository writes a benchmark with nothing but a
matrix file and a test file (see docs/writing-benchmarks.md).
"""

from __future__ import annotations

from collections.abc import Mapping

import pytest

from llmbench.backends import LoadedModel
from llmbench.config.combination import Combination
from llmbench.config.settings import SETTINGS_KEY, Settings
from llmbench.data import DataError, Item, load_dataset
from llmbench.plugin.prompt_lengths import long_prompt_batch
from llmbench.quality.runs import QualityRun, QualityRuns, prompt_of

#: The session's data sets, read and checked once when pytest starts (name -> items, in matrix order).
DATASETS_KEY = pytest.StashKey[dict[str, list[Item]]]()


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


@pytest.hookimpl(trylast=True)
def pytest_configure(config: pytest.Config) -> None:
    """Read the data sets before collection: a bad file stops the session before any model loads."""
    if SETTINGS_KEY in config.stash:
        config.stash[DATASETS_KEY] = read_datasets(config.stash[SETTINGS_KEY])


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


@pytest.fixture(scope="session")
def quality_runs(
    llmbench_datasets: Mapping[str, list[Item]], llmbench_settings: Settings
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
        )
        for name, items in llmbench_datasets.items()
    }


@pytest.fixture
def quality(
    quality_runs: dict[str, QualityRuns] | None, llm: LoadedModel, llm_combination: Combination, max_new_tokens: int
) -> QualityRun | None:
    """ROUGE (with intervals) and drift of this combination's model, precision and device on its data set;
    n/a with the reason where the data set has no references.

    Generated once per session for each (model, precision, device) and data set, outside the timed rounds.
    """
    if quality_runs is None:
        return None
    return quality_runs[llm_combination.dataset_name].get(llm_combination, llm, max_new_tokens)
