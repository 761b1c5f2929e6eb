"""Accuracy checks as data: the checks read from data files (and their errors), each match kind's scoring,
the share correct with its interval, its share of the reference's, and the gate on it."""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from llmbench.config.combination import Combination, ModelSpec
from llmbench.data import ACCURACY_DATA, SHIPPED_SETS, DataError, Item, load_items
from llmbench.data.checks import AnswerCheck, normalise, parse_check
from llmbench.engine_types import Generation
from llmbench.gate import compare_runs
from llmbench.gate.baseline import Baseline
from llmbench.gate.rules import DEFAULT_RULES
from llmbench.metrics import Metric
from llmbench.quality.accuracy import accuracy_metric, accuracy_scores, answer_line, first_number, is_correct
from llmbench.quality.drift import share_metrics
from llmbench.quality.outputs import read_outputs
from llmbench.quality.runs import QualityRuns
from llmbench.runs import run_from_json


def check(**fields: Any) -> AnswerCheck:
    parsed = parse_check(fields)
    assert parsed is not None
    return parsed


# ----------------------------------------------------------------------------- scoring, kind by kind


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("  Paris. ", "paris"),
        ('"N"', "n"),
        ("**Tuesday**!", "tuesday"),
        ("New   York\tCity", "new york city"),
        ("(a)", "a"),
        ("ﬁve", "five"),  # NFKC: the ligature is two letters
        ("3.14", "3.14"),  # punctuation inside is kept
    ],
)
def test_normalise(text: str, expected: str) -> None:
    assert normalise(text) == expected


def test_the_answer_line_is_the_first_line_that_is_not_blank() -> None:
    assert answer_line("\n  \n 84\nQuestion: What is 6 times 8?\nAnswer: 48") == "84"
    assert answer_line("   ") == ""


@pytest.mark.parametrize(
    ("output", "correct"),
    [
        (" n", True),
        (" N.", True),
        (' "n"', True),
        ("\nn\nQuestion: What is the first letter?", True),  # only the answer line counts
        (" n, I think", False),
        (" b", False),
        (" The answer is n", False),
        ("", False),
    ],
)
def test_exact(output: str, correct: bool) -> None:
    assert is_correct(output, check(answer="n", match="exact")) is correct


def test_exact_is_the_default_match() -> None:
    assert check(answer="Tuesday") == AnswerCheck("exact", "Tuesday")


@pytest.mark.parametrize(
    ("output", "correct"),
    [
        (" December 25th", True),
        (" on the 25th of DECEMBER.", True),
        (" in November\nDecember", False),  # the second line is not the answer
        (" Decembe", False),
    ],
)
def test_contains(output: str, correct: bool) -> None:
    assert is_correct(output, check(answer="December", match="contains")) is correct


@pytest.mark.parametrize(
    ("pattern", "output", "correct"),
    [
        (r"\b2:45\b", " It is 2:45 pm", True),
        (r"\b2:45\b", " 12:45", False),
        (r"(?i)^seven\b", " Seven.", True),
        (r"^seven\b", " Seven.", False),  # case-sensitive unless the pattern says (?i)
        (r"3\.?14", " 3.14159", True),
        (r"3\.?14", " 3.41", False),
    ],
)
def test_regex(pattern: str, output: str, correct: bool) -> None:
    assert is_correct(output, check(answer=pattern, match="regex")) is correct


@pytest.mark.parametrize(
    ("text", "number"),
    [
        ("84", 84.0),
        ("-3 degrees", -3.0),
        ("\u22125", -5.0),  # the Unicode minus sign
        ("2,000 grams", 2000.0),
        ("12,7", 12.0),  # not a thousands group: the number stops at the comma
        ("4.75.", 4.75),
        (".5", 0.5),
        ("1e3", 1000.0),
        ("12 times 7 = 84", 12.0),  # the first number, not the last
        ("December 25th", 25.0),
        ("no digits", None),
    ],
)
def test_first_number(text: str, number: float | None) -> None:
    assert first_number(text) == number


