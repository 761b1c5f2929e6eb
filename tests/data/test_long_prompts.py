"""Prompts of an exact number of tokens (the ``prompt_tokens`` axis): a FAKE word tokenizer for the search
itself, the tiny Gemma 3's real SentencePiece tokenizer through the transformers backend for exactness."""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from pathlib import Path

import pytest

from llmbench.backends.transformers_backend import TransformersBackend, TransformersModel
from llmbench.config.combination import Combination, ModelSpec
from llmbench.config.models import BASE_SUMMARY_TEMPLATE
from llmbench.data import SHIPPED_DATA, load_items
from llmbench.data.long_prompts import (
    PromptLengthError,
    PromptTokenizer,
    build_prompt,
    build_prompts,
    context_reason,
    prompts_for_model,
    source_text,
)
from llmbench.measure.timers import CpuTimer
from llmbench.testing.tiny_models import MAX_POSITIONS

TEXTS = [item.text for item in load_items(SHIPPED_DATA)]


class FakeWordTokenizer:
    """A FAKE tokenizer: one token per whitespace-separated word, plus a BOS token per prompt; words listed
    in ``wide`` count twice in a prompt (as a cut can leave a piece that encodes into two tokens), so some
    counts are never reached."""

    def __init__(self, context: int | None = 1000, wide: frozenset[str] = frozenset()) -> None:
        self.context = context
        self.wide = wide
        self.vocabulary: dict[str, int] = {}

    def text_tokens(self, text: str) -> list[int]:
        return [self.vocabulary.setdefault(word, len(self.vocabulary)) for word in text.split()]

    def text_of(self, tokens: Sequence[int]) -> str:
        words = {index: word for word, index in self.vocabulary.items()}
        return " ".join(words[token] for token in tokens)

    def prompt_token_count(self, prompt: str) -> int:
        words = prompt.split()
        return 1 + len(words) + sum(1 for word in words if word in self.wide)

    def context_tokens(self) -> int | None:
        return self.context


def test_the_fake_is_a_prompt_tokenizer() -> None:
    assert isinstance(FakeWordTokenizer(), PromptTokenizer)
    assert not isinstance(object(), PromptTokenizer)


def test_a_prompt_has_exactly_the_length_with_the_template_and_bos_counted() -> None:
    tokenizer = FakeWordTokenizer()
    built = build_prompt(tokenizer, "one two three four five six seven eight nine ten", 7, "Text: {text} End.")
    # BOS + "Text:" + 4 words + "End." = 7
    assert built.text == "Text: one two three four End."
    assert (built.length, built.tokens) == (7, 7)
    assert tokenizer.prompt_token_count(built.text) == 7


def test_a_short_source_is_repeated_whole_and_the_prompt_starts_at_its_beginning() -> None:
    built = build_prompt(FakeWordTokenizer(), "a b c", 9)
    assert built.text == "a b c a b c a b"
    assert built.tokens == 9


def test_prompt_i_of_a_batch_starts_at_item_i_and_wraps_around() -> None:
    assert source_text(["x", "y", "z"], 1) == "y\n\nz\n\nx"
    assert source_text(["x", "y", "z"], 4) == "y\n\nz\n\nx"
    prompts = build_prompts(FakeWordTokenizer(), ["a b", "c d", "e f"], 4, 3)
    assert [p.text for p in prompts] == ["a b c", "c d e", "e f a"]


def test_where_no_cut_gives_the_length_the_longest_prompt_below_it_is_kept_with_its_count() -> None:
    # Counts by cut: "a" 2, "a W" 4, "a W b" 5, ...: no cut gives 3.
    tokenizer = FakeWordTokenizer(wide=frozenset({"W"}))
    built = build_prompt(tokenizer, "a W b W c", 3)
    assert (built.text, built.length, built.tokens) == ("a", 3, 2)
    assert build_prompt(tokenizer, "a W b W c", 5).text == "a W b"


@pytest.mark.parametrize(
    ("length", "template", "message"),
    [
        (0, "{text}", "prompt length 0 is not a positive integer"),
        (
            3,
            "Article: {text} One-sentence summary:",
            "prompt length 3 is not above the 4 tokens of the prompt template",
        ),
    ],
)
def test_a_length_the_template_cannot_hold_is_refused_with_the_reason(length: int, template: str, message: str) -> None:
    with pytest.raises(PromptLengthError, match=message):
        build_prompt(FakeWordTokenizer(), "a b c", length, template)


