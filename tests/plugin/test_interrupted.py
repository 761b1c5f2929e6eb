"""Sessions killed mid-run: storage stays readable, no half-written file is taken for a whole one.

A benchmark session on a tiny model runs in a real subprocess (its own process group, workers
included) and is killed at each moment of a session in turn, deterministically: while its first model
loads (SIGTERM), as its second combination is measured (SIGINT: pytest saves what finished), while an
outputs file is written (SIGKILL), while pytest-benchmark saves the run (SIGKILL) and after the run is
saved (SIGTERM). The suite's conftest (:data:`KILL_AT`) sends the signal to the session's process group
at that moment. After each kill every saved run must load, the first saved run must be unchanged, and
every outputs file must parse; a kill while saving leaves no run file at all; then a whole session with
``--benchmark-compare`` saves the next run and ``llmbench compare`` works. ``LLMBENCH_KILLS`` adds that
many kills at seeded random moments from 5% to 105% of a whole session (0 by default; see
docs/testing.md).
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
from dataclasses import dataclass
from pathlib import Path

import pytest

from llmbench.cli import main
from llmbench.runs import INTERRUPTED_KEY, RunError, list_runs, load_run, run_number
from tests.support.matrices import tiny_matrix
from tests.support.paths import REPO
from tests.support.robustness_record import record

KILLS = int(os.environ.get("LLMBENCH_KILLS", "0"))
SEED = 13
SIGNALS = (signal.SIGINT, signal.SIGTERM, signal.SIGKILL)

MATRIX = tiny_matrix("{path}", batch_sizes=(1, 2), max_new_tokens=3)

ARGS = (
    "-m", "pytest", "benchmarks", "-p", "no:cacheprovider", "--llmbench-rounds=2", "--llmbench-quality-items=2",
    "--llmbench-threads=1", "--llmbench-peak-bandwidth=10GB/s", "--benchmark-storage=runs",
    "--benchmark-autosave", "--benchmark-save-data",
)  # fmt: skip


#: A suite conftest that kills the session's process group (the session and its workers) at the moment
#: ``$LLMBENCH_TEST_KILL_AT`` names (``MOMENT:SIGNAL``); without it the session runs whole.
KILL_AT = """
import os
import signal
import threading

import pytest

import llmbench.quality.outputs

MOMENT, _, NAME = os.environ.get("LLMBENCH_TEST_KILL_AT", "").partition(":")


def kill():
    os.killpg(os.getpgid(0), getattr(signal, NAME))


@pytest.hookimpl(hookwrapper=True)
def pytest_fixture_setup(fixturedef, request):
    if MOMENT == "loading" and fixturedef.argname == "llm":
        threading.Timer(0.5, kill).start()  # the first worker starts and loads for seconds
    yield


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_call(item):
    if MOMENT == "measuring" and item.name.endswith("-bs2]"):
        kill()
    yield


class KillAtSecondLine:
    def __init__(self, out):
        self.out, self.lines = out, 0

    def write(self, text):
        self.lines += 1
        if self.lines == 2:
            self.out.flush()
            kill()
        return self.out.write(text)


def write_atomically(path, write, _real=llmbench.quality.outputs.write_atomically):
    _real(path, lambda out: write(KillAtSecondLine(out)) if MOMENT == "outputs" else write(out))


llmbench.quality.outputs.write_atomically = write_atomically


class KillWhenSaved:
    def __repr__(self):
        kill()
        return "never"

    __str__ = __repr__


def pytest_benchmark_update_json(config, benchmarks, output_json):
    if MOMENT == "saving":
        output_json["kill"] = KillWhenSaved()  # serialized after pytest-benchmark's own save created the file


@pytest.hookimpl(trylast=True)
def pytest_unconfigure(config):
    if MOMENT == "saved":
        kill()
"""

#: Each moment of a session, with the signal it gets there.
MOMENTS = (
    ("loading", signal.SIGTERM),
    ("measuring", signal.SIGINT),
    ("outputs", signal.SIGKILL),
    ("saving", signal.SIGKILL),
    ("saved", signal.SIGTERM),
)


def _start(folder: Path, *extra: str, kill_at: str = "") -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if k not in ("GITHUB_STEP_SUMMARY", "PYTEST_ADDOPTS")}
    env["LLMBENCH_TEST_KILL_AT"] = kill_at
    return subprocess.Popen(
        [sys.executable, *ARGS, *extra], cwd=folder, env=env, start_new_session=True,
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, preexec_fn=_default_sigint,
    )  # fmt: skip


def _default_sigint() -> None:
    """SIGINT as a terminal's session has it: a test run from a shell's background job inherits it ignored,
    and Python then never raises KeyboardInterrupt (the session would not stop at Ctrl-C)."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


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


@dataclass(frozen=True)
class Kill:
    """One killed session: what it was sent and when, and what it left."""

    what: str
    status: int
    runs_before: tuple[Path, ...]
    runs_after: tuple[Path, ...]
    leftovers: tuple[str, ...]
    problems: tuple[str, ...]
    output: str


@dataclass(frozen=True)
class Killed:
    """The sessions of :func:`killed`: the first whole one, the kills, and a whole one after them."""

    first: Path
    kills: tuple[Kill, ...]
    last_status: int
    last_output: str
    runs: tuple[Path, ...]