@pytest.mark.parametrize(
    ("output", "tolerance", "correct"),
    [
        (" 3.14", 0.0, True),
        (" 3.14159", 0.0, False),
        (" 3.14159", 0.005, True),
        (" 3.1", 0.005, False),
        (" 3.145", 0.005, True),  # the tolerance is inclusive
        (" pi is about 3.14", 0.005, True),
        (" 12 times 7 = 3.14", 0.005, False),  # the first number is 12
        (" about three", 0.5, False),  # no number
    ],
)
def test_numeric(output: str, tolerance: float, correct: bool) -> None:
    assert is_correct(output, check(answer=3.14, match="numeric", tolerance=tolerance)) is correct


def test_numeric_reads_answers_written_as_text() -> None:
    assert check(answer="2,000", match="numeric").value == 2000.0
    assert is_correct(" 2000 g", check(answer="2,000", match="numeric"))


@pytest.mark.parametrize(
    ("output", "correct"),
    [
        (" Spring", True),
        (" spring.", True),
        (" Spring comes after winter", False),  # names two options
        (" spring, then summer", False),
        (" springtime", False),  # not as a whole word
        (" summer", False),
        (" the one with flowers", False),  # names none
    ],
)
def test_choice(output: str, correct: bool) -> None:
    season = check(answer="spring", match="choice", options=["spring", "summer", "autumn", "winter"])
    assert is_correct(output, season) is correct


def test_choice_options_from_one_text() -> None:
    assert check(answer="odd", match="choice", options="even | odd").options == ("even", "odd")


# ----------------------------------------------------------------------------- the share correct


def test_accuracy_is_the_share_correct_with_its_interval_and_per_item_samples() -> None:
    checks = [check(answer=str(n), match="numeric") for n in range(8)]
    outputs = [f" {n}" for n in range(6)] + [" 99", " none"]
    scores = accuracy_scores(outputs, checks)
    assert scores == [1.0] * 6 + [0.0, 0.0]
    metric = accuracy_metric(scores)
    assert (metric.name, metric.value, metric.unit, metric.direction) == ("accuracy", 0.75, "ratio", "higher")
    assert metric.samples == tuple(scores)
    assert metric.ci is not None
    low, high = metric.ci
    assert low < 0.75 < high <= 1.0
    assert "6 of 8 answers correct" in metric.note


def test_accuracy_needs_items_and_matching_lengths() -> None:
    with pytest.raises(ValueError, match="no items scored"):
        accuracy_metric([])
    with pytest.raises(ValueError, match="outputs has 1 items but checks has 2"):
        accuracy_scores([" 1"], [check(answer=1, match="numeric")] * 2)


def test_accuracy_share_of_the_reference_precision_and_the_target() -> None:
    reference = {"accuracy": [1.0, 1.0, 1.0, 1.0, 0.0]}
    current = {"accuracy": [1.0, 1.0, 1.0, 0.0, 0.0]}
    metrics = {m.name: m for m in share_metrics(current, reference, 0.99, "fp32")}
    assert metrics["accuracy_share"].value == pytest.approx(0.75)
    assert "below the 99% target (MLPerf: 99% of FP32 accuracy)" in metrics["accuracy_share"].note
    assert metrics["accuracy_share"].ci is not None
    assert metrics["quality_target_met"].value == 0.0
    same = {m.name: m for m in share_metrics(reference, reference, 0.99, "fp32")}
    assert same["accuracy_share"].value == 1.0
    assert same["quality_target_met"].value == 1.0


# ----------------------------------------------------------------------------- the data file and its errors


def write(tmp_path: Path, *records: dict[str, Any], name: str = "items.jsonl") -> Path:
    path = tmp_path / name
    path.write_text("".join(json.dumps(record) + "\n" for record in records), encoding="utf-8")
    return path


