"""The plugin's behaviour, run through pytest itself (pytester): matrix, options, skips, caching, order."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from tests.support.matrices import TINY_MATRIX, write_matrix

COLLECT_TEST = """
def test_generate(llm_combination):
    pass
"""


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line.split("::", 1)[1] for line in result.outlines if "::" in line]


def test_matrix_file_expands_to_one_test_per_combination(pytester: pytest.Pytester) -> None:
    write_matrix(
        pytester.path,
        """
[matrix]
models = ["gemma3-270m"]
precisions = ["bf16", "q4_k_m"]
devices = ["cpu"]
batch_sizes = [1, 4]
""",
    )
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    assert collected_ids(result) == [
        "test_generate[gemma3-270m-bf16-cpu-bs1]",
        "test_generate[gemma3-270m-bf16-cpu-bs4]",
        "test_generate[gemma3-270m-q4_k_m-cpu-bs1]",
        "test_generate[gemma3-270m-q4_k_m-cpu-bs4]",
    ]


def test_exclude_leaves_combinations_out_and_the_header_names_them(pytester: pytest.Pytester) -> None:
    write_matrix(
        pytester.path,
        """
[matrix]
models = ["gemma3-270m"]
precisions = ["bf16", "int8", "q4_k_m"]
devices = ["cpu"]
batch_sizes = [1, 4]
exclude = [{ precision = "int8", device = "cpu" }, { precision = "q4_k_m", batch_size = 4 }]
""",
    )
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    assert collected_ids(result) == [
        "test_generate[gemma3-270m-bf16-cpu-bs1]",
        "test_generate[gemma3-270m-bf16-cpu-bs4]",
        "test_generate[gemma3-270m-q4_k_m-cpu-bs1]",
    ]
    header = pytester.runpytest("--collect-only")
    header.stdout.fnmatch_lines(
        ["llmbench: [[]matrix[]] exclude in *matrix.toml leaves out 3 combination(s): "
         "gemma3-270m int8 cpu (bs1 bs4), gemma3-270m q4_k_m cpu (bs4)"]
    )  # fmt: skip
    # The command line narrows the axes; the exclusions still apply.
    narrowed = pytester.runpytest("--collect-only", "-q", "--llmbench-precision=int8,q4_k_m")
    assert collected_ids(narrowed) == ["test_generate[gemma3-270m-q4_k_m-cpu-bs1]"]


def test_help_lists_every_option_with_its_default(pytester: pytest.Pytester) -> None:
    # argparse %-formats help texts: a literal "5%" in one of them once made --help crash.
    from llmbench.config.options import OPTIONS

    result = pytester.runpytest("--help")
    assert result.ret == 0, result.stderr.str()
    text = " ".join(result.stdout.str().split())
    for option in OPTIONS:
        assert option.flag in text
        assert option.ini in text
    assert "decode_tok_s:-5%,peak_rss_bytes:+10%" in text
    assert "Default: '10'" in text  # --llmbench-drift-history


def test_command_line_narrows_and_widens_each_axis(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest(
        "--collect-only", "-q",
        "--llmbench-model=gemma3-270m,t5-small",
        "--llmbench-precision=fp32",
        "--llmbench-device=cpu",
        "--llmbench-batch-size=2,8",
    )  # fmt: skip
    assert collected_ids(result) == [
        "test_generate[gemma3-270m-fp32-cpu-bs2]",
        "test_generate[gemma3-270m-fp32-cpu-bs8]",
        "test_generate[t5-small-fp32-cpu-bs2]",
        "test_generate[t5-small-fp32-cpu-bs8]",
    ]


def test_ini_keys_set_the_axes(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllmbench_precision = nf4\nllmbench_batch_size = 3\nllmbench_device = cpu\n")
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    assert collected_ids(result) == ["test_generate[gemma3-270m-nf4-cpu-bs3]"]


def test_command_line_wins_over_ini(pytester: pytest.Pytester) -> None:
    pytester.makeini("[pytest]\nllmbench_precision = nf4\nllmbench_batch_size = 3\nllmbench_device = cpu\n")
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest("--collect-only", "-q", "--llmbench-precision=bf16")
    assert collected_ids(result) == ["test_generate[gemma3-270m-bf16-cpu-bs3]"]


@pytest.mark.parametrize(
    ("args", "ini", "expected"),
    [
        (
            ["--llmbench-precision=bf61"],
            "",
            "*unknown precision 'bf61' (from --llmbench-precision on the command line); known precisions: fp32, bf16,*",
        ),
        (
            [],
            "llmbench_precision = fp32,bf61\n",
            "*unknown precision 'bf61' (from llmbench_precision in tox.ini); known precisions: fp32,*",
        ),
        (
            ["--llmbench-model=gemma-9000"],
            "",
            "*unknown model 'gemma-9000' (from --llmbench-model on the command line); known models: gemma3-1b-it,*",
        ),
        (
            ["--llmbench-device=tpu"],
            "",
            "*unknown device 'tpu' (from --llmbench-device on the command line); known devices: cpu, cuda, mps*",
        ),
        (
            ["--llmbench-batch-size=1,zero"],
            "",
            "*--llmbench-batch-size: 'zero' is not an integer (from --llmbench-batch-size on the command line)*",
        ),
        (
            ["--llmbench-max-new-tokens=0"],
            "",
            "*--llmbench-max-new-tokens: 0 is not positive (from --llmbench-max-new-tokens on the command line)*",
        ),
        (
            ["--llmbench-rounds=-1"],
            "",
            "*--llmbench-rounds: -1 is not positive (from --llmbench-rounds on the command line)*",
        ),
        (
            ["--llmbench-peak-bandwidth=fast"],
            "",
            "*--llmbench-peak-bandwidth: 'fast' is not a bandwidth (from --llmbench-peak-bandwidth on the command line)*",  # noqa: E501,
        ),
        (
            [],
            "llmbench_quality_target = 1.5\n",
            "*--llmbench-quality-target: '1.5' is not a share in (0, 1] (from llmbench_quality_target in tox.ini)*",
        ),
        (
            ["--llmbench-threads=0"],
            "",
            "*--llmbench-threads: 0 is not positive (from --llmbench-threads on the command line)*",
        ),
        (
            ["--llmbench-matrix=nowhere.toml"],
            "",
            "*matrix file *nowhere.toml does not exist (from --llmbench-matrix)*",
        ),
    ],
)
def test_bad_values_are_usage_errors_naming_value_and_origin(
    pytester: pytest.Pytester, args: list[str], ini: str, expected: str
) -> None:
    pytester.makefile(".ini", tox="[pytest]\n" + ini)
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest("--collect-only", "-q", *args)
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["ERROR: " + expected.lstrip("*")])


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            '[matrix]\nprecisions = ["fp32", "int3"]\n',
            "*unknown precision 'int3' (from [[]matrix[]] precisions in *matrix.toml)*",
        ),
        (
            "[matrix]\nbatch_sizes = [0]\n",
            "*batch size 0 is not a positive integer (from [[]matrix[]] batch_sizes in *matrix.toml)*",
        ),
        (
            "[matrix]\nprecision = ['fp32']\n",
            "*matrix file *matrix.toml: [[]matrix[]] has unknown key(s) precision; allowed:*",
        ),
        ("[matrix\n", "*matrix file *matrix.toml: not valid TOML*"),
        ('[models.mine]\nsource = "hub:x/y"\n', "*matrix file *matrix.toml: [[]models.mine[]] needs a 'family' field*"),
        (
            '[models.mine]\nsource = "s3://x"\nfamily = "causal"\n',
            "*[[]models.mine[]] source 's3://x' must start with 'hub:', 'path:' or 'package:'*",
        ),
        (
            '[matrix]\nexclude = { precision = "int8" }\n',
            "*matrix file *matrix.toml: [[]matrix[]] exclude must be a list of tables like*",
        ),
        (
            '[matrix]\nexclude = [{ precisions = "int8" }]\n',
            "*[[]matrix[]] exclude entry 1 has unknown key(s) precisions; allowed: model, precision, device, batch_s*",
        ),
        (
            '[matrix]\nexclude = [{ batch_size = "4" }]\n',
            "*[[]matrix[]] exclude entry 1: batch_size must be an integer, got '4'*",
        ),
        (
            '[matrix]\nexclude = [{ device = "cpu" }, { precision = "int9" }]\n',
            "*unknown precision 'int9' in [[]matrix[]] exclude entry 2 (from *matrix.toml); known precisions:*",
        ),
        (
            '[matrix]\nprecisions = ["bf16"]\ndevices = ["cpu"]\nexclude = [{ device = "cpu" }]\n',
            "*every combination selected is excluded by [[]matrix[]] exclude in *matrix.toml "
            "(gemma3-270m bf16 cpu bs1, gemma3-270m bf16 cpu bs4): remove the entry there to run them*",
        ),
    ],
)
def test_bad_matrix_files_name_the_file_and_problem(pytester: pytest.Pytester, body: str, expected: str) -> None:
    write_matrix(pytester.path, body)
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest("--collect-only", "-q")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([expected])


def test_skipped_combinations_show_their_reasons(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setenv("HF_HOME", str(pytester.path / "empty-hf-home"))
    write_matrix(
        pytester.path,
        """
