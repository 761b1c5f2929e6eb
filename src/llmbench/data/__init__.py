"""Data sets: items with a text (the prompt's), an optional reference and an optional accuracy check.

A data file is JSONL, JSON, CSV, Parquet or plain text (:mod:`llmbench.data.formats`, docs/datasets.md).
An item has the fields ``text`` (required), ``id`` (default: its position in the file, 1 for the first)
and ``reference`` (the reference summary ROUGE scores against); other fields are ignored. An item may
carry an accuracy check instead of a reference (``answer``, ``match``, ``tolerance``, ``options``:
:mod:`llmbench.data.checks`). A set whose items have no reference (a file of prompts) runs speed and
memory; its reference-based quality figures are n/a with the reason. Every item without a check has a
reference, or none has. Every problem is reported with the file, the line and what is wrong.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from llmbench.data.checks import AnswerCheck, CheckError, parse_check
from llmbench.data.formats import FORMATS, DataError, Record, read_records

__all__ = [
    "ACCURACY_DATA", "FORMATS", "REQUIRED_FIELDS", "SHIPPED_DATA", "SHIPPED_SETS", "DataError", "Item",
    "load_dataset", "load_items", "shipped_or_given",
]  # fmt: skip

REQUIRED_FIELDS = ("text",)
#: The fields an item may leave out (a CSV cell left empty counts as left out).
OPTIONAL_FIELDS = ("id", "reference")

#: The shipped data set: original texts written for this project (fables, parables, invented local news).
SHIPPED_DATA = Path(__file__).with_name("summaries.jsonl")
#: Questions with unambiguous answers (letters, arithmetic, dates, units), each with its accuracy check;
#: written for this project, CC0 (docs/quality.md, "Accuracy checks").
ACCURACY_DATA = Path(__file__).with_name("accuracy.jsonl")
#: The shipped data sets by name: a data value that is one of these names (no suffix) loads that file.
SHIPPED_SETS: dict[str, Path] = {"summaries": SHIPPED_DATA, "accuracy": ACCURACY_DATA}


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    #: The reference text; empty where the item has none (a set of prompts, an accuracy item).
    reference: str
    #: The item's accuracy check (expected answer and how to match it); None where it has none.
    check: AnswerCheck | None = None


def _fields(path: Path, record: Record) -> dict[str, object]:
    fields = record.fields
    if not isinstance(fields, dict):
        raise DataError(f"{record.where(path)}: expected an object with a field 'text' (and optionally "
                        f"{', '.join(OPTIONAL_FIELDS)}), got {fields!r:.60}")  # fmt: skip
    # An empty CSV cell (or a blank text anywhere) of an optional field counts as left out.
    return {k: v for k, v in fields.items() if not (k in OPTIONAL_FIELDS and isinstance(v, str) and not v.strip())}


def _item(path: Path, record: Record, position: int) -> Item:
    where = record.where(path)
    fields = _fields(path, record)
    try:
        check = parse_check(fields)
    except CheckError as error:
        raise DataError(f"{where}: {error}") from None
    for name in (*REQUIRED_FIELDS, *OPTIONAL_FIELDS):
        if name not in fields or fields[name] is None:
            if name in REQUIRED_FIELDS:
                raise DataError(f"{where}: missing field {name!r} (required: {', '.join(REQUIRED_FIELDS)}; "
                                f"optional: {', '.join(OPTIONAL_FIELDS)})")  # fmt: skip
            continue
        if not isinstance(fields[name], str | int) or isinstance(fields[name], bool):
            raise DataError(f"{where}: field {name!r} must be text, got {type(fields[name]).__name__}")
        if not str(fields[name]).strip():
            raise DataError(f"{where}: field {name!r} is empty")
    reference = fields.get("reference")
    return Item(
        id=str(fields.get("id") if fields.get("id") is not None else position).strip(),
        text=str(fields["text"]).strip(),
        reference="" if reference is None else str(reference).strip(),
        check=check,
    )


def shipped_or_given(path: Path) -> Path:
    """The shipped set's file where ``path`` is a name of :data:`SHIPPED_SETS` (no suffix, no such file:
    a data file always has a suffix), else ``path``."""
    if not path.suffix and path.name in SHIPPED_SETS and not path.is_file():
        return SHIPPED_SETS[path.name]
    return path


def load_items(path: Path) -> list[Item]:
    """Read and check a data file (or a shipped set by name); raise :class:`DataError` on the first problem."""
    path = shipped_or_given(path)
    if path.suffix.lower() not in FORMATS:
        known = ", ".join(f"{suffix} ({what})" for suffix, what in FORMATS.items())
        raise DataError(f"{path}: unknown data format {path.suffix!r}; use {known}, or a shipped set's name "
                        f"({', '.join(SHIPPED_SETS)})")  # fmt: skip
    items: list[Item] = []
    seen: dict[str, Record] = {}
    with_reference: Record | None = None
    without: Record | None = None
    for record in read_records(path):
        item = _item(path, record, len(items) + 1)
        if item.id in seen:
            first = seen[item.id]
            raise DataError(f"{record.where(path)}: duplicate id {item.id!r} (first on {first.unit} {first.number})")
        seen[item.id] = record
        if item.reference:
            with_reference = with_reference or record
        elif item.check is None:
            without = without or record
        if with_reference is not None and without is not None:
            # The later of the two is the one to blame: the earlier set the pattern.
            other, has, other_has = (
                (with_reference, "has no reference", "has one") if without is record
                else (without, "has a reference", "has none")
            )  # fmt: skip
            raise DataError(f"{record.where(path)}: {has}, but {other.unit} {other.number} {other_has}: give every "
                            "item a reference (or an accuracy check), or none (a set of prompts)")  # fmt: skip
        items.append(item)
    if not items:
        raise DataError(f"{path}: no items")
    return items


def load_dataset(name: str, path: Path | None) -> list[Item]:
    """The items of a matrix's data set: the file ``path``, or the shipped set ``name`` where ``path`` is
    None; raise :class:`DataError` for an unknown shipped set or a bad file."""
    if path is None:
        if name not in SHIPPED_SETS:
            raise DataError(f"{name!r} is not a shipped data set (shipped: {', '.join(SHIPPED_SETS)}); give a "
                            f"file's path instead, with its suffix ({', '.join(FORMATS)})")  # fmt: skip
        path = SHIPPED_SETS[name]
    return load_items(path)