GOOD = {"id": "ok", "text": "Question: What is 2 plus 2?\nAnswer:", "answer": 4, "match": "numeric"}


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"match": "numeric"}, "field 'match' given but no 'answer' (a check needs one)"),
        ({"answer": "x", "match": "fuzzy"}, "unknown match kind 'fuzzy' in field 'match'; allowed: exact, contains, "
         "regex, numeric, choice"),
        ({"answer": "([a-z]", "match": "regex"}, "field 'answer' is not a valid regular expression (missing ), "
         "unterminated subpattern at position 0): '([a-z]'"),
        ({"answer": "eighty-four", "match": "numeric"}, "field 'answer' must be a number (match numeric), got "
         "'eighty-four'"),
        ({"answer": True, "match": "numeric"}, "field 'answer' must be a number (match numeric), got True"),
        ({"answer": "nan", "match": "numeric"}, "field 'answer' must be a finite number (match numeric), got 'nan'"),
        ({"answer": 4, "match": "numeric", "tolerance": "a bit"}, "field 'tolerance' must be a number (match "
         "numeric), got 'a bit'"),
        ({"answer": 4, "match": "numeric", "tolerance": -1}, "field 'tolerance' must be 0 or more, got -1"),
        ({"answer": "x", "tolerance": 0.1}, "field 'tolerance' applies to match numeric only, but match is exact"),
        ({"answer": "x", "match": "contains", "options": ["x", "y"]}, "field 'options' applies to match choice "
         "only, but match is contains"),
        ({"answer": "odd", "match": "choice"}, "match choice needs the field 'options' (at least two)"),
        ({"answer": "odd", "match": "choice", "options": ["odd"]}, "field 'options' needs at least two options, "
         "got ['odd']"),
        ({"answer": "odd", "match": "choice", "options": ["even", "odd", "Odd."]}, "field 'options' has 'odd' and "
         "'Odd.', the same once normalised"),
        ({"answer": "three", "match": "choice", "options": ["even", "odd"]}, "field 'answer' 'three' is not one of "
         "the options ['even', 'odd']"),
        ({"answer": "odd", "match": "choice", "options": {"a": 1}}, "field 'options' must be a list of texts or one "
         "text with the options separated by '|', got dict"),
        ({"answer": "?!", "match": "exact"}, "field 'answer' '?!' is empty once normalised (match exact)"),
        ({"answer": ["x"]}, "field 'answer' must be text or a number, got list"),
    ],
)  # fmt: skip
def test_a_bad_check_names_the_file_the_line_and_the_problem(
    tmp_path: Path, fields: dict[str, Any], message: str
) -> None:
    path = write(tmp_path, GOOD, {"id": "bad", "text": "Question: ?\nAnswer:", **fields})
    with pytest.raises(DataError, match=re.escape(f"{path}, line 2: {message}")):
        load_items(path)


def test_checks_in_a_csv_file_with_blank_cells_for_items_without_some_fields(tmp_path: Path) -> None:
    path = tmp_path / "items.csv"
    path.write_text(
        "id,text,answer,match,tolerance,options\n"
        "pi,Pi to two places?,3.14,numeric,0.005,\n"
        "odd,Is 17 even or odd?,odd,choice,,even|odd\n"
        "day,Day after Monday?,Tuesday,,,\n"
        'bad,Twelve times seven?,"eighty-four",numeric,,\n',
        encoding="utf-8",
    )
    with pytest.raises(DataError, match=re.escape(f"{path}, line 5: field 'answer' must be a number")):
        load_items(path)
    path.write_text("\n".join(path.read_text(encoding="utf-8").splitlines()[:-1]) + "\n", encoding="utf-8")
    items = load_items(path)
    assert [item.check for item in items] == [
        AnswerCheck("numeric", "3.14", value=3.14, tolerance=0.005),
        AnswerCheck("choice", "odd", options=("even", "odd")),
        AnswerCheck("exact", "Tuesday"),
    ]
    assert [item.reference for item in items] == ["", "", ""]


