"""Model workers: the request protocol on a tiny model, and a worker that is killed, raises or hangs.

Each worker is a spawned process that imports torch (seconds), so these tests start only a few.
Faults are injected through the environment the worker inherits (:mod:`llmbench.testing.faults`: the worker
really kills itself, raises or hangs), or by killing the worker from outside.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
import venv
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import pytest

from llmbench.backends import get_backend
from llmbench.config.combination import Combination, ModelSpec
from llmbench.measure.probes import probes_for
from llmbench.metrics import METRICS_KEY
from llmbench.testing import faults
from llmbench.workers import Worker, WorkerFailed, WorkerLauncher, WorkerModel
from llmbench.workers.benchmark import WorkerClock, WorkerGenerateBenchmark
from llmbench.workers.client import interpreter_sys_path
from llmbench.workers.protocol import Close, Closed, Load, Prepare, TimedRound
from llmbench.workers.session import WorkerLoader
from tests.support.matrices import tiny_matrix
from tests.support.paths import REPO

PROMPTS = ("The cat sat on the mat.", "A storm hit the coast on Monday.")


def with_faults(monkeypatch: pytest.MonkeyPatch, spec: str) -> None:
    """Workers started from now on in this test inherit ``spec``'s faults."""
    for key, value in faults.environment(spec).items():
        monkeypatch.setenv(key, value)


def tiny(path: Path, precision: str = "fp32") -> Combination:
    spec = ModelSpec(name="tiny", family="causal", source=f"path:{path}", max_new_tokens=4)
    return Combination(spec, precision, "cpu", 2)


