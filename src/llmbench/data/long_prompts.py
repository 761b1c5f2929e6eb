"""Prompts of an exact number of tokens, built from a data set's text (the ``prompt_tokens`` axis).

How a prompt of ``length`` tokens is built (deterministic: the same texts, template and tokenizer give the
same prompt in every run):

1. The source is the data set's texts in file order joined by a blank line, starting at item ``index``
   (prompt ``index`` of a batch) and wrapping around to the first; repeated whole while it is shorter
   than the prompt needs.
2. The source is tokenized with the model's own tokenizer (plain text, no special tokens) and cut to
   ``k`` tokens, decoded back to text and put into the model's prompt template.
3. The prompt is counted as ``generate`` counts it (BOS and, for chat models, the chat template
   included). ``k`` starts at ``length`` minus the template's own tokens and moves by the difference
   until the count is ``length``. Decoding and re-encoding can merge tokens at the cut, so where no ``k``
   gives exactly ``length`` the longest prompt below it is taken and its count kept
   (:attr:`BuiltPrompt.tokens`).

The tokenizer is the loaded model's (:class:`PromptTokenizer`, which the backends' loaded models
implement); a prompt and its engine context must fit the model's trained context
(:func:`context_reason`). See docs/matrix-and-models.md, "Prompt length".
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

__all__ = [
    "BuiltPrompt",
    "PromptLengthError",
    "PromptTokenizer",
    "build_prompt",
    "build_prompts",
    "context_reason",
    "prompts_for_model",
    "source_text",
]

#: Texts of the source are joined by a blank line.
SEPARATOR = "\n\n"
#: Cut points tried around the first estimate before settling for the longest prompt below the length.
SEARCH_STEPS = 16


class PromptLengthError(ValueError):
    """A prompt of the asked length cannot be built (the template alone is longer, an empty source)."""


@runtime_checkable
class PromptTokenizer(Protocol):
    """What building a prompt of ``length`` tokens asks of a loaded model's tokenizer."""

    def text_tokens(self, text: str) -> list[int]:
        """The token ids of plain ``text`` (no BOS, no special tokens, no chat template)."""
        ...

    def text_of(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens`` (special tokens dropped)."""
        ...

    def prompt_token_count(self, prompt: str) -> int:
        """How many tokens ``generate`` evaluates for ``prompt`` (BOS and the chat template included)."""
        ...

    def context_tokens(self) -> int | None:
        """The model's trained context in tokens (``max_position_embeddings``, llama.cpp's ``n_ctx_train``),
        or None where the model does not say."""
        ...


@dataclass(frozen=True)
class BuiltPrompt:
    """A prompt built for ``length`` tokens; ``tokens`` is its count (``length`` unless the tokenizer
    merges tokens at every cut tried: then the longest count below it)."""

    text: str
    length: int
    tokens: int


def source_text(texts: Sequence[str], index: int = 0) -> str:
    """The data set's texts joined by a blank line, from item ``index`` (modulo their number) on, wrapping
    around to the first."""
    if not texts:
        raise PromptLengthError("the data set has no text to build prompts from")
    start = index % len(texts)
    return SEPARATOR.join([*texts[start:], *texts[:start]])


def build_prompt(tokenizer: PromptTokenizer, source: str, length: int, template: str = "{text}") -> BuiltPrompt:
    """A prompt of ``length`` tokens: ``template`` (with ``{text}``) around the start of ``source``.

    The steps are in this module's docstring. Raises :class:`PromptLengthError` where ``length`` is not
    above the template's own tokens or the source is empty.
    """
    if length < 1:
        raise PromptLengthError(f"prompt length {length!r} is not a positive integer")
    if not source.strip():
        raise PromptLengthError("the source text is empty")
    overhead = tokenizer.prompt_token_count(template.format(text=""))
    if length <= overhead:
        raise PromptLengthError(
            f"prompt length {length} is not above the {overhead} tokens of the prompt template {template!r} alone"
        )
    tokens = tokenizer.text_tokens(source)
    if not tokens:
        raise PromptLengthError("the source text has no tokens")
    # Enough source for the prompt and the search around it: whole repeats of the source.
    repeats = -(-(length + SEARCH_STEPS) // len(tokens))
    if repeats > 1:
        tokens = tokenizer.text_tokens(SEPARATOR.join([source] * repeats))
    counts: dict[int, tuple[int, str]] = {}

    def count(cut: int) -> int:
        if cut not in counts:
            prompt = template.format(text=tokenizer.text_of(tokens[:cut]))
            counts[cut] = (tokenizer.prompt_token_count(prompt), prompt)
        return counts[cut][0]

    cut = min(max(length - overhead, 1), len(tokens))
    for _ in range(SEARCH_STEPS):
        difference = length - count(cut)
        if difference == 0:
            return BuiltPrompt(counts[cut][1], length, length)
        following = min(max(cut + difference, 1), len(tokens))
        if following in counts:
            break
        cut = following
    # The count jumps over ``length`` at the cut: the nearest cuts, exact if any, else the longest below.
    for nearby in range(max(cut - SEARCH_STEPS, 1), min(cut + SEARCH_STEPS, len(tokens)) + 1):
        count(nearby)
    exact = [c for c, (n, _) in counts.items() if n == length]
    if exact:
        return BuiltPrompt(counts[min(exact)][1], length, length)
    below = [c for c, (n, _) in counts.items() if n < length]
    best = max(below, key=lambda c: (counts[c][0], -c)) if below else min(counts)
    return BuiltPrompt(counts[best][1], length, counts[best][0])


def build_prompts(
    tokenizer: PromptTokenizer, texts: Sequence[str], length: int, count: int, template: str = "{text}"
) -> tuple[BuiltPrompt, ...]:
    """``count`` prompts of ``length`` tokens, prompt ``i`` from the source starting at item ``i``."""
    return tuple(build_prompt(tokenizer, source_text(texts, index), length, template) for index in range(count))


def context_reason(length: int, max_new_tokens: int, context: int | None, where: str) -> str | None:
    """Why prompts of ``length`` tokens plus ``max_new_tokens`` new ones do not fit a model's trained context
    of ``context`` tokens (``where``: whose context, from what), or None where they fit or it is unknown."""
    if context is None or length + max_new_tokens <= context:
        return None
    return (
        f"prompt length {length} + max_new_tokens {max_new_tokens} = {length + max_new_tokens} tokens exceeds "
        f"the context of {context} tokens of {where}"
    )


def prompts_for_model(
    model: object,
    texts: Sequence[str],
    length: int,
    count: int,
    template: str,
    max_new_tokens: int,
    name: str,
) -> tuple[BuiltPrompt, ...]:
    """:func:`build_prompts` with a loaded ``model``'s tokenizer, after checking that ``length`` plus
    ``max_new_tokens`` fits the context it was trained for. ``name`` names the model in messages.

    Raises :class:`PromptLengthError` with the reason (a skip) where it does not fit, where the model gives
    no tokenizer (it is not a :class:`PromptTokenizer`) or where the prompt cannot be built.
    """
    if not isinstance(model, PromptTokenizer):
        raise PromptLengthError(
            f"{name}: its loaded model ({type(model).__name__}) gives no tokenizer to build prompts of a length"
        )
    reason = context_reason(length, max_new_tokens, model.context_tokens(), f"{name} (its loaded model's config)")
    if reason is not None:
        raise PromptLengthError(reason)
    return build_prompts(model, texts, length, count, template)