def test_items_with_checks_and_items_with_references_load_together(tmp_path: Path) -> None:
    path = write(tmp_path, GOOD, {"id": "summary", "text": "A long text.", "reference": "Short."})
    items = load_items(path)
    assert [item.check is None for item in items] == [False, True]
    assert [item.reference for item in items] == ["", "Short."]


def test_the_shipped_accuracy_set_loads_by_name_and_every_kind_is_used() -> None:
    assert SHIPPED_SETS["accuracy"] == ACCURACY_DATA
    items = load_items(Path("accuracy"))
    assert items == load_items(ACCURACY_DATA)
    assert 40 <= len(items) <= 60
    kinds = {item.check.match for item in items if item.check is not None}
    assert kinds == {"exact", "contains", "regex", "numeric", "choice"}
    assert all(item.check is not None and item.text.endswith("\nAnswer:") for item in items)


def _right_answer(item: Item) -> str:
    """An output that answers ``item`` correctly, built from its check."""
    assert item.check is not None
    if item.check.match == "numeric":
        assert item.check.value is not None
        return f" {item.check.value:g}\nQuestion: something else?"
    if item.check.match == "regex":
        return {"seven-as-a-word": " Seven", "pi-first-three-digits": " 3.14", "time-after-2-15": " 2:45"}[item.id]
    return f" {item.check.answer}."


def test_the_shipped_set_scores_right_answers_as_correct_and_wrong_ones_as_wrong() -> None:
    items = load_items(ACCURACY_DATA)
    checks = [item.check for item in items if item.check is not None]
    assert accuracy_scores([_right_answer(item) for item in items], checks) == [1.0] * len(items)
    assert accuracy_scores([" I do not know 42.5" for _ in items], checks) == [0.0] * len(items)


# ----------------------------------------------------------------------------- the gate


def _saved_run(number: int, outputs: list[str], items: list[Item]) -> Any:
    checks = [item.check for item in items if item.check is not None]
    metric = accuracy_metric(accuracy_scores(outputs, checks))
    extra = {
        "model": "gemma3-270m", "precision": "q4_k_m", "device": "cpu", "batch_size": 1, "backend": "llama_cpp",
        "metrics": {"accuracy": metric.to_json()},
    }  # fmt: skip
    bench = {"name": "test_generate[g]", "fullname": "benchmarks/test_generate.py::test_generate[g]",
             "extra_info": extra}  # fmt: skip
    data = {"machine_info": {}, "benchmarks": [bench], "datetime": "2025-01-01T00:00:00", "commit_info": {}}
    return run_from_json(data, f"{number:04d}", f"{number:04d}")


@pytest.mark.parametrize(
    ("worse", "verdict", "failed"),
    [
        (0, "unchanged", False),
        (1, "noisy", False),  # one lost answer of 48: beyond 0.01, but the paired interval includes 0
        (3, "noisy", False),  # 3 of 48: 4.5% of resamples miss all three, more than the interval's 2.5% tail
        (4, "regressed", True),  # 4 of 48 lost on the same items: the gate is red
        (6, "regressed", True),
    ],
)
def test_worse_answers_on_the_same_items_turn_the_gate_red(worse: int, verdict: str, failed: bool) -> None:
    items = load_items(ACCURACY_DATA)
    right = [_right_answer(item) for item in items]
    wrong = right[:]
    for index in range(0, 8 * worse, 8):  # spread over the set: letters, arithmetic, dates and units
        wrong[index] = " I do not know"
    result = compare_runs(Baseline((_saved_run(1, right, items),), "run 0001"), _saved_run(2, wrong, items))
    (combination,) = result.results
    (decision,) = [d for d in combination.decisions if d.metric == "accuracy"]
    assert decision.verdict == verdict
    assert decision.current == pytest.approx(1 - worse / len(items))
    assert result.failed is failed
    if failed:
        assert "paired over 48 items" in decision.reason
        assert any("accuracy" in line for line in result.regression_lines())


