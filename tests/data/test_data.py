"""Tests of :mod:`llmbench.data`: every bad data file names the file, the line and the problem."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest

from llmbench.data import DataError, Item, load_items
from tests.support.paths import REPO

SHIPPED = REPO / "src" / "llmbench" / "data" / "summaries.jsonl"

GOOD = {"id": "a", "text": "A fox jumps.", "reference": "A fox."}


def jsonl(*records: object) -> str:
    return "".join(json.dumps(record) + "\n" for record in records)


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def where(path: Path, line: int) -> str:
    """The start of an error message for ``line`` of ``path``, as a regular expression."""
    return re.escape(f"{path}, line {line}: ")


# ----------------------------------------------------------------------------- JSON lines


def test_good_jsonl_loads(tmp_path: Path) -> None:
    path = write(tmp_path, "ok.jsonl", jsonl(GOOD, {"id": 7, "text": " B ", "reference": "b", "extra": 1}))

    assert load_items(path) == [Item("a", "A fox jumps.", "A fox."), Item("7", "B", "b")]


def test_missing_text(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl(GOOD, {"id": "b", "reference": "A summary."}))

    with pytest.raises(
        DataError, match=where(path, 2) + r"missing field 'text' \(required: text; optional: id, reference\)"
    ):
        load_items(path)


def test_a_reference_missing_where_others_have_one(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl(GOOD, {"id": "b", "text": "Some text."}))

    with pytest.raises(
        DataError,
        match=where(path, 2) + r"has no reference, but line 1 has one: give every item a reference \(or an "
        r"accuracy check\), or none \(a set of prompts\)",
    ):
        load_items(path)


def test_a_reference_after_items_without_one(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl({"text": "One."}, {"text": "Two."}, GOOD))

    with pytest.raises(DataError, match=where(path, 3) + "has a reference, but line 1 has none"):
        load_items(path)


def test_prompts_without_id_or_reference(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl({"text": "One."}, {"text": "Two.", "id": "x"}, {"text": "Three."}))

    assert load_items(path) == [Item("1", "One.", ""), Item("x", "Two.", ""), Item("3", "Three.", "")]


def test_a_default_id_that_clashes_with_a_given_one(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl({"text": "One.", "id": "2"}, {"text": "Two."}))

    with pytest.raises(DataError, match=where(path, 2) + r"duplicate id '2' \(first on line 1\)"):
        load_items(path)


def test_null_field_counts_as_missing(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl({"id": "b", "text": None, "reference": "r"}))

    with pytest.raises(DataError, match=where(path, 1) + "missing field 'text'"):
        load_items(path)


@pytest.mark.parametrize("text", ["", "   ", "\n\t"])
def test_empty_text(tmp_path: Path, text: str) -> None:
    path = write(
        tmp_path,
        "data.jsonl",
        jsonl(GOOD, {"id": "b", "text": "x", "reference": "r"}, {**GOOD, "id": "c", "text": text}),
    )

    with pytest.raises(DataError, match=where(path, 3) + "field 'text' is empty"):
        load_items(path)


@pytest.mark.parametrize(("value", "kind"), [(1.5, "float"), (True, "bool"), (["x"], "list"), ({"a": 1}, "dict")])
def test_field_of_the_wrong_type(tmp_path: Path, value: object, kind: str) -> None:
    path = write(tmp_path, "data.jsonl", jsonl({**GOOD, "reference": value}))

    with pytest.raises(DataError, match=where(path, 1) + f"field 'reference' must be text, got {kind}"):
        load_items(path)


def test_line_that_is_not_an_object(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl(GOOD) + "[1, 2]\n")

    with pytest.raises(DataError, match=where(path, 2) + "expected an object with a field 'text'"):
        load_items(path)


def test_non_utf8_byte(tmp_path: Path) -> None:
    first = jsonl(GOOD).encode()
    second = b'{"id": "b", "text": "caf\xe9", "reference": "r"}\n'
    path = write(tmp_path, "data.jsonl", first + second)
    offset = len(first) + second.index(b"\xe9")

    with pytest.raises(DataError, match=where(path, 2) + re.escape(f"not UTF-8 (byte 0xe9 at offset {offset})")):
        load_items(path)


def test_duplicate_id(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl(GOOD, {**GOOD, "id": "b"}, {**GOOD, "id": " a "}))

    with pytest.raises(DataError, match=where(path, 3) + r"duplicate id 'a' \(first on line 1\)"):
        load_items(path)


def test_invalid_json_counts_blank_lines(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", jsonl(GOOD) + "\n   \n" + '{"id": "b", "text": "x",\n')

    with pytest.raises(DataError, match=where(path, 4) + r"not valid JSON \(.*, column \d+\)"):
        load_items(path)


def test_windows_line_endings_and_byte_order_mark(tmp_path: Path) -> None:
    content = "\ufeff" + jsonl(GOOD, {**GOOD, "id": "b"}).replace("\n", "\r\n") + '{"id": "c"}\r\n'
    path = write(tmp_path, "data.jsonl", content)

    with pytest.raises(DataError, match=where(path, 3) + "missing field 'text'"):
        load_items(path)
    path.write_text(content.rsplit('{"id": "c"}', 1)[0], encoding="utf-8", newline="")
    assert [item.id for item in load_items(path)] == ["a", "b"]


def test_file_without_items(tmp_path: Path) -> None:
    path = write(tmp_path, "data.jsonl", "\n\n  \n")

    with pytest.raises(DataError, match=re.escape(f"{path}: no items")):
        load_items(path)


def test_missing_file_and_unknown_format(tmp_path: Path) -> None:
    with pytest.raises(DataError, match=re.escape(f"{tmp_path / 'nope.jsonl'}: data file not found")):
        load_items(tmp_path / "nope.jsonl")
    path = write(tmp_path, "data.xml", jsonl(GOOD))
    with pytest.raises(
        DataError,
        match=re.escape(f"{path}: unknown data format '.xml'; use .jsonl (JSON lines), ")
        + ".*"
        + re.escape(".txt (prompts, one a line or separated by blank lines), or a shipped set's name (summaries"),
    ):
        load_items(path)


# ----------------------------------------------------------------------------- CSV


def test_good_csv_loads(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "data.csv",
        'id,text,reference\na,"A fox, a crow.",A fox.\nb,"Said ""hi""\nthen left.",Left.\n',
    )

    assert load_items(path) == [
        Item("a", "A fox, a crow.", "A fox."),
        Item("b", 'Said "hi"\nthen left.', "Left."),
    ]


def test_csv_missing_the_text_column(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "id,prompt\na,Some text.\n")

    with pytest.raises(DataError, match=where(path, 1) + r"the CSV header lacks text \(has \['id', 'prompt'\]\)"):
        load_items(path)


def test_csv_of_prompts_alone(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", 'text,reference\n"One, two.",\nThree.,\n')

    assert load_items(path) == [Item("1", "One, two.", ""), Item("2", "Three.", "")]


def test_csv_row_with_too_few_fields(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", "id,text,reference\na,x,r\nb,only text\n")

    with pytest.raises(DataError, match=where(path, 3) + "has no reference, but line 2 has one"):
        load_items(path)


def test_csv_newline_inside_quotes_keeps_later_line_numbers(tmp_path: Path) -> None:
    content = (
        "id,text,reference\n"  # line 1
        'a,"First line of a text,\nits second line\nand a third.",A summary.\n'  # lines 2-4
        "b,A short text.,Another summary.\n"  # line 5
        "c,A text without a summary.,\n"  # line 6
    )
    path = write(tmp_path, "data.csv", content)

    with pytest.raises(DataError, match=where(path, 6) + "has no reference, but line 2 has one"):
        load_items(path)


def test_csv_duplicate_id_after_a_multiline_row(tmp_path: Path) -> None:
    content = 'id,text,reference\na,x,r\nb,"one\ntwo",r\na,y,r\n'
    path = write(tmp_path, "data.csv", content)

    with pytest.raises(DataError, match=where(path, 5) + r"duplicate id 'a' \(first on line 2\)"):
        load_items(path)


# ----------------------------------------------------------------------------- edge cases


def test_non_utf8_byte_after_a_byte_order_mark(tmp_path: Path) -> None:
    first = b"\xef\xbb\xbf" + jsonl(GOOD).encode()
    second = b'{"id": "b", "text": "caf\xe9", "reference": "r"}\n'
    path = write(tmp_path, "data.jsonl", first + second)
    offset = len(first) + second.index(b"\xe9")

    with pytest.raises(DataError, match=where(path, 2) + re.escape(f"not UTF-8 (byte 0xe9 at offset {offset})")):
        load_items(path)


@pytest.mark.parametrize("separator", ["\u2028", "\u2029", "\x85"])
def test_unicode_line_separator_inside_a_json_string(tmp_path: Path, separator: str) -> None:
    record = {**GOOD, "text": f"First part.{separator}Second part."}
    path = write(tmp_path, "data.jsonl", json.dumps(record, ensure_ascii=False) + "\n")

    assert load_items(path)[0].text == record["text"]


def test_csv_field_over_the_csv_module_limit(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", 'id,text,reference\na,"' + "word " * 30_000 + '",r\n')

    with pytest.raises(DataError, match=where(path, 2) + ".*field larger than field limit"):
        load_items(path)


def test_csv_bad_multiline_row_points_at_its_first_line(tmp_path: Path) -> None:
    path = write(tmp_path, "data.csv", 'id,text,reference\nz,x,r\na,"one\ntwo\nthree",\n')

    with pytest.raises(DataError, match=re.escape(f"{path}, line") + r"s? 3\b"):
        load_items(path)


# ----------------------------------------------------------------------------- the shipped data set


def test_shipped_data_set() -> None:
    items = load_items(SHIPPED)

    assert len(items) >= 24
    assert len({item.id for item in items}) == len(items)
    words = {item.id: len(item.text.split()) for item in items}
    assert all(120 <= count <= 400 for count in words.values()), words
    assert all(len(item.reference.split()) < len(item.text.split()) / 2 for item in items)
