"""The regression gate end to end (pytester): the suite on a tiny Gemma 3 model, saved twice, then runs
with an injected slowdown (regressed), memory growth or quality drop (each failing with its sentence and
exit status).

The benchmarks' conftest wraps the model's ``generate`` and times the rounds on a fixed clock, so every
verdict is decided from controlled inputs, never from this machine's load: each call advances the
benchmark's clock (pytest-benchmark's timer, swapped for the rounds) by exactly 200 ms, returns the first
sentence of each article (a lead-1 summary, so ROUGE has something to lose) and step times from a fixed
clock (so TTFT and decode rates are controlled too); ``LLMBENCH_INJECT`` then makes both clocks 20% slower
(``slow``; 33% slower, ``slow33``, against the first saved run alone), allocates and touches a quarter of the
process's RSS inside the call (``memory``) or returns empty texts (``quality``). On real round times a busy
machine spread the saved runs' rounds beyond their threshold, which left their timed figures out of the drift
history and made the slowdown only ``noisy``.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import pytest

from tests.support.matrices import tiny_matrix, write_matrix
from tests.support.paths import REPO

MATRIX = tiny_matrix("{path}")

INJECT = '''
import mmap
import os
from dataclasses import replace

import psutil
import pytest

from llmbench.benchmark_storage import set_fixture_timer

BASE_S = 0.2


class FixedClock:
    """The rounds' timer: it moves only when a call advances it."""

    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


class Injected:
    def __init__(self, inner, mode, clock):
        self._inner, self._mode, self._clock = inner, mode, clock

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, prompts, max_new_tokens):
        # A quarter of the process's RSS more, in fresh pages mapped here: malloc could serve a buffer from
        # freed pages the process already counts (the model loads in this long-lived pytest process).
        block = mmap.mmap(-1, psutil.Process().memory_info().rss // 4) if self._mode == "memory" else None
        if block is not None:
            for offset in range(0, len(block), mmap.PAGESIZE):
                block[offset] = 1
        out = self._inner.generate(prompts, max_new_tokens)
        if block is not None:
            block.close()
        # Both clocks are fixed: the call takes 200 ms, the first token comes at 100 ms, then one every
        # 10 ms (the tiny model's own times are milliseconds and vary two-fold between runs); 20% slower
        # when slow.
        scale = {"slow": 1.2, "slow33": 1.33}.get(self._mode, 1.0)
        self._clock.now += scale * BASE_S
        texts = tuple("" if self._mode == "quality" else p.split(". ")[0] + "." for p in prompts)
        steps = tuple(scale * (0.1 + 0.01 * i) for i in range(len(out.step_times_s)))
        return replace(out, texts=texts, step_times_s=steps)


@pytest.fixture
def llm(llm_combination, llmbench_models, benchmark):
    clock = FixedClock()
    set_fixture_timer(benchmark, clock)
    return Injected(llmbench_models.get(llm_combination), os.environ.get("LLMBENCH_INJECT", ""), clock)
'''

#: The model is loaded in the session's process (the wrapper above runs there either way) and the peak
#: bandwidth is given, not measured. Each session is a fresh interpreter (runpytest_subprocess): run in
#: this long-lived pytest process, the saved runs' peak RSS drifted with what earlier tests had left
#: (1.36 then 0.705 GiB for the two baseline sessions once), and the injected memory growth read noisy.
ARGS = (
    "benchmarks", "--llmbench-rounds=20", "--llmbench-quality-items=5", "--benchmark-storage=runs",
    "--llmbench-isolation=none", "--llmbench-peak-bandwidth=10GB/s",
)  # fmt: skip


def _hashes(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest() for p in folder.rglob("*.json")}


def test_unchanged_runs_pass_and_injected_regressions_fail(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv("GITHUB_STEP_SUMMARY", raising=False)
    write_matrix(suite.path, MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks" / "test_generate.py")
    (suite.path / "benchmarks" / "conftest.py").write_text(INJECT)

    monkeypatch.setenv("LLMBENCH_INJECT", "")
    first = suite.runpytest_subprocess(*ARGS, "--benchmark-autosave")
    first.assert_outcomes(passed=1)
    assert "llmbench regression gate" not in first.stdout.str()

    # A first baseline (one saved run, no drift history): every timed figure 33% slower fails beyond the threshold
    # plus the allowance assumed for the drift between runs (docs/gate.md, A first baseline), and says so.
    monkeypatch.setenv("LLMBENCH_INJECT", "slow33")
    gross = suite.runpytest_subprocess(*ARGS, "--benchmark-compare")
    assert gross.ret == pytest.ExitCode.TESTS_FAILED, gross.stdout.str()
    assumed = "beyond the threshold plus an assumed allowance for the drift between runs (5% + 14%)*"
    for sentence in ("latency 200 → 266 ms (+33.0%, p*)", "TTFT 100 → 133 ms (+33.0%, p*)",
                     "decode * → * tok/s (-24.8%, p*)"):  # fmt: skip
        gross.stdout.fnmatch_lines(
            ["regressions (*):", f"  tiny fp32 cpu bs1: {sentence}: {assumed}"], consecutive=False
        )
    monkeypatch.setenv("LLMBENCH_INJECT", "")

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

    expected = {
        # The delta takes the unit of the larger figure: MiB under 1 GiB of RSS, GiB above (CI's runner).
        "memory": "  tiny fp32 cpu bs1: peak RSS * → * (+*%, +* ?iB)",
        "quality": "  tiny fp32 cpu bs1: ROUGE-1 * → 0 (-*, 95% CI -* to -*)",
    }
    for mode, sentence in expected.items():
        monkeypatch.setenv("LLMBENCH_INJECT", mode)
        verdict = tmp_path / f"{mode}.md"
        result = suite.runpytest_subprocess(*ARGS, "--benchmark-compare", f"--llmbench-verdict={verdict}")
        result.assert_outcomes(passed=1)
        assert result.ret == pytest.ExitCode.TESTS_FAILED, mode + result.stdout.str()
        result.stdout.fnmatch_lines(["regressions (*):", sentence], consecutive=False)
        result.stdout.fnmatch_lines(["llmbench gate: FAILED: * in 1 of 1 combination"])
        assert verdict.read_text().startswith("## llmbench regression gate: FAILED\n")
        assert _hashes(suite.path / "runs") == saved, mode  # nothing saved, changed or deleted
    # Speed against history (issue 12): on the fixed clocks the two saved runs show no drift, so the 20%
    # slower call and TTFT regress, exactly.
    monkeypatch.setenv("LLMBENCH_INJECT", "slow")
    result = suite.runpytest_subprocess(*ARGS, "--benchmark-compare")
    result.assert_outcomes(passed=1)
    out = result.stdout.str()
    assert result.ret == pytest.ExitCode.TESTS_FAILED, out
    result.stdout.fnmatch_lines(["regressions (*):", "  tiny fp32 cpu bs1: TTFT 100 → 120 ms (+20.0%, p*)"],
                                consecutive=False)  # fmt: skip
    result.stdout.fnmatch_lines(["regressions (*):", "  tiny fp32 cpu bs1: latency 200 → 240 ms (+20.0%, p*)"],
                                consecutive=False)  # fmt: skip
    assert "llmbench gate" in out
    assert _hashes(suite.path / "runs") == saved  # nothing saved, changed or deleted
