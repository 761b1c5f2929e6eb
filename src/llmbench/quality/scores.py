"""Superseded by :mod:`llmbench.quality.rouge`, :mod:`~llmbench.quality.drift`,
:mod:`~llmbench.quality.outputs` and :mod:`~llmbench.quality.semantic`; kept while callers switch."""

from __future__ import annotations

from llmbench.quality.drift import TARGET_SHARE, drift_metrics, first_difference
from llmbench.quality.outputs import QualityRecord, quality_records, read_outputs, write_outputs
from llmbench.quality.rouge import ROUGE_TYPES, quality_metrics, rouge_metrics, rouge_scores, split_sentences
from llmbench.quality.semantic import semantic_available, semantic_scores, semantic_similarity
from llmbench.stats import bootstrap_ci

__all__ = [
    "ROUGE_TYPES",
    "TARGET_SHARE",
    "QualityRecord",
    "bootstrap_ci",
    "drift_metrics",
    "first_difference",
    "quality_metrics",
    "quality_records",
    "read_outputs",
    "rouge_metrics",
    "rouge_scores",
    "semantic_available",
    "semantic_scores",
    "semantic_similarity",
    "split_sentences",
    "write_outputs",
]
