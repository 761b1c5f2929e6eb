"""The llama.cpp backend on the real offline model (Gemma 3 270M, Q4_K_M GGUF from PyPI)."""

from __future__ import annotations

import dataclasses
import itertools
import logging
import os
from pathlib import Path

import pytest

llama_cpp = pytest.importorskip(
    "llama_cpp", reason="llama-cpp-python is not installed (pip install 'pytest-llmbench[llama-cpp]')"
)

from llmbench.backends import get_backend  # noqa: E402
from llmbench.backends.base import BackendUnavailable, Generation, KVLayout  # noqa: E402
from llmbench.backends.llama_cpp_backend import (  # noqa: E402
    GgufSource,
    LlamaCppBackend,
    LlamaCppModel,
    cut_at_blank_line,
)
from llmbench.config.combination import Combination, ModelSpec  # noqa: E402
from llmbench.config.models import BUILTIN_MODELS  # noqa: E402

pytestmark = pytest.mark.real_model

SPEC = BUILTIN_MODELS["gemma3-270m"]
ARTICLE = (
    "The city council voted on Tuesday to expand the downtown bike lane network by 40 kilometres over "
    "the next three years, citing a sharp rise in cycling since the pandemic. The plan, which will cost "
    "an estimated 12 million dollars, also adds bike parking near transit stations and a pilot program "
    "for protected intersections. Local business groups raised concerns about the loss of street "
    "parking, but the mayor said the changes would make streets safer and reduce congestion."
)
OTHER_ARTICLE = (
    "A small bakery in the harbour district has won the national bread award for the second year in a "
    "row. The owners, two sisters who opened the shop a decade ago, credit a sourdough starter that "
    "their grandmother brought from abroad. They plan to use the prize money to train apprentices."
)
PROMPT = SPEC.format_prompt(ARTICLE)
MAX_NEW = 32


@dataclasses.dataclass(frozen=True)
class Run:
    generation: Generation
    counters: tuple[dict[str, float], ...]


def run(model: LlamaCppModel, prompts: list[str], max_new_tokens: int = MAX_NEW) -> Run:
    generation = model.generate(prompts, max_new_tokens)
    return Run(generation, tuple(model.perf_counters(i) for i in range(len(prompts))))


@pytest.fixture(scope="module")
def cache_dir(real_gguf_cache: Path) -> Path:
    """The session's model cache (tests/conftest.py): the packaged GGUF is assembled there once."""
    return real_gguf_cache


@pytest.fixture(scope="module")
def model(real_llama_model: LlamaCppModel) -> LlamaCppModel:
    """The session's real model in llama.cpp, on one thread (tests/conftest.py): these tests check
    behaviour, not speed."""
    return real_llama_model


@pytest.fixture(scope="module")
def first(model: LlamaCppModel) -> Run:
    """The summary prompt, generated once for the tests that only read the result."""
    return run(model, [PROMPT])


def test_get_backend_returns_llama_cpp_backend() -> None:
    backend = get_backend("llama_cpp")
    assert isinstance(backend, LlamaCppBackend)
    assert backend.name == "llama_cpp"


def test_summary_is_nonempty_text_within_the_token_budget(first: Run) -> None:
    generation = first.generation
    assert generation.batch_mode == "sequential"
    assert generation.step_times_s == ()
    [text] = generation.texts
    [generated] = generation.generated_tokens
    [ids] = generation.token_ids
    [times] = generation.sequence_step_times_s
    assert text
    assert text == text.strip()
    assert "\n\n" not in text
    assert 1 <= generated <= MAX_NEW
    assert len(ids) == len(times) == generated
    assert times[0] > 0
    assert all(earlier < later for earlier, later in itertools.pairwise(times))
    assert generation.prompt_tokens == (first.counters[0]["n_p_eval"],)


def test_decode_rate_from_timestamps_agrees_with_llama_cpp_counters(first: Run) -> None:
    """Our per-token timestamps include sampling and Python; llama.cpp counts its decode calls only."""
    [times] = first.generation.sequence_step_times_s
    counters = first.counters[0]
    assert len(times) >= 8, f"too few tokens to time: {first.generation.texts}"
    # n sampled tokens: n - 1 intervals, and n - 1 single-token decodes (the last token is not evaluated).
    assert counters["n_eval"] == len(times) - 1
    ours = (len(times) - 1) / (times[-1] - times[0])
    theirs = counters["n_eval"] / (counters["t_eval_ms"] / 1000)
    assert ours == pytest.approx(theirs, rel=0.10), f"ours {ours:.1f} tok/s, llama.cpp {theirs:.1f} tok/s"
    # The prefill (step 0) cannot be faster than llama.cpp's own prompt evaluation.
    assert times[0] >= counters["t_p_eval_ms"] / 1000


def test_repeated_call_is_identical_and_evaluates_the_whole_prompt_again(
    model: LlamaCppModel, first: Run
) -> None:
    second = run(model, [PROMPT])
    assert second.generation.texts == first.generation.texts
    assert second.generation.token_ids == first.generation.token_ids
    for result in (first, second):
        # No prefix of the previous call reused: every prompt token is evaluated in every call.
        assert result.counters[0]["n_p_eval"] == result.generation.prompt_tokens[0]
        assert result.counters[0]["n_eval"] == result.generation.generated_tokens[0] - 1