[matrix]
models = ["gemma3-270m", "t5-small"]
precisions = ["fp16", "q8_0"]
devices = ["cuda"]
batch_sizes = [1]
""",
    )
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest("-rs", "--llmbench-device=cpu,cuda")
    result.assert_outcomes(skipped=8)
    result.stdout.fnmatch_lines_random(
        [
            "SKIPPED * gemma3-270m-fp16-cpu-bs1: fp16 gives NaN logits for Gemma 3*",
            "SKIPPED * gemma3-270m-q8_0-cpu-bs1: no GGUF file for q8_0 in model gemma3-270m*",
            "SKIPPED * t5-small-fp16-cpu-bs1: not available offline: google-t5/t5-small*",
            "SKIPPED * t5-small-fp16-cuda-bs1: *",
            "SKIPPED * gemma3-270m-q8_0-cuda-bs1: *",
        ]
    )


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the skip on a machine without MPS")
def test_mps_combinations_are_skipped_at_collection_where_there_is_no_mps(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_matrix_ids=COLLECT_TEST)
    result = pytester.runpytest(
        "-rs", "--llmbench-model=gemma3-270m", "--llmbench-precision=bf16", "--llmbench-device=mps"
    )
    result.assert_outcomes(skipped=2)
    result.stdout.fnmatch_lines(
        ["SKIPPED * gemma3-270m-bf16-mps-bs1: MPS is not available (torch *, no Apple GPU found)"]
    )


@pytest.mark.skipif(torch.backends.mps.is_available(), reason="checks the skip on a machine without MPS")
def test_a_device_the_probes_cannot_measure_is_skipped_even_where_the_backend_accepts_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import llmbench.plugin
    from llmbench.config.combination import Combination
    from llmbench.config.models import BUILTIN_MODELS

    class AcceptingBackend:  # a backend that would run anything (as a Metal build of llama.cpp would mps)
        def unavailable_reason(self, spec: object, precision: str, device: str) -> str | None:
            return None

    monkeypatch.setattr(llmbench.plugin, "get_backend", lambda name: AcceptingBackend())
    combination = Combination(BUILTIN_MODELS["gemma3-270m"], "q4_k_m", "mps", 1)
    assert "'mps': MPS is not available" in (llmbench.plugin.skip_reason(combination) or "")
    assert llmbench.plugin.skip_reason(Combination(BUILTIN_MODELS["gemma3-270m"], "q4_k_m", "cpu", 1)) is None




def test_each_model_is_loaded_once_and_released_after_its_last_test(
    suite: pytest.Pytester, tiny_gemma3_dir: Path
) -> None:
    write_matrix(suite.path, TINY_MATRIX.format(path=tiny_gemma3_dir))
    suite.makepyfile(
        test_cache="""
        SEEN = []

        def test_a(llm, llm_combination, llmbench_models):
            SEEN.append((llm_combination.load_key, id(llm), list(llmbench_models.releases)))

        def test_b(llm, llm_combination, llmbench_models):
            SEEN.append((llm_combination.load_key, id(llm), list(llmbench_models.releases)))

        def test_zz_after_all(llmbench_models):
            keys = [key for key, _, _ in SEEN]
            assert [r.key for r in llmbench_models.loads] == [("tiny", "fp32", "cpu"), ("tiny", "bf16", "cpu")]
            # fp32 was released before the first bf16 test ran, and never before its own last test.
            fp32 = [s for s in SEEN if s[0][1] == "fp32"]
            bf16 = [s for s in SEEN if s[0][1] == "bf16"]
            assert all(releases == [] for _, _, releases in fp32)
            assert all(releases == [("tiny", "fp32", "cpu")] for _, _, releases in bf16)
            assert len({obj for _, obj, _ in fp32}) == 1
            assert llmbench_models.releases == [("tiny", "fp32", "cpu"), ("tiny", "bf16", "cpu")]
        """
    )
    # The session cache is the same for both loaders: the in-process one spares starting two workers.
    result = suite.runpytest("-v", "--llmbench-isolation=none")
    result.assert_outcomes(passed=9)


def test_tests_of_one_model_run_together(suite: pytest.Pytester, tiny_gemma3_dir: Path) -> None:
    write_matrix(suite.path, TINY_MATRIX.format(path=tiny_gemma3_dir))
    suite.makepyfile(
        test_order="""
        def test_a(llm_combination):
            pass

        def test_plain():
            pass

        def test_b(llm_combination):
            pass
        """
    )
    result = suite.runpytest("--collect-only", "-q")
    assert collected_ids(result) == [
        "test_a[tiny-fp32-cpu-bs1]",
        "test_a[tiny-fp32-cpu-bs2]",
        "test_b[tiny-fp32-cpu-bs1]",
        "test_b[tiny-fp32-cpu-bs2]",
        "test_a[tiny-bf16-cpu-bs1]",
        "test_a[tiny-bf16-cpu-bs2]",
        "test_b[tiny-bf16-cpu-bs1]",
        "test_b[tiny-bf16-cpu-bs2]",
        "test_plain",
    ]
