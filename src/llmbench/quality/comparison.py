"""Comparisons of two saved output sets item by item: a combination's outputs against its reference's.

A combination's reference is another precision, model or device (``Combination.reference_key``: the matrix
file's ``reference`` tables, docs/matrix-and-models.md). What is compared is what a run saves of each
combination's quality pass, in each benchmark's ``extra_info``: the texts (``outputs``), the generated token
ids (``output_token_ids``), the per-item scores (``item_scores``), a digest of the data set's items
(``items_digest``) and the reference wanted (``quality_reference``); the per-item outputs file carries the
same per item (:mod:`llmbench.quality.outputs`). So a comparison needs nothing that ran earlier in the same
process: the session compares at its end, ``llmbench merge`` over the merged shards, and a named saved run
(``--llmbench-reference-run``) supplies the references the matrix does not run.

Figures (docs/quality.md, "References and comparisons"): ``drift_identical_share`` and
``drift_first_diff_token`` (:mod:`llmbench.quality.drift`; the first differing token only against the same
model: two models' token ids need not come from one tokenizer), ``<score>_share`` and ``quality_target_met``
(:func:`llmbench.quality.drift.share_metrics`), and ``<rouge>_diff`` and ``semantic_sim_diff``: the mean of
the per-item differences (this combination's score minus the reference's) with a paired bootstrap interval
(:func:`llmbench.stats.paired_bootstrap_ci`). Items that differ (ids, count, or the same ids with other
texts) make every comparison n/a with the reason, never a wrong number.

A run saved before these fields existed still serves: its texts compare (identical share), its scores are
read from the metrics' per-item samples where there is one per item; the first differing token is n/a.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Mapping, MutableMapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from llmbench.config.combination import DEFAULT_DATASET
from llmbench.data import Item
from llmbench.metrics import METRICS_KEY, Metric
from llmbench.quality.drift import TARGET_SHARE, first_difference_metric, identical_metric, share_metrics
from llmbench.quality.outputs import QualityRecord
from llmbench.quality.rouge import ROUGE_TYPES
from llmbench.runs import load_run
from llmbench.stats import CONFIDENCE, SEED, paired_bootstrap_ci

__all__ = [
    "COMPARISON_METRICS",
    "DIFF_SCORES",
    "ITEMS_DIGEST_KEY",
    "ITEM_SCORES_KEY",
    "MERGED_SOURCE",
    "OUTPUT_TOKEN_IDS_KEY",
    "REFERENCE_INFO_KEY",
    "SAME_RUN_SOURCES",
    "SESSION_SOURCE",
    "SHARE_SCORES",
    "OutputKey",
    "OutputSet",
    "compare",
    "items_digest",
    "mismatch",
    "not_compared",
    "output_set",
    "output_set_from_records",
    "output_sets",
    "recompare",
    "reference_label",
    "reference_run_outputs",
]

#: ``extra_info`` keys of a benchmark with a quality pass (besides ``outputs``, the texts by item id).
OUTPUT_TOKEN_IDS_KEY = "output_token_ids"
ITEM_SCORES_KEY = "item_scores"
ITEMS_DIGEST_KEY = "items_digest"
#: ``{"model", "precision", "device", "target_share"}``: the reference wanted; ``source`` where the reference's
#: outputs came from when compared ("this session", "the merged run", "run 0003").
REFERENCE_INFO_KEY = "quality_reference"
#: How the notes name where the reference's outputs were: the session that made them, or ``llmbench merge``'s
#: merged run; any other source is a saved run ("run 0003").
SESSION_SOURCE = "this session"
MERGED_SOURCE = "the merged run"
#: ``quality_reference["source"]`` values that mean the reference's outputs are in the run itself (None: the
#: reference was not found when compared, or a reference compared with nothing).
SAME_RUN_SOURCES: tuple[str | None, ...] = (None, "", SESSION_SOURCE, MERGED_SOURCE)

#: Scores compared as a share of the reference's mean (MLPerf's rule) and as a difference of means.
SHARE_SCORES: tuple[str, ...] = (*ROUGE_TYPES, "accuracy")
DIFF_SCORES: tuple[str, ...] = (*ROUGE_TYPES, "semantic_sim")
#: Every figure a comparison gives: replaced when compared again.
COMPARISON_METRICS: tuple[str, ...] = (
    "drift_identical_share", "drift_first_diff_token", *(f"{name}_share" for name in SHARE_SCORES),
    "quality_target_met", *(f"{name}_diff" for name in DIFF_SCORES),
)  # fmt: skip

#: (model, precision, device, data set name).
OutputKey = tuple[str, str, str, str]


@dataclass(frozen=True)
class OutputSet:
    """One combination's saved outputs over a data set, item by item."""

    model: str
    precision: str
    device: str
    dataset: str
    ids: tuple[str, ...]
    texts: tuple[str, ...]
    #: The generated token ids per item; None where not saved (a run of an earlier version).
    token_ids: tuple[tuple[int, ...], ...] | None
    #: Score name -> item id -> value, over the items each score applies to.
    scores: Mapping[str, Mapping[str, float]] = field(default_factory=dict)
    #: :func:`items_digest` of the data set's items; None where not saved.
    digest: str | None = None
    #: Where the outputs are: "this session", "the merged run", "run 0003".
    source: str = SESSION_SOURCE

    @property
    def key(self) -> OutputKey:
        return (self.model, self.precision, self.device, self.dataset)