def test_accuracy_is_gated_like_rouge() -> None:
    accuracy, rouge = DEFAULT_RULES["accuracy"], DEFAULT_RULES["rougeLsum"]
    assert (accuracy.direction, accuracy.sample_kind, accuracy.significance, accuracy.gate) == (
        "higher", "items", True, True
    )  # fmt: skip
    assert (accuracy.absolute, accuracy.relative) == (rouge.absolute, rouge.relative)
    assert Metric.of("accuracy", 0.5).direction == "higher"


# ----------------------------------------------------------------------------- shown: table, report, export


def _shown_run() -> Any:
    items = load_items(ACCURACY_DATA)
    right = [_right_answer(item) for item in items]
    outputs = [" no idea" if index % 4 == 0 else text for index, text in enumerate(right)]  # 36 of 48 right
    run = _saved_run(3, outputs, items)
    (bench,) = run.benchmarks.values()
    metrics = dict(bench["extra_info"]["metrics"])
    metrics["latency_s"] = Metric.of("latency_s", 0.5, [0.5, 0.5]).to_json()
    metrics["accuracy_share"] = Metric.of("accuracy_share", 0.9, ci=(0.8, 1.0)).to_json()
    data = {"machine_info": {}, "datetime": "2025-01-01T00:00:00", "commit_info": {},
            "benchmarks": [{**bench, "extra_info": {**bench["extra_info"], "metrics": metrics}}]}  # fmt: skip
    return run_from_json(data, "0003", "0003")


def test_accuracy_is_shown_in_the_terminal_table_with_its_interval() -> None:
    from llmbench.plugin import terminal_table

    run = _shown_run()
    lines = terminal_table.render(run.benchmarks.values())
    header = next(line for line in lines if line.split()[:2] == ["combination", "accuracy"])
    row = lines[lines.index(header) + 2]
    low, high = accuracy_metric([1.0 if i % 4 else 0.0 for i in range(48)]).ci or (0.0, 0.0)
    assert row.split() == [
        "gemma3-270m", "q4_k_m", "cpu", "bs1", "75.0%", f"{low * 100:.1f}%-{high * 100:.1f}%", "90.0%", "n/a", "n/a"
    ]  # fmt: skip
    assert all(len(line) <= 120 for line in lines)
    assert "of ref.: accuracy as a share of the reference's (docs/quality.md)" in lines
    summaries_only = [{**b, "extra_info": {**b["extra_info"], "metrics": {"latency_s": b["extra_info"]["metrics"]
                       ["latency_s"]}}} for b in run.benchmarks.values()]  # fmt: skip
    assert not any("accuracy" in line for line in terminal_table.render(summaries_only))


def test_accuracy_is_in_the_report_markdown_and_the_export(tmp_path: Path) -> None:
    from llmbench.report.export import write_export
    from llmbench.report.frame import Table
    from llmbench.report.markdown import build_markdown
    from llmbench.report.plots import run_plots

    run = _shown_run()
    table = Table.of([run])
    markdown = build_markdown(run, table.of_run(run), None, 8 * 2**30)
    header = next(line for line in markdown.splitlines() if line.startswith("| model | precision"))
    assert "accuracy" in [cell.strip() for cell in header.split("|")]
    assert "75.0%" in markdown
    (plot,) = [p for p in run_plots(table.of_run(run)) if p.name == "accuracy"]
    (series,) = plot.series
    assert (series.x, series.y) == (("gemma3-270m q4_k_m cpu",), (0.75,))
    assert series.low[0] is not None
    assert series.high[0] is not None
    assert series.low[0] < 0.75 < series.high[0]
    out = write_export(table, tmp_path / "all.csv")
    with out.open(encoding="utf-8") as handle:
        (row,) = list(csv.DictReader(handle))
    assert float(row["accuracy"]) == pytest.approx(0.75)
    assert float(row["accuracy_ci_low"]) < 0.75 < float(row["accuracy_ci_high"])


