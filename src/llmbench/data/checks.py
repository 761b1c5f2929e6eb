"""Accuracy checks as data: an item's expected answer and how an output is matched against it.

An item of a data set carries a check with these fields, beside ``id`` and ``text`` (docs/quality.md,
"Accuracy checks"):

* ``answer`` (required for a check): the expected answer; a number or text for ``numeric``, the
  pattern for ``regex``, the correct option for ``choice``;
* ``match``: ``exact`` (the default), ``contains``, ``regex``, ``numeric`` or ``choice``;
* ``tolerance``: ``numeric`` only, the largest absolute difference still correct (default 0);
* ``options``: ``choice`` only, the options (at least two): a list, or in a CSV cell one text with the
  options separated by ``|``.

A missing field, ``null`` or a blank text is absent (CSV rows of a mixed file leave the cells empty).
Everything is checked when the file is read, so a malformed check is an error naming the file and the
line before anything runs. Scoring an output against a check is :mod:`llmbench.quality.accuracy`.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Final, Literal, get_args

__all__ = ["CHECK_FIELDS", "MATCH_KINDS", "AnswerCheck", "CheckError", "MatchKind", "normalise", "parse_check"]

MatchKind = Literal["exact", "contains", "regex", "numeric", "choice"]
#: The match kinds, in the order the docs list them.
MATCH_KINDS: Final[tuple[MatchKind, ...]] = get_args(MatchKind)
#: The fields of an item that make its check.
CHECK_FIELDS: Final = ("answer", "match", "tolerance", "options")
#: The separator of the options in one text (a CSV cell).
OPTION_SEPARATOR: Final = "|"

_SPACES: Final = re.compile(r"\s+")


def _strippable(char: str) -> bool:
    return char.isspace() or unicodedata.category(char).startswith("P")


def normalise(text: str) -> str:
    """``text`` as exact, contains and choice compare it: Unicode NFKC, case folded, every run of white
    space one space, and white space and punctuation (Unicode categories P*: ``. , ! ? " ' ( ) * -`` ...)
    stripped from both ends."""
    folded = _SPACES.sub(" ", unicodedata.normalize("NFKC", text).casefold())
    start, end = 0, len(folded)
    while start < end and _strippable(folded[start]):
        start += 1
    while end > start and _strippable(folded[end - 1]):
        end -= 1
    return folded[start:end]


class CheckError(ValueError):
    """An item's check that cannot be used: the message names the field, the value and what is allowed."""


@dataclass(frozen=True)
class AnswerCheck:
    """One item's expected answer and how to match it (see the module docstring)."""

    match: MatchKind
    #: The answer as written: text, the pattern (regex), the correct option (choice).
    answer: str
    #: ``numeric``: the expected number.
    value: float | None = None
    #: ``numeric``: the largest absolute difference still counted correct.
    tolerance: float = 0.0
    #: ``choice``: the options, as written.
    options: tuple[str, ...] = ()

    def describe(self) -> str:
        """The check in a few words, e.g. ``numeric 84 (±0.5)``, for the per-item outputs and reports."""
        if self.match == "numeric":
            return f"numeric {self.value:g}" + (f" (±{self.tolerance:g})" if self.tolerance else "")
        if self.match == "choice":
            return f"choice {self.answer!r} of {' | '.join(self.options)}"
        return f"{self.match} {self.answer!r}"


def _present(record: Mapping[str, object], name: str) -> object | None:
    value = record.get(name)
    if value is None or (isinstance(value, str) and not value.strip()):
        return None
    if isinstance(value, float) and math.isnan(value):  # an empty cell of a table read with pandas
        return None
    return value


def _number(name: str, value: object, match: str) -> float:
    if isinstance(value, bool):
        raise CheckError(f"field {name!r} must be a number (match {match}), got {value!r}")
    if isinstance(value, int | float):
        number = float(value)
    elif isinstance(value, str):
        try:
            number = float(value.strip().replace(",", ""))
        except ValueError:
            raise CheckError(f"field {name!r} must be a number (match {match}), got {value!r}") from None
    else:
        raise CheckError(f"field {name!r} must be a number (match {match}), got {type(value).__name__}")
    if not math.isfinite(number):
        raise CheckError(f"field {name!r} must be a finite number (match {match}), got {value!r}")
    return number


def _text(name: str, value: object) -> str:
    if isinstance(value, bool) or not isinstance(value, str | int | float):
        raise CheckError(f"field {name!r} must be text or a number, got {type(value).__name__}")
    return value.strip() if isinstance(value, str) else f"{value:g}" if isinstance(value, float) else str(value)


def _options(value: object) -> tuple[str, ...]:
    if isinstance(value, str):
        parts = value.split(OPTION_SEPARATOR)
    elif isinstance(value, list | tuple):
        parts = [_text("options", part) for part in value]
    else:
        raise CheckError(
            f"field 'options' must be a list of texts or one text with the options separated by "
            f"{OPTION_SEPARATOR!r}, got {type(value).__name__}"
        )
    options = tuple(part.strip() for part in parts)
    if len(options) < 2:
        raise CheckError(f"field 'options' needs at least two options, got {list(options)}")
    seen: dict[str, str] = {}
    for option in options:
        key = normalise(option)
        if not key:
            raise CheckError(f"field 'options' has an empty option (or only punctuation): {list(options)}")
        if key in seen:
            raise CheckError(f"field 'options' has {seen[key]!r} and {option!r}, the same once normalised")
        seen[key] = option
    return options


def parse_check(record: Mapping[str, object]) -> AnswerCheck | None:
    """The check of one item's fields (:data:`CHECK_FIELDS`); None where the item has none.

    Raises :class:`CheckError` for a malformed check: match or its settings without an answer, an
    unknown match kind, a setting of another kind, a regular expression that does not compile, a
    numeric answer or tolerance that is not a number, a choice whose answer is not one of its options.
    """
    given = {name: value for name in CHECK_FIELDS if (value := _present(record, name)) is not None}
    if not given:
        return None
    if "answer" not in given:
        raise CheckError(f"field {', '.join(repr(n) for n in given)} given but no 'answer' (a check needs one)")
    raw_match = given.get("match", "exact")
    match = raw_match.strip().lower() if isinstance(raw_match, str) else raw_match
    if match not in MATCH_KINDS:
        raise CheckError(f"unknown match kind {raw_match!r} in field 'match'; allowed: {', '.join(MATCH_KINDS)}")
    for name, kind in (("tolerance", "numeric"), ("options", "choice")):
        if name in given and match != kind:
            raise CheckError(f"field {name!r} applies to match {kind} only, but match is {match}")
    if match == "numeric":
        value = _number("answer", given["answer"], match)
        tolerance = _number("tolerance", given.get("tolerance", 0.0), match)
        if tolerance < 0:
            raise CheckError(f"field 'tolerance' must be 0 or more, got {given['tolerance']!r}")
        return AnswerCheck("numeric", _text("answer", given["answer"]), value=value, tolerance=tolerance)
    answer = _text("answer", given["answer"])
    if match == "regex":
        try:
            re.compile(answer)
        except re.error as error:
            raise CheckError(f"field 'answer' is not a valid regular expression ({error}): {answer!r}") from None
        return AnswerCheck("regex", answer)
    if match == "choice":
        if "options" not in given:
            raise CheckError("match choice needs the field 'options' (at least two)")
        options = _options(given["options"])
        if normalise(answer) not in {normalise(option) for option in options}:
            raise CheckError(f"field 'answer' {answer!r} is not one of the options {list(options)}")
        return AnswerCheck("choice", answer, options=options)
    if not normalise(answer):
        raise CheckError(f"field 'answer' {answer!r} is empty once normalised (match {match})")
    return AnswerCheck("exact" if match == "exact" else "contains", answer)