def test_batch_of_two_runs_each_prompt_in_order(model: LlamaCppModel, first: Run) -> None:
    other_prompt = SPEC.format_prompt(OTHER_ARTICLE)
    alone = run(model, [other_prompt]).generation
    batch = run(model, [PROMPT, other_prompt])
    generation = batch.generation
    assert len(generation.texts) == len(generation.sequence_step_times_s) == 2
    assert generation.texts == (first.generation.texts[0], alone.texts[0])
    assert generation.token_ids == (first.generation.token_ids[0], alone.token_ids[0])
    assert generation.prompt_tokens == (first.generation.prompt_tokens[0], alone.prompt_tokens[0])
    assert [c["n_p_eval"] for c in batch.counters] == list(generation.prompt_tokens)
    # Each sequence's timestamps start from its own start.
    assert all(times[0] < times[-1] < 60 for times in generation.sequence_step_times_s)


def test_prompt_longer_than_the_context_is_refused(model: LlamaCppModel) -> None:
    with pytest.raises(ValueError, match=r"does not fit the llama.cpp context of 2048 tokens"):
        model.generate([PROMPT], 4000)
    with pytest.raises(ValueError, match="max_new_tokens must be a positive integer, got 0"):
        model.generate([PROMPT], 0)


def test_weight_bytes_are_the_gguf_tensors(model: LlamaCppModel) -> None:
    # The packaged file is pinned by its sha256: its 236 tensors hold 246,587,904 bytes
    # (sum of gguf.GGUFReader(path).tensors[i].n_bytes, about 10 s to parse, so not redone here),
    # after 6,525,120 bytes of metadata and tokenizer.
    assert model.weight_bytes() == 246_587_904
    assert model.file_bytes() == model.path.stat().st_size == 246_587_904 + 6_525_120


def test_kv_cache_layout_matches_what_llama_cpp_allocates(model: LlamaCppModel) -> None:
    # llama.cpp logs for this file: 3 global layers and 15 sliding-window layers, 1 KV head of 256.
    assert model.kv_cache_layout() == KVLayout(
        layers=18, kv_heads=1, head_dim=256, bytes_per_element=2, sliding_window=512, sliding_layers=15
    )


def test_packaged_file_is_assembled_once_into_the_cache(model: LlamaCppModel, cache_dir: Path) -> None:
    assert model.path == cache_dir / "gguf" / "gemma-3-270m-q4_k_m.gguf"
    assert sorted(p.name for p in model.path.parent.iterdir()) == [model.path.name]
    modified = model.path.stat().st_mtime_ns
    assert LlamaCppBackend().resolve(SPEC, "q4_k_m", cache_dir) == model.path
    assert model.path.stat().st_mtime_ns == modified


def test_loading_prints_nothing_and_honours_extra_buffer_types(
    cache_dir: Path, capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG, logger="llmbench.backends.llama_cpp_backend")
    backend = LlamaCppBackend(n_threads=1, extra_buffer_types=False)
    loaded = backend.load(Combination(SPEC, "q4_k_m", "cpu", 1), cache_dir)
    try:
        assert loaded._llm.model_params.use_extra_bufts is False
        assert loaded.settings()["extra_buffer_types"] is False
        assert loaded.generate([PROMPT], 2).generated_tokens[0] >= 1
    finally:
        loaded.close()
    assert capfd.readouterr().err == ""
    assert any("llama_context" in record.getMessage() for record in caplog.records)
    with pytest.raises(RuntimeError, match="was closed"):
        loaded.generate([PROMPT], 2)
    loaded.close()  # closing twice is harmless


def test_chat_model_needs_a_chat_template_in_its_file(cache_dir: Path) -> None:
    chat_spec = dataclasses.replace(SPEC, chat=True)
    with pytest.raises(BackendUnavailable, match=r"has no chat template \(tokenizer.chat_template\)"):
        LlamaCppBackend().load(Combination(chat_spec, "q4_k_m", "cpu", 1), cache_dir)


#: Gemma's chat template, shortened (the packaged base model's file has none).
GEMMA_CHAT_TEMPLATE = (
    "{{ bos_token }}{% for message in messages %}<start_of_turn>{{ message['role'] }}\n"
    "{{ message['content'] }}<end_of_turn>\n{% endfor %}"
    "{% if add_generation_prompt %}<start_of_turn>model\n{% endif %}"
)


def test_chat_prompts_use_the_files_template_with_its_special_tokens(model: LlamaCppModel) -> None:
    metadata = model._llm.metadata
    metadata["tokenizer.chat_template"] = GEMMA_CHAT_TEMPLATE
    try:
        model._chat_formatter = model._make_chat_formatter()
        tokens = model._prompt_tokens("hi")
    finally:
        del metadata["tokenizer.chat_template"]
        model._chat_formatter = None
    pieces = [model._llm.detokenize([token], special=True) for token in tokens]
    # One BOS (the template's), and the turn markers as single special tokens.
    assert pieces == [
        b"<bos>", b"<start_of_turn>", b"user", b"\n", b"hi", b"<end_of_turn>", b"\n",
        b"<start_of_turn>", b"model", b"\n",
    ]  # fmt: skip


