"""A plain pytest-benchmark project with pytest-llmbench installed behaves as without it (docs/gate.md).

Each test runs pytest in a subprocess (the outer process has torch imported already) on a project whose
only benchmark is ``benchmark(sum, range(N))``; its conftest records whether torch was imported.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

PLAIN = """
import os

def test_sum(benchmark):
    benchmark(sum, range(int(os.environ.get("SUM_SIZE", "1000"))))
"""

CONFTEST = """
import sys

def pytest_unconfigure(config):
    with open("torch-imported.txt", "w") as out:
        out.write(str("torch" in sys.modules))
"""

#: Few, short rounds: the tests are about what happens around the timing.
QUICK = ("-p", "no:cacheprovider", "--benchmark-min-rounds=5", "--benchmark-max-time=0.05")
GATE_SECTION = "llmbench regression gate"
MACHINE_INFO_WARNING = "machine_info is different"


class Plain:
    """The plain project: ``run`` runs pytest on it in a subprocess, its benchmark summing ``size`` numbers."""

    def __init__(self, pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
        self.pytester = pytester
        self.monkeypatch = monkeypatch
        self.path = pytester.path

    def run(self, *args: str, size: int = 1000) -> pytest.RunResult:
        self.monkeypatch.setenv("SUM_SIZE", str(size))
        return self.pytester.runpytest_subprocess(*QUICK, *args)


@pytest.fixture
def plain(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> Plain:
    pytester.makepyfile(test_plain=PLAIN)
    pytester.makeconftest(CONFTEST)
    return Plain(pytester, monkeypatch)


def _torch_imported(plain: Plain) -> bool:
    return (plain.path / "torch-imported.txt").read_text() == "True"


def _saved(plain: Plain) -> list[Path]:
    return sorted((plain.path / ".benchmarks").glob("*/*.json"))


def test_a_plain_project_gets_no_gate_no_torch_and_nothing_in_its_runs(plain: Plain) -> None:
    first = plain.run("--benchmark-autosave")
    assert first.ret == pytest.ExitCode.OK, first.stdout.str()
    second = plain.run("--benchmark-autosave", "--benchmark-compare")
    output = second.stdout.str() + second.stderr.str()
    assert second.ret == pytest.ExitCode.OK, output
    assert GATE_SECTION not in output
    assert [line for line in second.stdout.lines if "llmbench" in line] == [
        line for line in second.stdout.lines if line.startswith("plugins:")
    ]
    assert MACHINE_INFO_WARNING not in output
    assert not _torch_imported(plain)
    for path in _saved(plain):
        machine_info = json.loads(path.read_text())["machine_info"]
        assert not [key for key in machine_info if key.startswith("llmbench")], path


def test_a_compare_run_that_does_not_exist_warns_as_pytest_benchmark_does(plain: Plain) -> None:
    assert plain.run("--benchmark-autosave").ret == pytest.ExitCode.OK
    with_plugin = plain.run("--benchmark-compare=0042")
    without = plain.run("--benchmark-compare=0042", "-p", "no:llmbench")
    assert with_plugin.ret == without.ret == pytest.ExitCode.OK, with_plugin.stdout.str() + with_plugin.stderr.str()
    for result in (with_plugin, without):
        assert "Can't compare. No benchmark files in" in result.stdout.str() + result.stderr.str()
    assert GATE_SECTION not in with_plugin.stdout.str()
    # A selector pytest-benchmark reads and the gate does not (a glob) is no error either.
    glob = plain.run("--benchmark-compare=000*")
    assert glob.ret == pytest.ExitCode.OK, glob.stdout.str() + glob.stderr.str()
    assert not _torch_imported(plain)


def test_a_plain_benchmark_100_times_slower_is_left_to_pytest_benchmark(plain: Plain) -> None:
    assert plain.run("--benchmark-autosave").ret == pytest.ExitCode.OK
    slower = plain.run("--benchmark-compare", size=100_000)
    output = slower.stdout.str() + slower.stderr.str()
    assert slower.ret == pytest.ExitCode.OK, output
    assert GATE_SECTION not in output
    assert "noisy" not in output
    # pytest-benchmark's own check still fails it, and says so (not the gate).
    failing = plain.run("--benchmark-compare", "--benchmark-compare-fail=min:500%", size=100_000)
    assert "Performance has regressed" in failing.stdout.str() + failing.stderr.str()
    assert GATE_SECTION not in failing.stdout.str()
    assert not _torch_imported(plain)


def test_the_gate_judges_plain_benchmarks_when_asked(plain: Plain) -> None:
    assert plain.run("--benchmark-autosave", "--benchmark-save-data").ret == pytest.ExitCode.OK
    slower = plain.run("--benchmark-compare", "--benchmark-save-data", "--llmbench-gate-scope=all", size=100_000)
    output = slower.stdout.str()
    assert GATE_SECTION in output, output
    # Judged on its latency: against one saved run a change beyond the threshold plus the assumed first-baseline
    # allowance regresses (docs/gate.md), unless the rounds of this short sum spread like a busy machine's (noisy,
    # with the rounds a decision would need, "noisy (~840 rounds)" once, on a fresh clone).
    assert re.search(r"^test_plain\.py::test_sum +latency_s .* (regressed|noisy( \(~\d+ rounds\))?)$", output,
                     re.MULTILINE), output  # fmt: skip
    assert "the baseline 0001 has no machine fingerprint" in output
    assert not _torch_imported(plain)


def test_llmbench_keys_of_a_saved_run_never_make_pytest_benchmark_warn(plain: Plain) -> None:
    assert plain.run("--benchmark-autosave").ret == pytest.ExitCode.OK
    (path,) = _saved(plain)
    data = json.loads(path.read_text())
    data["machine_info"].update(
        llmbench={"cpu": "a fingerprint", "torch_threads": 2}, llmbench_failed={"test_x.py::test_x": "call: boom"},
        llmbench_ab={"pair": "20260101T000000Z", "side": "head"},
    )  # fmt: skip
    path.write_text(json.dumps(data))
    result = plain.run("--benchmark-compare")
    output = result.stdout.str() + result.stderr.str()
    assert result.ret == pytest.ExitCode.OK, output
    assert "Comparing against benchmarks from" in output
    assert MACHINE_INFO_WARNING not in output
    # Without the plugin pytest-benchmark sees the keys, and warns.
    without = plain.run("--benchmark-compare", "-p", "no:llmbench")
    assert MACHINE_INFO_WARNING in without.stdout.str() + without.stderr.str()
