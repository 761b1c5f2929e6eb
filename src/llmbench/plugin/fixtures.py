"""The fixtures a benchmark test asks for besides ``llm`` and ``llm_benchmark``: data, prompts, quality.

They ship with the plugin, so a project outside this repository writes a benchmark with nothing but a
matrix file and a test file (see docs/writing-benchmarks.md).
"""

from __future__ import annotations

import pytest

from llmbench.backends import LoadedModel
from llmbench.config.combination import Combination
from llmbench.config.settings import Settings
from llmbench.data import SHIPPED_DATA, DataError, Item, load_items
from llmbench.quality.runs import QualityRun, QualityRuns


@pytest.fixture(scope="session")
def summaries(llmbench_settings: Settings) -> list[Item]:
    """The summarization items: ``--llmbench-data`` (JSONL or CSV) or the shipped set."""
    path = llmbench_settings.data_path or SHIPPED_DATA
    try:
        return load_items(path)
    except DataError as error:
        raise pytest.UsageError(f"--llmbench-data: {error}") from None


@pytest.fixture
def prompt_batch(llm_combination: Combination, summaries: list[Item]) -> list[str]:
    """The first ``batch_size`` items of the data set, formatted with the model's prompt template."""
    if llm_combination.batch_size > len(summaries):
        pytest.skip(f"batch size {llm_combination.batch_size} exceeds the data set's {len(summaries)} items")
    return [llm_combination.model.format_prompt(item.text) for item in summaries[: llm_combination.batch_size]]


@pytest.fixture
def max_new_tokens(llm_combination: Combination, llmbench_settings: Settings) -> int:
    """Tokens generated per sequence in the timed call (option, matrix file or the model's setting)."""
    return llmbench_settings.max_new_tokens_for(llm_combination)


@pytest.fixture(scope="session")
def quality_runs(summaries: list[Item], llmbench_settings: Settings) -> QualityRuns | None:
    """The session's quality generations (None with ``--llmbench-quality-items=0``)."""
    count = llmbench_settings.quality_items
    if count == 0:
        return None
    return QualityRuns(
        items=summaries if count is None else summaries[:count],
        batch_size=llmbench_settings.quality_batch_size,
        max_new_tokens=llmbench_settings.max_new_tokens.value,
        target_share=llmbench_settings.quality_target,
        outputs_dir=llmbench_settings.outputs_dir,
    )


@pytest.fixture
def quality(
    quality_runs: QualityRuns | None, llm: LoadedModel, llm_combination: Combination, max_new_tokens: int
) -> QualityRun | None:
    """ROUGE (with intervals) and drift of this combination's model, precision and device.

    Generated once per session for each (model, precision, device), outside the timed rounds.
    """
    if quality_runs is None:
        return None
    return quality_runs.get(llm_combination, llm, max_new_tokens)
