"""The ``datasets`` axis: names and paths in the matrix file, ``--llmbench-data``, test ids, exclusions."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.config.combination import DEFAULT_DATASET
from llmbench.config.matrix import DatasetEntry, describe, load_matrix
from llmbench.config.options import SettingError

AXES = '[matrix]\nmodels = ["gemma3-270m"]\nprecisions = ["q4_k_m"]\ndevices = ["cpu"]\nbatch_sizes = [1]\n'


def matrix_file(tmp_path: Path, extra: str = "") -> Path:
    path = tmp_path / "bench" / "matrix.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(AXES + extra, encoding="utf-8")
    return path


def test_without_the_axis_ids_stay_as_they_were(tmp_path: Path) -> None:
    matrix = load_matrix(matrix_file(tmp_path), required=True)

    (combination,) = matrix.combinations()
    assert combination.id == "gemma3-270m-q4_k_m-cpu-bs1"
    assert combination.dataset is None
    assert combination.dataset_name == DEFAULT_DATASET
    assert "dataset" not in combination.as_info()
    # Naming the default set alone is the same matrix.
    named = load_matrix(matrix_file(tmp_path, 'datasets = ["summaries"]\n'), required=True)
    assert [c.id for c in named.combinations()] == ["gemma3-270m-q4_k_m-cpu-bs1"]


def test_names_paths_and_named_paths(tmp_path: Path) -> None:
    extra = 'datasets = ["summaries", "prompts.txt", { name = "long", path = "docs/long.jsonl" }, "/abs/q.csv"]\n'
    matrix = load_matrix(matrix_file(tmp_path, extra), required=True)

    base = tmp_path / "bench"
    assert matrix.datasets.values == (
        DatasetEntry("summaries"), DatasetEntry("prompts", base / "prompts.txt"),
        DatasetEntry("long", base / "docs" / "long.jsonl"), DatasetEntry("q", Path("/abs/q.csv")),
    )  # fmt: skip
    combinations = matrix.combinations()
    assert [c.id for c in combinations] == [
        "gemma3-270m-q4_k_m-cpu-bs1-summaries", "gemma3-270m-q4_k_m-cpu-bs1-prompts",
        "gemma3-270m-q4_k_m-cpu-bs1-long", "gemma3-270m-q4_k_m-cpu-bs1-q",
    ]  # fmt: skip
    assert combinations[1].as_info()["dataset"] == "prompts"
    assert describe(combinations[2]) == "gemma3-270m q4_k_m cpu bs1 long"
    # One loaded model serves every data set.
    assert {c.load_key for c in combinations} == {("gemma3-270m", "q4_k_m", "cpu")}


def test_another_set_alone_is_named_in_the_id(tmp_path: Path) -> None:
    matrix = load_matrix(matrix_file(tmp_path, 'datasets = ["accuracy"]\n'), required=True)

    assert [c.id for c in matrix.combinations()] == ["gemma3-270m-q4_k_m-cpu-bs1-accuracy"]


def test_exclude_by_data_set(tmp_path: Path) -> None:
    path = matrix_file(tmp_path)
    path.write_text(AXES.replace("batch_sizes = [1]", "batch_sizes = [1, 4]") + 'datasets = ["summaries", "accuracy"]\n'
                    'exclude = [{ dataset = "accuracy", batch_size = 4 }]\n')  # fmt: skip
    matrix = load_matrix(path, required=True)

    assert [c.id for c in matrix.combinations()] == [
        "gemma3-270m-q4_k_m-cpu-bs1-summaries", "gemma3-270m-q4_k_m-cpu-bs1-accuracy",
        "gemma3-270m-q4_k_m-cpu-bs4-summaries",
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("extra", "message"),
    [
        ('datasets = ["a/x.txt", "b/x.jsonl"]\n', "datasets has two data sets named 'x' (x ("),
        ('datasets = ["summaries", "summaries"]\n', "datasets lists it twice (from [matrix] datasets in "),
        ("datasets = []\n", "[matrix] datasets must be a non-empty list"),
        ("datasets = [3]\n", "[matrix] datasets entry 1 must be a shipped set's name, a path or a table"),
        ('datasets = [{ name = "a b", path = "x.txt" }]\n', "[matrix] datasets entry 1: name 'a b' may only have"),
        ('datasets = ["summaries"]\nexclude = [{ dataset = "nope" }]\n', "unknown dataset 'nope' in [matrix] exclude"),
    ],
)
def test_bad_axis_names_the_file_and_the_value(tmp_path: Path, extra: str, message: str) -> None:
    with pytest.raises(SettingError) as raised:
        load_matrix(matrix_file(tmp_path, extra), required=True)
    assert message in str(raised.value)


COLLECT_TEST = """
def test_generate(llm_combination):
    pass
"""


def collected_ids(result: pytest.RunResult) -> list[str]:
    return [line.split("::", 1)[1] for line in result.outlines if "::" in line]


def test_the_option_sets_the_axis_relative_to_where_pytest_runs(pytester: pytest.Pytester) -> None:
    (pytester.path / "benchmarks").mkdir()
    (pytester.path / "benchmarks" / "matrix.toml").write_text(AXES + 'datasets = ["summaries", "accuracy"]\n')
    (pytester.path / "data").mkdir()
    (pytester.path / "data" / "parables.txt").write_text("A parable.\nAnother one.\n")
    pytester.makepyfile(test_ids=COLLECT_TEST)

    both = pytester.runpytest("--collect-only", "-q")
    assert collected_ids(both) == ["test_generate[gemma3-270m-q4_k_m-cpu-bs1-summaries]",
                                   "test_generate[gemma3-270m-q4_k_m-cpu-bs1-accuracy]"]  # fmt: skip
    one = pytester.runpytest("--collect-only", "-q", "--llmbench-data=data/parables.txt")
    assert collected_ids(one) == ["test_generate[gemma3-270m-q4_k_m-cpu-bs1-parables]"]
    default = pytester.runpytest("--collect-only", "-q", "--llmbench-data=summaries")
    assert collected_ids(default) == ["test_generate[gemma3-270m-q4_k_m-cpu-bs1]"]


def test_a_bad_data_file_stops_the_session_naming_the_option_file_and_line(pytester: pytest.Pytester) -> None:
    (pytester.path / "bad.jsonl").write_text('{"text": "fine"}\n{"id": "2"}\n')
    pytester.makepyfile(test_ids=COLLECT_TEST)

    result = pytester.runpytest("--collect-only", "-q", "--llmbench-data=bad.jsonl")

    assert result.ret == pytest.ExitCode.USAGE_ERROR
    result.stderr.fnmatch_lines(["*data set bad (from --llmbench-data on the command line): *bad.jsonl, line 2: "
                                 "missing field 'text'*"])  # fmt: skip
    unknown = pytester.runpytest("--collect-only", "-q", "--llmbench-data=nope")
    unknown.stderr.fnmatch_lines(["*'nope' is not a shipped data set (shipped: summaries, accuracy)*"])
