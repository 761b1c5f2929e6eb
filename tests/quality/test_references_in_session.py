"""A reference per comparison, end to end on tiny offline models: another model of the matrix (the tiny T5
against the tiny Gemma 3, which runs after it: compared at the end of the session), and a reference from
another saved run (``--llmbench-reference-run``, standing in for another device or machine).

The models load in the pytest process (``--llmbench-isolation=none``): references are under test, not workers.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from llmbench.quality.outputs import read_outputs
from llmbench.report.frame import rows_of
from llmbench.runs import list_runs, load_run
from tests.support.matrices import tiny_matrix, write_matrix
from tests.support.paths import DATA, REPO

pytestmark = pytest.mark.usefixtures("one_torch_thread")

ARGS = (
    "benchmarks", "--llmbench-isolation=none", "--llmbench-rounds=1", "--llmbench-warmup-rounds=0",
    "--llmbench-quality-items=3", "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs",
    "-p", "no:cacheprovider",
)  # fmt: skip
#: Comparison figures with a value whatever the tiny models write (a share is n/a where the reference scores 0).
COMPARED = ("drift_identical_share", "rouge1_diff", "rouge2_diff", "rougeLsum_diff")


def two_models(t5_dir: Path, gemma_dir: Path) -> str:
    """The tiny T5 (listed first: it runs first) compared with the tiny Gemma 3 at fp32."""
    return f"""
[matrix]
models = ["t5", "gemma"]
precisions = ["fp32"]
devices = ["cpu"]
batch_sizes = [1]
max_new_tokens = 4

[models.t5]
source = "path:{t5_dir}"
family = "seq2seq"
reference = {{ model = "gemma" }}

[models.gemma]
source = "path:{gemma_dir}"
family = "causal"
"""


def test_a_reference_of_another_model_that_runs_later_is_compared_at_the_end(
    suite: pytest.Pytester, tiny_t5_dir: Path, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_matrix(suite.path, two_models(tiny_t5_dir, tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks")

    result = suite.runpytest(*ARGS, "--benchmark-autosave", "--llmbench-outputs-dir=outputs")

    result.assert_outcomes(passed=2)
    (path,) = list_runs(suite.path / "runs")
    t5, gemma = rows_of(load_run(path))
    assert (t5.model, gemma.model) == ("t5", "gemma")
    for name in COMPARED:
        assert t5.value(name) is not None, (name, t5.metric(name))
    for name in (*COMPARED, "rouge1_share", "quality_target_met", "drift_first_diff_token"):
        assert name in t5.metrics, name
        assert name not in gemma.metrics  # the reference itself: nothing to compare
    identical = t5.metric("drift_identical_share")
    assert identical is not None
    assert "identical to gemma fp32 cpu's" in identical.note
    # Two models' token ids need not share a tokenizer: no first differing token, and why.
    first = t5.metric("drift_first_diff_token")
    assert first is not None
    assert first.value is None
    assert "another model (gemma)" in first.note
    # The ROUGE difference is the paired mean of the per-item differences, with its interval.
    diff = t5.metric("rouge1_diff")
    assert diff is not None
    assert diff.value is not None
    assert diff.value == pytest.approx(t5.value("rouge1") - gemma.value("rouge1"))  # type: ignore[operator]
    assert len(diff.samples) == 3
    assert diff.ci is not None
    assert diff.ci[0] <= diff.value <= diff.ci[1]
    assert t5.info["quality_reference"] == {
        "model": "gemma", "precision": "fp32", "device": "cpu", "target_share": 0.99, "source": "this session",
    }  # fmt: skip
    # The outputs file carries what a comparison needs: token ids and per-item scores.
    records = read_outputs(suite.path / "outputs" / "t5-fp32-cpu.jsonl")
    assert all(record.token_ids is not None and record.rouge1 is not None for record in records)


def test_a_reference_from_another_saved_run(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    # The reference: fp32, saved as run 0001 (another device or machine would save it the same way).
    write_matrix(suite.path, tiny_matrix(tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks")
    suite.runpytest(*ARGS, "--benchmark-autosave").assert_outcomes(passed=1)
    # bf16 alone, its reference declared: fp32, which this matrix does not run.
    matrix = tiny_matrix(tiny_gemma3_dir, precisions=("bf16",)).replace(
        'devices = ["cpu"]\n', 'devices = ["cpu"]\nreference = { precision = "fp32" }\n'
    )
    write_matrix(suite.path, matrix)

    refused = suite.runpytest(*ARGS)
    assert refused.ret == pytest.ExitCode.USAGE_ERROR
    refused.stderr.fnmatch_lines(
        ["*matrix file *matrix.toml: [[]matrix] reference = { precision = \"fp32\" }: the reference tiny fp32 cpu of "
         "tiny bf16 cpu bs1 is not in the matrix (models tiny; precisions bf16; devices cpu) and no reference run is "
         "named (--llmbench-reference-run)*"]
    )  # fmt: skip

    result = suite.runpytest(*ARGS, "--benchmark-autosave", "--llmbench-reference-run=1")

    result.assert_outcomes(passed=1)
    first, second = list_runs(suite.path / "runs")
    (reference,) = rows_of(load_run(first))
    (row,) = rows_of(load_run(second))
    identical = row.metric("drift_identical_share")
    assert identical is not None
    assert identical.value is not None
    assert f"identical to fp32 (run {first.name[:4]})'s" in identical.note
    first_difference = row.metric("drift_first_diff_token")
    assert first_difference is not None
    assert first_difference.value is not None or "equal fp32 (run" in first_difference.note
    diff = row.metric("rougeLsum_diff")
    assert diff is not None
    assert diff.value == pytest.approx(row.value("rougeLsum") - reference.value("rougeLsum"))  # type: ignore[operator]
    assert row.info["quality_reference"]["source"] == f"run {first.name[:4]}"


def test_a_reference_run_that_is_not_there_is_a_usage_error(suite: pytest.Pytester, tiny_gemma3_dir: Path) -> None:
    write_matrix(suite.path, tiny_matrix(tiny_gemma3_dir))
    result = suite.runpytest("benchmarks", "--benchmark-storage=runs", "--llmbench-reference-run=7")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(
        ["*--llmbench-reference-run: '7' (from --llmbench-reference-run on the command line): run 0007: the storage "
         "folder *runs does not exist*"]
    )  # fmt: skip


@pytest.mark.parametrize(
    ("run", "message"),
    [
        ("other_machine.json", "the run */other_machine.json saved no per-item outputs (was it run with "
                               "--llmbench-quality-items=0?); name a run with a quality pass"),
        ("corrupted.json", "*corrupted.json: corrupted JSON (*"),
    ],
)  # fmt: skip
def test_a_reference_run_without_outputs_or_unreadable_is_a_usage_error(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, run: str, message: str
) -> None:
    write_matrix(suite.path, tiny_matrix(tiny_gemma3_dir))
    result = suite.runpytest("benchmarks", f"--llmbench-reference-run={DATA / 'runs' / run}")
    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines([f"*--llmbench-reference-run: '*{run}' (from --llmbench-reference-run on the command "
                                 f"line): {message}"])  # fmt: skip
