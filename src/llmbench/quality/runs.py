"""Output quality of each loaded model: summaries of the whole data set, generated once per session.

For each (model, precision, device) the data set is summarised once, greedily, in batches of the
quality batch size, outside the timed rounds. The outputs are scored with ROUGE against the
references, compared with the model's reference precision (drift) when that precision ran earlier
in the session, and written per item to a JSONL file for reviewers.

A data set without references (a file of prompts) is generated and compared for drift all the same;
its ROUGE, semantic similarity and ROUGE shares are n/a with the reason (:func:`no_reference_reason`),
never 0.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.config.combination import Combination
from llmbench.data import Item
from llmbench.engine_types import LoadedModel
from llmbench.metrics import Metric
from llmbench.quality.drift import drift_metrics
from llmbench.quality.outputs import quality_records, write_outputs
from llmbench.quality.rouge import ROUGE_TYPES, rouge_metrics, rouge_scores
from llmbench.quality.semantic import semantic_available, semantic_similarity

LoadKey = tuple[str, str, str]
#: The figures that need a reference text per item: n/a with the reason for a data set without references.
REFERENCE_METRICS = (*ROUGE_TYPES, "semantic_sim", *(f"{name}_share" for name in ROUGE_TYPES), "quality_target_met")


def no_reference_reason(dataset: str | None) -> str:
    """Why the reference-based figures of a data set without references are n/a (saved as their note)."""
    which = f"the data set {dataset!r}" if dataset else "the data set"
    return f"n/a: {which} has no reference texts (prompts only): nothing to score the outputs against"


@dataclass(frozen=True)
class QualityRun:
    """The summaries of one loaded model over the data set, with their scores."""

    key: LoadKey
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    token_ids: tuple[tuple[int, ...], ...]
    scores: dict[str, list[float]]
    metrics: tuple[Metric, ...]
    outputs_file: Path | None


class QualityRuns:
    """Generates and scores the quality set once per loaded model; keeps results for drift."""

    def __init__(
        self,
        items: Sequence[Item],
        batch_size: int,
        max_new_tokens: int | None,
        target_share: float,
        outputs_dir: Path | None,
        dataset: str | None = None,
    ) -> None:
        self.items = list(items)
        #: The data set's name, for the reason of n/a figures.
        self.dataset = dataset
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.target_share = target_share
        self.outputs_dir = outputs_dir
        self._runs: dict[LoadKey, QualityRun] = {}

    def get(self, combination: Combination, llm: LoadedModel, max_new_tokens: int) -> QualityRun:
        key = combination.load_key
        if key not in self._runs:
            self._runs[key] = self._run(combination, llm, self.max_new_tokens or max_new_tokens)
        return self._runs[key]

    def _run(self, combination: Combination, llm: LoadedModel, max_new_tokens: int) -> QualityRun:
        model = combination.model
        texts: list[str] = []
        token_ids: list[tuple[int, ...]] = []
        for start in range(0, len(self.items), self.batch_size):
            batch = self.items[start : start + self.batch_size]
            generation = llm.generate([model.format_prompt(item.text) for item in batch], max_new_tokens)
            texts.extend(generation.texts)
            token_ids.extend(generation.token_ids)
        references = [item.reference for item in self.items]
        scored = any(references)
        scores = rouge_scores(texts, references) if scored else {}
        metrics: list[Metric] = rouge_metrics(scores) if scored else []
        if scored and semantic_available():
            # Meaning-based similarity (all-MiniLM-L6-v2, offline): rewards paraphrases ROUGE misses.
            metrics.append(semantic_similarity(texts, references))
        reference_key = (model.name, model.reference_precision, combination.device)
        reference = self._runs.get(reference_key) if reference_key != combination.load_key else None
        if reference is not None:
            # Without references the ROUGE shares are computed on zeros, then replaced by n/a below.
            zeros = {name: [0.0] * len(texts) for name in ROUGE_TYPES}
            metrics.extend(
                drift_metrics(
                    token_ids, reference.token_ids, texts, reference.texts, scores or zeros, reference.scores or zeros,
                    target_share=self.target_share, reference_precision=model.reference_precision,
                )
            )  # fmt: skip
        elif reference_key != combination.load_key:
            metrics.append(
                Metric.of(
                    "drift_identical_share", None,
                    note=f"n/a: the reference precision {model.reference_precision} did not run before "
                    f"{combination.precision} in this session",
                )
            )  # fmt: skip
        if not scored:
            reason = no_reference_reason(self.dataset)
            metrics = [m for m in metrics if m.name not in REFERENCE_METRICS]
            metrics.extend(Metric.of(name, None, note=reason) for name in REFERENCE_METRICS)
        outputs_file = None
        if self.outputs_dir is not None:
            outputs_file = self.outputs_dir / f"{model.name}-{combination.precision}-{combination.device}.jsonl"
            write_outputs(
                outputs_file,
                quality_records(
                    [item.id for item in self.items], references, texts, scores if scored else None,
                    reference.texts if reference is not None else None,
                ),
            )  # fmt: skip
        return QualityRun(
            key=combination.load_key,
            ids=tuple(item.id for item in self.items),
            texts=tuple(texts),
            token_ids=tuple(token_ids),
            scores=scores,
            metrics=tuple(metrics),
            outputs_file=outputs_file,
        )
