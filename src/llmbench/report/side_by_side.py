"""The report's side-by-side outputs: for each quality item, the reference and every combination's output, the
words that differ from the full-precision output of the same model and device marked (HTML)."""

from __future__ import annotations

import difflib
import html
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.config.precisions import precision_rank
from llmbench.report.frame import Row, combination_sort_key

__all__ = ["ItemOutputs", "marked_differences", "side_by_side"]


@dataclass(frozen=True)
class ItemOutputs:
    """One quality item: its reference summary and each combination's output (marked against the
    full-precision output of the same model and device)."""

    id: str
    #: The reference text; "" for an item without one (a set of prompts), None where the file is not here.
    reference: str | None
    #: (label, output text, marked HTML, whether this is the full-precision output itself)
    outputs: tuple[tuple[str, str, str, bool], ...]
    #: The item's data set, where the test ids name it (several data sets, or another than the default).
    dataset: str | None = None


def marked_differences(text: str, reference: str) -> str:
    """``text`` as HTML with the words that differ from ``reference`` in ``<mark>`` (difflib on words);
    where words of the reference are missing, a marked gap says which."""
    words, reference_words = text.split(), reference.split()
    matcher = difflib.SequenceMatcher(a=reference_words, b=words, autojunk=False)
    parts: list[str] = []
    for tag, i1, i2, j1, j2 in matcher.get_opcodes():
        if tag == "equal":
            parts.append(html.escape(" ".join(words[j1:j2])))
        elif tag in ("replace", "insert"):
            parts.append(f"<mark>{html.escape(' '.join(words[j1:j2]))}</mark>")
        else:  # delete: words of the reference that this output lacks
            missing = html.escape(" ".join(reference_words[i1:i2]), quote=True)
            parts.append(f'<mark class="gap" title="missing: {missing}">&#8230;</mark>')
    return " ".join(part for part in parts if part)


def _references(rows: Sequence[Row], root: Path | None) -> dict[str, str]:
    """Reference summaries (an accuracy item: its check) per item, from the outputs files the runs point to
    (where still on disk)."""
    from llmbench.quality.outputs import read_outputs

    found: dict[str, str] = {}
    for row in rows:
        if not row.outputs_file:
            continue
        candidates = [Path(row.outputs_file)]
        if root is not None and not Path(row.outputs_file).is_absolute():
            candidates.append(root / row.outputs_file)
        for path in candidates:
            if path.is_file():
                try:
                    records = read_outputs(path)
                except ValueError:
                    break
                for record in records:
                    # An accuracy item has no reference summary: its check stands in ("expected: numeric 84").
                    expected = f"expected: {record.check}" if record.check and not record.reference else ""
                    found.setdefault(record.id, record.reference or expected)
                break
    return found


def side_by_side(rows: Sequence[Row], root: Path | None = None) -> list[ItemOutputs]:
    """Every quality item of the rows with the reference and one output per model, precision and device,
    data set by data set."""
    datasets = dict.fromkeys(row.named_dataset for row in sorted(rows, key=combination_sort_key))
    return [item for dataset in datasets for item in _items_of([r for r in rows if r.named_dataset == dataset], root)]


def _items_of(rows: Sequence[Row], root: Path | None) -> list[ItemOutputs]:
    """The side-by-side items of the rows of one data set."""
    per_key: dict[tuple[str, str, str], Row] = {}
    for row in sorted(rows, key=combination_sort_key):
        if row.outputs:
            per_key.setdefault(row.load_key, row)
    if not per_key:
        return []
    dataset = next(iter(per_key.values())).named_dataset
    references = _references(list(per_key.values()), root)
    # The full-precision output of each (model, device): fp32 where it ran, else the highest precision.
    full: dict[tuple[str, str], Row] = {}
    for row in sorted(per_key.values(), key=lambda r: precision_rank(r.precision)):
        full.setdefault((row.model, row.device), row)
    ids = list(dict.fromkeys(item for row in per_key.values() for item in row.outputs))
    items = []
    for item in ids:
        outputs = []
        for key, row in per_key.items():
            text = row.outputs.get(item)
            if text is None:
                continue
            base = full[(row.model, row.device)]
            is_base = base is row
            base_text = base.outputs.get(item)
            marked = html.escape(text) if is_base or base_text is None else marked_differences(text, base_text)
            outputs.append((" ".join(key), text, marked, is_base))
        items.append(ItemOutputs(item, references.get(item), tuple(outputs), dataset))
    return items
