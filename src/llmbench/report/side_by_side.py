"""The report's side-by-side outputs: for each quality item, the reference text and every combination's output,
the words that differ from the output of that combination's reference marked (HTML).

A combination's reference is the one its run saved (``extra_info["quality_reference"]``: model, precision,
device and where its outputs came from, docs/quality.md "References and comparisons"): another model,
precision or device. Its outputs are looked up in the same run, or, where they came from a named reference
run (``--llmbench-reference-run``), in that run when the report shows it; where they are in neither, the
output is shown unmarked and says where they are. A run saved before references per comparison (no
``quality_reference``) is marked as then: against the full-precision output of the same model and device.
Every output says what its marks are against (:attr:`Output.against`).
"""

from __future__ import annotations

import difflib
import html
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.config.precisions import precision_rank
from llmbench.quality.comparison import ITEMS_DIGEST_KEY, REFERENCE_INFO_KEY, SAME_RUN_SOURCES
from llmbench.report.frame import Row, combination_sort_key, rows_of
from llmbench.runs import SavedRun

__all__ = ["ItemOutputs", "Output", "marked_differences", "side_by_side"]

#: What an output of a run saved before references per comparison is marked against.
_PREVIOUS = "(a run saved before references per comparison: its model's full precision on its device)"

Key = tuple[str, str, str]


@dataclass(frozen=True)
class Output:
    """One combination's output for one item, as the side by side shows it."""

    model: str
    precision: str
    device: str
    text: str
    #: The text as HTML, the words that differ from :attr:`against`'s output in ``<mark>`` (escaped as it is
    #: where nothing is marked).
    marked: str
    #: For people: what the marks are against, or why nothing is marked ("marked against its reference,
    #: gemma3-4b bf16 cuda"; "not marked: the reference's outputs (...) are in run 0003, not in this report").
    against: str
    #: The run the output is from where that is not the report's run ("run 0003": a reference's outputs shown
    #: because another output is marked against them); None for the report's run.
    run: str | None = None
    #: The outputs marked against this one (their labels): it is their reference.
    reference_for: tuple[str, ...] = ()

    @property
    def key(self) -> Key:
        return (self.model, self.precision, self.device)

    @property
    def label(self) -> str:
        """``model precision device``, with ``(run 0003)`` for an output of another run."""
        words = " ".join(self.key)
        return words if self.run is None else f"{words} ({self.run})"


@dataclass(frozen=True)
class ItemOutputs:
    """One quality item: its reference text and each combination's output, each marked against its reference."""

    id: str
    #: The reference text; "" for an item without one (a set of prompts), None where the file is not here.
    reference: str | None
    outputs: tuple[Output, ...]
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


def side_by_side(rows: Sequence[Row], root: Path | None = None, runs: Sequence[SavedRun] = ()) -> list[ItemOutputs]:
    """Every quality item of the rows (one run's) with the reference text and one output per model, precision
    and device, each marked against its reference's output, data set by data set. ``runs``: the report's other
    runs, where a reference's outputs from a named reference run are looked up (by its name, ``run 0003``)."""
    finder = _Finder(runs)
    datasets = dict.fromkeys(row.named_dataset for row in sorted(rows, key=combination_sort_key))
    return [
        item
        for dataset in datasets
        for item in _items_of([r for r in rows if r.named_dataset == dataset], root, finder)
    ]


class _Finder:
    """The outputs of a combination in a run, by the name a reference's ``source`` gives it."""

    def __init__(self, runs: Sequence[SavedRun]) -> None:
        self.runs = list(runs)
        self._rows: dict[int, list[Row]] = {}

    def rows(self, run: SavedRun) -> list[Row]:
        if id(run) not in self._rows:
            self._rows[id(run)] = sorted(rows_of(run), key=combination_sort_key)
        return self._rows[id(run)]

    def in_run(self, run: SavedRun, key: Key, dataset: str) -> Row | None:
        """The first row of ``run`` with outputs of ``key`` on ``dataset`` (rows the report filtered out too)."""
        return next((r for r in self.rows(run) if r.load_key == key and r.dataset == dataset and r.outputs), None)

    def named(self, source: str, current: SavedRun, key: Key, dataset: str) -> Row | None:
        """The outputs of ``key`` in the report's run that ``source`` names (as
        :func:`llmbench.quality.comparison.reference_run_outputs` names runs: ``run 0003``, else ``run <file>``),
        one in the report's run's machine folder first; None where the report has no such run."""
        same_folder = current.path.parent if current.path is not None else None
        candidates = [
            run
            for run in self.runs
            if run is not current
            and ((source == f"run {run.name}" and run.number is not None) or source == f"run {run.path}")
        ]
        candidates.sort(key=lambda run: run.path is None or run.path.parent != same_folder)
        return next((row for run in candidates if (row := self.in_run(run, key, dataset)) is not None), None)


@dataclass(frozen=True)
class _Against:
    """What one combination's outputs are marked against: the reference's row (None: nothing is marked) and the
    words that say so."""

    row: Row | None
    words: str
    #: The run the reference's outputs are from, where it is not the combination's own ("run 0003").
    run: str | None = None


