"""Checks that the tiny offline models of ``llmbench.testing.tiny_models`` load and generate like real ones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, BatchEncoding

from llmbench.testing.tiny_models import (
    GEMMA_BOS_ID,
    GEMMA_END_OF_TURN_ID,
    GEMMA_EOS_ID,
    build_tiny_gemma3,
    build_tiny_t5,
    build_tiny_t5gemma,
)

PROMPTS = [
    "The fox saw some grapes hanging high on a vine.",
    "Summarize: the committee voted to approve the new bridge over the river.",
]
MAX_NEW_TOKENS = 8

Builder = Callable[[Path], Path]
BUILDERS: dict[str, Builder] = {
    "gemma3": build_tiny_gemma3,
    "t5": build_tiny_t5,
    "t5gemma": build_tiny_t5gemma,
}


@pytest.fixture
def tiny_dirs(tiny_gemma3_dir: Path, tiny_t5_dir: Path, tiny_t5gemma_dir: Path) -> dict[str, Path]:
    """The session's tiny model directories (built by ``tests/conftest.py``), by name."""
    return {"gemma3": tiny_gemma3_dir, "t5": tiny_t5_dir, "t5gemma": tiny_t5gemma_dir}


def _generate(directory: Path, *, causal: bool) -> torch.Tensor:
    """Load ``directory`` through the Auto classes and return the new tokens of a greedy batch of 2."""
    tokenizer = AutoTokenizer.from_pretrained(directory)
    if causal:
        tokenizer.padding_side = "left"
        model = AutoModelForCausalLM.from_pretrained(directory)
    else:
        model = AutoModelForSeq2SeqLM.from_pretrained(directory)
    batch = tokenizer(PROMPTS, return_tensors="pt", padding=True)
    with torch.inference_mode():
        output = model.generate(**batch, max_new_tokens=MAX_NEW_TOKENS, do_sample=False)
    assert isinstance(output, torch.Tensor)
    # A causal model returns prompt + new tokens; an encoder-decoder the decoder start + new tokens.
    return output[:, batch["input_ids"].shape[1] :] if causal else output[:, 1:]


@pytest.mark.parametrize(("name", "causal"), [("gemma3", True), ("t5", False), ("t5gemma", False)])
def test_greedy_batch_generation_is_full_length_and_deterministic(
    tiny_dirs: dict[str, Path], name: str, causal: bool
) -> None:
    first = _generate(tiny_dirs[name], causal=causal)
    second = _generate(tiny_dirs[name], causal=causal)
    assert first.shape == (len(PROMPTS), MAX_NEW_TOKENS)
    assert torch.equal(first, second)
    assert not torch.equal(first[0], first[1]), "different prompts should give different outputs"


def test_builds_are_byte_identical(tiny_dirs: dict[str, Path], tmp_path: Path) -> None:
    for name, build in BUILDERS.items():
        again = build(tmp_path / name)
        for filename in ("model.safetensors", "tokenizer.json"):
            expected = (tiny_dirs[name] / filename).read_bytes()
            assert (again / filename).read_bytes() == expected, f"{name}: {filename} differs"


@pytest.mark.parametrize("name", ["gemma3", "t5", "t5gemma"])
def test_tokenizer_round_trips_text(tiny_dirs: dict[str, Path], name: str) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs[name])
    text = "The quick brown fox jumps over the lazy dog. It was 42 degrees at 6:30!"
    ids = tokenizer(text).input_ids
    assert tokenizer.decode(ids, skip_special_tokens=True) == text
    assert ids[-1] == tokenizer.eos_token_id if name == "t5" else ids[0] == tokenizer.bos_token_id
    assert len(ids) < 0.75 * len(text), "trained pieces should be longer than single characters"


def test_gemma_chat_template_renders_turns(tiny_dirs: dict[str, Path]) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_dirs["gemma3"])
    messages = [
        {"role": "system", "content": "Be brief."},
        {"role": "user", "content": "Summarize: the fox ate."},
    ]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    assert text == (
        "<bos><start_of_turn>user\nBe brief.\n\nSummarize: the fox ate.<end_of_turn>\n<start_of_turn>model\n"
    )
    encoded = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_dict=True)
    assert isinstance(encoded, BatchEncoding)
    ids: list[int] = encoded["input_ids"]
    assert ids[0] == GEMMA_BOS_ID
    assert ids.count(GEMMA_BOS_ID) == 1, "the template's <bos> must not be doubled"
    assert GEMMA_END_OF_TURN_ID in ids
    assert tokenizer.convert_tokens_to_ids(["<eos>", "<end_of_turn>"]) == [GEMMA_EOS_ID, GEMMA_END_OF_TURN_ID]
