"""The examples of examples/ (docs/examples.md): each seed comparison's matrix file is skipped offline with
its reason, and its offline twin, the same shape on models this machine has, runs in a pytester session
(``example_workspace``, fixtures/examples.py) and compares each combination with its reference.

The tiny twin runs in seconds; the twins on the real Gemma 3 270M are ``real_model`` and kept short (one
timed round, two quality items per data set, 8 new tokens, ``benchmarks/test_generate.py`` alone), in the
pytest process (``--llmbench-isolation=none``) on one thread (a shared machine: tests/conftest.py).
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
import torch
from fixtures.examples import DATA_DIR, DOCUMENTS, EXAMPLES, QUESTIONS, REPO, SHORT_ARGS, Example, example

from llmbench.config.matrix import load_matrix
from llmbench.data import load_items
from llmbench.report.frame import Row, rows_of
from llmbench.report.per_item import per_item_frame, per_item_pivot
from llmbench.runs import list_runs, load_run

PAGE = REPO / "docs" / "examples.md"
#: One thread for torch and llama.cpp in the twins' sessions (their figures are not under test).
THREADS = "--llmbench-threads=1"
ids = pytest.mark.parametrize("entry", EXAMPLES, ids=[entry.name for entry in EXAMPLES])


def _header(path: Path) -> str:
    """The comment lines at the top of a matrix file, without their ``#``."""
    lines = path.read_text(encoding="utf-8").split("\n[", 1)[0].splitlines()
    return "\n".join(line.removeprefix("#").strip() for line in lines if line.startswith("#"))


def _model_references(path: Path) -> int:
    """How many ``[models.<name>]`` tables of a matrix file declare a ``reference``."""
    tables = tomllib.loads(path.read_text(encoding="utf-8")).get("models", {})
    return sum(1 for table in tables.values() if "reference" in table)


# ----------------------------------------------------------------------------- the files and the page


@ids
def test_each_example_says_how_to_run_it_and_what_happens_offline(entry: Example) -> None:
    header = " ".join(_header(entry.matrix).replace("\\\n", " ").split())
    assert f"pytest benchmarks --llmbench-matrix=examples/{entry.name}.toml" in header
    assert "not available offline" in header, "the file must say how its hub models are skipped offline"
    assert f"{entry.name}.offline.toml" in header
    twin = " ".join(_header(entry.twin).replace("\\\n", " ").split())
    assert f"pytest benchmarks --llmbench-matrix=examples/{entry.name}.offline.toml" in twin
    page = PAGE.read_text(encoding="utf-8")
    assert f"\n## {entry.title}\n" in page
    assert f"examples/{entry.name}.toml" in page
    assert f"examples/{entry.name}.offline.toml" in page
    assert f"(examples/{entry.name}.png)" in page, "the page shows the example's picture"
    assert entry.picture.is_file(), f"{entry.picture} is missing: python scripts/examples/pictures.py"


@ids
def test_the_twin_has_the_shape_of_its_example(entry: Example) -> None:
    real, twin = load_matrix(entry.matrix, required=True), load_matrix(entry.twin, required=True)
    assert real.batch_sizes.values == twin.batch_sizes.values == entry.batch_sizes
    names = tuple(dataset.name for dataset in twin.datasets.values)
    assert tuple(dataset.name for dataset in real.datasets.values) == names == entry.datasets
    assert len(real.models.values) == len(twin.models.values)
    # The reference is declared the same way: at the matrix's level, or in as many model entries.
    assert (real.reference is None) == (twin.reference is None)
    assert _model_references(entry.matrix) == _model_references(entry.twin)
    # The example's models come from the hub; the twin's are all here (a local path or the PyPI package).
    assert all(real.registry[name].source_kind == "hub" for name in real.models.values)
    assert all(twin.registry[name].source_kind in ("path", "package") for name in twin.models.values)
    # Every combination the twin collects, each with the reference it is compared with.
    loads = {c.load_id: c for c in twin.combinations()}
    assert list(loads) == list(entry.twin_loads)
    for load, reference in entry.twin_loads.items():
        combination = loads[load]
        expected = combination.load_key if reference is None else loads[reference].load_key
        assert combination.reference_key == expected, load