def items_digest(items: Sequence[Item]) -> str:
    """A digest of the data set's items (id, text, reference, check): two output sets with the same ids but a
    different digest were made on other items."""
    rows = [
        [item.id, item.text, item.reference, None if item.check is None else item.check.describe()] for item in items
    ]
    return hashlib.sha256(json.dumps(rows, ensure_ascii=False).encode("utf-8")).hexdigest()[:16]


def _number(value: Any) -> float | None:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        return None
    return float(value)


def _saved_scores(info: Mapping[str, Any], ids: Sequence[str]) -> dict[str, dict[str, float]]:
    """``item_scores``, else (a run of an earlier version) each score's metric samples where there is one per
    item (a score over some of the items only cannot be matched to its items: left out)."""
    saved = info.get(ITEM_SCORES_KEY)
    out: dict[str, dict[str, float]] = {}
    if isinstance(saved, Mapping):
        for name, values in saved.items():
            if isinstance(values, Mapping):
                numbers = {str(k): v for k, value in values.items() if (v := _number(value)) is not None}
                out[str(name)] = numbers
        return out
    metrics = info.get(METRICS_KEY)
    if not isinstance(metrics, Mapping):
        return out
    for name in (*ROUGE_TYPES, "semantic_sim", "accuracy"):
        metric = metrics.get(name)
        samples = metric.get("samples") if isinstance(metric, Mapping) else None
        if isinstance(samples, list) and len(samples) == len(ids):
            values = [_number(value) for value in samples]
            known = {i: v for i, v in zip(ids, values, strict=True) if v is not None}
            if len(known) == len(ids):
                out[name] = known
    return out


def _token_ids(info: Mapping[str, Any], ids: Sequence[str]) -> tuple[tuple[int, ...], ...] | None:
    saved = info.get(OUTPUT_TOKEN_IDS_KEY)
    if not isinstance(saved, Mapping) or set(map(str, saved)) != set(ids):
        return None
    out = []
    for item in ids:
        tokens = saved[item]
        if not isinstance(tokens, list) or not all(isinstance(t, int) and not isinstance(t, bool) for t in tokens):
            return None
        out.append(tuple(tokens))
    return tuple(out)


def output_set(info: Mapping[str, Any], source: str) -> OutputSet | None:
    """The output set saved in one benchmark's ``extra_info``; None where it has none (no quality pass, or
    fields that are not what the harness writes)."""
    outputs = info.get("outputs")
    model, precision, device = (info.get(key) for key in ("model", "precision", "device"))
    if (
        not isinstance(outputs, Mapping)
        or not outputs
        or not all(isinstance(v, str) for v in (model, precision, device))
    ):
        return None
    if not all(isinstance(text, str) for text in outputs.values()):
        return None
    ids = tuple(str(item) for item in outputs)
    dataset = info.get("dataset")
    digest = info.get(ITEMS_DIGEST_KEY)
    return OutputSet(
        model=str(model), precision=str(precision), device=str(device),
        dataset=str(dataset) if isinstance(dataset, str) and dataset else DEFAULT_DATASET,
        ids=ids, texts=tuple(str(text) for text in outputs.values()), token_ids=_token_ids(info, ids),
        scores=_saved_scores(info, ids), digest=digest if isinstance(digest, str) else None, source=source,
    )  # fmt: skip


def output_sets(infos: Iterable[Mapping[str, Any]], source: str) -> dict[OutputKey, OutputSet]:
    """The output set of each (model, precision, device, data set) among the benchmarks' ``extra_info`` (the
    batch sizes of one load share one: the first is taken)."""
    out: dict[OutputKey, OutputSet] = {}
    for info in infos:
        found = output_set(info, source)
        if found is not None:
            out.setdefault(found.key, found)
    return out


