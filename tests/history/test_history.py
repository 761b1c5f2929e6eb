"""``llmbench history``: change points in saved runs, attributed to commits, through the command line.

Histories are written to a temporary storage from a real saved run of the test data (two combinations,
llmbench metrics), with a fixed pseudo-random noise of about 1% and a step injected at a known run.
"""

from __future__ import annotations

import copy
import json
import os
import random
import shutil
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pytest

from llmbench.cli import main
from llmbench.history.detect import change_points
from llmbench.history.series import MetricHistory, Point
from tests.support.paths import DATA as TEST_DATA
from tests.support.paths import REPO

DATA = TEST_DATA / "runs" / "Linux-CPython-3.11-64bit"
BASE = json.loads((DATA / "0001_base.json").read_text(encoding="utf-8"))
MACHINE = "Linux-CPython-3.11-64bit"
BS1 = "gemma3-270m q4_k_m cpu bs1"

#: (run number, fullname label, metric) -> factor on the saved value.
Change = Callable[[int, str, str], float]


def commit(number: int) -> str:
    return f"{number:02d}" + "c0ffee" * 6 + f"{number:02d}"


def no_change(number: int, label: str, metric: str) -> float:
    return 1.0


def write_history(
    storage: Path, runs: int, change: Change = no_change, fingerprint: Callable[[int], Mapping[str, Any]] | None = None
) -> Path:
    """``runs`` saved runs named like pytest-benchmark's (``0001_<commit>_<date>.json``)."""
    folder = storage / MACHINE
    folder.mkdir(parents=True)
    noise = random.Random(0)
    for number in range(1, runs + 1):
        data = copy.deepcopy(BASE)
        data["commit_info"] = {"id": commit(number), "dirty": False}
        if fingerprint is not None:
            data["machine_info"]["llmbench"] = fingerprint(number)
        for bench in data["benchmarks"]:
            label = "bs1" if bench["fullname"].endswith("bs1]") else "bs4"
            for name, metric in bench["extra_info"]["metrics"].items():
                if metric["direction"] == "none":
                    continue
                factor = change(number, label, name) * (1 + noise.gauss(0, 0.01))
                metric["value"] *= factor
                metric["samples"] = [s * factor for s in metric.get("samples", [])]
            bench["stats"]["median"] = bench["extra_info"]["metrics"]["latency_s"]["value"]
        name = f"{number:04d}_{commit(number)}_202611{number % 28 + 1:02d}_100000.json"
        (folder / name).write_text(json.dumps(data), encoding="utf-8")
    return storage


def step_at(run: int, metric: str, factor: float, label: str = "bs1") -> Change:
    def change(number: int, which: str, name: str) -> float:
        return factor if number >= run and which == label and name == metric else 1.0

    return change


def history(capsys: pytest.CaptureFixture[str], *args: str) -> tuple[int, str, str]:
    status = main(["history", *args])
    out, err = capsys.readouterr()
    return status, out, err


