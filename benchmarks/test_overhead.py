"""What the harness costs inside a timed call: the probed ``generate`` against a bare call of the library.

Both run in this process, interleaved in alternating pairs, on the same prompts and token counts; the
benchmark's own rounds time the probed call, and ``extra_info["metrics"]["harness_overhead"]`` is the
median over pairs of probed / bare - 1 (target below 1%: docs/metrics.md). The bare call needs the
model in this process: with model workers (the default) this benchmark is skipped; run it with
``--llmbench-isolation=none``.
"""

from __future__ import annotations

from typing import Any

import pytest

from llmbench.backends import LoadedModel
from llmbench.config.combination import Combination
from llmbench.measure.probes import probes_for
from llmbench.metrics import METRICS_KEY, Metric
from llmbench.selfcheck.agreement import bare_llama_cpp, bare_transformers, harness_overhead

PAIRS = 10


def test_harness_overhead(
    benchmark: Any, llm: LoadedModel, llm_combination: Combination, prompt_batch: list[str], max_new_tokens: int
) -> None:
    from llmbench.backends.llama_cpp_backend import LlamaCppModel

    if llm_combination.batch_size != 1:
        pytest.skip("the overhead is measured at batch size 1 (per call, not per sequence)")
    counts = llm.generate(prompt_batch, max_new_tokens).generated_tokens
    if isinstance(llm, LlamaCppModel):
        bare = bare_llama_cpp(llm, prompt_batch, counts)
    else:
        from llmbench.backends.transformers_backend import TransformersModel

        if not isinstance(llm, TransformersModel):
            pytest.skip("the overhead needs the model in this process (--llmbench-isolation=none)")
        bare = bare_transformers(llm, prompt_batch, max(counts))
    probes = probes_for(llm_combination.device)
    overhead = harness_overhead(lambda: llm.generate(prompt_batch, max_new_tokens), bare, probes.memory, PAIRS)
    benchmark.extra_info.update(llm_combination.as_info())
    note = f"median over {PAIRS} interleaved pairs of probed generate / bare library call - 1"
    metric = Metric("harness_overhead", overhead.ratio - 1, "ratio", "lower", note=note)
    benchmark.extra_info[METRICS_KEY] = {metric.name: metric.to_json()}
    benchmark.pedantic(lambda: llm.generate(prompt_batch, max_new_tokens), rounds=1, iterations=1)
