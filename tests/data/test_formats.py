"""Tests of the data files of every shape (:mod:`llmbench.data.formats`) and of data sets by name."""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

import pytest

from llmbench.data import SHIPPED_SETS, DataError, Item, load_dataset, load_items
from llmbench.data.formats import paragraph_mode


def write(tmp_path: Path, name: str, content: str | bytes) -> Path:
    path = tmp_path / name
    if isinstance(content, str):
        path.write_text(content, encoding="utf-8", newline="")
    else:
        path.write_bytes(content)
    return path


def texts(items: list[Item]) -> list[str]:
    return [item.text for item in items]


# ----------------------------------------------------------------------------- plain text


def test_text_one_prompt_a_line(tmp_path: Path) -> None:
    path = write(tmp_path, "prompts.txt", "\n\nThe first parable.\r\n  The second one.  \nA third.\n\n")

    items = load_items(path)

    assert items == [Item("1", "The first parable.", ""), Item("2", "The second one.", ""), Item("3", "A third.", "")]


def test_text_prompts_separated_by_blank_lines(tmp_path: Path) -> None:
    content = "A first prompt\nover two lines.\n\n \t\nA second.\r\n\r\nA third,\nalso two lines.\n"
    path = write(tmp_path, "prompts.txt", content)

    items = load_items(path)

    assert texts(items) == ["A first prompt\nover two lines.", "A second.", "A third,\nalso two lines."]
    assert [item.id for item in items] == ["1", "2", "3"]


@pytest.mark.parametrize(
    ("lines", "blank_separated"),
    [
        (["a", "b"], False),
        (["", "a", "b", "", ""], False),  # blank lines before and after the prompts do not count
        (["a", "", "b"], True),
        (["a", "  ", "b"], True),  # white space alone is blank
        ([], False),
    ],
)
def test_the_rule_that_picks_blank_line_separation(lines: list[str], blank_separated: bool) -> None:
    assert paragraph_mode(lines) is blank_separated


def test_text_errors_name_the_line(tmp_path: Path) -> None:
    path = write(tmp_path, "prompts.txt", b"fine\ncaf\xe9\n")
    with pytest.raises(DataError, match=re.escape(f"{path}, line 2: not UTF-8")):
        load_items(path)
    empty = write(tmp_path, "empty.txt", "\n \n")
    with pytest.raises(DataError, match=re.escape(f"{empty}: no items")):
        load_items(empty)


# ----------------------------------------------------------------------------- JSON array


def test_json_array_of_items(tmp_path: Path) -> None:
    records = [{"id": "a", "text": "A fox.", "reference": "Fox."}, {"id": "b", "text": "A crow.", "reference": "Crow."}]
    path = write(tmp_path, "data.json", json.dumps(records, indent=2))

    assert load_items(path) == [Item("a", "A fox.", "Fox."), Item("b", "A crow.", "Crow.")]


def test_json_array_errors_name_the_line_of_the_item(tmp_path: Path) -> None:
    path = write(tmp_path, "data.json", '[\n  {"text": "One."},\n  {"text": ""}\n]\n')
    with pytest.raises(DataError, match=re.escape(f"{path}, line 3: field 'text' is empty")):
        load_items(path)
    broken = write(tmp_path, "broken.json", '[\n  {"text": "One."},\n  {"text": "Two."\n]\n')
    with pytest.raises(DataError, match=re.escape(f"{broken}, line 4: not valid JSON")):
        load_items(broken)


# ----------------------------------------------------------------------------- Parquet


def test_parquet_of_items_and_of_prompts(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pandas as pd

    path = tmp_path / "data.parquet"
    pd.DataFrame({"id": ["a", "b"], "text": ["A fox.", "A crow."], "reference": ["Fox.", "Crow."]}).to_parquet(path)
    assert load_items(path) == [Item("a", "A fox.", "Fox."), Item("b", "A crow.", "Crow.")]

    prompts = tmp_path / "prompts.parquet"
    pd.DataFrame({"text": ["One.", "Two."], "reference": [None, None]}).to_parquet(prompts)
    assert load_items(prompts) == [Item("1", "One.", ""), Item("2", "Two.", "")]


def test_parquet_errors_name_the_row(tmp_path: Path) -> None:
    pytest.importorskip("pyarrow")
    import pandas as pd

    path = tmp_path / "data.parquet"
    pd.DataFrame({"text": ["One.", None]}).to_parquet(path)
    with pytest.raises(DataError, match=re.escape(f"{path}, row 2: missing field 'text'")):
        load_items(path)
    broken = write(tmp_path, "broken.parquet", "not parquet")
    with pytest.raises(DataError, match=re.escape(f"{broken}: not a readable Parquet file")):
        load_items(broken)


def test_parquet_without_pyarrow_names_the_file_and_the_extra(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = write(tmp_path, "data.parquet", b"PAR1")
    monkeypatch.setitem(sys.modules, "pyarrow", None)  # an import of it raises ImportError
    monkeypatch.setitem(sys.modules, "pyarrow.parquet", None)

    with pytest.raises(DataError, match=re.escape(f"{path}: reading a Parquet data set needs pyarrow") + ".*"
                       + re.escape("pip install 'pytest-llmbench[report]'")):  # fmt: skip
        load_items(path)


# ----------------------------------------------------------------------------- references and checks


def test_accuracy_items_need_no_reference_beside_items_with_one(tmp_path: Path) -> None:
    lines = [{"text": "Summarise: a fox.", "reference": "A fox."}, {"text": "2 + 2?", "answer": 4, "match": "numeric"}]
    path = write(tmp_path, "mixed.jsonl", "".join(json.dumps(line) + "\n" for line in lines))

    items = load_items(path)

    assert [item.reference for item in items] == ["A fox.", ""]
    assert items[1].check is not None


# ----------------------------------------------------------------------------- data sets by name


def test_data_set_by_name_or_path(tmp_path: Path) -> None:
    assert load_dataset("summaries", None) == load_items(SHIPPED_SETS["summaries"])
    path = write(tmp_path, "p.txt", "One.\n")
    assert load_dataset("p", path) == [Item("1", "One.", "")]
    with pytest.raises(DataError, match=r"'nope' is not a shipped data set \(shipped: summaries, accuracy\); give a "
                                        r"file's path instead, with its suffix \(\.jsonl"):  # fmt: skip
        load_dataset("nope", None)