def test_a_slowdown_is_found_at_its_commit(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = write_history(tmp_path / "s", 30, step_at(21, "latency_s", 1.10))
    status, out, _ = history(capsys, "--storage", str(storage), "--since", "10")
    assert status == 1
    rows = [line.split() for line in out.splitlines() if "latency_s" in line]
    assert len(rows) == 1, out
    row = rows[0]
    assert row[:6] == ["gemma3-270m", "q4_k_m", "cpu", "bs1", "latency_s", "0021"]
    assert row[6:8] == [commit(21)[:12], commit(20)[:12]]
    assert "regression" in row
    change = next(cell for cell in row if cell.endswith("%") and cell.startswith("+"))
    assert 8.0 <= float(change[:-1]) <= 12.0
    assert out.splitlines()[-1] == (
        "llmbench history: 1 change point (1 regression) in 8 series over 30 runs; "
        "FAILED: 1 regression in the last 10 runs"
    )


def test_an_old_regression_does_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = write_history(tmp_path / "s", 30, step_at(11, "latency_s", 1.10))
    status, out, _ = history(capsys, "--storage", str(storage), "--since", "10")
    assert status == 0
    assert "0011" in out
    assert "regression" in out
    assert out.splitlines()[-1].endswith("; no regression in the last 10 runs")
    assert history(capsys, "--storage", str(storage), "--since", "20")[0] == 1


def test_an_improvement_does_not_fail(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = write_history(tmp_path / "s", 30, step_at(25, "decode_tok_s_total", 1.10, "bs4"))
    status, out, _ = history(capsys, "--storage", str(storage))
    assert status == 0
    (row,) = [line for line in out.splitlines() if "decode_tok_s_total" in line]
    assert row.startswith("gemma3-270m q4_k_m cpu bs4")
    assert "0025" in row
    assert "improvement" in row


def test_unchanged_history_has_no_change_point(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = write_history(tmp_path / "s", 60)
    status, out, _ = history(capsys, "--storage", str(storage))
    assert status == 0
    assert out.splitlines()[-1].startswith("llmbench history: 0 change points (0 regressions) in 8 series over 60")


def test_a_new_machine_starts_a_new_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    def fingerprint(number: int) -> Mapping[str, Any]:
        saved = copy.deepcopy(BASE["machine_info"]["llmbench"])
        if number >= 16:
            saved["libraries"]["llama-cpp-python"] = "0.3.40"
        return dict(saved)

    storage = write_history(tmp_path / "s", 30, step_at(16, "latency_s", 1.3), fingerprint)
    status, out, _ = history(capsys, "--storage", str(storage))
    assert status == 0
    assert not [line for line in out.splitlines() if "latency_s" in line]
    assert (
        f"known step: {MACHINE} run 0016 ({commit(16)[:12]}): the machine changed since run 0015 "
        "(llama-cpp-python: 0.3.36 -> 0.3.40): a new series starts, not a change of the code"
    ) in out
    assert "in 16 series over 30 runs" in out.splitlines()[-1]


def test_metric_and_combination_select_series(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    storage = write_history(tmp_path / "s", 30, step_at(21, "decode_tok_s_total", 0.9))
    status, out, _ = history(capsys, "--storage", str(storage), "--metric", "decode_tok_s", "--combination", "*bs1")
    assert status == 1
    assert "in 1 series over 30 runs" in out.splitlines()[-1]
    status, out, _ = history(capsys, "--storage", str(storage), "--metric", "latency_s,rouge1", "--combination", "*bs1")
    assert status == 0
    assert "in 2 series" in out.splitlines()[-1]


def test_markdown_and_job_summary(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    storage = write_history(tmp_path / "s", 30, step_at(21, "latency_s", 1.10))
    summary = tmp_path / "summary.md"
    summary.write_text("earlier step\n", encoding="utf-8")
    monkeypatch.setenv("GITHUB_STEP_SUMMARY", str(summary))
    status, _, _ = history(capsys, "--storage", str(storage), "--markdown", str(tmp_path / "out" / "history.md"))
    assert status == 1
    text = (tmp_path / "out" / "history.md").read_text(encoding="utf-8")
    assert text.startswith("## llmbench history: FAILED\n")
    assert f"| {BS1} | latency_s | 0021 | {commit(21)[:12]} | {commit(20)[:12]} |" in text
    assert summary.read_text(encoding="utf-8") == "earlier step\n" + text


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--storage", "{tmp}/missing"], "llmbench history: error: {tmp}/missing: no such folder (--storage)"),
        (["--since", "0"], "llmbench history: error: --since"),
        (["--metric", "speed"], "llmbench history: error: --metric: speed is not a metric of the saved runs"),
        ([], "llmbench history: error: {tmp}/s/" + MACHINE + "/0031_x.json: corrupted JSON"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], args: list[str], message: str
) -> None:
    storage = write_history(tmp_path / "s", 3)
    (storage / MACHINE / "0031_x.json").write_text("{", encoding="utf-8") if not args else None
    argv = ["--storage", str(storage), *(a.format(tmp=tmp_path) for a in args)]
    status, out, err = history(capsys, *argv)
    assert status == 2
    assert out == ""
    assert len(err.splitlines()) == 1
    assert err.startswith(message.format(tmp=tmp_path))


def test_deterministic_metrics_step_once() -> None:
    """A constant series (file size) that changes once has one change point and no warning."""
    points = tuple(Point(f"{n:04d}", commit(n), 100.0 if n < 8 else 120.0) for n in range(1, 13))
    series = MetricHistory(MACHINE, "none", "x", "x", "file_bytes", "bytes", "lower", points)
    (found,) = change_points(series)
    assert (found.first.run, found.previous.run, found.kind) == ("0008", "0007", "regression")
    assert found.change == pytest.approx(0.2)
    assert change_points(MetricHistory(MACHINE, "none", "x", "x", "file_bytes", "bytes", "lower", points[:7])) == []


def test_the_nightly_script_adds_tonights_run(tmp_path: Path) -> None:
    """scripts/ci/history.sh: the history of one runner kind plus the merged run, as the newest."""
    storage = write_history(tmp_path / "all", 30, step_at(30, "latency_s", 1.15))
    kind = tmp_path / "history" / "cpu"
    (kind / MACHINE).mkdir(parents=True)
    runs = sorted((storage / MACHINE).glob("*.json"))
    for path in runs[:-1]:
        shutil.copy(path, kind / MACHINE / f"{path.name[:4]}_{commit(int(path.name[:4]))[:12]}.json")
    tonight = tmp_path / "merged.json"
    shutil.copy(runs[-1], tonight)
    summary = tmp_path / "summary.md"
    env = {**os.environ, "GITHUB_STEP_SUMMARY": str(summary), "LLMBENCH": str(Path(sys.prefix) / "bin" / "llmbench"),
           "PYTHON": sys.executable}  # fmt: skip
    script = REPO / "scripts" / "ci" / "history.sh"
    done = subprocess.run([str(script), str(kind), str(tonight)], env=env, capture_output=True, text=True, check=False)
    assert done.returncode == 1, done.stdout + done.stderr
    assert done.stdout.startswith("history: cpu (30 runs, 8 series)\n")
    assert f"latency_s  0030  {commit(30)[:12]}  {commit(29)[:12]}" in done.stdout
    assert done.stdout.endswith("history: exit status 1\n")
    assert summary.read_text(encoding="utf-8").startswith("## llmbench history: FAILED")
    kept = [f"{p.name[:4]}_{commit(int(p.name[:4]))[:12]}.json" for p in runs[:-1]]
    assert sorted(p.name for p in (kind / MACHINE).iterdir()) == kept  # the history itself is untouched
    empty = subprocess.run([str(script), str(tmp_path / "none")], env=env, capture_output=True, text=True, check=False)
    assert empty.returncode == 0
    assert empty.stdout == f"history: no saved run in {tmp_path / 'none'}: nothing to analyse\n"


def test_the_report_marks_change_points_and_lists_open_regressions(tmp_path: Path) -> None:
    pytest.importorskip("matplotlib")
    from llmbench.report.html import write_report
    from llmbench.runs import list_runs, load_run

    storage = write_history(tmp_path / "s", 10, step_at(6, "latency_s", 1.25))
    runs = [load_run(path) for path in list_runs(storage)]
    files = write_report(runs[-1], runs, tmp_path / "report")
    plot = next(p for p in files.plots if p.name == "history_latency_s")
    marked = plot.series_named("change points")
    assert marked.x == (runs[5].label,)
    assert marked.y[0] == pytest.approx(runs[5].benchmarks[BASE["benchmarks"][0]["fullname"]]["stats"]["median"])
    text = files.markdown.read_text(encoding="utf-8")
    assert "**Open regressions in the history (1):**" in text
    assert f"- {BS1}: latency_s +2" in text
    assert f"from run 0006 (commit {commit(6)[:12]}, after {commit(5)[:12]})" in text
