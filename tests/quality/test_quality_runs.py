"""Quality generation per loaded model, on a tiny offline model through the real transformers backend."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.backends import get_backend
from llmbench.config.combination import Combination, ModelSpec
from llmbench.data import Item, load_items
from llmbench.measure.timers import CpuTimer
from llmbench.quality.outputs import read_outputs
from llmbench.quality.runs import QualityRuns
from tests.support.paths import REPO

#: One torch thread (tests/conftest.py): these tests check texts and scores, not speed.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

ITEMS = load_items(REPO / "src" / "llmbench" / "data" / "summaries.jsonl")[:5]


def tiny_spec(path: Path) -> ModelSpec:
    return ModelSpec(name="tiny", family="causal", source=f"path:{path}", max_new_tokens=6)


def runs(tmp_path: Path, items: list[Item] = ITEMS) -> QualityRuns:
    return QualityRuns(items, batch_size=2, max_new_tokens=None, target_share=0.99, outputs_dir=tmp_path)


def generate(quality: QualityRuns, combination: Combination, cache: Path) -> dict[str, float | None]:
    llm = get_backend("transformers").load(combination, cache, CpuTimer())
    try:
        run = quality.get(combination, llm, combination.model.max_new_tokens)
    finally:
        llm.close()
    assert len(run.texts) == len(ITEMS)
    return {metric.name: metric.value for metric in run.metrics}


def test_the_same_combination_twice_gives_identical_texts_and_scores(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    combination = Combination(tiny_spec(tiny_gemma3_dir), "fp32", "cpu", 1)
    first, second = runs(tmp_path / "a"), runs(tmp_path / "b")
    assert generate(first, combination, tmp_path) == generate(second, combination, tmp_path)
    (file_a,) = (tmp_path / "a").iterdir()
    (file_b,) = (tmp_path / "b").iterdir()
    assert [r.output for r in read_outputs(file_a)] == [r.output for r in read_outputs(file_b)]
    assert [r.id for r in read_outputs(file_a)] == [item.id for item in ITEMS]


def test_drift_is_measured_against_the_reference_precision_run_earlier(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    quality = runs(tmp_path)
    spec = tiny_spec(tiny_gemma3_dir)
    reference = generate(quality, Combination(spec, "fp32", "cpu", 1), tmp_path)
    other = generate(quality, Combination(spec, "bf16", "cpu", 1), tmp_path)
    assert "drift_identical_share" not in reference
    assert {"rouge1", "rouge2", "rougeLsum"} <= set(reference)
    assert other["drift_identical_share"] is not None
    assert 0.0 <= other["drift_identical_share"] <= 1.0
    assert {"rouge1_share", "quality_target_met", "drift_first_diff_token"} <= set(other)
    records = read_outputs(tmp_path / "tiny-bf16-cpu.jsonl")
    assert all(r.identical_to_reference_precision is not None for r in records)


def test_drift_is_na_when_the_reference_precision_did_not_run(tiny_gemma3_dir: Path, tmp_path: Path) -> None:
    quality = runs(tmp_path)
    metrics = generate(quality, Combination(tiny_spec(tiny_gemma3_dir), "bf16", "cpu", 1), tmp_path)
    assert metrics["drift_identical_share"] is None


@pytest.mark.parametrize("count", [1, 3])
def test_quality_set_size_follows_the_items_given(tiny_gemma3_dir: Path, tmp_path: Path, count: int) -> None:
    combination = Combination(tiny_spec(tiny_gemma3_dir), "fp32", "cpu", 1)
    quality = runs(tmp_path, ITEMS[:count])
    llm = get_backend("transformers").load(combination, tmp_path, CpuTimer())
    try:
        run = quality.get(combination, llm, 4)
    finally:
        llm.close()
    assert run.ids == tuple(item.id for item in ITEMS[:count])
    rouge1 = next(m for m in run.metrics if m.name == "rouge1")
    assert len(rouge1.samples) == count
