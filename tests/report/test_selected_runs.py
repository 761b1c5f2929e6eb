"""Which runs a report shows: runs given as files need no ``--storage`` (a CI job's fresh checkout has no
``.benchmarks``), and the run given last is the report's own.

Saved runs from ``tests/data/report_runs`` (0001, 0002 and 0003, a week apart, oldest first).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.report.frame import ReportError, load_runs, select_runs
from tests.support.paths import DATA

MACHINE = DATA / "report_runs" / "Linux-CPython-3.11-64bit"


def run_file(number: str) -> str:
    return str(next(MACHINE.glob(f"{number}_*.json")))


def test_runs_given_as_files_need_no_storage(tmp_path: Path) -> None:
    absent = tmp_path / ".benchmarks"
    current, history = select_runs(absent, [run_file("0001"), run_file("0002")])
    assert (current.name, [run.name for run in history]) == ("0002", ["0001", "0002"])
    assert [run.name for run in load_runs(absent, [run_file("0003")])] == ["0003"]
    assert not absent.exists()  # pytest-benchmark's storage would have created it


def test_a_run_looked_up_in_an_absent_storage_says_what_to_give(tmp_path: Path) -> None:
    absent = tmp_path / ".benchmarks"
    with pytest.raises(ReportError, match=r"RUN: '0003' is not a run file, and --storage '.*\.benchmarks' is not a "
                       r"directory of saved runs; .* or give the runs as files"):  # fmt: skip
        select_runs(absent, [run_file("0001"), "0003"])
    with pytest.raises(ReportError, match=r"^--storage: '.*\.benchmarks' is not a directory of saved runs"):
        select_runs(absent)
    assert not absent.exists()


def test_the_run_given_last_is_the_headline_whatever_its_date(tmp_path: Path) -> None:
    # report.sh gives the history's newest runs, then the run: a run of the default branch recorded while a
    # pull request's shards ran is newer than the pull request's run, and must not become its headline.
    current, history = select_runs(tmp_path, [run_file("0001"), run_file("0003"), run_file("0002")])
    assert current.name == "0002"
    assert [run.name for run in history] == ["0001", "0003", "0002"]
    current, history = select_runs(tmp_path, [run_file("0001"), run_file("0003"), run_file("0002")], history=2)
    assert (current.name, [run.name for run in history]) == ("0002", ["0003", "0002"])
    current, history = select_runs(tmp_path, [run_file("0003"), run_file("0002")], history=1)
    assert (current.name, [run.name for run in history]) == ("0002", ["0002"])
    # A glob given last: the newest of its matches.
    current, history = select_runs(MACHINE.parent, [run_file("0003"), "000[12]"])
    assert (current.name, [run.name for run in history]) == ("0002", ["0001", "0003", "0002"])
