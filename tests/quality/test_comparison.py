"""Comparisons of two saved output sets item by item (llmbench.quality.comparison), on controlled outputs:
the figures against a reference of the same model, of another model and of another saved run, items that
differ (n/a with the reason, never a number), runs of the previous version, and the per-item outputs file."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from llmbench.data import Item
from llmbench.metrics import Metric
from llmbench.quality.comparison import (
    COMPARISON_METRICS,
    OutputSet,
    compare,
    items_digest,
    output_set,
    output_set_from_records,
    recompare,
    reference_run_outputs,
)
from llmbench.quality.outputs import quality_records, read_outputs, write_outputs
from llmbench.stats import paired_bootstrap_ci
from tests.support.paths import DATA

IDS = ("a", "b", "c", "d")
#: A saved run of the previous version: outputs and ROUGE samples, no token ids, per-item scores or reference.
OLD_RUN = DATA / "report_runs" / "Linux-CPython-3.11-64bit" / "0003_3333333ccccccc_20261115_100000.json"


def outputs(
    model: str = "m",
    precision: str = "fp32",
    texts: tuple[str, ...] = ("one", "two", "three", "four"),
    tokens: tuple[tuple[int, ...], ...] | None = ((1, 2), (3, 4), (5, 6), (7, 8)),
    rouge1: tuple[float, ...] = (0.5, 0.5, 0.5, 0.5),
    semantic: tuple[float, ...] | None = (0.8, 0.8, 0.8, 0.8),
    ids: tuple[str, ...] = IDS,
    source: str = "this session",
    digest: str | None = "d1",
) -> OutputSet:
    scores: dict[str, dict[str, float]] = {"rouge1": dict(zip(ids, rouge1, strict=True))}
    if semantic is not None:
        scores["semantic_sim"] = dict(zip(ids, semantic, strict=True))
    return OutputSet(model, precision, "cpu", "summaries", ids, texts, tokens, scores, digest, source)


def by_name(metrics: list[Metric]) -> dict[str, Metric]:
    return {metric.name: metric for metric in metrics}


def test_against_the_same_models_reference_precision() -> None:
    reference = outputs()
    current = outputs(
        precision="q4_k_m", texts=("one", "TWO", "three", "FOUR"), tokens=((1, 2), (3, 9), (5, 6), (9, 8)),
        rouge1=(0.5, 0.3, 0.5, 0.1), semantic=(0.8, 0.7, 0.8, 0.6),
    )  # fmt: skip
    got = by_name(compare(current, reference))
    assert got["drift_identical_share"].value == 0.5
    assert got["drift_identical_share"].note.startswith("2 of 4 output texts identical to fp32's")
    assert got["drift_first_diff_token"].value == 0.5  # positions 1 and 0
    assert got["rouge1_share"].value == pytest.approx(0.35 / 0.5)
    differences = [0.0, -0.2, 0.0, -0.4]
    assert got["rouge1_diff"].value == pytest.approx(-0.15)
    assert got["rouge1_diff"].samples == pytest.approx(differences)
    assert got["rouge1_diff"].ci == paired_bootstrap_ci([0.5 - 0.5, 0.3 - 0.5, 0.5 - 0.5, 0.1 - 0.5])
    assert got["rouge1_diff"].unit == "F1"
    assert got["semantic_sim_diff"].value == pytest.approx(-0.075)
    assert got["quality_target_met"].value == 0.0
    assert "semantic_sim_share" not in got  # ROUGE and accuracy have shares (MLPerf's rule); similarity a difference


def test_against_another_model_the_first_differing_token_is_na() -> None:
    got = by_name(compare(outputs(model="t5"), outputs(model="gemma")))
    assert got["drift_identical_share"].value == 1.0
    assert got["drift_identical_share"].note.startswith("4 of 4 output texts identical to gemma fp32 cpu's")
    assert got["drift_first_diff_token"].value is None
    assert "another model (gemma)" in got["drift_first_diff_token"].note
    assert got["rouge1_diff"].value == 0.0


def test_against_another_saved_run_the_notes_name_it() -> None:
    got = by_name(compare(outputs(precision="bf16"), outputs(source="run 0003")))
    assert "identical to fp32 (run 0003)'s" in got["drift_identical_share"].note


def test_items_are_paired_by_id_whatever_their_order() -> None:
    reference = outputs(rouge1=(0.1, 0.2, 0.3, 0.4))
    shuffled = outputs(
        ids=("d", "c", "b", "a"), texts=("four", "three", "two", "one"), tokens=((7, 8), (5, 6), (3, 4), (1, 2)),
        rouge1=(0.4, 0.3, 0.2, 0.1),
    )  # fmt: skip
    got = by_name(compare(shuffled, reference))
    assert got["drift_identical_share"].value == 1.0
    assert got["drift_first_diff_token"].value is None
    assert got["rouge1_diff"].value == 0.0


@pytest.mark.parametrize(
    ("reference", "reason"),
    [
        (outputs(ids=("a", "b", "c", "x")),
         "n/a: the reference fp32 has other items (4 items, this combination 4; 1 of this combination's ids not among "
         "its: d)"),
        (outputs(ids=("a", "b", "c"), texts=("1", "2", "3"), tokens=None, rouge1=(0, 0, 0), semantic=None),
         "n/a: the reference fp32 has other items (3 items, this combination 4; 1 of this combination's ids not"),
        (outputs(digest="d2"),
         "n/a: the reference fp32 was generated from other items (the same 4 ids, other texts, references or checks)"),
    ],
)  # fmt: skip
def test_items_that_differ_make_every_comparison_na_with_the_reason(reference: OutputSet, reason: str) -> None:
    got = compare(outputs(precision="bf16"), reference)
    assert {m.name for m in got} == {"drift_identical_share", "drift_first_diff_token", "rouge1_share",
                                      "quality_target_met", "rouge1_diff", "semantic_sim_diff"}  # fmt: skip
    assert all(m.value is None and m.note.startswith(reason) for m in got)


def test_a_score_the_reference_lacks_is_na() -> None:
    got = by_name(compare(outputs(precision="bf16"), outputs(semantic=None)))
    assert got["semantic_sim_diff"].value is None
    assert got["semantic_sim_diff"].note == "n/a: the reference fp32 has no saved per-item semantic_sim for these items"
    assert got["rouge1_diff"].value == 0.0


def test_items_digest_tells_other_items_with_the_same_ids_apart() -> None:
    items = [Item("a", "text", "ref"), Item("b", "text 2", "ref 2")]
    assert items_digest(items) == items_digest(list(items))
    assert items_digest(items) != items_digest([Item("a", "other text", "ref"), items[1]])


def _old_run_infos() -> list[dict[str, Any]]:
    data = json.loads(OLD_RUN.read_text())
    return [bench["extra_info"] for bench in data["benchmarks"]]


def test_a_run_of_the_previous_version_loads_and_compares() -> None:
    label, sets = reference_run_outputs(OLD_RUN)
    assert label == "run 0003"
    fp32, bf16 = sets["gemma3-270m", "fp32", "cpu", "summaries"], sets["gemma3-270m", "bf16", "cpu", "summaries"]
    assert bf16.token_ids is None
    assert bf16.digest is None
    got = by_name(compare(bf16, fp32))
    # From the saved texts: a1 and a3 equal fp32's (the hand-made data's saved drift figure says 1 of 3).
    assert got["drift_identical_share"].value == pytest.approx(2 / 3)
    assert got["drift_first_diff_token"].value is None
    assert got["drift_first_diff_token"].note == "n/a: token ids were not saved (a run of an earlier version)"
    # Its scores from the metrics' per-item samples (one per item).
    assert got["rouge1_diff"].value == pytest.approx(0.60 - 0.62)
    assert got["rouge1_share"].value == pytest.approx(0.60 / 0.62)


def test_recompare_fills_a_missing_reference_and_keeps_what_it_cannot_compare() -> None:
    infos = _old_run_infos()
    q4 = next(info for info in infos if info.get("precision") == "q4_k_m")
    q4["metrics"]["drift_identical_share"] = {"value": None, "unit": "ratio", "direction": "higher", "note": "n/a: x"}
    q4["quality_reference"] = {"model": "gemma3-270m", "precision": "fp32", "device": "cpu", "target_share": 0.9}
    bf16 = next(info for info in infos if info.get("precision") == "bf16")
    before = copy.deepcopy(bf16)

    count = recompare(infos, "the merged run")

    # The run of the previous version with a drift figure (bf16): kept; q4_k_m: compared with fp32, target 0.9.
    assert bf16 == before
    assert count == 1  # q4_k_m bs1 (its bs4 has a saved drift figure and no reference field: kept)
    assert q4["metrics"]["drift_identical_share"]["value"] == 0.0
    assert "MLPerf" in q4["metrics"]["quality_target_met"]["note"]
    assert "90%" in q4["metrics"]["quality_target_met"]["note"]
    assert q4["quality_reference"]["source"] == "the merged run"


def test_recompare_says_why_where_the_reference_is_nowhere() -> None:
    infos = _old_run_infos()
    bf16 = next(info for info in infos if info.get("precision") == "bf16")
    bf16["quality_reference"] = {"model": "gemma3-270m", "precision": "fp16", "device": "cpu", "target_share": 0.99}
    bf16["metrics"]["rouge1_share"] = {"value": 0.9, "unit": "ratio", "direction": "higher"}

    recompare(infos, "this session", absent=lambda info, reference: f"n/a: {reference} did not run")

    assert bf16["metrics"]["drift_identical_share"]["value"] is None
    assert bf16["metrics"]["drift_identical_share"]["note"] == "n/a: gemma3-270m fp16 cpu did not run"
    assert "rouge1_share" not in bf16["metrics"]  # a stale figure goes; set(COMPARISON_METRICS) says which
    assert "rouge1_share" in COMPARISON_METRICS
    assert bf16["quality_reference"]["source"] is None


def test_recompare_compares_with_a_named_reference_run() -> None:
    infos = _old_run_infos()
    for info in infos:
        if info.get("precision") == "bf16":
            info["quality_reference"] = {"model": "gemma3-270m", "precision": "fp32", "device": "cpu"}
    current = [info for info in infos if info.get("precision") != "fp32"]
    _, references = reference_run_outputs(OLD_RUN)
    recompare(current, "this session", references)
    bf16 = next(info for info in current if info.get("precision") == "bf16")
    assert "identical to fp32 (run 0003)'s" in bf16["metrics"]["drift_identical_share"]["note"]


@pytest.mark.parametrize(
    "edit",
    [
        lambda info: info.update(outputs=["not", "a", "mapping"]),
        lambda info: info.update(outputs={"a1": 3}),
        lambda info: info.update(output_token_ids={"a1": "x"}),
        lambda info: info.update(item_scores={"rouge1": {"a1": "high"}}),
        lambda info: info.update(item_scores=[1, 2]),
        lambda info: info.update(quality_reference={"model": 1}),
        lambda info: info.update(metrics={"rouge1": {"samples": [None, float("nan"), 1]}}),
    ],
)
def test_fields_that_are_not_what_the_harness_writes_never_crash(edit: Any) -> None:
    infos = _old_run_infos()
    for info in infos:
        edit(info)
    recompare(infos, "the merged run")
    found = output_set(infos[0], "x")
    assert found is None or found.model == "gemma3-270m"


def test_the_outputs_file_carries_what_a_comparison_needs(tmp_path: Path) -> None:
    path = tmp_path / "m-fp32-cpu.jsonl"
    write_outputs(
        path,
        quality_records(
            list(IDS), ["r"] * 4, ["one", "two", "three", "four"], {name: [0.5] * 4 for name in ("rouge1", "rouge2",
            "rougeLsum")}, semantic=[0.8] * 4, token_ids=[(1, 2), (3, 4), (5, 6), (7, 8)],
        ),
    )  # fmt: skip
    saved = output_set_from_records(read_outputs(path), "m", "fp32", "cpu", "summaries", "this session")
    assert saved.token_ids == ((1, 2), (3, 4), (5, 6), (7, 8))
    assert saved.scores["semantic_sim"] == dict.fromkeys(IDS, 0.8)
    got = by_name(compare(outputs(precision="bf16", digest=None), saved))
    assert got["drift_identical_share"].value == 1.0
    assert got["drift_first_diff_token"].value is None
    assert got["semantic_sim_diff"].value == pytest.approx(0.0)
    assert np.isclose(got["rouge1_share"].value or 0, 1.0)
