"""ROUGE of one combination's outputs against the references: per-item F1 and the metrics over items.

``rouge1``, ``rouge2``, ``rougeLsum``: per-item F1 from Google's ``rouge-score`` package (stemmed); the
mean over items is the value, with a percentile-bootstrap 95% interval (:mod:`llmbench.stats`).
See docs/quality.md.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np

from llmbench.metrics import Metric
from llmbench.stats import CONFIDENCE, SEED, bootstrap_ci

__all__ = ["ROUGE_TYPES", "check_lengths", "quality_metrics", "rouge_metrics", "rouge_scores", "split_sentences"]

#: The ROUGE variants reported, in this order.
ROUGE_TYPES: Final[tuple[str, ...]] = ("rouge1", "rouge2", "rougeLsum")

# A sentence ends at ".", "!" or "?" (repeated, possibly followed by closing quotes or brackets) and
# whitespace, or at a line break. A small stand-in for nltk's punkt, whose data is not available
# offline; it differs from punkt mainly on rare abbreviations, which rougeLsum barely notices.
_BOUNDARY: Final = re.compile(r"([.!?]+[\"'”’)\]]*)\s+(?=\S)|[ \t]*(?:\r\n|[\r\n\u2028\u2029\x85])\s*")
# Abbreviations after which a full stop does not end a sentence, and single-letter initials ("J. Smith").
_ABBREVIATIONS: Final = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "no", "fig", "inc", "ltd", "co", "corp",
     "gen", "col", "lt", "sgt", "rev", "e.g", "i.e", "approx"}
)  # fmt: skip
_LAST_WORD: Final = re.compile(r"(\w+(?:\.\w+)*)\.$")


def _ends_in_abbreviation(candidate: str) -> bool:
    match = _LAST_WORD.search(candidate)
    if match is None:
        return False
    word = match.group(1)
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences with a regular expression (no nltk data needed); blank ones dropped."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end(1) if match.group(1) else match.start()
        candidate = text[start:end]
        if match.group(1) and _ends_in_abbreviation(candidate):
            continue
        sentences.append(candidate.strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


@functools.lru_cache(maxsize=1)
def _scorer() -> Any:
    """The one ``RougeScorer`` of the process (built on first use: importing it pulls in nltk)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def check_lengths(**sequences: Sequence[Any]) -> int:
    """The common length of the named sequences; a ValueError naming both lengths where two differ."""
    (first_name, first), *rest = sequences.items()
    for name, sequence in rest:
        if len(sequence) != len(first):
            raise ValueError(f"{first_name} has {len(first)} items but {name} has {len(sequence)}")
    return len(first)


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """Per-item ROUGE F1 of each prediction against its reference: ``{"rouge1": [...], ...}``.

    rouge-score's README ("Two flavors of ROUGE-L"): for ``rougeLsum``, "Newlines in the text are
    interpreted as sentence boundaries", so both sides are split with :func:`split_sentences` and
    joined with "\\n". rouge1 and rouge2 are unaffected by this (the
    tokenizer keeps only lower-case letters and digits). An empty or blank prediction scores 0.
    """
    check_lengths(predictions=predictions, references=references)
    scores: dict[str, list[float]] = {name: [] for name in ROUGE_TYPES}
    scorer = _scorer()
    for prediction, reference in zip(predictions, references, strict=True):
        if not prediction.strip() or not reference.strip():
            for name in ROUGE_TYPES:
                scores[name].append(0.0)
            continue
        result = scorer.score("\n".join(split_sentences(reference)), "\n".join(split_sentences(prediction)))
        for name in ROUGE_TYPES:
            scores[name].append(float(result[name].fmeasure))
    return scores


def rouge_metrics(scores: Mapping[str, Sequence[float]]) -> list[Metric]:
    """The ROUGE metrics from per-item F1 scores (as :func:`rouge_scores` gives them)."""
    metrics: list[Metric] = []
    for name in ROUGE_TYPES:
        if name not in scores:
            raise ValueError(f"scores lack {name!r} (have {sorted(scores)}; need {', '.join(ROUGE_TYPES)})")
        items = [float(s) for s in scores[name]]
        if not items:
            raise ValueError(f"no items scored for {name!r}")
        metrics.append(
            Metric.of(
                name,
                float(np.mean(items)),
                items,
                ci=bootstrap_ci(items),
                note=(
                    f"rouge-score F1, stemmed; mean over {len(items)} items, "
                    f"bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
                ),
            )
        )
    return metrics


def quality_metrics(predictions: Sequence[str], references: Sequence[str]) -> list[Metric]:
    """``rouge1``, ``rouge2`` and ``rougeLsum`` of the predictions: mean F1, per-item samples, 95% CI."""
    if len(predictions) == 0 and len(references) == 0:
        raise ValueError("no items to score")
    return rouge_metrics(rouge_scores(predictions, references))