def test_an_empty_data_set_is_refused() -> None:
    with pytest.raises(PromptLengthError, match="no text"):
        build_prompts(FakeWordTokenizer(), [], 8, 1)


def test_the_context_check_names_the_length_the_new_tokens_and_the_context() -> None:
    assert context_reason(4096, 32, 32768, "gemma3-270m") is None
    assert context_reason(4096, 32, None, "a model that does not say") is None
    assert context_reason(2048, 32, 2048, "tiny (max_position_embeddings in its config.json)") == (
        "prompt length 2048 + max_new_tokens 32 = 2080 tokens exceeds the context of 2048 tokens of "
        "tiny (max_position_embeddings in its config.json)"
    )


def test_a_model_without_a_tokenizer_or_too_short_a_context_gives_the_reason() -> None:
    with pytest.raises(PromptLengthError, match="tiny: its loaded model \\(object\\) gives no tokenizer"):
        prompts_for_model(object(), TEXTS, 64, 1, "{text}", 8, "tiny")
    with pytest.raises(PromptLengthError, match="exceeds the context of 100 tokens of tiny"):
        prompts_for_model(FakeWordTokenizer(context=100), TEXTS, 96, 1, "{text}", 8, "tiny")
    assert prompts_for_model(FakeWordTokenizer(context=104), TEXTS, 96, 1, "{text}", 8, "tiny")[0].tokens == 96


# ----------------------------------------------------------------------------- the real tiny tokenizer


@pytest.fixture(scope="module")
def tiny_model(tiny_gemma3_dir: Path) -> Iterator[TransformersModel]:
    spec = ModelSpec(
        name="tiny", family="causal", source=f"path:{tiny_gemma3_dir}", prompt_template=BASE_SUMMARY_TEMPLATE
    )
    model = TransformersBackend().load(Combination(spec, "fp32", "cpu", 1), Path("/nonexistent"), CpuTimer())
    yield model
    model.close()


@pytest.mark.parametrize("length", [24, 128, 1000])
def test_tiny_gemma_prompts_have_exactly_the_length_as_generate_counts_it(
    tiny_model: TransformersModel, length: int
) -> None:
    prompts = prompts_for_model(tiny_model, TEXTS, length, 2, BASE_SUMMARY_TEMPLATE, 1, "tiny")
    assert [p.tokens for p in prompts] == [length, length]
    assert all(p.text.startswith("Article: ") and p.text.endswith("\n\nOne-sentence summary:") for p in prompts)
    assert prompts[0].text != prompts[1].text  # item 0 and item 1 start them
    assert [tiny_model.prompt_token_count(p.text) for p in prompts] == [length, length]


def test_tiny_gemma_prompts_are_the_same_when_built_again(tiny_model: TransformersModel) -> None:
    first = prompts_for_model(tiny_model, TEXTS, 300, 1, BASE_SUMMARY_TEMPLATE, 1, "tiny")
    again = prompts_for_model(tiny_model, TEXTS, 300, 1, BASE_SUMMARY_TEMPLATE, 1, "tiny")
    assert first == again
    assert first[0].text.startswith(f"Article: {TEXTS[0][:40]}")


def test_generate_evaluates_exactly_the_built_length(tiny_model: TransformersModel) -> None:
    (prompt,) = prompts_for_model(tiny_model, TEXTS, 200, 1, BASE_SUMMARY_TEMPLATE, 1, "tiny")
    assert tiny_model.generate([prompt.text], 1).prompt_tokens == (200,)


def test_tiny_gemma_context_is_its_config_max_position_embeddings(tiny_model: TransformersModel) -> None:
    assert tiny_model.context_tokens() == MAX_POSITIONS
    with pytest.raises(PromptLengthError, match=f"exceeds the context of {MAX_POSITIONS} tokens of tiny"):
        prompts_for_model(tiny_model, TEXTS, MAX_POSITIONS, 1, BASE_SUMMARY_TEMPLATE, 1, "tiny")


@pytest.mark.real_model
def test_real_gemma_gguf_prompts_have_exactly_the_length_llama_cpp_evaluates(real_llama_model: object) -> None:
    from llmbench.backends.llama_cpp_backend import LlamaCppModel

    assert isinstance(real_llama_model, LlamaCppModel)
    assert real_llama_model.context_tokens() == 32768
    prompts = prompts_for_model(real_llama_model, TEXTS, 1024, 2, BASE_SUMMARY_TEMPLATE, 32, "gemma3-270m")
    assert [p.tokens for p in prompts] == [1024, 1024]
    assert [real_llama_model.prompt_token_count(p.text) for p in prompts] == [1024, 1024]
