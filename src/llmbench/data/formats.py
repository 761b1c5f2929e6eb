"""Reading a data file of any shape into records, each with where it is in the file.

One reader per format, chosen by the file's suffix (docs/datasets.md):

* ``.jsonl`` / ``.ndjson``: one JSON object a line; ``.json``: the same, or one JSON array of objects;
* ``.csv``: a header row, then one row per item (a quoted text may span lines);
* ``.parquet``: one row per item (read with pyarrow, from the ``report`` extra);
* ``.txt``: prompts only: one prompt a line, or, where the file has a blank line between two non-blank
  lines, prompts separated by blank lines (a prompt may then span lines).

A record is the item's fields as given; checking them is :func:`llmbench.data.load_items`'s. Text files
are UTF-8 (a byte order mark is allowed); every problem names the file, the line (the row for Parquet)
and what is wrong.
"""

from __future__ import annotations

import codecs
import csv
import io
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

__all__ = ["FORMATS", "DataError", "Record", "paragraph_mode", "read_records"]

#: The suffixes of data files and what each holds.
FORMATS: dict[str, str] = {
    ".jsonl": "JSON lines", ".ndjson": "JSON lines", ".json": "JSON lines or one JSON array",
    ".csv": "CSV with a header row", ".parquet": "Parquet", ".txt": "prompts, one a line or separated by blank lines",
}  # fmt: skip


class DataError(ValueError):
    """A data file that cannot be used: the message names the file, the line and the problem."""


@dataclass(frozen=True)
class Record:
    """One item's fields as read, and where it starts: ``line`` 3 (``row`` 3 in a Parquet file)."""

    number: int
    fields: object
    unit: str = "line"

    def where(self, path: Path) -> str:
        return f"{path}, {self.unit} {self.number}"


def _text(path: Path, raw: bytes) -> str:
    bom = len(codecs.BOM_UTF8) if raw.startswith(codecs.BOM_UTF8) else 0
    try:
        return raw[bom:].decode("utf-8")
    except UnicodeDecodeError as error:
        offset = bom + error.start
        line = raw[:offset].count(b"\n") + 1
        raise DataError(f"{path}, line {line}: not UTF-8 (byte 0x{raw[offset]:02x} at offset {offset})") from None


def _json_lines(path: Path, content: str) -> list[Record]:
    records: list[Record] = []
    # Split at newlines only: str.splitlines() also breaks at U+2028, U+2029 and U+0085, which are
    # legal raw inside JSON strings.
    for number, line in enumerate(content.split("\n"), start=1):
        if not line.strip():
            continue
        try:
            records.append(Record(number, json.loads(line)))
        except json.JSONDecodeError as error:
            raise DataError(f"{path}, line {number}: not valid JSON ({error.msg}, column {error.colno})") from None
    return records


def _json_array(path: Path, content: str) -> list[Record]:
    """One JSON array of objects; each record at the line its element starts on."""
    decoder = json.JSONDecoder()
    records: list[Record] = []
    index = content.index("[") + 1

    def line_of(position: int) -> int:
        return content.count("\n", 0, position) + 1

    def skip_space(position: int) -> int:
        while position < len(content) and content[position].isspace():
            position += 1
        return position

    index = skip_space(index)
    while index < len(content) and content[index] != "]":
        try:
            value, end = decoder.raw_decode(content, index)
        except json.JSONDecodeError as error:
            raise DataError(
                f"{path}, line {error.lineno}: not valid JSON ({error.msg}, column {error.colno})"
            ) from None
        records.append(Record(line_of(index), value))
        index = skip_space(end)
        if index < len(content) and content[index] == ",":
            index = skip_space(index + 1)
        elif index >= len(content) or content[index] != "]":
            raise DataError(f"{path}, line {line_of(index)}: not valid JSON (expected ',' or ']' after an item)")
    if index >= len(content) or content[skip_space(index + 1) :].strip():
        raise DataError(f"{path}, line {line_of(index)}: not valid JSON (the array does not end with ']' alone)")
    return records


def _csv_records(path: Path, content: str) -> list[Record]:
    reader = csv.reader(io.StringIO(content, newline=""))
    out: list[Record] = []
    start = 1
    try:
        header = next(reader, None)
        if header is None or "text" not in header:
            raise DataError(f"{path}, line 1: the CSV header lacks text (has {header})")
        while True:
            # A quoted text may span several physical lines: report a row at its first line.
            start = reader.line_num + 1
            row = next(reader, None)
            if row is None:
                break
            if not row:
                continue
            out.append(Record(start, dict(zip(header, row, strict=False))))
    except csv.Error as error:
        raise DataError(f"{path}, line {start}: not valid CSV ({error})") from None
    return out


def paragraph_mode(lines: list[str]) -> bool:
    """Whether a text file separates its prompts by blank lines: it has a blank line between two non-blank
    lines (blank lines before the first and after the last prompt do not count)."""
    filled = [number for number, line in enumerate(lines) if line.strip()]
    return bool(filled) and any(not line.strip() for line in lines[filled[0] : filled[-1]])


def _text_records(content: str) -> list[Record]:
    lines = [line.rstrip("\r") for line in content.split("\n")]
    if not paragraph_mode(lines):
        return [Record(number, {"text": line}) for number, line in enumerate(lines, 1) if line.strip()]
    records: list[Record] = []
    start, block = 0, []
    for number, line in enumerate([*lines, ""], 1):
        if line.strip():
            start = start or number
            block.append(line)
        elif block:
            records.append(Record(start, {"text": "\n".join(block)}))
            start, block = 0, []
    return records


def _parquet_records(path: Path) -> list[Record]:
    try:
        import pyarrow  # type: ignore[import-untyped]  # no stubs
        import pyarrow.parquet  # type: ignore[import-untyped]
    except ImportError:
        raise DataError(
            f"{path}: reading a Parquet data set needs pyarrow, which is not installed; install the report "
            "extra (pip install 'pytest-llmbench[report]') or give the data as .jsonl or .csv"
        ) from None
    try:
        rows: list[dict[str, Any]] = pyarrow.parquet.read_table(path).to_pylist()
    except (OSError, pyarrow.ArrowException) as error:
        raise DataError(f"{path}: not a readable Parquet file ({error})") from None
    return [Record(number, row, "row") for number, row in enumerate(rows, 1)]


def read_records(path: Path) -> list[Record]:
    """The records of a data file, in file order; raise :class:`DataError` naming the file (and the line)."""
    suffix = path.suffix.lower()
    if suffix not in FORMATS:
        known = ", ".join(f"{name} ({what})" for name, what in FORMATS.items())
        raise DataError(f"{path}: unknown data format {path.suffix!r}; use {known}")
    if not path.is_file():
        raise DataError(f"{path}: data file not found")
    if suffix == ".parquet":
        return _parquet_records(path)
    content = _text(path, path.read_bytes())
    if suffix == ".csv":
        return _csv_records(path, content)
    if suffix == ".txt":
        return _text_records(content)
    if suffix == ".json" and content.lstrip().startswith("["):
        return _json_array(path, content)
    return _json_lines(path, content)
