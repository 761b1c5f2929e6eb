"""The summarization data set: items with a source text and a reference summary.

A data file is JSONL (one object a line) or CSV (a header row), with the fields ``id``, ``text`` and
``reference`` (other fields are kept as they are). Every problem is reported with the file, the line
and what is wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path

REQUIRED_FIELDS = ("id", "text", "reference")

#: The shipped data set: original texts written for this project (fables, parables, invented local news).
SHIPPED_DATA = Path(__file__).with_name("summaries.jsonl")


class DataError(ValueError):
    """A data file that cannot be used: the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Item:
    id: str
    text: str
    reference: str


def _item(path: Path, line: int, record: object) -> Item:
    where = f"{path}, line {line}"
    if not isinstance(record, dict):
        raise DataError(f"{where}: expected an object with fields {', '.join(REQUIRED_FIELDS)}, got {record!r:.60}")
    for name in REQUIRED_FIELDS:
        if name not in record or record[name] is None:
            raise DataError(f"{where}: missing field {name!r} (required: {', '.join(REQUIRED_FIELDS)})")
        if not isinstance(record[name], str | int) or isinstance(record[name], bool):
            raise DataError(f"{where}: field {name!r} must be text, got {type(record[name]).__name__}")
        if not str(record[name]).strip():
            raise DataError(f"{where}: field {name!r} is empty")
    return Item(
        id=str(record["id"]).strip(), text=str(record["text"]).strip(), reference=str(record["reference"]).strip()
    )


def _csv_records(path: Path, content: str) -> list[tuple[int, object]]:
    reader = csv.reader(io.StringIO(content, newline=""))
    out: list[tuple[int, object]] = []
    start = 1
    try:
        header = next(reader, None)
        missing = [name for name in REQUIRED_FIELDS if name not in (header or [])]
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
        raise DataError(f"{path}: unknown data format {path.suffix!r}; use .jsonl or .csv")
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


def load_items(path: Path) -> list[Item]:
    """Read and check a data file; raise :class:`DataError` on the first problem."""
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