def test_the_examples_data_sets_load_and_say_their_licence() -> None:
    documents, questions = load_items(DOCUMENTS), load_items(QUESTIONS)
    assert len(documents) == 8
    assert all(item.reference and item.check is None for item in documents)
    assert len(questions) == 12
    assert all(item.check is not None and not item.reference for item in questions)
    notes = (DATA_DIR / "README.md").read_text(encoding="utf-8")
    assert DOCUMENTS.name in notes
    assert QUESTIONS.name in notes
    assert "CC0 1.0" in notes


def test_the_top_level_conftest_adds_fixtures_and_nothing_else(pytestconfig: pytest.Config) -> None:
    """What `pytest tests` gains from the top-level conftest.py: the fixture modules of fixtures/, with no
    hook and no autouse fixture, so every test collects and runs as without it."""
    import fixtures.examples as module

    assert pytestconfig.pluginmanager.has_plugin("fixtures.examples")
    assert [name for name in vars(module) if name.startswith("pytest_")] == []
    for path in (REPO / "conftest.py", *sorted((REPO / "fixtures").glob("*.py"))):
        source = path.read_text(encoding="utf-8")
        assert "autouse=True" not in source, path
        assert not re.search(r"^(import|from) (torch|transformers|llmbench)", source, re.MULTILINE), path


