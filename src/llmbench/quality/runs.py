"""Output quality of each loaded model: the whole data set generated once per session, and scored.

For each (model, precision, device) the data set is generated once, greedily, in batches of the quality
batch size, outside the timed rounds. The outputs of the items with a reference are scored with ROUGE, those
of the items with an accuracy check with :mod:`llmbench.quality.accuracy`; both are compared with the
combination's reference (drift, each score's share of the reference's and its difference: see
:mod:`llmbench.quality.comparison`) where the reference's outputs are already there (it ran earlier in the
session, or is in the named reference run), and written per item to a JSONL file. The session compares again
at its end, from the saved outputs (``llmbench.plugin.comparison_hooks``), and ``llmbench merge`` over the
merged shards: a reference that runs later, or in another shard, is compared there.

A data set without references (a file of prompts, an accuracy set) is generated and compared for drift all
the same; its ROUGE, semantic similarity and ROUGE shares are n/a with the reason
(:func:`no_reference_reason`), never 0.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from llmbench.config.combination import DEFAULT_DATASET, Combination, ModelSpec
from llmbench.data import Item
from llmbench.engine_types import Generation, LoadedModel
from llmbench.metrics import Metric
from llmbench.quality.accuracy import accuracy_metric, accuracy_scores
from llmbench.quality.comparison import (
    ITEM_SCORES_KEY,
    ITEMS_DIGEST_KEY,
    OUTPUT_TOKEN_IDS_KEY,
    REFERENCE_INFO_KEY,
    SESSION_SOURCE,
    OutputKey,
    OutputSet,
    compare,
    items_digest,
    mismatch,
)
from llmbench.quality.drift import TARGET_SHARE
from llmbench.quality.outputs import quality_records, write_outputs
from llmbench.quality.rouge import ROUGE_TYPES, rouge_metrics, rouge_scores
from llmbench.quality.semantic import semantic_available, semantic_similarity

LoadKey = tuple[str, str, str]
#: Generates one batch of the quality pass and gives, beside the generation, one record of figures per item
#: (the caller times it: quality/ imports no measure/, see llmbench.measure.per_item). Arguments: the model, the
#: prompts, max_new_tokens, the items' ids.
TimedBatch = Callable[[LoadedModel, list[str], int, list[str]], tuple[Generation, list[dict[str, Any]]]]
#: The figures that need a reference text per item: n/a with the reason for a data set without references.
REFERENCE_METRICS = (*ROUGE_TYPES, "semantic_sim", *(f"{name}_share" for name in ROUGE_TYPES), "quality_target_met",
                     *(f"{name}_diff" for name in (*ROUGE_TYPES, "semantic_sim")))  # fmt: skip


def no_reference_reason(dataset: str | None, checked: bool = False) -> str:
    """Why the reference-based figures of a data set without references are n/a (saved as their note)."""
    which = f"the data set {dataset!r}" if dataset else "the data set"
    if checked:
        return f"n/a: {which} has no reference texts (its items have accuracy checks: see accuracy)"
    return f"n/a: {which} has no reference texts (prompts only): nothing to score the outputs against"


def prompt_of(model: ModelSpec, item: Item) -> str:
    """The prompt of ``item``: an item with an accuracy check is a question written as the model should see it
    (``Question: ...\nAnswer:``), its text as it is; any other item's text in the model's prompt template
    (a summary instruction). A chat model gets either inside its chat template (docs/quality.md)."""
    return item.text if item.check is not None else model.format_prompt(item.text)


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
    #: Per-item figures of the pass's timed calls (``--llmbench-per-item``; docs/metrics.md), in item order.
    per_item: tuple[dict[str, Any], ...] = ()
    #: Score name -> item id -> value (ROUGE, semantic_sim, accuracy), over the items each applies to.
    item_scores: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: :func:`llmbench.quality.comparison.items_digest` of the items.
    digest: str | None = None
    #: The data set's name (a combination's ``dataset_name``).
    dataset: str = DEFAULT_DATASET
    #: The (model, precision, device) it is compared with (``Combination.reference_key``), and the target.
    reference: LoadKey | None = None
    target_share: float = TARGET_SHARE

    def output_set(self, source: str = SESSION_SOURCE) -> OutputSet:
        """These outputs as a comparison reads them."""
        return OutputSet(*self.key, self.dataset, self.ids, self.texts, self.token_ids, self.item_scores,
                         self.digest, source)  # fmt: skip

    def saved_info(self) -> dict[str, Any]:
        """What a benchmark's ``extra_info`` keeps for comparisons from saved outputs (besides ``outputs``):
        the token ids and scores per item, the items' digest and the reference wanted."""
        reference = self.reference or self.key
        return {
            OUTPUT_TOKEN_IDS_KEY: {item: list(tokens) for item, tokens in zip(self.ids, self.token_ids, strict=True)},
            ITEM_SCORES_KEY: {name: dict(values) for name, values in self.item_scores.items()},
            ITEMS_DIGEST_KEY: self.digest,
            REFERENCE_INFO_KEY: {**dict(zip(("model", "precision", "device"), reference, strict=True)),
                                 "target_share": self.target_share},
        }  # fmt: skip


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
        timed_batches: Callable[[Combination], TimedBatch] | None = None,
        references: Mapping[OutputKey, OutputSet] | None = None,
    ) -> None:
        self.items = list(items)
        #: The data set's name, for the reason of n/a figures.
        self.dataset = dataset
        self.batch_size = batch_size
        self.max_new_tokens = max_new_tokens
        self.target_share = target_share
        self.outputs_dir = outputs_dir
        #: A fresh timer of the pass of each combination (None: the pass is not timed, no per-item figures).
        self.timed_batches = timed_batches
        self._runs: dict[LoadKey, QualityRun] = {}
        #: The named reference run's outputs (``--llmbench-reference-run``), for references the session lacks.
        self.references: Mapping[OutputKey, OutputSet] = references or {}

    def reference_outputs(self, key: LoadKey, dataset: str) -> OutputSet | None:
        """The outputs of the reference ``key``: this session's where it ran, else the reference run's."""
        run = self._runs.get(key)
        return run.output_set() if run is not None else self.references.get((*key, dataset))

    def get(self, combination: Combination, llm: LoadedModel, max_new_tokens: int) -> QualityRun:
        key = combination.load_key
        if key not in self._runs:
            self._runs[key] = self._run(combination, llm, self.max_new_tokens or max_new_tokens)
        return self._runs[key]

    def _run(self, combination: Combination, llm: LoadedModel, max_new_tokens: int) -> QualityRun:
        model = combination.model
        texts: list[str] = []
        token_ids: list[tuple[int, ...]] = []
        per_item: list[dict[str, Any]] = []
        timed = None if self.timed_batches is None else self.timed_batches(combination)
        for start in range(0, len(self.items), self.batch_size):
            batch = self.items[start : start + self.batch_size]
            prompts = [prompt_of(model, item) for item in batch]
            if timed is None:
                generation = llm.generate(prompts, max_new_tokens)
            else:
                generation, records = timed(llm, prompts, max_new_tokens, [item.id for item in batch])
                per_item.extend(records)
            texts.extend(generation.texts)
            token_ids.extend(generation.token_ids)
        references = [item.reference for item in self.items]
        with_reference = [i for i, item in enumerate(self.items) if item.reference]
        checks = [item.check for item in self.items]
        checked = [i for i, check in enumerate(checks) if check is not None]
        # Per score, the per-item values over the items it applies to, in item order (the reference's outputs
        # have the same items): what the shares and the gate pair item by item.
        scores: dict[str, list[float]] = {}
        semantic: list[float] = []
        metrics: list[Metric] = []
        if with_reference:
            scored_texts = [texts[i] for i in with_reference]
            scored_references = [references[i] for i in with_reference]
            scores.update(rouge_scores(scored_texts, scored_references))
            metrics.extend(rouge_metrics(scores))
            if semantic_available():
                # Meaning-based similarity (all-MiniLM-L6-v2, offline): rewards paraphrases ROUGE misses.
                metrics.append(similarity := semantic_similarity(scored_texts, scored_references))
                semantic = list(similarity.samples)
        if checked:
            scores["accuracy"] = accuracy_scores([texts[i] for i in checked], [c for c in checks if c is not None])
            metrics.append(accuracy_metric(scores["accuracy"]))
        ids = tuple(item.id for item in self.items)
        # Per score, its values by item id (what a comparison pairs, here and from the saved run).
        item_scores = {
            name: {
                ids[row]: value
                for row, value in zip(checked if name == "accuracy" else with_reference, values, strict=True)
            }
            for name, values in {**scores, "semantic_sim": semantic}.items()
            if values
        }
        current = OutputSet(*combination.load_key, combination.dataset_name, ids, tuple(texts), tuple(token_ids),
                            item_scores, items_digest(self.items))  # fmt: skip
        wanted = combination.reference_key
        reference = None if wanted == combination.load_key else self.reference_outputs(wanted, combination.dataset_name)
        if reference is not None:
            metrics.extend(compare(current, reference, self.target_share))
        elif wanted != combination.load_key:
            named = wanted[1] if (wanted[0], wanted[2]) == (model.name, combination.device) else " ".join(wanted)
            metrics.append(
                Metric.of(
                    "drift_identical_share", None,
                    note=f"n/a: the reference {named} did not run before {combination.precision} in this session "
                    "(compared again at the end of the session, and by llmbench merge over shards)",
                )
            )  # fmt: skip
        aligned = None
        if reference is not None and mismatch(current, reference) is None:
            row = {item: index for index, item in enumerate(reference.ids)}
            aligned = [reference.texts[row[item]] for item in ids]
        if not with_reference:
            reason = no_reference_reason(self.dataset, checked=bool(checked))
            kept = set() if not checked else {"quality_target_met"}
            missing = [name for name in REFERENCE_METRICS if name not in kept]
            metrics = [m for m in metrics if m.name not in missing]
            metrics.extend(Metric.of(name, None, note=reason) for name in missing)
        outputs_file = None
        if self.outputs_dir is not None:
            outputs_file = self.outputs_dir / f"{model.name}-{combination.precision}-{combination.device}.jsonl"
            correct = dict(zip(checked, scores.get("accuracy", ()), strict=True))
            write_outputs(
                outputs_file,
                quality_records(
                    [item.id for item in self.items], references, texts,
                    _per_item(scores, with_reference, len(texts)) if with_reference else None,
                    aligned,
                    checks=[None if check is None else check.describe() for check in checks],
                    correct=[None if i not in correct else correct[i] == 1.0 for i in range(len(texts))],
                    semantic=[item_scores.get("semantic_sim", {}).get(item) for item in ids],
                    token_ids=token_ids,
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
            per_item=tuple(per_item),
            item_scores=item_scores,
            digest=current.digest,
            dataset=combination.dataset_name,
            reference=wanted,
            target_share=self.target_share,
        )


def _per_item(scores: dict[str, list[float]], rows: Sequence[int], n: int) -> dict[str, list[float | None]]:
    """The ROUGE scores of the items ``rows`` spread over all ``n`` items (None for the others)."""
    out: dict[str, list[float | None]] = {}
    for name in ROUGE_TYPES:
        spread: list[float | None] = [None] * n
        for row, value in zip(rows, scores[name], strict=True):
            spread[row] = value
        out[name] = spread
    return out
