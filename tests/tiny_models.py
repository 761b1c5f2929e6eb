"""The tiny offline models of the harness's tests: :mod:`llmbench.testing.tiny_models`, re-exported.

This module holds no tests; ``tests/test_tiny_models.py`` checks the builders.
"""

from __future__ import annotations

from llmbench.testing.tiny_models import (
    GEMMA_BOS_ID,
    GEMMA_CHAT_TEMPLATE,
    GEMMA_END_OF_TURN_ID,
    GEMMA_EOS_ID,
    GEMMA_PAD_ID,
    MAX_POSITIONS,
    SEED,
    T5_EOS_ID,
    T5_PAD_ID,
    TokenizerKind,
    build_tiny_gemma3,
    build_tiny_t5,
    build_tiny_t5gemma,
    train_tokenizer,
)

__all__ = [
    "GEMMA_BOS_ID",
    "GEMMA_CHAT_TEMPLATE",
    "GEMMA_END_OF_TURN_ID",
    "GEMMA_EOS_ID",
    "GEMMA_PAD_ID",
    "MAX_POSITIONS",
    "SEED",
    "T5_EOS_ID",
    "T5_PAD_ID",
    "TokenizerKind",
    "build_tiny_gemma3",
    "build_tiny_t5",
    "build_tiny_t5gemma",
    "train_tokenizer",
]