# ----------------------------------------------------------------------------- the quality pass


class FakeAnsweringModel:
    """A FAKE loaded model: answers each prompt from a table (no engine), and records the prompts it got."""

    def __init__(self, answers: dict[str, str]) -> None:
        self.answers = answers
        self.prompts: list[str] = []

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        self.prompts.extend(prompts)
        texts = tuple(self.answers[prompt] for prompt in prompts)
        return Generation(
            texts=texts,
            prompt_tokens=tuple(len(p.split()) for p in prompts),
            generated_tokens=tuple(len(t.split()) for t in texts),
            token_ids=tuple(tuple(ord(c) for c in t) for t in texts),
        )


def test_the_quality_pass_scores_accuracy_against_the_reference_precision(tmp_path: Path) -> None:
    items = load_items(ACCURACY_DATA)[:12]
    spec = ModelSpec("fake", "causal", "path:/nowhere", prompt_template="Article: {text}\n\nSummary:")
    right = {item.text: _right_answer(item) for item in items}
    worse = {**right, **{item.text: " no idea" for item in items[:3]}}
    quality = QualityRuns(items, batch_size=5, max_new_tokens=8, target_share=0.99, outputs_dir=tmp_path,
                          dataset="accuracy")  # fmt: skip
    full, quantized = FakeAnsweringModel(right), FakeAnsweringModel(worse)

    reference = {m.name: m for m in quality.get(Combination(spec, "fp32", "cpu", 1), full, 8).metrics}  # type: ignore[arg-type]
    run = quality.get(Combination(spec, "q4_k_m", "cpu", 1), quantized, 8)  # type: ignore[arg-type]
    metrics = {m.name: m for m in run.metrics}

    assert full.prompts == [item.text for item in items]  # the question as written, not the summary template
    assert reference["accuracy"].value == 1.0
    assert reference["rouge1"].value is None
    assert "has no reference texts (its items have accuracy checks" in reference["rouge1"].note
    assert metrics["accuracy"].value == pytest.approx(9 / 12)
    assert metrics["accuracy"].samples == (0.0,) * 3 + (1.0,) * 9
    assert metrics["accuracy"].ci is not None
    assert metrics["accuracy_share"].value == pytest.approx(9 / 12)
    assert metrics["quality_target_met"].value == 0.0
    assert metrics["drift_identical_share"].value == pytest.approx(9 / 12)
    assert metrics["rougeLsum_share"].value is None
    records = read_outputs(tmp_path / "fake-q4_k_m-cpu.jsonl")
    assert [r.correct for r in records] == [False] * 3 + [True] * 9
    assert records[0].check == "exact 'n'"
    assert records[0].rouge1 is None


def test_the_reports_side_by_side_shows_an_accuracy_items_check(tmp_path: Path) -> None:
    from llmbench.quality.outputs import quality_records, write_outputs
    from llmbench.report.frame import Table
    from llmbench.report.html import side_by_side

    item = load_items(ACCURACY_DATA)[0]
    assert item.check is not None
    outputs_file = tmp_path / "gemma3-270m-q4_k_m-cpu.jsonl"
    write_outputs(outputs_file, quality_records([item.id], [""], [" b"], None, checks=[item.check.describe()],
                                                correct=[False]))  # fmt: skip
    run = _shown_run()
    (bench,) = run.benchmarks.values()
    extra = {**bench["extra_info"], "outputs": {item.id: " b"}, "outputs_file": str(outputs_file)}
    data = {"machine_info": {}, "datetime": "2025-01-01T00:00:00", "commit_info": {},
            "benchmarks": [{**bench, "extra_info": extra}]}  # fmt: skip
    run = run_from_json(data, "0004", "0004")
    (shown,) = side_by_side(Table.of([run]).of_run(run))
    assert (shown.id, shown.reference) == (item.id, "expected: exact 'n'")
    assert read_outputs(outputs_file)[0].correct is False