def test_unavailable_for_a_precision_without_a_gguf_file() -> None:
    assert LlamaCppBackend().unavailable_reason(SPEC, "q8_0", "cpu") == (
        "no GGUF file for q8_0 in model gemma3-270m (declared GGUF precisions: q4_k_m)"
    )
    bare = dataclasses.replace(SPEC, gguf={})
    reason = LlamaCppBackend().unavailable_reason(bare, "q4_k_m", "cpu")
    assert reason == "no GGUF file for q4_k_m in model gemma3-270m (declared GGUF precisions: none)"


def test_gpu_devices_need_a_build_with_gpu_offload(monkeypatch: pytest.MonkeyPatch) -> None:
    backend = LlamaCppBackend()
    assert backend.unavailable_reason(SPEC, "q4_k_m", "cpu") is None
    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: False)
    assert backend.unavailable_reason(SPEC, "q4_k_m", "cuda") == (
        "this llama-cpp-python build has no GPU offload (rebuild with CMAKE_ARGS=-DGGML_CUDA=on)"
    )
    assert backend.unavailable_reason(SPEC, "q4_k_m", "mps") == (
        "this llama-cpp-python build has no GPU offload (rebuild with CMAKE_ARGS=-DGGML_METAL=on)"
    )
    monkeypatch.setattr(llama_cpp, "llama_supports_gpu_offload", lambda: True)
    assert backend.unavailable_reason(SPEC, "q4_k_m", "cuda") is None
    assert "not supported by the llama_cpp backend" in (
        backend.unavailable_reason(SPEC, "q4_k_m", "tpu") or ""
    )


def with_gguf(source: str) -> ModelSpec:
    return dataclasses.replace(SPEC, name="m", gguf={"q8_0": source})


def test_path_sources(tmp_path: Path) -> None:
    file = tmp_path / "model.gguf"
    for source in (f"path:{file}", str(file)):
        parsed = GgufSource.parse(with_gguf(source), "q8_0")
        assert (parsed.kind, parsed.value) == ("path", str(file))
        assert parsed.unavailable_reason() == f"model m: gguf['q8_0'] = {source!r}: no such file {file}"
        with pytest.raises(BackendUnavailable, match="no such file"):
            parsed.resolve(tmp_path)
    file.write_bytes(b"GGUF")
    assert LlamaCppBackend().resolve(with_gguf(str(file)), "q8_0", tmp_path) == file


def test_malformed_sources_are_errors() -> None:
    with pytest.raises(ValueError, match=r"gguf\['q8_0'\] = 'http://x/y.gguf': unknown source kind 'http'"):
        GgufSource.parse(with_gguf("http://x/y.gguf"), "q8_0")
    with pytest.raises(ValueError, match=r"hub:<org>/<name>/<file.gguf>"):
        GgufSource.parse(with_gguf("hub:org/name"), "q8_0")


def test_hub_sources_come_only_from_the_local_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import huggingface_hub.constants

    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_CACHE", str(tmp_path))
    spec = with_gguf("hub:org/name/sub/model-q8_0.gguf")
    reason = LlamaCppBackend().unavailable_reason(spec, "q8_0", "cpu") or ""
    assert "not available offline: sub/model-q8_0.gguf of org/name is not in the local Hugging Face" in reason
    # The hub cache layout: refs/main names the snapshot that holds the file.
    repo = tmp_path / "models--org--name"
    (repo / "refs").mkdir(parents=True)
    (repo / "refs" / "main").write_text("abc123")
    snapshot_file = repo / "snapshots" / "abc123" / "sub" / "model-q8_0.gguf"
    snapshot_file.parent.mkdir(parents=True)
    snapshot_file.write_bytes(b"GGUF")
    assert LlamaCppBackend().unavailable_reason(spec, "q8_0", "cpu") is None
    assert LlamaCppBackend().resolve(spec, "q8_0", tmp_path) == snapshot_file


def test_packaged_source_that_is_not_installed() -> None:
    reason = GgufSource.parse(with_gguf("package:no-such-gguf-package"), "q8_0").unavailable_reason()
    assert reason is not None
    assert reason.startswith("model m: gguf['q8_0'] = 'package:no-such-gguf-package': ")
    assert "pip install no-such-gguf-package" in reason


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        (" One sentence.\n\nMore text.", "One sentence."),
        ("\n\nStarts on a new line.\n\nThen more.", "Starts on a new line."),
        ("No blank line\nat all ", "No blank line\nat all"),
    ],
)
def test_cut_at_blank_line(text: str, expected: str) -> None:
    assert cut_at_blank_line(text) == expected


def test_threads_default_to_the_cpus_this_process_may_use() -> None:
    assert LlamaCppBackend().n_threads == len(os.sched_getaffinity(0))
    with pytest.raises(ValueError, match="n_threads must be a positive integer, got 0"):
        LlamaCppBackend(n_threads=0)
