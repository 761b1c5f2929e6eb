"""The prompt-length axis: the matrix key and the option, bad values, test ids, the skip of a length beyond
the model's context at collection, the engine context of a load, and a run on the tiny Gemma 3."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from llmbench.backends import llama_cpp_backend
from llmbench.config.combination import Combination
from llmbench.config.matrix import load_matrix
from llmbench.config.models import BUILTIN_MODELS
from llmbench.config.options import SettingError, parse_prompt_lengths
from llmbench.config.settings import engine_context
from llmbench.testing.tiny_models import MAX_POSITIONS
from tests.support.matrices import tiny_matrix, write_matrix

pytestmark = pytest.mark.usefixtures("one_torch_thread")


def _ids(result: pytest.RunResult) -> list[str]:
    return [line.split("::", 1)[1] for line in result.outlines if "::" in line]


# ----------------------------------------------------------------------------- values


@pytest.mark.parametrize(
    ("value", "message"),
    [
        (
            "128",
            "[matrix] prompt_tokens must be a non-empty list of prompt lengths in tokens, e.g. [128, 1024], got 128",
        ),
        ("[]", "[matrix] prompt_tokens must be a non-empty list of prompt lengths in tokens, e.g. [128, 1024], got []"),
        ('[128, "1024"]', "[matrix] prompt_tokens entry 2: '1024' is not a positive integer (tokens per prompt)"),
        ("[0]", "[matrix] prompt_tokens entry 1: 0 is not a positive integer (tokens per prompt)"),
        ("[12.5]", "[matrix] prompt_tokens entry 1: 12.5 is not a positive integer (tokens per prompt)"),
        ("[true]", "[matrix] prompt_tokens entry 1: True is not a positive integer (tokens per prompt)"),
    ],
)
def test_a_bad_prompt_tokens_value_names_the_file_and_the_value(tmp_path: Path, value: str, message: str) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text(f"[matrix]\nprompt_tokens = {value}\n", encoding="utf-8")
    with pytest.raises(SettingError) as error:
        load_matrix(path, required=True)
    assert str(error.value) == f"matrix file {path}: {message}"


def test_a_length_listed_twice_is_refused_with_its_origin(tmp_path: Path) -> None:
    path = tmp_path / "matrix.toml"
    path.write_text("[matrix]\nprompt_tokens = [128, 1024, 128]\n", encoding="utf-8")
    with pytest.raises(SettingError, match=r"prompt_tokens lists 128 twice \(from \[matrix\] prompt_tokens in "):
        load_matrix(path, required=True)


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("128,abc", "--llmbench-prompt-tokens: 'abc' is not an integer (from here); expected a positive integer"),
        ("0", "--llmbench-prompt-tokens: 0 is not positive (from here); expected a positive integer"),
        ("-5", "--llmbench-prompt-tokens: -5 is not positive (from here); expected a positive integer"),
        (",", "--llmbench-prompt-tokens: empty list (from here); give a comma list"),
    ],
)
def test_a_bad_option_value_names_the_option_and_the_value(text: str, message: str) -> None:
    with pytest.raises(SettingError) as error:
        parse_prompt_lengths(text, "--llmbench-prompt-tokens", "here")
    assert str(error.value) == message
    assert parse_prompt_lengths("128, 1024", "--llmbench-prompt-tokens", "here") == (128, 1024)


def test_a_bad_option_value_stops_the_session(pytester: pytest.Pytester) -> None:
    result = pytester.runpytest("--collect-only", "--llmbench-prompt-tokens=1k")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["ERROR: --llmbench-prompt-tokens: '1k' is not an integer (from --llmbench-prompt-tokens on the command line)*"]
    )


def test_the_ids_carry_the_length_only_on_the_axis() -> None:
    spec = BUILTIN_MODELS["gemma3-270m"]
    assert Combination(spec, "q4_k_m", "cpu", 1).id == "gemma3-270m-q4_k_m-cpu-bs1"
    assert "prompt_length" not in Combination(spec, "q4_k_m", "cpu", 1).as_info()
    on_axis = Combination(spec, "q4_k_m", "cpu", 1, prompt_length=1024)
    assert on_axis.id == "gemma3-270m-q4_k_m-cpu-bs1-prompt1024"
    assert on_axis.as_info()["prompt_length"] == 1024
    assert on_axis.load_key == ("gemma3-270m", "q4_k_m", "cpu")


@pytest.mark.parametrize(
    ("longest", "new", "context"), [(128, 32, 256), (224, 32, 256), (1024, 32, 1280), (4096, 32, 4352)]
)
def test_the_engine_context_is_the_longest_prompt_plus_new_tokens_rounded_up_to_256(
    longest: int, new: int, context: int
) -> None:
    assert engine_context(longest, new) == context


class FakeLlamaCppModel:
    """A FAKE LlamaCppModel: records what the backend loads it with, loads nothing."""

    def __init__(self, combination: Combination, path: Path, **kwargs: Any) -> None:
        self.kwargs = kwargs


@pytest.mark.parametrize(("context", "n_ctx"), [(None, 2048), (1280, 1280), (4352, 4352)])
def test_llama_cpp_loads_with_the_context_of_the_combination_else_its_default(
    monkeypatch: pytest.MonkeyPatch, context: int | None, n_ctx: int
) -> None:
    backend = llama_cpp_backend.LlamaCppBackend(n_threads=1)
    monkeypatch.setattr(llama_cpp_backend, "LlamaCppModel", FakeLlamaCppModel)
    monkeypatch.setattr(backend, "unavailable_reason", lambda *args: None)
    monkeypatch.setattr(backend, "resolve", lambda *args: Path("model.gguf"))
    combination = Combination(BUILTIN_MODELS["gemma3-270m"], "q4_k_m", "cpu", 1, 1024, context_tokens=context)
    loaded: Any = backend.load(combination, Path("/nonexistent"))
    assert loaded.kwargs["n_ctx"] == n_ctx


# ----------------------------------------------------------------------------- sessions on the tiny model

CONTEXT_TEST = """
def test_context(llm_combination):
    print("CONTEXT", llm_combination.id, llm_combination.context_tokens)
