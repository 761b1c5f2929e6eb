"""The summarization data set: items with a source text and a reference summary.

A data file is JSONL (one object a line) or CSV (a header row), with the fields ``id``, ``text`` and
``reference`` (other fields are kept as they are). An item may carry an accuracy check instead of a
reference (``answer``, ``match``, ``tolerance``, ``options``: :mod:`llmbench.data.checks`). Every problem
is reported with the file, the line and what is wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

from llmbench.data.checks import AnswerCheck, CheckError, parse_check

REQUIRED_FIELDS = ("id", "text", "reference")

#: The shipped data set: original texts written for this project (fables, parables, invented local news).
SHIPPED_DATA = Path(__file__).with_name("summaries.jsonl")
#: Questions with unambiguous answers (letters, arithmetic, dates, units), each with its accuracy check;
#: written for this project, CC0 (docs/quality.md, "Accuracy checks").
ACCURACY_DATA = Path(__file__).with_name("accuracy.jsonl")
#: The shipped data sets by name: a data value that is one of these names (no suffix) loads that file.
SHIPPED_SETS: dict[str, Path] = {"summaries": SHIPPED_DATA, "accuracy": ACCURACY_DATA}


class DataError(ValueError):
    """A data file that cannot be used: the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    reference: str
    #: The item's accuracy check (expected answer and how to match it); None where it has none.
    check: AnswerCheck | None = None


def _item(path: Path, line: int, record: object) -> Item:
    where = f"{path}, line {line}"
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with fields {', '.join(REQUIRED_FIELDS)}, got {record!r:.60}")
    try:
        check = parse_check(record)
    except CheckError as error:
        raise DataError(f"{where}: {error}") from None
    if check is not None and record.get("reference") is None:
        # An accuracy item: the check stands in for the reference.
        record = {**record, "reference": ""}
    for name in REQUIRED_FIELDS:
        if name not in record or record[name] is None:
            raise DataError(f"{where}: missing field {name!r} (required: {', '.join(REQUIRED_FIELDS)})")
        if not isinstance(record[name], str | int) or isinstance(record[name], bool):
            raise DataError(f"{where}: field {name!r} must be text, got {type(record[name]).__name__}")
        if not str(record[name]).strip() and not (name == "reference" and check is not None):
            raise DataError(f"{where}: field {name!r} is empty")
    return Item(
        id=str(record["id"]).strip(),
        text=str(record["text"]).strip(),
        reference=str(record["reference"]).strip(),
        check=check,
    )


def _csv_records(path: Path, content: str) -> list[tuple[int, object]]:
    reader = csv.reader(io.StringIO(content, newline=""))
    out: list[tuple[int, object]] = []
    start = 1
    try:
        header = next(reader, None)
        # An accuracy set's checks stand in for the reference column.
        optional = ("reference",) if "answer" in (header or []) else ()
        missing = [name for name in REQUIRED_FIELDS if name not in (header or []) and name not in optional]
        if header is None or missing:
            raise DataError(f"{path}, line 1: the CSV header lacks {', '.join(missing)} (has {header})")
        while True:
            # A quoted text may span several physical lines: report a row at its first line.
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if not row:
                continue
            out.append((start, dict(zip(header, row, strict=False))))
    except csv.Error as error:
        raise DataError(f"{path}, line {start}: not valid CSV ({error})") from None
    return out


def _records(path: Path, content: str) -> list[tuple[int, object]]:
    if path.suffix.lower() == ".csv":
        return _csv_records(path, content)
    if path.suffix.lower() not in (".jsonl", ".json", ".ndjson"):
        raise DataError(
            f"{path}: unknown data format {path.suffix!r}; use .jsonl or .csv, or a shipped set's name "
            f"({', '.join(SHIPPED_SETS)})"
        )
    records: list[tuple[int, object]] = []
    # Split at newlines only: str.splitlines() also breaks at U+2028, U+2029 and U+0085, which are
    # legal raw inside JSON strings.
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append((number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg}, column {error.colno})") from None
    return records


def shipped_or_given(path: Path) -> Path:
    """The shipped set's file where ``path`` is a name of :data:`SHIPPED_SETS` (no suffix, no such file:
    a data file always has a suffix), else ``path``."""
    if not path.suffix and path.name in SHIPPED_SETS and not path.is_file():
        return SHIPPED_SETS[path.name]
    return path


def load_items(path: Path) -> list[Item]:
    """Read and check a data file (or a shipped set by name); raise :class:`DataError` on the first problem."""
    path = shipped_or_given(path)
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise DataError(f"{path}: data file not found") from None
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        content = raw[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = bom + error.start
        line = raw[:offset].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 (byte 0x{raw[offset]:02x} at offset {offset})") from None
    items: list[Item] = []
    seen: dict[str, int] = {}
    for line, record in _records(path, content):
        item = _item(path, line, record)
        if item.id in seen:
            raise DataError(f"{path}, line {line}: duplicate id {item.id!r} (first on line {seen[item.id]})")
        seen[item.id] = line
        items.append(item)
    if not items:
        raise DataError(f"{path}: no items")
    return items