@pytest.fixture(scope="module")
def loaded(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[WorkerModel]:
    """The tiny model loaded in a worker, shared by the tests that need a loaded model."""
    folder = tmp_path_factory.mktemp("worker")
    model = WorkerLauncher(threads=1, log_dir=folder).launch(tiny(tiny_gemma3_dir), folder)
    yield model
    model.close()


def test_a_worker_measures_in_its_own_process_and_returns_plain_data(
    loaded: WorkerModel, tiny_gemma3_dir: Path, tmp_path: Path
) -> None:
    assert loaded.worker.pid != os.getpid()
    assert loaded.combination_key == ("tiny", "fp32", "cpu")
    assert loaded.load_s > 0
    assert loaded.weight_bytes() > 0
    assert loaded.kv_cache_layout() is not None
    timed = loaded.timed_generate(PROMPTS, 4)
    assert timed.seconds > 0
    assert len(timed.generation.texts) == 2
    assert all(0 < n <= 4 for n in timed.generation.generated_tokens)
    # The step times were taken in the worker, within the round it timed.
    assert 0 < timed.generation.step_times_s[-1] <= timed.seconds
    assert [metric.name for metric in timed.memory.metrics()] == ["peak_rss_bytes", "rss_before_bytes"]
    assert timed.memory.peak_bytes() >= timed.memory.before_bytes() > 0
    # Greedy: the untimed generation (quality passes) gives the texts the in-process model gives.
    assert loaded.generate(PROMPTS, 4).texts == timed.generation.texts
    in_process = get_backend("transformers").load(tiny(tiny_gemma3_dir), tmp_path, probes_for("cpu").timer)
    try:
        assert in_process.generate(list(PROMPTS), 4).texts == timed.generation.texts
    finally:
        in_process.close()
    load = loaded.measure_load()
    assert load.seconds > 0
    assert load.memory.peak_bytes() > 0
    # An exception in the worker (here: a request out of order) comes back with its traceback,
    # and the worker goes on answering.
    with pytest.raises(WorkerFailed) as failed:
        loaded.worker.request(Load())
    assert (
        str(failed.value) == "worker for tiny-fp32-cpu: RuntimeError: the model is already loaded (in a 'load' request)"
    )
    assert failed.value.remote_traceback is not None
    assert "Traceback (most recent call last)" in failed.value.remote_traceback
    assert loaded.generate(PROMPTS, 2).texts


def test_pytest_benchmark_rounds_are_the_latencies_measured_in_the_worker(
    loaded: WorkerModel, pytester: pytest.Pytester
) -> None:
    """The rounds are taken in a pytest session of their own (pytester, in process): pytest-benchmark
    disables the ``benchmark`` fixture of an xdist worker, and ``make test`` runs this suite on xdist workers."""
    seen: list[float] = []
    found: dict[str, Any] = {}
    timed_generate = loaded.timed_generate

    def spy(prompts: Sequence[str], max_new_tokens: int) -> TimedRound:
        timed = timed_generate(prompts, max_new_tokens)
        seen.append(timed.seconds)
        time.sleep(0.05)  # a slow round trip must not count
        return timed

    class MeasuredInTheWorker:
        @pytest.fixture
        def measured(self, benchmark: Any) -> None:
            measured = WorkerGenerateBenchmark(
                benchmark=benchmark,
                combination=tiny(Path("unused")),
                probes=probes_for("cpu"),
                peak_bandwidth=None,
                load_s=loaded.load_s,
                rounds=3,
                warmup_rounds=1,
            )
            loaded.timed_generate = spy  # type: ignore[method-assign]
            try:
                found["texts"] = measured.run(loaded, PROMPTS, 3).texts
            finally:
                del loaded.timed_generate
            found["rounds"] = list(benchmark.stats.stats.data)
            found["metrics"] = benchmark.extra_info[METRICS_KEY]
            found["model"] = benchmark.extra_info["model"]
            found["timer_after"] = benchmark._timer

    pytester.makepyfile("def test_rounds(measured):\n    pass\n")
    pytester.runpytest_inprocess("-p", "no:cacheprovider", plugins=[MeasuredInTheWorker()]).assert_outcomes(passed=1)
    assert len(found["texts"]) == 2
    assert len(seen) == 4
    assert found["rounds"] == seen[1:]  # exactly the worker's seconds, warm-up left out
    metrics = found["metrics"]
    assert metrics["latency_s"]["samples"] == seen[1:]
    assert metrics["peak_rss_bytes"]["value"] > 0
    assert metrics["load_s"]["value"] == loaded.load_s
    assert found["model"] == "tiny"
    # The fixture's own timer is back for whatever else uses it.
    assert not isinstance(found["timer_after"], WorkerClock)


def test_a_closed_worker_ends_and_answers_no_more(tmp_path: Path) -> None:
    worker = Worker.start(tiny(tmp_path), tmp_path, log_dir=tmp_path)
    assert isinstance(worker.request(Close()), Closed)
    worker.close()
    assert not worker.is_alive()
    assert worker.failure is None
    with pytest.raises(WorkerFailed, match="is closed"):
        worker.request(Load())


def test_a_worker_killed_from_outside_fails_with_the_signal_and_stays_failed(tmp_path: Path) -> None:
    worker = Worker.start(tiny(tmp_path), tmp_path, log_dir=tmp_path)
    assert worker.pid is not None
    os.kill(worker.pid, signal.SIGKILL)
    with pytest.raises(WorkerFailed, match=r"^worker for tiny-fp32-cpu died with SIGKILL during a 'prepare' request"):
        worker.request(Prepare())
    with pytest.raises(WorkerFailed, match="died with SIGKILL during a 'prepare' request"):
        worker.request(Load())  # fails fast, with the same reason
    assert worker.failure is not None
    assert "OOM killer" in worker.failure
    worker.close()


def test_a_worker_that_kills_itself_reports_the_signal_and_its_last_log_lines(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_faults(monkeypatch, "kill=load:tiny-fp32-cpu")
    with pytest.raises(WorkerFailed) as failed:
        WorkerLauncher(log_dir=tmp_path).launch(tiny(tmp_path), tmp_path, prepare=False)
    reason = str(failed.value)
    assert reason.startswith("worker for tiny-fp32-cpu died with SIGKILL during a 'load' request (out of memory?")
    assert "; last lines of its log " in reason
    assert reason.endswith("| llmbench.testing.faults: LLMBENCH_FAULTS asks for 'kill' on a 'load' request")


def test_an_exception_in_the_worker_comes_back_with_its_message_and_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_faults(monkeypatch, "raise=prepare, hang=load:other-fp32-cpu")
    worker = Worker.start(tiny(tmp_path), tmp_path, log_dir=tmp_path)
    try:
        with pytest.raises(WorkerFailed) as failed:
            worker.request(Prepare())
        assert str(failed.value) == (
            "worker for tiny-fp32-cpu: RuntimeError: llmbench.testing.faults: LLMBENCH_FAULTS asks for 'raise' "
            "on a 'prepare' request (in a 'prepare' request)"
        )
        assert failed.value.remote_traceback is not None
        assert "in _fail_on_purpose" in failed.value.remote_traceback
        assert isinstance(worker.request(Close()), Closed)  # still answering
    finally:
        worker.close()


def test_a_worker_that_hangs_is_killed_after_the_timeout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    with_faults(monkeypatch, "hang=load")
    worker = Worker.start(tiny(tmp_path), tmp_path, log_dir=tmp_path, load_timeout_s=2)
    with pytest.raises(WorkerFailed) as failed:
        worker.request(Load())
    assert str(failed.value).startswith(
        "worker for tiny-fp32-cpu did not answer a 'load' request within 2 s (hung?) and was killed"
    )
    assert not worker.is_alive()
    with pytest.raises(WorkerFailed, match="within 2 s"):
        worker.request(Load())
    worker.close()


def test_a_worker_fault_matches_request_kinds_and_keys() -> None:
    kill_load = faults.WorkerFault("kill", "load")
    assert kill_load.applies("load", "tiny-fp32-cpu")
    assert not kill_load.applies("prepare", "tiny-fp32-cpu")
    assert faults.WorkerFault("kill", "*", "tiny-fp32-cpu").applies("generate", "tiny-fp32-cpu")
    assert not faults.WorkerFault("kill", "load", "tiny-bf16-cpu").applies("load", "tiny-fp32-cpu")
    with pytest.raises(faults.FaultSpecError, match="LLMBENCH_FAULTS: entry 'explode=load' must be NAME=VALUE"):
        faults.parse_faults("explode=load")


def test_the_session_loader_fails_a_key_again_at_once_with_the_same_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    with_faults(monkeypatch, "kill=load")
    loader = WorkerLoader(tmp_path / "logs", threads=1)
    combination = tiny(tmp_path)
    loader.prepare(combination, tmp_path)
    with pytest.raises(WorkerFailed, match="died with SIGKILL during a 'load' request") as first:
        loader.load(combination, tmp_path)
    with pytest.raises(WorkerFailed) as again:
        loader.prepare(combination, tmp_path)
    assert str(again.value) == str(first.value)
    with pytest.raises(WorkerFailed) as again:
        loader.load(combination, tmp_path)
    assert str(again.value) == str(first.value)
    assert len(list((tmp_path / "logs").iterdir())) == 1  # no second worker
    loader.close()


FAULTY_MATRIX = tiny_matrix(
    "{path}", models=("tiny", "tiny2"), precisions=("fp32", "bf16"), batch_sizes=(1, 2), max_new_tokens=3
)


#: The faulty keys of the matrix, with the start of the reason their tests fail with.
FAULTY = {
    "tiny-fp32-cpu": "worker for tiny-fp32-cpu died with SIGKILL during a 'timed_generate' request (out of memory? "
    "the kernel's OOM killer sends SIGKILL); last lines of its log ",
    "tiny-bf16-cpu": "worker for tiny-bf16-cpu: RuntimeError: llmbench.testing.faults: LLMBENCH_FAULTS asks for "
    "'raise' on a 'timed_generate' request (in a 'timed_generate' request)",
    "tiny2-fp32-cpu": "worker for tiny2-fp32-cpu did not answer a 'timed_generate' request within 5 s (hung?) and "
    "was killed; last lines of its log ",
}


def test_a_worker_that_dies_raises_or_hangs_fails_its_combinations_and_the_rest_is_saved(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (suite.path / "benchmarks").mkdir()
    (suite.path / "benchmarks" / "matrix.toml").write_text(FAULTY_MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", suite.path / "benchmarks" / "test_generate.py")
    with_faults(
        monkeypatch,
        "kill=timed_generate:tiny-fp32-cpu, raise=timed_generate:tiny-bf16-cpu, hang=timed_generate:tiny2-fp32-cpu",
    )
    # --llmbench-per-item=off: the quality pass's per-item timing sends 'timed_generate' requests too, and these
    # faults are for the timed rounds (the test's call); the quality pass still runs, untimed ('generate').
    result = suite.runpytest(
        "benchmarks", "--llmbench-rounds=2", "--llmbench-quality-items=2", "--llmbench-per-item=off",
        "--llmbench-threads=1", "--llmbench-peak-bandwidth=10GB/s", "--llmbench-worker-timeout=5",
        "--benchmark-json=out.json",
    )  # fmt: skip
    result.assert_outcomes(passed=2, failed=6)
    result.stdout.fnmatch_lines_random(
        [f"FAILED *test_generate[[]{key}-bs{size}]*" for key in FAULTY for size in (1, 2)]
    )
    errors = [line for line in result.outlines if line.startswith("E ") and "WorkerFailed: " in line]
    # Each combination fails with its worker's reason; the second test of a key fails at once, the same way.
    expected = [reason for reason in FAULTY.values() for _ in (1, 2)]
    assert len(errors) == len(expected), errors
    for line, reason in zip(errors, expected, strict=True):
        assert line.split("WorkerFailed: ", 1)[1].startswith(reason), line
    saved = json.loads((suite.path / "out.json").read_text())["benchmarks"]
    assert [b["param"] for b in saved] == ["tiny2-bf16-cpu-bs1", "tiny2-bf16-cpu-bs2"]
    for bench in saved:
        metrics = bench["extra_info"][METRICS_KEY]
        # pytest-benchmark's rounds are the latencies the worker measured, saved as today.
        assert bench["stats"]["data"] == metrics["latency_s"]["samples"]
        assert bench["stats"]["rounds"] == 2
        assert metrics["peak_rss_bytes"]["value"] > 0
        assert metrics["load_s"]["value"] > 0
        assert metrics["rougeLsum"]["value"] is not None
        assert len(bench["extra_info"]["outputs"]) == 2


LOAD_MATRIX = tiny_matrix("{path}", max_new_tokens=None)


@pytest.mark.parametrize("isolation", ["process", "none"])
def test_the_load_benchmark_saves_the_same_figures_in_both_modes(
    suite: pytest.Pytester, tiny_gemma3_dir: Path, isolation: str
) -> None:
    (suite.path / "benchmarks").mkdir()
    (suite.path / "benchmarks" / "matrix.toml").write_text(LOAD_MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_load.py", suite.path / "benchmarks" / "test_load.py")
    result = suite.runpytest("benchmarks", f"--llmbench-isolation={isolation}", "--benchmark-json=out.json")
    result.assert_outcomes(passed=1)
    (bench,) = json.loads((suite.path / "out.json").read_text())["benchmarks"]
    metrics = bench["extra_info"][METRICS_KEY]
    assert bench["stats"]["data"] == metrics["load_s"]["samples"]
    assert len(metrics["load_added_bytes"]["samples"]) == 3
    assert bench["extra_info"]["model"] == "tiny"


def test_a_worker_on_another_interpreter_gets_that_interpreters_own_sys_path(tmp_path: Path) -> None:
    # A bare virtual environment: no llmbench, no torch. Spawn hands a child the parent's sys.path, so
    # without sys_path the worker would import this environment's llmbench and run; with it (the default
    # for python=), the worker searches the other interpreter's own path and cannot start.
    venv.create(tmp_path / "bare", with_pip=False)
    python = tmp_path / "bare" / "bin" / "python"
    own = interpreter_sys_path(str(python))
    assert any(entry.startswith(str(tmp_path / "bare")) for entry in own)
    assert not any(entry.startswith(str(REPO)) for entry in own)  # neither src/ nor the project's .venv
    worker = Worker.start(tiny(tmp_path), tmp_path, log_dir=tmp_path, python=python)
    with pytest.raises(WorkerFailed, match=r"worker for tiny-fp32-cpu (died|exited)"):
        worker.request(Prepare())
    worker.close()
    # The same interpreter with this environment's path given explicitly runs.
    worker = Worker.start(tiny(tmp_path), tmp_path, log_dir=tmp_path, python=python, sys_path=sys.path)
    try:
        assert worker.request(Prepare()) is not None
    finally:
        worker.close()