"""


def test_the_axis_expands_each_combination_and_a_length_beyond_the_context_is_skipped_at_collection(
    suite: pytest.Pytester, tiny_gemma3_dir: Path
) -> None:
    matrix = tiny_matrix(tiny_gemma3_dir, batch_sizes=(1, 2)).replace(
        "batch_sizes = [1, 2]", f"batch_sizes = [1, 2]\nprompt_tokens = [{MAX_POSITIONS}, 64]"
    )
    write_matrix(suite.path, matrix)
    suite.makepyfile(test_context=CONTEXT_TEST)
    collected = suite.runpytest("--collect-only", "-q")
    # Within a load, every batch size of a length before the next length: the calls grow.
    assert _ids(collected) == [
        "test_context[tiny-fp32-cpu-bs1-prompt64]",
        "test_context[tiny-fp32-cpu-bs2-prompt64]",
        f"test_context[tiny-fp32-cpu-bs1-prompt{MAX_POSITIONS}]",
        f"test_context[tiny-fp32-cpu-bs2-prompt{MAX_POSITIONS}]",
    ]
    result = suite.runpytest("-s", "-rs", "--llmbench-isolation=none")
    result.assert_outcomes(passed=2, skipped=2)
    # Every test of the load gets the context of its longest length that runs: 64 + 4 new tokens -> 256.
    result.stdout.fnmatch_lines(["*CONTEXT tiny-fp32-cpu-bs1-prompt64 256", "*CONTEXT tiny-fp32-cpu-bs2-prompt64 256"])
    config = tiny_gemma3_dir / "config.json"
    result.stdout.fnmatch_lines(
        [
            f"SKIPPED [[]1[]] *: tiny-fp32-cpu-bs1-prompt{MAX_POSITIONS}: prompt length {MAX_POSITIONS} + "
            f"max_new_tokens 4 = {MAX_POSITIONS + 4} tokens exceeds the context of {MAX_POSITIONS} tokens of model "
            f"tiny (max_position_embeddings in {config})"
        ]
    )
    narrowed = suite.runpytest("--collect-only", "-q", "--llmbench-prompt-tokens=32")
    assert _ids(narrowed) == ["test_context[tiny-fp32-cpu-bs1-prompt32]", "test_context[tiny-fp32-cpu-bs2-prompt32]"]


def test_without_the_axis_the_ids_and_the_context_are_as_before(suite: pytest.Pytester, tiny_gemma3_dir: Path) -> None:
    write_matrix(suite.path, tiny_matrix(tiny_gemma3_dir))
    suite.makepyfile(test_context=CONTEXT_TEST)
    result = suite.runpytest("-s", "--llmbench-isolation=none")
    result.stdout.fnmatch_lines(["*CONTEXT tiny-fp32-cpu-bs1 None"])


GENERATE_TEST = """
PROMPTS = {}


