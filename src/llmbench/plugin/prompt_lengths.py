"""The prompt-length axis in the plugin: the skip at collection and the prompts of a test on the axis.

The prompts are built by :mod:`llmbench.data.long_prompts` with the loaded model's own tokenizer (in its
worker where it runs in one), once per (model, data set, length, position in the batch) in a session: the
first precision of a model builds them, the others get the same texts, so every precision of a model is
timed on the same prompt. See docs/matrix-and-models.md, "Prompt length".
"""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from llmbench.backends import LoadedModel
from llmbench.backends.model_files import local_config_context
from llmbench.config.combination import Combination
from llmbench.config.settings import SETTINGS_KEY, Settings
from llmbench.data import Item
from llmbench.data.long_prompts import BuiltPrompt, PromptLengthError, context_reason, prompts_for_model
from llmbench.workers import WorkerModel

__all__ = ["BUILT_PROMPTS_KEY", "collection_reason", "long_prompt_batch"]

PromptKey = tuple[str, str, int, int]
#: The session's prompts on the axis: (model, data set, length, position in the batch) -> the prompt.
BUILT_PROMPTS_KEY = pytest.StashKey[dict[PromptKey, BuiltPrompt]]()


def collection_reason(combination: Combination, settings: Settings) -> str | None:
    """Why ``combination``'s prompt length (with its new tokens) does not fit its model's trained context, as
    known before loading: the model entry's ``context_tokens``, else a config.json already on disk. None
    where it fits, the combination is not on the axis, or the context is not known yet (checked once the
    model is loaded)."""
    length, spec = combination.prompt_length, combination.model
    if length is None:
        return None
    new_tokens = settings.max_new_tokens_for(combination)
    if spec.context_tokens is not None:
        return context_reason(length, new_tokens, spec.context_tokens, f"model {spec.name} (its context_tokens)")
    found = local_config_context(spec.source, settings.cache_dir)
    if found is None:
        return None
    context, path = found
    return context_reason(length, new_tokens, context, f"model {spec.name} (max_position_embeddings in {path})")


def _build(
    llm: LoadedModel, texts: Sequence[str], length: int, count: int, combination: Combination, new_tokens: int
) -> tuple[BuiltPrompt, ...]:
    template = combination.model.prompt_template
    if isinstance(llm, WorkerModel):
        return llm.build_prompts(texts, length, count, template, new_tokens)
    return prompts_for_model(llm, texts, length, count, template, new_tokens, combination.model.name)


def long_prompt_batch(request: pytest.FixtureRequest, combination: Combination, items: Sequence[Item]) -> list[str]:
    """The ``batch_size`` prompts of ``combination``'s prompt length: prompt ``i`` from the data set's texts
    starting at item ``i``. Built with the loaded model (the ``llm`` fixture) where this session has not
    built them yet; a length the model cannot hold is skipped with the reason."""
    assert combination.prompt_length is not None, combination
    config = request.config
    settings = config.stash[SETTINGS_KEY]
    if BUILT_PROMPTS_KEY not in config.stash:
        config.stash[BUILT_PROMPTS_KEY] = {}
    built = config.stash[BUILT_PROMPTS_KEY]
    length, count = combination.prompt_length, combination.batch_size
    keys = [(combination.model.name, combination.dataset_name, length, index) for index in range(count)]
    if any(key not in built for key in keys):
        llm: LoadedModel = request.getfixturevalue("llm")
        new_tokens = settings.max_new_tokens_for(combination)
        try:
            prompts = _build(llm, [item.text for item in items], length, count, combination, new_tokens)
        except PromptLengthError as error:
            pytest.skip(f"{combination.id}: {error}")
        for key, prompt in zip(keys, prompts, strict=True):
            built.setdefault(key, prompt)
    return [built[key].text for key in keys]