def _saved_reference(row: Row) -> tuple[Key, str | None] | None:
    saved = row.info.get(REFERENCE_INFO_KEY)
    if not isinstance(saved, Mapping):
        return None
    key = tuple(saved.get(name) for name in ("model", "precision", "device"))
    if not all(isinstance(part, str) and part for part in key):
        return None
    source = saved.get("source")
    return (str(key[0]), str(key[1]), str(key[2])), (source if isinstance(source, str) else None)


def _against(row: Row, full: Mapping[tuple[str, str], Row], finder: _Finder) -> _Against:
    """What ``row``'s outputs are marked against: its saved reference, else (a run of an earlier version) the
    full-precision output of its model and device in ``full``."""
    saved = _saved_reference(row)
    if saved is None:
        base = full[(row.model, row.device)]
        if base is row:
            return _Against(None, f"not marked: the full-precision output of its model and device {_PREVIOUS}")
        return _Against(base, f"marked against {' '.join(base.load_key)} {_PREVIOUS}")
    key, source = saved
    named = " ".join(key)
    if key == row.load_key:
        return _Against(None, "not marked: it is its own reference")
    if source in SAME_RUN_SOURCES:
        found = finder.in_run(row.run, key, row.dataset)
        if found is None:
            return _Against(None, f"not marked: the reference's outputs ({named}) are not in this run")
        return _Against(found, f"marked against its reference, {named}")
    assert source is not None  # not among SAME_RUN_SOURCES
    found = finder.named(source, row.run, key, row.dataset)
    if found is None:
        return _Against(None, f"not marked: the reference's outputs ({named}) are in {source}, not in this report")
    return _Against(found, f"marked against its reference, {named} ({source})", run=source)


def _marked(row: Row, against: _Against, item: str, text: str) -> tuple[str, str, bool]:
    """The item's output as HTML (marked against the reference's output of the same item), what it says, and
    whether it was marked against the reference."""
    reference = against.row
    if reference is None:
        return html.escape(text), against.words, False
    theirs = reference.outputs.get(item)
    digests = (row.info.get(ITEMS_DIGEST_KEY), reference.info.get(ITEMS_DIGEST_KEY))
    what = " ".join(reference.load_key) + ("" if against.run is None else f", from {against.run}")
    if isinstance(digests[0], str) and isinstance(digests[1], str) and digests[0] != digests[1]:
        return html.escape(text), f"not marked: the reference's outputs ({what}) were generated from other items", False
    if theirs is None:
        return html.escape(text), f"not marked: the reference ({what}) has no output for this item", False
    return marked_differences(text, theirs), against.words, True


def _items_of(rows: Sequence[Row], root: Path | None, finder: _Finder) -> list[ItemOutputs]:
    """The side-by-side items of the rows of one data set."""
    per_key: dict[Key, Row] = {}
    for row in sorted(rows, key=combination_sort_key):
        if row.outputs:
            per_key.setdefault(row.load_key, row)
    if not per_key:
        return []
    dataset = next(iter(per_key.values())).named_dataset
    references = _references(list(per_key.values()), root)
    # Runs of an earlier version: the full-precision output of each (model, device), fp32 where it ran, else the
    # highest precision.
    full: dict[tuple[str, str], Row] = {}
    for row in sorted(per_key.values(), key=lambda r: precision_rank(r.precision)):
        full.setdefault((row.model, row.device), row)
    against = {key: _against(row, full, finder) for key, row in per_key.items()}
    ids = list(dict.fromkeys(item for row in per_key.values() for item in row.outputs))
    items = []
    for item in ids:
        shown: list[tuple[Row, str | None, str, str]] = []  # the row, its run (another one's), marked, against
        # (reference key, its run where another) -> its row and the outputs marked against it
        used: dict[tuple[Key, str | None], tuple[Row, list[str]]] = {}
        for key, row in per_key.items():
            text = row.outputs.get(item)
            if text is None:
                continue
            marked, words, was_marked = _marked(row, against[key], item, text)
            shown.append((row, None, marked, words))
            reference = against[key].row
            if was_marked and reference is not None:
                used.setdefault((reference.load_key, against[key].run), (reference, []))[1].append(" ".join(key))
        # References not shown above that outputs here are marked against (another run's; or the run's own left
        # out by --combination), after the run's own outputs.
        shown += [
            (reference, run, html.escape(reference.outputs[item]),
             f"not marked: a reference's outputs, from {run}" if run is not None
             else "not marked: a reference's outputs (its combination is not among those selected)")
            for (key, run), (reference, _) in used.items()
            if run is not None or key not in per_key
        ]  # fmt: skip
        reference_for = {key: tuple(labels) for key, (_, labels) in used.items()}
        outputs = tuple(
            Output(*row.load_key, row.outputs[item], marked, words, run, reference_for.get((row.load_key, run), ()))
            for row, run, marked, words in shown
        )
        items.append(ItemOutputs(item, references.get(item), outputs, dataset))
    return items