def test_generate(llm_benchmark, llm, llm_combination, prompt_batch, max_new_tokens):
    result = llm_benchmark.run(llm, prompt_batch, max_new_tokens)
    PROMPTS[llm_combination.id] = prompt_batch
    assert result.prompt_tokens == (llm_combination.prompt_length,) * llm_combination.batch_size


def test_zz_every_precision_got_the_same_prompts():
    assert PROMPTS["tiny-fp32-cpu-bs2-prompt48"] == PROMPTS["tiny-bf16-cpu-bs2-prompt48"]
    assert PROMPTS["tiny-fp32-cpu-bs1-prompt48"] == PROMPTS["tiny-fp32-cpu-bs2-prompt48"][:1]
    assert PROMPTS["tiny-fp32-cpu-bs2-prompt48"][0] != PROMPTS["tiny-fp32-cpu-bs2-prompt48"][1]
"""


def test_a_run_on_the_axis_saves_the_length_the_prompt_tokens_and_the_kv_cache_at_that_context(
    suite: pytest.Pytester, tiny_gemma3_dir: Path
) -> None:
    matrix = tiny_matrix(tiny_gemma3_dir, precisions=("fp32", "bf16"), batch_sizes=(1, 2))
    write_matrix(suite.path, matrix.replace("batch_sizes = [1, 2]", "batch_sizes = [1, 2]\nprompt_tokens = [48]"))
    suite.makepyfile(test_generate=GENERATE_TEST)
    output = suite.path / "run.json"
    result = suite.runpytest(
        "--llmbench-isolation=none", "--llmbench-rounds=1", "--llmbench-warmup-rounds=0",
        "--llmbench-quality-items=0", f"--benchmark-json={output}",
    )  # fmt: skip
    result.assert_outcomes(passed=5)
    saved = {b["param"]: b["extra_info"] for b in json.loads(output.read_text())["benchmarks"]}
    assert sorted(saved) == sorted(
        f"tiny-{p}-cpu-bs{b}-prompt{n}" for p in ("fp32", "bf16") for b in (1, 2) for n in (48,)
    )
    for name, info in saved.items():
        length, batch = info["prompt_length"], info["batch_size"]
        assert name.endswith(f"-prompt{length}")
        assert info["prompt_tokens"] == length * batch
        # The tiny model: 2 layers, 1 KV head of 32, one layer with a 16-token window; fp32 and bf16
        # activations. A padded batch holds (prompt + generated) tokens per row.
        element = 4 if info["precision"] == "fp32" else 2
        tokens = length + info["generated_tokens"] // batch
        expected = 2 * 1 * 32 * element * batch * (tokens + min(tokens, 16))
        assert info["metrics"]["kv_cache_bytes"]["value"] == expected


def test_the_terminal_table_names_the_length_only_on_the_axis() -> None:
    from llmbench.plugin.terminal_table import combination_label

    info = Combination(BUILTIN_MODELS["gemma3-270m"], "q4_k_m", "cpu", 1).as_info()
    assert combination_label(info) == "gemma3-270m q4_k_m cpu bs1"
    info = Combination(BUILTIN_MODELS["gemma3-270m"], "q4_k_m", "cpu", 1, prompt_length=1024).as_info()
    assert combination_label(info) == "gemma3-270m q4_k_m cpu bs1 prompt1024"


def test_llmbench_ab_skips_the_axis_with_the_reason(tmp_path: Path, tiny_gemma3_dir: Path) -> None:
    import shutil

    from llmbench.ab.collect import collect_plan
    from tests.support.paths import REPO

    write_matrix(tmp_path, tiny_matrix(tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", tmp_path / "benchmarks")
    plan = collect_plan(["benchmarks", "--llmbench-prompt-tokens=64", "--benchmark-storage=runs"], tmp_path, tmp_path)
    assert plan.benchmarks == ()
    assert plan.skipped == (
        "tiny-fp32-cpu-bs1-prompt64: llmbench ab does not build prompts of a length (the prompt-length axis): "
        "measure lengths with pytest, compare versions without the axis",
    )
