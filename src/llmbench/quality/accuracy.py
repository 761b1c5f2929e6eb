"""Accuracy: each output matched against its item's check (:mod:`llmbench.data.checks`), and the share correct.

Every match kind reads the output's *answer line*: its first line that is not blank, since a base model
answers and then goes on writing (often the next "Question: ..."). On that line:

* ``exact``: equal to the answer once both are normalised (:func:`llmbench.data.checks.normalise`:
  case, Unicode form, white space, and punctuation at either end);
* ``contains``: the normalised answer occurs in the normalised line;
* ``regex``: ``re.search`` of the pattern as written (``(?i)`` for case-insensitive);
* ``numeric``: the first number on the line (``-3``, ``4.75``, ``2,000``, ``1e3``) is within the tolerance
  of the answer (absolute difference at most the tolerance);
* ``choice``: the line names exactly one option, as a whole word once normalised, and it is the answer.

``accuracy``: the share of checked items answered correctly, with a percentile-bootstrap 95% interval
(:mod:`llmbench.stats`) and the per-item 0/1 scores as samples, so the gate pairs them item by item like
ROUGE. See docs/quality.md, "Accuracy checks".
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Final

from llmbench.data.checks import AnswerCheck, normalise
from llmbench.metrics import Metric
from llmbench.quality.rouge import check_lengths
from llmbench.stats import CONFIDENCE, SEED, bootstrap_ci

__all__ = ["accuracy_metric", "accuracy_scores", "answer_line", "first_number", "is_correct"]

# A number: an optional sign (ASCII or U+2212 minus), digits with optional thousands commas, an optional
# decimal part, an optional exponent; or a bare decimal part (".5").
_NUMBER: Final = re.compile(r"([-+\u2212]?)((?:\d{1,3}(?:,\d{3})+(?![\d,])|\d+)(?:\.\d+)?|\.\d+)([eE][-+]?\d+)?")


def answer_line(output: str) -> str:
    """The first line of ``output`` that is not blank, stripped; empty where there is none."""
    return next((line.strip() for line in output.splitlines() if line.strip()), "")


def first_number(text: str) -> float | None:
    """The first number in ``text`` (see the module docstring); None where there is none."""
    found = _NUMBER.search(text)
    if found is None:
        return None
    sign, digits, exponent = found.groups()
    return float(("-" if sign in ("-", "\u2212") else "") + digits.replace(",", "") + (exponent or ""))


def _named(option: str, line: str) -> bool:
    return re.search(rf"(?<!\w){re.escape(normalise(option))}(?!\w)", line) is not None


def is_correct(output: str, check: AnswerCheck) -> bool:
    """Whether ``output`` answers correctly under ``check``."""
    line = answer_line(output)
    if check.match == "exact":
        return normalise(line) == normalise(check.answer)
    if check.match == "contains":
        return normalise(check.answer) in normalise(line)
    if check.match == "regex":
        return re.search(check.answer, line) is not None
    if check.match == "numeric":
        assert check.value is not None, "a numeric check has its value (data.checks.parse_check)"
        number = first_number(line)
        return number is not None and abs(number - check.value) <= check.tolerance
    named = [option for option in check.options if _named(option, normalise(line))]
    return len(named) == 1 and normalise(named[0]) == normalise(check.answer)


def accuracy_scores(outputs: Sequence[str], checks: Sequence[AnswerCheck]) -> list[float]:
    """Per item, 1.0 where the output answers correctly under the item's check, else 0.0, in item order."""
    check_lengths(outputs=outputs, checks=checks)
    return [1.0 if is_correct(output, check) else 0.0 for output, check in zip(outputs, checks, strict=True)]


def accuracy_metric(scores: Sequence[float]) -> Metric:
    """``accuracy``: the mean of the per-item 0/1 scores, with its bootstrap interval and the scores."""
    if not scores:
        raise ValueError("no items scored for 'accuracy'")
    correct = int(sum(scores))
    return Metric.of(
        "accuracy",
        correct / len(scores),
        scores,
        ci=bootstrap_ci(scores),
        note=(
            f"{correct} of {len(scores)} answers correct under their checks (answer line: the output's first "
            f"line that is not blank); bootstrap {CONFIDENCE:.0%} CI (seed {SEED})"
        ),
    )
