"""The bitsandbytes 4-bit settings of a model entry in the matrix file: what they set, the test ids, the errors."""

from __future__ import annotations

from pathlib import Path

import pytest

from llmbench.config.matrix import load_matrix
from llmbench.config.options import SettingError
from llmbench.config.precisions import PRECISIONS


def _matrix(tmp_path: Path, settings: str, precisions: str = '["fp32", "int8", "nf4", "fp4"]') -> Path:
    path = tmp_path / "matrix.toml"
    path.write_text(
        f'[matrix]\nmodels = ["mine"]\nprecisions = {precisions}\ndevices = ["cpu"]\nbatch_sizes = [1]\n\n'
        f'[models.mine]\nsource = "path:/models/mine"\nfamily = "causal"\n{settings}',
        encoding="utf-8",
    )
    return path


def _ids(path: Path) -> list[str]:
    return [c.id for c in load_matrix(path, required=True).combinations()]


def test_without_settings_the_ids_are_todays(tmp_path: Path) -> None:
    ids = ["mine-fp32-cpu-bs1", "mine-int8-cpu-bs1", "mine-nf4-cpu-bs1", "mine-fp4-cpu-bs1"]
    assert _ids(_matrix(tmp_path, "")) == ids


def test_settings_equal_to_the_precisions_own_leave_the_ids_as_they_are(tmp_path: Path) -> None:
    settings = 'bnb_4bit_compute_dtype = "bf16"\nbnb_4bit_use_double_quant = false\nbnb_4bit_quant_storage = "uint8"\n'
    matrix = load_matrix(_matrix(tmp_path, settings), required=True)
    assert [c.id for c in matrix.combinations()] == _ids(_matrix(tmp_path, ""))
    nf4 = matrix.combinations()[2]
    assert nf4.model.bitsandbytes(nf4.precision) == PRECISIONS["nf4"].bitsandbytes


def test_each_setting_that_differs_is_named_in_the_4bit_ids_only(tmp_path: Path) -> None:
    settings = 'bnb_4bit_compute_dtype = "fp32"\nbnb_4bit_use_double_quant = true\nbnb_4bit_quant_storage = "bf16"\n'
    matrix = load_matrix(_matrix(tmp_path, settings), required=True)
    combinations = matrix.combinations()
    assert [c.id for c in combinations] == [
        "mine-fp32-cpu-bs1",
        "mine-int8-cpu-bs1",
        "mine-nf4-compute_fp32-double_quant-storage_bf16-cpu-bs1",
        "mine-fp4-compute_fp32-double_quant-storage_bf16-cpu-bs1",
    ]
    assert combinations[3].load_id == "mine-fp4-compute_fp32-double_quant-storage_bf16-cpu"
    # The precision itself and the model cache's key stay the precision's name.
    assert (combinations[3].precision, combinations[3].load_key) == ("fp4", ("mine", "fp4", "cpu"))
    fp4 = combinations[3].model.bitsandbytes("fp4")
    assert fp4 is not None
    assert fp4.config_kwargs() == {
        "load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_compute_dtype": "float32",
        "bnb_4bit_use_double_quant": True, "bnb_4bit_quant_storage": "bfloat16",
    }  # fmt: skip
    assert combinations[1].model.bitsandbytes("int8") == PRECISIONS["int8"].bitsandbytes


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        ('bnb_4bit_compute_dtype = "bfloat16"', "bnb_4bit_compute_dtype 'bfloat16' is not allowed"),
        ('bnb_4bit_use_double_quant = "yes"', "bnb_4bit_use_double_quant 'yes' is not allowed"),
        ("bnb_4bit_quant_storage = 8", "bnb_4bit_quant_storage 8 is not allowed"),
    ],
)
def test_a_bad_setting_names_the_file_the_model_the_key_the_value_and_what_is_allowed(
    tmp_path: Path, setting: str, message: str
) -> None:
    path = _matrix(tmp_path, setting + "\n")
    with pytest.raises(SettingError) as error:
        load_matrix(path, required=True)
    allowed = {"compute": "fp32, bf16, fp16", "use": "true, false", "quant": "uint8, int8, fp32, bf16, fp16"}
    expected = f"{message}; allowed: {allowed[setting.split('_')[2]]}"
    assert str(error.value) == f"matrix file {path}: [models.mine] {expected}"


def test_a_misspelt_setting_is_an_unknown_field_listing_the_settings(tmp_path: Path) -> None:
    settings = "bnb_4bit_compute_dtype, bnb_4bit_quant_storage, bnb_4bit_use_double_quant"
    with pytest.raises(
        SettingError, match=rf"\[models.mine\] has unknown field\(s\) bnb_4bit_double_quant; allowed: {settings}, "
    ):
        load_matrix(_matrix(tmp_path, "bnb_4bit_double_quant = true\n"), required=True)


def test_saved_runs_and_the_report_name_the_combination_as_the_test_id_does(tmp_path: Path) -> None:
    from llmbench.report.frame import rows_of
    from llmbench.runs import run_from_json

    matrix = load_matrix(_matrix(tmp_path, "bnb_4bit_use_double_quant = true\n"), required=True)
    fp32, _, nf4, _ = matrix.combinations()
    assert "precision_id" not in fp32.as_info()  # no settings in the id: today's saved fields
    assert nf4.as_info()["precision_id"] == "nf4-double_quant"
    assert nf4.as_info()["precision"] == "nf4"
    benchmarks = [
        {"fullname": f"benchmarks/test_generate.py::test_generate[{c.id}]", "name": f"test_generate[{c.id}]",
         "stats": {"median": 1.0}, "extra_info": c.as_info()}
        for c in (fp32, nf4)
    ]  # fmt: skip
    rows = rows_of(run_from_json({"benchmarks": benchmarks}, "a run"))
    assert [row.combination for row in rows] == [fp32.id, nf4.id]
    assert [row.precision for row in rows] == ["fp32", "nf4"]
