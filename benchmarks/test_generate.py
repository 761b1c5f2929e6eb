"""One timed ``generate`` call on a batch, for every combination of the matrix, with its quality."""

from __future__ import annotations

from llmbench.backends import LoadedModel
from llmbench.config.combination import Combination
from llmbench.measure.generate import GenerateBenchmark
from llmbench.quality.runs import QualityRun


def test_generate(
    llm_benchmark: GenerateBenchmark,
    llm: LoadedModel,
    llm_combination: Combination,
    prompt_batch: list[str],
    max_new_tokens: int,
    quality: QualityRun | None,
) -> None:
    result = llm_benchmark.run(llm, prompt_batch, max_new_tokens)
    if quality is not None:
        llm_benchmark.add_quality(quality)
    assert len(result.texts) == llm_combination.batch_size
    assert all(n <= max_new_tokens for n in result.generated_tokens), result.generated_tokens
