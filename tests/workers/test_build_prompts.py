"""The worker builds prompts of a length with its loaded model's tokenizer (``BuildPrompts``): served in
this process by :class:`ModelServer` on the tiny Gemma 3, as a worker process would."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from llmbench.config.combination import Combination, ModelSpec
from llmbench.data import SHIPPED_DATA, load_items
from llmbench.testing.tiny_models import MAX_POSITIONS
from llmbench.workers.protocol import BuildPrompts, Load, Loaded, PromptsBuilt, Unavailable, WorkerSetup
from llmbench.workers.serve import ModelServer

pytestmark = pytest.mark.usefixtures("one_torch_thread")

TEXTS = tuple(item.text for item in load_items(SHIPPED_DATA))


@pytest.fixture(scope="module")
def server(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[ModelServer]:
    spec = ModelSpec(name="tiny", family="causal", source=f"path:{tiny_gemma3_dir}")
    folder = tmp_path_factory.mktemp("worker")
    served = ModelServer(WorkerSetup(Combination(spec, "fp32", "cpu", 2), folder, 1, folder / "log"))
    assert isinstance(served.handle(Load()), Loaded)
    yield served
    served.close()


def test_the_worker_builds_prompts_of_the_length_with_its_tokenizer(server: ModelServer) -> None:
    reply = server.handle(BuildPrompts(TEXTS, 96, 2, "Text: {text}\nSummary:", 4))
    assert isinstance(reply, PromptsBuilt)
    assert [p.tokens for p in reply.prompts] == [96, 96]
    model = server.model
    assert model is not None
    assert model.generate([p.text for p in reply.prompts], 1).prompt_tokens == (96, 96)


def test_a_length_beyond_the_context_is_unavailable_with_the_reason(server: ModelServer) -> None:
    reply = server.handle(BuildPrompts(TEXTS, MAX_POSITIONS, 1, "{text}", 4))
    assert reply == Unavailable(
        f"prompt length {MAX_POSITIONS} + max_new_tokens 4 = {MAX_POSITIONS + 4} tokens exceeds the context of "
        f"{MAX_POSITIONS} tokens of tiny (its loaded model's config)"
    )
