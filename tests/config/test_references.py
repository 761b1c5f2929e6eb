"""A reference per comparison in the matrix file: ``[models.NAME] reference = {...}`` and ``[matrix] reference``,
layered key by key, and the errors a user can cause, each naming the file and the key."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.config.combination import Combination, Reference
from llmbench.config.matrix import check_references, load_matrix
from llmbench.config.options import SettingError

QAT = """
[models.gemma3-4b-it-qat]
source = "hub:google/gemma-3-4b-it-qat-q4_0-unquantized"
family = "causal"
"""


def matrix_file(tmp_path: Path, body: str, models: str = '["gemma3-4b-it-qat", "gemma3-4b-it"]',
                precisions: str = '["bf16"]', devices: str = '["cpu"]', extra: str = "") -> Path:  # fmt: skip
    path = tmp_path / "matrix.toml"
    path.write_text(
        f"[matrix]\nmodels = {models}\nprecisions = {precisions}\ndevices = {devices}\nbatch_sizes = [1]\n{extra}\n"
        + body,
        encoding="utf-8",
    )
    return path


def references(path: Path) -> dict[str, tuple[str, str, str]]:
    return {c.id: c.reference_key for c in load_matrix(path, required=True).combinations()}


def test_without_a_reference_table_the_default_is_the_models_reference_precision_on_the_same_device(
    tmp_path: Path,
) -> None:
    path = matrix_file(
        tmp_path, "", models='["gemma3-270m"]', precisions='["fp32", "q4_k_m"]', devices='["cpu", "cuda"]'
    )
    assert references(path) == {
        "gemma3-270m-fp32-cpu-bs1": ("gemma3-270m", "fp32", "cpu"),
        "gemma3-270m-fp32-cuda-bs1": ("gemma3-270m", "fp32", "cuda"),
        "gemma3-270m-q4_k_m-cpu-bs1": ("gemma3-270m", "fp32", "cpu"),
        "gemma3-270m-q4_k_m-cuda-bs1": ("gemma3-270m", "fp32", "cuda"),
    }
    check_references(load_matrix(path, required=True))  # the default is never an error: n/a where it did not run


def test_a_qat_checkpoint_against_its_base(tmp_path: Path) -> None:
    body = QAT + 'reference = { model = "gemma3-4b-it", precision = "bf16" }\n'
    path = matrix_file(tmp_path, body)
    assert references(path) == {
        "gemma3-4b-it-qat-bf16-cpu-bs1": ("gemma3-4b-it", "bf16", "cpu"),
        "gemma3-4b-it-bf16-cpu-bs1": ("gemma3-4b-it", "fp32", "cpu"),  # its own default: fp32
    }
    check_references(load_matrix(path, required=True))


def test_keys_left_out_are_the_combinations_own(tmp_path: Path) -> None:
    path = matrix_file(tmp_path, QAT + 'reference = { model = "gemma3-4b-it" }\n', precisions='["bf16", "fp32"]')
    assert references(path)["gemma3-4b-it-qat-fp32-cpu-bs1"] == ("gemma3-4b-it", "fp32", "cpu")
    assert references(path)["gemma3-4b-it-qat-bf16-cpu-bs1"] == ("gemma3-4b-it", "bf16", "cpu")


def test_4bit_on_the_gpu_against_fp32_on_the_cpu(tmp_path: Path) -> None:
    path = matrix_file(
        tmp_path, "", models='["gemma3-270m"]', precisions='["fp32", "nf4"]', devices='["cpu", "cuda"]',
        extra='reference = { precision = "fp32", device = "cpu" }',
    )  # fmt: skip
    assert set(references(path).values()) == {("gemma3-270m", "fp32", "cpu")}
    matrix = load_matrix(path, required=True)
    assert matrix.reference == Reference(precision="fp32", device="cpu", origin="[matrix] reference")
    check_references(matrix)


def test_a_model_entrys_reference_is_over_the_matrixs_key_by_key(tmp_path: Path) -> None:
    body = QAT + 'reference = { model = "gemma3-4b-it", precision = "bf16" }\n'
    path = matrix_file(tmp_path, body, devices='["cpu", "cuda"]', precisions='["bf16", "fp32"]',
                       extra='reference = { precision = "fp32", device = "cpu" }')  # fmt: skip
    found = references(path)
    # The QAT entry names model and precision; the device comes from [matrix] reference.
    assert found["gemma3-4b-it-qat-bf16-cuda-bs1"] == ("gemma3-4b-it", "bf16", "cpu")
    assert found["gemma3-4b-it-bf16-cuda-bs1"] == ("gemma3-4b-it", "fp32", "cpu")
    spec = load_matrix(path, required=True).registry["gemma3-4b-it-qat"]
    assert spec.reference is not None
    assert spec.reference.origin == "[models.gemma3-4b-it-qat] reference over [matrix] reference"


def test_reference_precision_of_an_entry_is_its_precision_over_the_matrixs(tmp_path: Path) -> None:
    body = '[models.mine]\nsource = "path:/m"\nfamily = "causal"\nreference_precision = "bf16"\n'
    path = matrix_file(tmp_path, body, models='["mine"]', precisions='["bf16", "fp32"]', devices='["cpu", "cuda"]',
                       extra='reference = { device = "cpu" }')  # fmt: skip
    assert set(references(path).values()) == {("mine", "bf16", "cpu")}


def test_a_built_in_model_takes_a_reference_table_alone(tmp_path: Path) -> None:
    path = matrix_file(
        tmp_path, '[models.t5-small]\nreference = { model = "gemma3-4b-it", precision = "bf16" }\n',
        models='["t5-small", "gemma3-4b-it"]', precisions='["fp32", "bf16"]',
    )  # fmt: skip
    matrix = load_matrix(path, required=True)
    assert matrix.registry["t5-small"].source == "hub:google-t5/t5-small"  # the built-in entry, amended
    assert references(path)["t5-small-fp32-cpu-bs1"] == ("gemma3-4b-it", "bf16", "cpu")


@pytest.mark.parametrize(
    ("body", "extra", "message"),
    [
        (QAT + 'reference = { model = "gemma3-4b-it", dtype = "bf16" }\n', "",
         "[models.gemma3-4b-it-qat] reference has unknown key(s) dtype; allowed: model, precision, device "
         "(a key left out is the combination's own)"),
        ("", 'reference = { precision = "fp32", hardware = "cpu" }',
         "[matrix] reference has unknown key(s) hardware; allowed: model, precision, device"),
        (QAT + 'reference = "gemma3-4b-it"\n', "",
         "[models.gemma3-4b-it-qat] reference must be a table like { model = \"gemma3-4b-it\", precision = \"bf16\", "
         "device = \"cpu\" } (any of its keys), got 'gemma3-4b-it'"),
        (QAT + "reference = {}\n", "",
         "[models.gemma3-4b-it-qat] reference is empty: name at least one of model, precision, device"),
        (QAT + 'reference = { precision = "bf17" }\n', "",
         "[models.gemma3-4b-it-qat] reference: precision 'bf17' is not a known precision; known precisions: fp32,"),
        ("", 'reference = { device = "tpu" }',
         "[matrix] reference: device 'tpu' is not a known device; known devices: cpu, cuda, mps"),
        (QAT + 'reference = { model = 4 }\n', "",
         "[models.gemma3-4b-it-qat] reference: model must be a non-empty string, got 4"),
        (QAT + 'reference = { model = "gemma3-4b-it" }\nreference_precision = "bf16"\n', "",
         "[models.gemma3-4b-it-qat] has two references, reference = {'model': 'gemma3-4b-it'} and "
         "reference_precision = 'bf16': keep one"),
        ('[models.mine]\nsource = "path:/m"\nfamily = "causal"\nreference_precision = "fp64"\n', "",
         "[models.mine] reference_precision 'fp64' is not a known precision"),
    ],
)  # fmt: skip
def test_a_bad_reference_names_the_file_and_the_key(tmp_path: Path, body: str, extra: str, message: str) -> None:
    path = matrix_file(tmp_path, body, extra=extra)
    with pytest.raises(SettingError) as error:
        load_matrix(path, required=True)
    assert str(error.value).startswith(f"matrix file {path}: ")
    assert message in str(error.value)


def test_a_reference_not_in_the_matrix_names_the_file_the_key_and_what_there_is(tmp_path: Path) -> None:
    body = QAT + 'reference = { model = "gemma3-4b-it", precision = "bf16" }\n'
    path = matrix_file(tmp_path, body, models='["gemma3-4b-it-qat"]')
    matrix = load_matrix(path, required=True)
    with pytest.raises(SettingError) as error:
        check_references(matrix)
    assert str(error.value) == (
        f'matrix file {path}: [models.gemma3-4b-it-qat] reference = {{ model = "gemma3-4b-it", precision = "bf16" }}: '
        "the reference gemma3-4b-it bf16 cpu of gemma3-4b-it-qat bf16 cpu bs1 is not in the matrix (models "
        "gemma3-4b-it-qat; precisions bf16; devices cpu) and no reference run is named (--llmbench-reference-run): "
        "add it to the matrix, or name a saved run that has its outputs"
    )
    # A reference run that has it: no error; one that has other outputs: an error that lists them.
    check_references(matrix, {("gemma3-4b-it", "bf16", "cpu", "summaries")}, "run 0003", "the command line")
    with pytest.raises(SettingError, match=r"nor in the reference run run 0003 \(from the command line\), which has "
                                           r"outputs of: gemma3-4b-it fp32 cpu; add it"):  # fmt: skip
        check_references(matrix, {("gemma3-4b-it", "fp32", "cpu", "summaries")}, "run 0003", "the command line")


def test_an_excluded_reference_is_not_in_the_matrix(tmp_path: Path) -> None:
    path = matrix_file(
        tmp_path, "", models='["gemma3-270m"]', precisions='["fp32", "nf4"]', devices='["cpu", "cuda"]',
        extra='reference = { precision = "fp32", device = "cpu" }\nexclude = [{ precision = "fp32", device = "cpu" }]',
    )  # fmt: skip
    with pytest.raises(SettingError, match=r"\[matrix\] reference = \{ precision = \"fp32\", device = \"cpu\" \}: "
                                           r"the reference gemma3-270m fp32 cpu of gemma3-270m fp32 cuda bs1 is not in "
                                           r"the matrix \(.*; less \[matrix\] exclude\)"):  # fmt: skip
        check_references(load_matrix(path, required=True))


def test_a_combination_that_is_its_own_reference_compares_with_nothing(tmp_path: Path) -> None:
    path = matrix_file(tmp_path, "", models='["gemma3-270m"]', precisions='["fp32"]',
                       extra='reference = { precision = "fp32", device = "cpu" }')  # fmt: skip
    (combination,) = load_matrix(path, required=True).combinations()
    assert isinstance(combination, Combination)
    assert combination.reference_key == combination.load_key
