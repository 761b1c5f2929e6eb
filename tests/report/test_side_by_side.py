"""The report's side by side marks each output against its declared reference (issue 19): another model from
the same run, a reference from a named saved run shown in the report (or said to be elsewhere), and, for runs
saved before references per comparison, the full-precision output of the same model and device.

The saved runs are synthetic (built here as the other report tests build theirs): t5-small at fp32 and bf16
and gemma3-4b at bf16, all on the CPU, over two items, with outputs chosen so that each marking is known.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from llmbench.report.frame import rows_of, select_runs
from llmbench.report.html import write_report
from llmbench.report.side_by_side import ItemOutputs, Output, marked_differences, side_by_side
from llmbench.runs import run_from_json

#: (model, precision) -> its outputs by item id.
OUTPUTS: dict[tuple[str, str], dict[str, str]] = {
    ("t5-small", "fp32"): {"a": "the council approved the budget", "b": "rain is expected"},
    ("t5-small", "bf16"): {"a": "the council approved a budget", "b": "rain is expected today"},
    ("gemma3-4b", "bf16"): {"a": "the city council approved the park budget", "b": "heavy rain is expected"},
}
GEMMA = {"model": "gemma3-4b", "precision": "bf16", "device": "cpu"}


def bench(model: str, precision: str, reference: dict[str, Any] | None, digest: str | None = None) -> dict[str, Any]:
    """One generate benchmark (batch 1) with its saved outputs and, where given, its ``quality_reference``."""
    info: dict[str, Any] = {"model": model, "precision": precision, "device": "cpu", "backend": "transformers",
                            "batch_size": 1, "outputs": OUTPUTS[(model, precision)], "metrics": {}}  # fmt: skip
    if reference is not None:
        info["quality_reference"] = {**reference, "target_share": 0.99}
    if digest is not None:
        info["items_digest"] = digest
    name = f"{model}-{precision}-cpu-bs1"
    return {"name": f"test_generate[{name}]", "fullname": f"benchmarks/test_generate.py::test_generate[{name}]",
            "param": name, "extra_info": info, "stats": {"median": 1.0, "data": [1.0]}}  # fmt: skip


def run_data(*benchmarks: dict[str, Any], when: str = "2026-12-01T10:00:00") -> dict[str, Any]:
    return {"machine_info": {}, "benchmarks": list(benchmarks), "datetime": when, "commit_info": {}}


def by_label(item: ItemOutputs) -> dict[str, Output]:
    return {output.label: output for output in item.outputs}


def test_t5_is_marked_against_gemma_its_declared_reference_not_its_own_full_precision() -> None:
    source = {"source": "this session"}
    run = run_from_json(
        run_data(
            bench("t5-small", "fp32", {**GEMMA, **source}),
            bench("t5-small", "bf16", {**GEMMA, **source}),
            bench("gemma3-4b", "bf16", {**GEMMA}),  # the reference itself saves no source
        ),
        "a run",
        name="0001",
    )
    first, second = side_by_side(rows_of(run))
    assert (first.id, second.id) == ("a", "b")
    outputs = by_label(first)
    assert list(outputs) == ["gemma3-4b bf16 cpu", "t5-small fp32 cpu", "t5-small bf16 cpu"]
    gemma_a = OUTPUTS[("gemma3-4b", "bf16")]["a"]
    for precision in ("fp32", "bf16"):
        t5 = outputs[f"t5-small {precision} cpu"]
        assert t5.marked == marked_differences(OUTPUTS[("t5-small", precision)]["a"], gemma_a)
        assert t5.against == "marked against its reference, gemma3-4b bf16 cpu"
    # Not against t5-small fp32 (as runs before references were): that would mark only "a" in bf16's output.
    assert outputs["t5-small bf16 cpu"].marked != "the council approved <mark>a</mark> budget"
    gemma = outputs["gemma3-4b bf16 cpu"]
    assert gemma.marked == gemma_a  # unmarked (escaped only)
    assert gemma.against == "not marked: it is its own reference"
    assert gemma.reference_for == ("t5-small fp32 cpu", "t5-small bf16 cpu")


def test_a_reference_of_another_run_marks_where_the_report_shows_that_run(tmp_path: Path) -> None:
    folder = tmp_path / ".benchmarks" / "Linux-CPython-3.11-64bit"
    folder.mkdir(parents=True)
    reference_run = run_data(bench("gemma3-4b", "bf16", GEMMA, digest="d1"), when="2026-12-01T09:00:00")
    current = run_data(bench("t5-small", "fp32", {**GEMMA, "source": "run 0001"}, digest="d1"))
    (folder / "0001_abc_20261201_090000.json").write_text(json.dumps(reference_run), encoding="utf-8")
    (folder / "0002_abc_20261201_100000.json").write_text(json.dumps(current), encoding="utf-8")
    storage = tmp_path / ".benchmarks"

    # Both runs in the report: t5 marked against gemma's outputs from run 0001, shown after it.
    shown, runs = select_runs(storage, ["0001", "0002"])
    assert shown.name == "0002"
    item = side_by_side(rows_of(shown), None, runs)[0]
    assert [output.label for output in item.outputs] == ["t5-small fp32 cpu", "gemma3-4b bf16 cpu (run 0001)"]
    t5, gemma = item.outputs
    assert t5.marked == marked_differences(OUTPUTS[("t5-small", "fp32")]["a"], OUTPUTS[("gemma3-4b", "bf16")]["a"])
    assert "<mark " in t5.marked  # gaps: "city", "park"
    assert t5.against == "marked against its reference, gemma3-4b bf16 cpu (run 0001)"
    assert (gemma.run, gemma.reference_for) == ("run 0001", ("t5-small fp32 cpu",))
    files = write_report(shown, runs, tmp_path / "both")
    page = files.index.read_text(encoding="utf-8")
    assert "marked against its reference, gemma3-4b bf16 cpu (run 0001)" in page
    assert "gemma3-4b bf16 cpu (run 0001)" in (tmp_path / "both" / "outputs.csv").read_text(encoding="utf-8")

    # Only run 0002 in the report: unmarked, and the page says where the reference's outputs are.
    alone, history = select_runs(storage, ["0002"], history=1)
    (only,) = side_by_side(rows_of(alone), None, history)[0].outputs
    assert only.marked == OUTPUTS[("t5-small", "fp32")]["a"]
    expected = "not marked: the reference's outputs (gemma3-4b bf16 cpu) are in run 0001, not in this report"
    assert only.against == expected
    page = write_report(alone, history, tmp_path / "alone").index.read_text(encoding="utf-8")
    assert expected.replace("'", "&#x27;") in page

    # A reference run generated from other items: not marked, and why.
    (folder / "0002_abc_20261201_100000.json").write_text(
        json.dumps(run_data(bench("t5-small", "fp32", {**GEMMA, "source": "run 0001"}, digest="d2"))),
        encoding="utf-8",
    )
    shown, runs = select_runs(storage, ["0001", "0002"])
    (other,) = side_by_side(rows_of(shown), None, runs)[0].outputs
    assert other.against == (
        "not marked: the reference's outputs (gemma3-4b bf16 cpu, from run 0001) were generated from other items"
    )
    assert "<mark" not in other.marked


def test_a_reference_that_is_not_in_the_run_is_said_so() -> None:
    run = run_from_json(run_data(bench("t5-small", "fp32", {**GEMMA, "source": None})), "a run", name="0003")
    (output,) = side_by_side(rows_of(run))[0].outputs
    assert output.against == "not marked: the reference's outputs (gemma3-4b bf16 cpu) are not in this run"
    assert "<mark" not in output.marked


def test_a_run_of_the_previous_version_is_marked_against_its_models_full_precision(tmp_path: Path) -> None:
    # No quality_reference (saved before references per comparison): bf16 against t5-small fp32 on the CPU.
    data = run_data(bench("t5-small", "fp32", None), bench("t5-small", "bf16", None), bench("gemma3-4b", "bf16", None))
    run = run_from_json(data, "an old run", name="0001")
    outputs = by_label(side_by_side(rows_of(run))[0])
    assert outputs["t5-small bf16 cpu"].marked == "the council approved <mark>a</mark> budget"
    previous = "(a run saved before references per comparison: its model's full precision on its device)"
    assert outputs["t5-small bf16 cpu"].against == f"marked against t5-small fp32 cpu {previous}"
    assert outputs["t5-small fp32 cpu"].reference_for == ("t5-small bf16 cpu",)
    for label in ("t5-small fp32 cpu", "gemma3-4b bf16 cpu"):  # each its model's full precision: unmarked
        assert outputs[label].against == f"not marked: the full-precision output of its model and device {previous}"
        assert "<mark" not in outputs[label].marked
    page = write_report(run, [run], tmp_path).index.read_text(encoding="utf-8")
    assert "the council approved <mark>a</mark> budget" in page
    assert f"marked against t5-small fp32 cpu {previous}".replace("'", "&#x27;") in page
    assert "in a run saved before references per comparison, from the full-precision output" in page
