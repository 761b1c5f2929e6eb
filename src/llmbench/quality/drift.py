"""Drift of a combination from its reference (another precision, model or device: by default its model's
``reference_precision`` on the same device, another where the matrix file says so), on the same items.

``drift_identical_share``: the share of items whose output text equals the reference's.
``drift_first_diff_token``: over the items whose tokens differ, the mean 0-based position of the first
differing token. ``<rouge>_share``, ``accuracy_share`` and ``quality_target_met``: mean F1 (or the share
correct) as a share of the reference's, and whether every share reaches the target (MLPerf Inference asks
for 99% of the FP32 reference's ROUGE or accuracy). See docs/quality.md.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Final

import numpy as np
import numpy.typing as npt

from llmbench.metrics import Metric
from llmbench.quality.rouge import ROUGE_TYPES, check_lengths
from llmbench.stats import CONFIDENCE, RESAMPLES, SEED, bootstrap_ci, percentile_interval, resampled_rows

__all__ = [
    "TARGET_SHARE", "agreement_metrics", "drift_metrics", "first_difference", "first_difference_metric",
    "identical_metric", "share_ci", "share_metrics",
]  # fmt: skip

Floats = npt.NDArray[np.float64]

#: MLPerf Inference (inference_rules.adoc, benchmark table): a "99%" submission must reach 99% of the
#: FP32 reference's accuracy, ROUGE for summarization; the default target against the reference.
TARGET_SHARE: Final = 0.99


def share_ci(current: Floats, reference: Floats) -> tuple[float, float] | None:
    """Paired percentile-bootstrap interval of mean(current) / mean(reference), items resampled together.

    Resamples whose reference mean is 0 are left out; None when fewer than two items or none is left.
    """
    if current.size < 2:
        return None
    rng = np.random.default_rng(SEED)
    ratios: list[Floats] = []
    for rows in resampled_rows(current.size, RESAMPLES, rng):
        cur, ref = current[rows].mean(axis=1), reference[rows].mean(axis=1)
        ratios.append(cur[ref > 0] / ref[ref > 0])
    kept = np.concatenate(ratios)
    return percentile_interval(kept, CONFIDENCE) if kept.size else None


def first_difference(tokens: Sequence[int], reference: Sequence[int]) -> int | None:
    """The 0-based position of the first differing token; the shorter length where one is a prefix of the
    other; None where the sequences are equal."""
    for position, (token, other) in enumerate(zip(tokens, reference, strict=False)):
        if token != other:
            return position
    return None if len(tokens) == len(reference) else min(len(tokens), len(reference))


def identical_metric(texts: Sequence[str], reference_texts: Sequence[str], reference: str = "fp32") -> Metric:
    """``drift_identical_share``: the share of items whose output text equals the reference's (``reference``:
    how the note names it), with its bootstrap interval and the per-item 0/1 values."""
    n = check_lengths(texts=texts, reference_texts=reference_texts)
    if n == 0:
        raise ValueError("no items to compare")
    identical = [1.0 if text == other else 0.0 for text, other in zip(texts, reference_texts, strict=True)]
    same = int(sum(identical))
    return Metric.of(
        "drift_identical_share",
        same / n,
        identical,
        ci=bootstrap_ci(identical),
        note=f"{same} of {n} output texts identical to {reference}'s; bootstrap {CONFIDENCE:.0%} CI (seed {SEED})",
    )


def first_difference_metric(
    token_ids: Sequence[Sequence[int]], reference_token_ids: Sequence[Sequence[int]], reference: str = "fp32"
) -> Metric:
    """``drift_first_diff_token``: over the items whose generated tokens differ from the reference's, the mean
    0-based position of the first differing token (n/a where every item's tokens are equal)."""
    n = check_lengths(token_ids=token_ids, reference_token_ids=reference_token_ids)
    if n == 0:
        raise ValueError("no items to compare")
    positions = [
        position
        for tokens, other in zip(token_ids, reference_token_ids, strict=True)
        if (position := first_difference(tokens, other)) is not None
    ]
    return Metric.of(
        "drift_first_diff_token",
        float(np.mean(positions)) if positions else None,
        (float(p) for p in positions),
        note=(
            f"mean 0-based position of the first generated token that differs from {reference}'s, "
            f"over the {len(positions)} of {n} items whose tokens differ"
            if positions
            else f"n/a: the generated tokens of all {n} items equal {reference}'s"
        ),
    )


def agreement_metrics(
    token_ids: Sequence[Sequence[int]],
    reference_token_ids: Sequence[Sequence[int]],
    texts: Sequence[str],
    reference_texts: Sequence[str],
    reference_precision: str = "fp32",
) -> list[Metric]:
    """``drift_identical_share`` and ``drift_first_diff_token``: how far the outputs are from the reference's,
    whatever the data set scores (all sequences per item, in the same order; ``reference_precision``: how the
    notes name the reference)."""
    check_lengths(
        token_ids=token_ids, reference_token_ids=reference_token_ids, texts=texts, reference_texts=reference_texts
    )
    return [
        identical_metric(texts, reference_texts, reference_precision),
        first_difference_metric(token_ids, reference_token_ids, reference_precision),
    ]


def _what(name: str) -> tuple[str, str]:
    """How a share's note names the score, and the MLPerf rule it follows."""
    if name in ROUGE_TYPES:
        return f"mean {name} F1", "MLPerf: 99% of FP32 ROUGE"
    return f"{name}", f"MLPerf: 99% of FP32 {name}"


def share_metrics(
    scores: Mapping[str, Sequence[float]],
    reference_scores: Mapping[str, Sequence[float]],
    target_share: float = TARGET_SHARE,
    reference_precision: str = "fp32",
) -> list[Metric]:
    """One ``<name>_share`` per score of ``scores`` (per-item scores: ROUGE F1, accuracy's 0/1): its mean as a
    share of the reference's on the same items (``reference_precision``: how the notes name the reference, a
    precision or a model, precision and device), with a paired bootstrap interval; then
    ``quality_target_met`` (1.0 where every share reaches ``target_share``, 0.0 where one does not, None
    where a share cannot be computed)."""
    if not 0 < target_share <= 1:
        raise ValueError(f"target_share must be in (0, 1], got {target_share!r}")
    if not scores:
        raise ValueError("no scores to compare")
    ref = reference_precision
    metrics: list[Metric] = []
    shares: list[float | None] = []
    for name, given in scores.items():
        if name not in reference_scores:
            raise ValueError(f"reference_scores lack {name!r} (have {sorted(reference_scores)})")
        check_lengths(**{f"scores[{name!r}]": given, f"reference_scores[{name!r}]": reference_scores[name]})
        current: Floats = np.asarray(given, dtype=np.float64)
        reference: Floats = np.asarray(reference_scores[name], dtype=np.float64)
        cur_mean, ref_mean = float(current.mean()), float(reference.mean())
        share = cur_mean / ref_mean if ref_mean > 0 else None
        shares.append(share)
        what, rule = _what(name)
        if share is None:
            note = f"n/a: {ref}'s {what} is 0"
        else:
            verdict = "meets" if share >= target_share else "below"
            note = (
                f"{what} {cur_mean:.4f} / {ref}'s {ref_mean:.4f}; {verdict} the {target_share:.0%} "
                f"target ({rule}); paired bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
            )
        metrics.append(
            Metric.of(f"{name}_share", share, ci=share_ci(current, reference) if share is not None else None, note=note)
        )

    known = [share for share in shares if share is not None]
    met: float | None = None if len(known) < len(shares) else float(all(s >= target_share for s in known))
    listed = ", ".join(
        f"{name} {'n/a' if share is None else f'{share:.4f}'}" for name, share in zip(scores, shares, strict=True)
    )
    rules = "; ".join(dict.fromkeys(_what(name)[1] for name in scores))
    metrics.append(
        Metric.of(
            "quality_target_met",
            met,
            note=(
                f"1 where every quality share (of {ref}'s mean) reaches {target_share:.0%}, else 0 "
                f"({rules}); shares: {listed}"
            ),
        )
    )
    return metrics


def drift_metrics(
    token_ids: Sequence[Sequence[int]],
    reference_token_ids: Sequence[Sequence[int]],
    texts: Sequence[str],
    reference_texts: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    reference_scores: Mapping[str, Sequence[float]],
    target_share: float = TARGET_SHARE,
    reference_precision: str = "fp32",
) -> list[Metric]:
    """How far a combination's outputs are from its reference's on the same items, for ROUGE
    (``reference_precision``: how the notes name the reference).

    All sequences are per item, in the same item order; ``scores`` and ``reference_scores`` are per-item
    F1 as :func:`rouge_scores` gives them. Returns :func:`agreement_metrics`, then :func:`share_metrics` of
    the ROUGE types: one ``<rouge>_share`` each and ``quality_target_met``.
    """
    if not 0 < target_share <= 1:
        raise ValueError(f"target_share must be in (0, 1], got {target_share!r}")
    lengths: dict[str, Sequence[Any]] = {
        "token_ids": token_ids,
        "reference_token_ids": reference_token_ids,
        "texts": texts,
        "reference_texts": reference_texts,
    }
    for label, given in (("scores", scores), ("reference_scores", reference_scores)):
        for name in ROUGE_TYPES:
            if name not in given:
                raise ValueError(f"{label} lack {name!r} (have {sorted(given)}; need {', '.join(ROUGE_TYPES)})")
            lengths[f"{label}[{name!r}]"] = given[name]
    if check_lengths(**lengths) == 0:
        raise ValueError("no items to compare")
    return [
        *agreement_metrics(token_ids, reference_token_ids, texts, reference_texts, reference_precision),
        *share_metrics(
            {name: scores[name] for name in ROUGE_TYPES},
            reference_scores,
            target_share,
            reference_precision,
        ),
    ]