def output_set_from_records(
    records: Sequence[QualityRecord], model: str, precision: str, device: str, dataset: str, source: str
) -> OutputSet:
    """The output set of a per-item outputs file (:func:`llmbench.quality.outputs.read_outputs`)."""
    ids = tuple(record.id for record in records)
    token_ids = [record.token_ids for record in records]
    scores: dict[str, dict[str, float]] = {}
    for record in records:
        for name, value in record.scores().items():
            scores.setdefault(name, {})[record.id] = value
    known = None if any(tokens is None for tokens in token_ids) else tuple(t for t in token_ids if t is not None)
    return OutputSet(model, precision, device, dataset, ids, tuple(r.output for r in records), known, scores,
                     source=source)  # fmt: skip


def reference_run_outputs(path: Path) -> tuple[str, dict[OutputKey, OutputSet]]:
    """The output sets of a saved run, and how notes name it (``run 0003``, else the file). Raises
    :class:`llmbench.runs.RunError` for a run that cannot be read."""
    run = load_run(path)
    label = f"run {run.name}" if run.number is not None else f"run {path}"
    infos = [bench.get("extra_info") or {} for bench in run.benchmarks.values()]
    return label, output_sets((info for info in infos if isinstance(info, Mapping)), label)


def reference_label(current: OutputSet, reference: OutputSet) -> str:
    """How notes name the reference: its precision where only that differs (as before references could be
    other models or devices), else model, precision and device; with its source where that is another run."""
    same = reference.model == current.model and reference.device == current.device
    words = reference.precision if same else f"{reference.model} {reference.precision} {reference.device}"
    return words if reference.source == current.source else f"{words} ({reference.source})"


def mismatch(current: OutputSet, reference: OutputSet) -> str | None:
    """Why the two sets cannot be compared item by item (other ids, count or items), or None."""
    label = reference_label(current, reference)
    if current.ids == reference.ids or (
        len(current.ids) == len(reference.ids) and set(current.ids) == set(reference.ids)
    ):
        if current.digest is not None and reference.digest is not None and current.digest != reference.digest:
            return (f"the reference {label} was generated from other items (the same {len(current.ids)} ids, other "
                    "texts, references or checks)")  # fmt: skip
        return None
    missing = [item for item in current.ids if item not in set(reference.ids)]
    shown = ", ".join(missing[:5]) + (", ..." if len(missing) > 5 else "")
    detail = f"; {len(missing)} of this combination's ids not among its: {shown}" if missing else ""
    counts = f"{len(reference.ids)} items, this combination {len(current.ids)}"
    return f"the reference {label} has other items ({counts}{detail})"


def not_compared(current: OutputSet, reason: str) -> list[Metric]:
    """Every comparison figure of ``current`` n/a with ``reason`` (the identical share, and the shares and
    differences of the scores it has)."""
    names = ["drift_identical_share", "drift_first_diff_token"]
    names += [f"{name}_share" for name in SHARE_SCORES if name in current.scores]
    names += ["quality_target_met"] if any(name in current.scores for name in SHARE_SCORES) else []
    names += [f"{name}_diff" for name in DIFF_SCORES if name in current.scores]
    return [Metric.of(name, None, note=reason) for name in names]


def _diff_metric(name: str, current: Sequence[float], reference: Sequence[float], label: str) -> Metric:
    differences = [c - r for c, r in zip(current, reference, strict=True)]
    what = f"{name} F1" if name in ROUGE_TYPES else "semantic similarity"
    return Metric.of(
        f"{name}_diff",
        float(np.mean(differences)),
        differences,
        ci=paired_bootstrap_ci(differences),
        note=(
            f"mean per-item {what} minus {label}'s ({float(np.mean(current)):.4f} - {float(np.mean(reference)):.4f}) "
            f"over {len(differences)} items; paired bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
        ),
    )


