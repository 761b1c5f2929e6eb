"""Sessions killed mid-run: storage stays readable, no half-written file is taken for a whole one.

A benchmark session on a tiny model runs in a real subprocess (its own process group, workers
included) and is sent SIGINT, SIGTERM or SIGKILL at a seeded random moment of the session (loading,
measuring, writing outputs, saving the run). After each kill every saved run must load, the first
saved run must be unchanged, and every outputs file must parse; then a whole session with
``--benchmark-compare`` and ``llmbench compare`` must work. ``LLMBENCH_KILLS`` sets the number of kills
(6 by default; see docs/testing.md).
"""

from __future__ import annotations

import contextlib
import hashlib
import io
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmbench.cli import main
from llmbench.runs import INTERRUPTED_KEY, RunError, list_runs, load_run, run_number
from tests.robustness_record import record

REPO = Path(__file__).resolve().parents[1]
KILLS = int(os.environ.get("LLMBENCH_KILLS", "6"))
SEED = 13
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)

MATRIX = """
[matrix]
models = ["tiny"]
precisions = ["fp32"]
devices = ["cpu"]
batch_sizes = [1, 2]

[models.tiny]
source = "path:{path}"
family = "causal"
max_new_tokens = 3
"""

ARGS = (
    "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "--llmbench-rounds=2", "--llmbench-quality-items=2",
    "--llmbench-threads=1", "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs",
    "--benchmark-autosave", "--benchmark-save-data",
)  # fmt: skip


#: A suite conftest that kills the session (SIGKILL, no cleanup) while pytest-benchmark serializes the run it
#: saves: pytest-benchmark's own save has created the file by then, so without the atomic save an empty run
#: would be left.
KILL_WHILE_SAVING = """
import os
import signal


class KillWhenSaved:
    def __repr__(self):
        os.kill(os.getpid(), signal.SIGKILL)
        return "never"

    __str__ = __repr__


def pytest_benchmark_update_json(config, benchmarks, output_json):
    output_json["kill"] = KillWhenSaved()
"""


def _start(folder: Path, *extra: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS")}
    return subprocess.Popen(
        [sys.executable, *ARGS, *extra], cwd=folder, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
    )  # fmt: skip


def _finish(process: subprocess.Popen[bytes], timeout: float = 600) -> tuple[int, str]:
    try:
        out, _ = process.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        out, _ = process.communicate()
    return process.returncode, out.decode(errors="replace")


def _storage_problems(folder: Path, first: Path, first_hash: str) -> list[str]:
    """What a reader would take wrongly or could not read: a run that does not load, a changed first
    run, an outputs file that does not parse."""
    problems = []
    if hashlib.sha256(first.read_bytes()).hexdigest() != first_hash:
        problems.append(f"{first} changed")
    for path in list_runs(folder / "runs"):
        try:
            load_run(path)
        except RunError as error:
            problems.append(str(error))
    for path in (folder / ".benchmarks" / "outputs").rglob("*"):
        if path.is_file() and not path.name.startswith("."):
            try:
                for line in path.read_text(encoding="utf-8").splitlines():
                    json.loads(line)
            except (ValueError, UnicodeDecodeError) as error:
                problems.append(f"{path}: {error}")
    return problems


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_sessions_killed_at_random_moments_leave_storage_readable(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "suite"
    (folder / "benchmarks").mkdir(parents=True)
    (folder / "benchmarks" / "matrix.toml").write_text(MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", folder / "benchmarks" / "test_generate.py")

    started = time.monotonic()
    status, output = _finish(_start(folder))
    duration = time.monotonic() - started
    assert status == 0, output
    (first,) = list_runs(folder / "runs")
    first_hash = hashlib.sha256(first.read_bytes()).hexdigest()

    schedule = random.Random(SEED)
    readable = 0
    kills = []
    for index in range(KILLS):
        sig = SIGNALS[index % len(SIGNALS)]
        at = schedule.uniform(0.05, 1.05) * duration
        process = _start(folder)
        time.sleep(at)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, sig)
        status, output = _finish(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers left behind by the killed session
        problems = _storage_problems(folder, first, first_hash)
        kills.append(f"{sig.name} at {at / duration:.0%}: exit {status}, {len(list_runs(folder / 'runs'))} runs")
        assert not problems, f"after {kills[-1]}:\n" + "\n".join(problems) + "\n" + output[-3000:]
        readable += 1

    # A run saved by a session stopped with Ctrl-C says so (it holds only the tests that finished).
    for path in list_runs(folder / "runs"):
        run = load_run(path)
        if run.machine_info.get(INTERRUPTED_KEY):
            assert any("interrupted session" in note for note in run.notes)

    status, output = _finish(_start(folder, "--benchmark-compare"))
    assert status in (0, 1), output  # 1: the gate may find this machine's noise a regression
    assert "llmbench regression gate" in output
    latest = list_runs(folder / "runs")[-1]
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(["compare", str(first), str(latest)])
    assert status in (0, 1), out.getvalue()
    record("sessions killed (SIGINT, SIGTERM, SIGKILL at seeded random moments)", kills=KILLS,
           storage_readable_after=readable, seed=SEED, moments="; ".join(kills))  # fmt: skip


def test_a_session_killed_while_saving_its_run_leaves_no_half_run(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    folder = tmp_path / "suite"
    (folder / "benchmarks").mkdir(parents=True)
    (folder / "benchmarks" / "matrix.toml").write_text(MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", folder / "benchmarks" / "test_generate.py")
    (folder / "benchmarks" / "conftest.py").write_text(KILL_WHILE_SAVING)
    status, output = _finish(_start(folder))
    assert status == -signal.SIGKILL, output
    leftovers = sorted(p.name for p in (folder / "runs").rglob("*") if p.is_file())
    assert list_runs(folder / "runs") == [], leftovers  # no run file, not even an empty one
    (folder / "benchmarks" / "conftest.py").unlink()
    status, output = _finish(_start(folder, "--benchmark-compare"))
    assert status == 0, output
    assert [run_number(p) for p in list_runs(folder / "runs")] == [1]
    record("a session killed while saving its run (SIGKILL inside pytest-benchmark's save)", kills=1,
           half_runs_left=0, next_session="saved 0001")  # fmt: skip
