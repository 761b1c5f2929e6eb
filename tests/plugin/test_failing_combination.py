"""A combination whose worker crashes fails with the reason; the rest runs and is saved; the gate calls it
failed, not removed, in the session and in ``llmbench compare`` (the failed ids are saved with the run)."""

from __future__ import annotations

import contextlib
import io
import json
import shutil
from pathlib import Path

import pytest

from llmbench.cli import main
from llmbench.runs import FAILED_KEY, list_runs, load_run
from llmbench.testing import faults
from tests.support.matrices import tiny_matrix, write_matrix
from tests.support.paths import REPO
from tests.support.robustness_record import record

MATRIX = tiny_matrix("{path}", precisions=("fp32", "bf16"), max_new_tokens=3)

#: --llmbench-per-item=off: the quality pass's per-item timing sends 'timed_generate' requests too, and the fault
#: here is for the timed rounds (the test's call); the quality pass still runs, untimed ('generate').
ARGS = (
    "benchmarks", "--llmbench-rounds=2", "--llmbench-quality-items=2", "--llmbench-per-item=off",
    "--llmbench-threads=1", "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs", "--benchmark-autosave",
)  # fmt: skip
FAILED_ID = "benchmarks/test_generate.py::test_generate[tiny-bf16-cpu-bs1]"


def test_a_crashed_worker_fails_its_combination_and_the_gate_says_failed_not_removed(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_matrix(suite.path, MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks" / "test_generate.py")
    monkeypatch.delenv(faults.ENV, raising=False)
    # The baseline is any saved run of both combinations: loaded in process, it spares two worker starts.
    suite.runpytest(*ARGS, "--llmbench-isolation=none").assert_outcomes(passed=2)

    # The workers inherit the faults (llmbench.testing.faults): the bf16 worker SIGKILLs itself.
    for key, value in faults.environment("kill=timed_generate:tiny-bf16-cpu").items():
        monkeypatch.setenv(key, value)
    result = suite.runpytest(*ARGS, "--benchmark-compare")
    result.assert_outcomes(passed=1, failed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED
    result.stdout.fnmatch_lines(
        [
            "failed (the test failed, no figures saved) (1):",
            "  tiny bf16 cpu bs1: call: *died with SIGKILL during a 'timed_generate' request*",
        ],
        consecutive=True,
    )
    result.stdout.fnmatch_lines(["llmbench gate: FAILED: *1 combination failed to run"])
    result.stdout.no_fnmatch_line("removed (not in the current run)*")

    # The rest of the matrix is saved, with the failed id and its reason.
    first, second = list_runs(suite.path / "runs")
    run = load_run(second)
    assert [bench["param"] for bench in run.benchmarks.values()] == ["tiny-fp32-cpu-bs1"]
    saved = json.loads(second.read_text())["machine_info"][FAILED_KEY]
    assert list(saved) == [FAILED_ID]
    assert "died with SIGKILL" in saved[FAILED_ID]

    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(["compare", str(first), str(second)])
    assert status == 1, out.getvalue()
    assert "  tiny bf16 cpu bs1: call: " in out.getvalue()
    assert "removed (not in the current run)" not in out.getvalue()
    record("a crashing worker (SIGKILL during timed_generate)", combinations=2, failed=1, saved=1,
           gate="FAILED, not removed")  # fmt: skip