def test_the_top_level_conftest_loads_from_the_pytest_script_in_importlib_mode() -> None:
    """`llmbench ab` collects the head's suite with --import-mode=importlib from a console script, where no
    conftest folder and no working directory is on sys.path: the conftest's `fixtures.examples` must still
    import (pyproject's `pythonpath = ["."]`; without it: "Error importing plugin 'fixtures.examples'")."""
    import subprocess
    import sys

    script = Path(sys.executable).with_name("pytest")
    done = subprocess.run(
        [str(script), "benchmarks", "--collect-only", "-qq", "-p", "no:cacheprovider", "--import-mode=importlib"],
        cwd=REPO, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    assert "benchmarks/test_generate.py:" in done.stdout


# ----------------------------------------------------------------------------- the examples, offline


@ids
def test_the_example_is_skipped_offline_with_the_reason(
    entry: Example, example_workspace: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    monkeypatch.setattr("huggingface_hub.constants.HF_HUB_CACHE", str(tmp_path))  # an empty cache
    short = [arg for arg in SHORT_ARGS if arg != "--benchmark-autosave"]  # nothing to save: no warning
    result = example_workspace.runpytest(
        "benchmarks", f"--llmbench-matrix={entry.matrix}", "--llmbench-device=cpu,cuda", *short
    )

    outcomes = result.parseoutcomes()
    assert set(outcomes) == {"skipped"}, outcomes
    reasons = re.findall(r"^SKIPPED \[1\] \S+: (\S+): (.*)$", result.stdout.str(), re.MULTILINE)
    assert len(reasons) == outcomes["skipped"]
    for test_id, reason in reasons:
        if "-cpu" in test_id:
            assert "not available offline" in reason, (test_id, reason)
        else:
            # Without a GPU the device's reason comes first (llama.cpp: a build without GPU offload).
            gpu_reasons = ("not available offline", "CUDA is not available", "has no GPU offload")
            assert any(words in reason for words in gpu_reasons), (test_id, reason)
    hub_ids = {name for model in load_matrix(entry.matrix, True).registry.values()
               if model.source_kind == "hub" for name in [model.source_value]}  # fmt: skip
    named = {hub for hub in hub_ids if any(hub in reason for _, reason in reasons)}
    assert named, f"no skip names a hub model: {reasons}"


# ----------------------------------------------------------------------------- the twins


def _run_twin(workspace: pytest.Pytester, entry: Example, *args: str) -> tuple[pytest.RunResult, list[Row]]:
    result = workspace.runpytest(*args, f"--llmbench-matrix={entry.twin}", *SHORT_ARGS, THREADS)
    runs = list_runs(workspace.path / "runs")
    assert len(runs) == 1, result.stdout.str()
    return result, [row for row in rows_of(load_run(runs[0])) if row.batch_size is not None]


def _check_comparisons(entry: Example, rows: list[Row]) -> None:
    """Each row compared with its example's reference, the reference itself with nothing."""
    for row in rows:
        load = f"{row.model}-{row.precision}-{row.device}"
        reference = entry.twin_loads[load]
        drift = row.metric("drift_identical_share")
        if reference is None:
            assert drift is None, f"{row.combination} is its own reference: {drift}"
            continue
        assert drift is not None, row.combination
        assert drift.value is not None, (row.combination, drift.note)
        model, precision, device = reference.rsplit("-", 2)
        named = precision if model == row.model and device == row.device else f"{model} {precision} {device}"
        assert f"identical to {named}'s" in drift.note, drift.note
        if row.dataset == "example_documents":  # the summaries: ROUGE and its difference from the reference's
            assert row.value("rougeLsum") is not None
            diff = row.metric("rougeLsum_diff")
            assert diff is not None, row.combination
            assert diff.value is not None, (row.combination, diff.note)
        else:  # the questions: accuracy (its share of the reference's can be n/a: no right answer there)
            assert row.value("accuracy") is not None, row.combination
            assert row.metric("accuracy_share") is not None, row.combination


def test_the_tiny_twin_of_t5_against_gemma3_runs_and_compares_with_gemma3(example_workspace: pytest.Pytester) -> None:
    entry = example("t5-vs-gemma3-4b")
    result, rows = _run_twin(
        example_workspace, entry, "benchmarks", "--llmbench-per-item=batch-sizes", "--llmbench-report=report"
    )

    result.assert_outcomes(passed=len(entry.twin_ids()) + len(entry.twin_loads))
    assert sorted(row.combination for row in rows) == sorted(entry.twin_ids())
    _check_comparisons(entry, rows)
    # T5 is compared with another model: its first differing token means nothing across tokenizers.
    (t5,) = [row for row in rows if row.model == "tiny-t5" and row.batch_size == 1]
    first = t5.metric("drift_first_diff_token")
    assert first is not None
    assert first.value is None
    # The notebook's per-prompt table: every item timed at every batch size of both models.
    frame = per_item_frame(rows[0].run)
    assert sorted(set(zip(frame["model"], frame["batch_size"], strict=True))) == [
        (model, batch) for model in ("tiny-gemma3", "tiny-t5") for batch in (1, 2, 4)
    ]
    assert per_item_pivot(frame, value="latency_s").shape == (2, 6)  # two items x six combinations
    # The report of the run (what the picture of docs/examples.md shows): both models, and the page.
    report = (example_workspace.path / "report" / "report.md").read_text(encoding="utf-8")
    assert "| tiny-t5 | fp32 | cpu | 4 |" in report
    assert "| tiny-gemma3 | bf16 | cpu | 4 |" in report
    assert (example_workspace.path / "report" / "index.html").stat().st_size > 10_000


@pytest.mark.real_model
@pytest.mark.parametrize("name", ["gpu-nf4-vs-cpu-fp32", "qat-vs-bf16"])
def test_the_gemma3_270m_twin_runs_and_compares_with_its_reference(
    name: str, example_workspace: pytest.Pytester, real_gguf_cache: Path
) -> None:
    entry = example(name)
    result, rows = _run_twin(
        example_workspace, entry, "benchmarks/test_generate.py", f"--llmbench-cache-dir={real_gguf_cache}"
    )

    gpu = torch.cuda.is_available()
    ran = entry.twin_ids(skipped=gpu)
    result.assert_outcomes(passed=len(ran), skipped=len(entry.twin_ids()) - len(ran))
    assert sorted(row.combination for row in rows) == sorted(ran)
    if not gpu:
        result.stdout.fnmatch_lines(
            [f"SKIPPED * {test_id}: {reason}*" for load, reason in entry.twin_skipped.items()
             for test_id in entry.twin_ids() if test_id.startswith(load)]
        )  # fmt: skip
    _check_comparisons(entry, rows)
