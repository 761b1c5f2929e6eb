"""The per-item outputs of one combination (id, reference, output, ROUGE, semantic similarity, the generated
token ids, identical to the reference's output), saved next to the run as JSON lines, atomically. See
docs/quality.md. An item of a data set without references has an empty reference and null ROUGE; an item with
an accuracy check also has the check in words (``check``) and whether its output passed it (``correct``).
A file carries what a comparison needs (:func:`llmbench.quality.comparison.output_set_from_records`); a file
of an earlier version, without ``token_ids`` and ``semantic_sim``, still reads (None).
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from llmbench.quality.rouge import ROUGE_TYPES, check_lengths
from llmbench.runs import write_atomically

__all__ = ["QualityRecord", "quality_records", "read_outputs", "write_outputs"]


@dataclass(frozen=True)
class QualityRecord:
    """One item's output of one combination, as saved next to the run."""

    id: str
    #: The reference text; empty for a data set without references.
    reference: str
    output: str
    #: ROUGE F1 against the reference; None without a reference.
    rouge1: float | None
    rouge2: float | None
    rougeLsum: float | None  # the metric's name, as in the saved runs
    #: Whether the output equals the reference's (the combination's reference: another precision, model or
    #: device; the field keeps its earlier name); None where that output is not known.
    identical_to_reference_precision: bool | None = None
    #: The item's accuracy check in words (``numeric 84``); None where it has none.
    check: str | None = None
    #: Whether the output passed the check; None where the item has none.
    correct: bool | None = None
    #: Semantic similarity of output and reference (all-MiniLM-L6-v2); None without either.
    semantic_sim: float | None = None
    #: The generated token ids; None where not known (a file of an earlier version).
    token_ids: tuple[int, ...] | None = None

    def to_json(self) -> dict[str, Any]:
        accuracy = {} if self.check is None else {"check": self.check, "correct": self.correct}
        return {
            "id": self.id,
            "reference": self.reference,
            "output": self.output,
            "rouge1": self.rouge1,
            "rouge2": self.rouge2,
            "rougeLsum": self.rougeLsum,
            "semantic_sim": self.semantic_sim,
            "identical_to_reference_precision": self.identical_to_reference_precision,
            **accuracy,
            "token_ids": None if self.token_ids is None else list(self.token_ids),
        }

    def scores(self) -> dict[str, float]:
        """This item's scores by metric name (ROUGE, ``semantic_sim``, ``accuracy`` 1.0 or 0.0), where known."""
        named: dict[str, float | None] = {
            "rouge1": self.rouge1, "rouge2": self.rouge2, "rougeLsum": self.rougeLsum,
            "semantic_sim": self.semantic_sim, "accuracy": None if self.correct is None else float(self.correct),
        }  # fmt: skip
        return {name: value for name, value in named.items() if value is not None}

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> QualityRecord:
        identical, check, correct = (data.get(k) for k in ("identical_to_reference_precision", "check", "correct"))
        tokens = data.get("token_ids")
        if tokens is not None and (not isinstance(tokens, list) or not all(isinstance(t, int) for t in tokens)):
            raise TypeError(f"field 'token_ids' must be a list of integers, got {tokens!r:.60}")
        return cls(
            id=str(data["id"]),
            reference=str(data["reference"]),
            output=str(data["output"]),
            rouge1=_score(data["rouge1"]),
            rouge2=_score(data["rouge2"]),
            rougeLsum=_score(data["rougeLsum"]),
            identical_to_reference_precision=None if identical is None else bool(identical),
            check=None if check is None else str(check),
            correct=None if correct is None else bool(correct),
            semantic_sim=_score(data.get("semantic_sim")),
            token_ids=None if tokens is None else tuple(tokens),
        )


def _score(value: Any) -> float | None:
    return None if value is None else float(value)


def quality_records(
    ids: Sequence[str],
    references: Sequence[str],
    outputs: Sequence[str],
    scores: Mapping[str, Sequence[float | None]] | None,
    reference_outputs: Sequence[str] | None = None,
    checks: Sequence[str | None] | None = None,
    correct: Sequence[bool | None] | None = None,
    semantic: Sequence[float | None] | None = None,
    token_ids: Sequence[Sequence[int]] | None = None,
) -> list[QualityRecord]:
    """The per-item records of one combination (``reference_outputs``: the reference's texts, where known;
    ``scores`` None: a data set without references, the ROUGE fields null; a None score: an item without a
    reference; ``checks`` and ``correct``: each item's accuracy check in words and its result, None where
    the item has no check; ``semantic``: each item's semantic similarity; ``token_ids``: each item's generated
    token ids)."""
    lengths: dict[str, Sequence[Any]] = {"ids": ids, "references": references, "outputs": outputs}
    if scores is not None:
        lengths.update({f"scores[{name!r}]": scores[name] for name in ROUGE_TYPES})
    given_lists = (("reference_outputs", reference_outputs), ("checks", checks), ("correct", correct),
                   ("semantic", semantic), ("token_ids", token_ids))  # fmt: skip
    for name, given in given_lists:
        if given is not None:
            lengths[name] = given
    n = check_lengths(**lengths)
    return [
        QualityRecord(
            id=ids[i],
            reference=references[i],
            output=outputs[i],
            rouge1=None if scores is None else _score(scores["rouge1"][i]),
            rouge2=None if scores is None else _score(scores["rouge2"][i]),
            rougeLsum=None if scores is None else _score(scores["rougeLsum"][i]),
            identical_to_reference_precision=None if reference_outputs is None else outputs[i] == reference_outputs[i],
            check=None if checks is None else checks[i],
            correct=None if correct is None else correct[i],
            semantic_sim=None if semantic is None else _score(semantic[i]),
            token_ids=None if token_ids is None else tuple(token_ids[i]),
        )
        for i in range(n)
    ]


def _json_line(record: QualityRecord) -> str:
    # Readable non-ASCII text, but with the characters that str.splitlines() also breaks at escaped,
    # so a line-based reader sees exactly one record a line (JSON forbids none of them raw).
    line = json.dumps(record.to_json(), ensure_ascii=False, allow_nan=False)
    return line.replace("\x85", "\\u0085").replace("\u2028", "\\u2028").replace("\u2029", "\\u2029")


def write_outputs(path: Path, records: Iterable[QualityRecord]) -> None:
    """Save the records as JSON lines at ``path``, atomically (:func:`llmbench.runs.write_atomically`): a
    crash or an error leaves the previous file untouched and no temporary file behind."""

    def write(out: TextIO) -> None:
        for record in records:
            out.write(_json_line(record) + "\n")

    write_atomically(path, write)


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
            raise ValueError(f"{path}, line {number}: not valid JSON ({error.msg}; column {error.colno})") from None
        except KeyError as error:
            raise ValueError(f"{path}, line {number}: missing field {error.args[0]!r}") from None
        except (TypeError, ValueError) as error:
            raise ValueError(f"{path}, line {number}: {error}") from None
    return records