@pytest.fixture(scope="module")
def killed(tiny_gemma3_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Killed:
    """A whole session, then one killed at each moment (and ``LLMBENCH_KILLS`` at random moments), then a
    whole session with ``--benchmark-compare``, all on one storage folder."""
    folder = tmp_path_factory.mktemp("interrupted") / "suite"
    (folder / "benchmarks").mkdir(parents=True)
    (folder / "benchmarks" / "matrix.toml").write_text(MATRIX.format(path=tiny_gemma3_dir))
    shutil.copy(REPO / "benchmarks" / "test_generate.py", folder / "benchmarks" / "test_generate.py")
    (folder / "benchmarks" / "conftest.py").write_text(KILL_AT)

    started = time.monotonic()
    status, output = _finish(_start(folder))
    duration = time.monotonic() - started
    assert status == 0, output
    (first,) = list_runs(folder / "runs")
    first_hash = hashlib.sha256(first.read_bytes()).hexdigest()

    schedule = random.Random(SEED)
    kills = []
    for index in range(len(MOMENTS) + KILLS):
        before = tuple(list_runs(folder / "runs"))
        if index < len(MOMENTS):
            moment, sig = MOMENTS[index]
            what = f"{sig.name} {moment}"
            process = _start(folder, kill_at=f"{moment}:{sig.name}")
        else:
            sig = SIGNALS[index % len(SIGNALS)]
            at = schedule.uniform(0.05, 1.05) * duration
            what = f"{sig.name} at {at / duration:.0%}"
            process = _start(folder)
            time.sleep(at)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(process.pid, sig)
        status, output = _finish(process)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(process.pid, signal.SIGKILL)  # workers left behind by the killed session
        leftovers = tuple(sorted(p.name for p in (folder / "runs").rglob("*") if p.is_file()))
        problems = tuple(_storage_problems(folder, first, first_hash))
        kills.append(Kill(what, status, before, tuple(list_runs(folder / "runs")), leftovers, problems, output))
        if problems:
            break  # the test names it

    status, output = _finish(_start(folder, "--benchmark-compare"))
    return Killed(first, tuple(kills), status, output, tuple(list_runs(folder / "runs")))


def _summary(kill: Kill) -> str:
    return f"{kill.what}: exit {kill.status}, {len(kill.runs_after)} runs"


@pytest.mark.filterwarnings("ignore::ResourceWarning")
def test_sessions_killed_at_each_moment_leave_storage_readable(killed: Killed) -> None:
    for kill in killed.kills:
        assert not kill.problems, f"after {_summary(kill)}:\n" + "\n".join(kill.problems) + "\n" + kill.output[-3000:]
    assert len(killed.kills) == len(MOMENTS) + KILLS
    for kill in killed.kills[: len(MOMENTS)]:
        assert kill.status != 0, f"{kill.what}: the session was not killed\n" + kill.output[-3000:]
    # Killed while loading or writing an outputs file, nothing is saved; after saving, the run is whole.
    loading, measuring, outputs, _, saved = killed.kills[: len(MOMENTS)]
    assert loading.runs_after == loading.runs_before
    assert outputs.runs_after == outputs.runs_before
    assert len(saved.runs_after) == len(saved.runs_before) + 1
    # Stopped with Ctrl-C as the second combination was measured: the first one's run is saved and says
    # it holds only the tests that finished.
    (interrupted,) = set(measuring.runs_after) - set(measuring.runs_before)
    run = load_run(interrupted)
    assert run.machine_info.get(INTERRUPTED_KEY)
    assert [bench["param"] for bench in run.benchmarks.values()] == ["tiny-fp32-cpu-bs1"]
    assert any("interrupted session" in note for note in run.notes)
    for path in killed.runs:
        run = load_run(path)
        if run.machine_info.get(INTERRUPTED_KEY):
            assert any("interrupted session" in note for note in run.notes)

    assert killed.last_status in (0, 1), killed.last_output  # 1: the gate may find this machine's noise a regression
    assert "llmbench regression gate" in killed.last_output
    out = io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
        status = main(["compare", str(killed.first), str(killed.runs[-1])])
    assert status in (0, 1), out.getvalue()
    record("sessions killed (SIGINT, SIGTERM, SIGKILL at each moment, and at seeded random moments)",
           kills=len(killed.kills), storage_readable_after=len(killed.kills), seed=SEED,
           moments="; ".join(_summary(kill) for kill in killed.kills))  # fmt: skip


def test_a_session_killed_while_saving_its_run_leaves_no_half_run(killed: Killed) -> None:
    (saving,) = [kill for kill in killed.kills if kill.what == "SIGKILL saving"]
    assert saving.status == -signal.SIGKILL, saving.output
    assert saving.runs_after == saving.runs_before, saving.leftovers  # no run file, not even an empty one
    # The next session saves the next number: no half run holds it.
    numbers = [run_number(p) for p in killed.runs]
    assert numbers == list(range(1, len(numbers) + 1))
    assert killed.last_status in (0, 1), killed.last_output
    assert len(killed.runs) == len(killed.kills[-1].runs_after) + 1
    record("a session killed while saving its run (SIGKILL inside pytest-benchmark's save)", kills=1,
           half_runs_left=0, next_session=f"saved {run_number(killed.runs[-1]):04d}")  # fmt: skip