def compare(current: OutputSet, reference: OutputSet, target_share: float = TARGET_SHARE) -> list[Metric]:
    """Every comparison figure of ``current`` against ``reference``, item by item (aligned by item id); n/a
    with the reason where the items differ (:func:`mismatch`) or a side lacks what a figure needs."""
    reason = mismatch(current, reference)
    if reason is not None:
        return not_compared(current, f"n/a: {reason}")
    label = reference_label(current, reference)
    row = {item: index for index, item in enumerate(reference.ids)}
    order = [row[item] for item in current.ids]
    metrics = [identical_metric(current.texts, [reference.texts[i] for i in order], label)]
    if reference.model != current.model:
        why = f"the reference is another model ({reference.model}): token ids need not be the same tokenizer's"
    elif current.token_ids is None or reference.token_ids is None:
        why = "token ids were not saved (a run of an earlier version)"
    else:
        why = ""
        reference_tokens = [reference.token_ids[i] for i in order]
        metrics.append(first_difference_metric(current.token_ids, reference_tokens, label))
    if why:
        metrics.append(Metric.of("drift_first_diff_token", None, note=f"n/a: {why}"))
    paired: dict[str, tuple[list[float], list[float]]] = {}
    for name, values in current.scores.items():
        theirs = reference.scores.get(name, {})
        scored = [item for item in current.ids if item in values]
        if scored and all(item in theirs for item in scored):
            paired[name] = ([values[item] for item in scored], [theirs[item] for item in scored])
    shares = {name: pair for name, pair in paired.items() if name in SHARE_SCORES}
    if shares:
        metrics.extend(
            share_metrics(
                {n: p[0] for n, p in shares.items()}, {n: p[1] for n, p in shares.items()}, target_share, label
            )
        )
    metrics.extend(_diff_metric(name, *paired[name], label) for name in DIFF_SCORES if name in paired)
    lacking = [name for name in current.scores if name not in paired and name in (*SHARE_SCORES, *DIFF_SCORES)]
    for name in lacking:
        note = f"n/a: the reference {label} has no saved per-item {name} for these items"
        metrics.extend(Metric.of(f"{name}_{kind}", None, note=note) for kind in ("share", "diff")
                       if name in (SHARE_SCORES if kind == "share" else DIFF_SCORES))  # fmt: skip
    return metrics


def _wanted(info: Mapping[str, Any]) -> tuple[tuple[str, str, str] | None, float]:
    """The reference a benchmark wants and its quality target; (None, ...) for a run of an earlier version,
    which did not save it."""
    saved = info.get(REFERENCE_INFO_KEY)
    if not isinstance(saved, Mapping):
        return None, TARGET_SHARE
    key = tuple(saved.get(name) for name in ("model", "precision", "device"))
    share = _number(saved.get("target_share"))
    target = share if share is not None and 0 < share <= 1 else TARGET_SHARE
    return (key if all(isinstance(k, str) for k in key) else None), target  # type: ignore[return-value]


def _replace(info: MutableMapping[str, Any], metrics: Sequence[Metric]) -> None:
    """The comparison figures of ``info`` replaced by ``metrics``; one not among them is dropped where it has a
    value (stale) and kept where it is n/a (e.g. a data set without references says why)."""
    saved = info.get(METRICS_KEY)
    saved = dict(saved) if isinstance(saved, Mapping) else {}
    given = {metric.name for metric in metrics}
    for name in COMPARISON_METRICS:
        old = saved.get(name)
        if name not in given and isinstance(old, Mapping) and old.get("value") is not None:
            del saved[name]
    saved.update({metric.name: metric.to_json() for metric in metrics})
    info[METRICS_KEY] = saved


def recompare(
    infos: Sequence[MutableMapping[str, Any]],
    source: str,
    references: Mapping[OutputKey, OutputSet] | None = None,
    absent: Callable[[Mapping[str, Any], str], str | None] | None = None,
) -> int:
    """Compare every benchmark of a run (its ``extra_info`` objects, changed in place) with its reference's
    saved outputs: those of the run itself first (``source`` names it), else ``references`` (a named saved
    run's). ``absent(info, reference)`` gives the n/a note where the reference is in neither (None: keep
    what the benchmark saved). A benchmark of a run of an earlier version (no ``quality_reference``) is
    compared only where it has no drift figure yet, with its model's fp32 on its device (the default then).
    Returns how many benchmarks were compared."""
    own = output_sets(infos, source)
    extra = references or {}
    compared = 0
    for info in infos:
        current = output_set(info, source)
        if current is None:
            continue
        wanted, target = _wanted(info)
        if wanted is None:
            drift = (info.get(METRICS_KEY) or {}).get("drift_identical_share")
            if isinstance(drift, Mapping) and drift.get("value") is not None:
                continue
            wanted = (current.model, "fp32", current.device)
        if wanted == (current.model, current.precision, current.device):
            continue
        key = (*wanted, current.dataset)
        reference = own.get(key) or extra.get(key)
        if reference is None:
            note = None if absent is None else absent(info, " ".join(wanted))
            if note is None:
                continue
            metrics = [Metric.of("drift_identical_share", None, note=note)]
        else:
            metrics = compare(current, reference, target)
        _replace(info, metrics)
        if isinstance(info.get(REFERENCE_INFO_KEY), Mapping):
            info[REFERENCE_INFO_KEY] = {
                **info[REFERENCE_INFO_KEY],
                "source": None if reference is None else reference.source,
            }
        compared += 1
    return compared
