"""A project outside this repository: a matrix file and one test file, nothing else (issue 11).

The README's example must work for a user who pip-installs pytest-llmbench in their own repository:
the fixtures it asks for (``llm``, ``llm_benchmark``, ``prompt_batch``, ``max_new_tokens``, ``quality``)
and the default data set ship with the plugin, which loads by its entry point. The session runs in a
subprocess whose working directory holds only those two files (no conftest, no copy of our fixtures).
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.support.matrices import TINY_FP32_MATRIX
from tests.support.paths import REPO

MATRIX = TINY_FP32_MATRIX


def test_a_matrix_file_and_one_test_file_are_a_whole_benchmark_suite(
    pytester: pytest.Pytester, tiny_gemma3_dir: Path
) -> None:
    (pytester.path / "matrix.toml").write_text(MATRIX.format(path=tiny_gemma3_dir))
    # The README's example, exactly as this repository's own suite has it.
    (pytester.path / "test_generate.py").write_text((REPO / "benchmarks" / "test_generate.py").read_text())
    assert sorted(p.name for p in pytester.path.iterdir()) == ["matrix.toml", "test_generate.py"]

    result = pytester.runpytest_subprocess(
        "-p", "no:cacheprovider", "--llmbench-matrix=matrix.toml", "--llmbench-quality-items=2",
        "--llmbench-rounds=2", "--llmbench-warmup-rounds=0", "--llmbench-peak-bandwidth=10GB/s",
        "--benchmark-autosave", "--benchmark-save-data",
        "--benchmark-storage=file://./saved",
    )  # fmt: skip
    result.assert_outcomes(passed=2)
    result.stdout.fnmatch_lines(["*llmbench: LLM inference figures*"])

    (saved,) = list((pytester.path / "saved").glob("*/0001_*.json"))
    benchmarks = json.loads(saved.read_text())["benchmarks"]
    assert sorted(b["param"] for b in benchmarks) == ["tiny-fp32-cpu-bs1", "tiny-fp32-cpu-bs2"]
    for bench in benchmarks:
        metrics = bench["extra_info"]["metrics"]
        # Timed with the shipped prompts and scored against the shipped data set's references.
        assert metrics["latency_s"]["value"] > 0
        assert len(metrics["rouge1"]["samples"]) == 2
