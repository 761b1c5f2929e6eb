"""The one table of precision facts."""

from __future__ import annotations

import re

import pytest

from llmbench.config.precisions import (
    GGUF_PRECISIONS,
    KNOWN_PRECISIONS,
    PRECISIONS,
    TORCH_PRECISIONS,
    backend_for,
    bitsandbytes_for,
    bnb_4bit_setting_error,
    cost_factor,
    is_gguf,
    precision_rank,
)


def test_every_known_precision_has_facts_and_one_backend() -> None:
    assert set(KNOWN_PRECISIONS) == set(PRECISIONS)
    assert all(backend_for(p) == "transformers" and not is_gguf(p) for p in TORCH_PRECISIONS)
    assert all(backend_for(p) == "llama_cpp" and is_gguf(p) for p in GGUF_PRECISIONS)
    assert all(PRECISIONS[p].torch_dtype is not None for p in TORCH_PRECISIONS)


def test_report_order_puts_full_precision_first_and_unknown_last() -> None:
    ranked = sorted(["q2_k", "nf4", "bf16", "fp32", "mystery", "q4_k_m", "int8"], key=precision_rank)
    assert ranked == ["fp32", "bf16", "int8", "q4_k_m", "nf4", "q2_k", "mystery"]
    assert list(PRECISIONS) == sorted(PRECISIONS, key=precision_rank)


@pytest.mark.parametrize(
    ("precision", "factor"), [("fp32", 1.0), ("nf4", 1.0), ("int8", 2.0), ("q4_k_m", 0.4), ("x", 1.0)]
)
def test_cost_factor(precision: str, factor: float) -> None:
    assert cost_factor(precision) == factor


def test_bytes_per_weight_shrink_with_the_quantization() -> None:
    assert (
        PRECISIONS["nf4"].bytes_per_weight < PRECISIONS["int8"].bytes_per_weight < PRECISIONS["bf16"].bytes_per_weight
    )


def test_the_table_says_how_bitsandbytes_quantizes_int8_nf4_and_fp4_and_nothing_else() -> None:
    int8, nf4, fp4 = (PRECISIONS[p].bitsandbytes for p in ("int8", "nf4", "fp4"))
    assert int8 is not None
    assert nf4 is not None
    assert fp4 is not None
    assert int8.config_kwargs() == {"load_in_8bit": True}
    assert nf4.config_kwargs() == {
        "load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16",
        "bnb_4bit_use_double_quant": False, "bnb_4bit_quant_storage": "uint8",
    }  # fmt: skip
    # fp4 differs from nf4 in its 4-bit data type alone: the same compute dtype, storage and size.
    assert fp4.config_kwargs() == {**nf4.config_kwargs(), "bnb_4bit_quant_type": "fp4"}
    assert PRECISIONS["fp4"].bytes_per_weight == PRECISIONS["nf4"].bytes_per_weight
    quantized = {name for name, facts in PRECISIONS.items() if facts.bitsandbytes is not None}
    assert quantized == {"int8", "nf4", "fp4"}
    assert all(PRECISIONS[p].quantization == f"bitsandbytes {p}" for p in quantized)


def test_a_model_entrys_4bit_settings_replace_the_precisions_own() -> None:
    configured = bitsandbytes_for("fp4", compute_dtype="fp32", use_double_quant=True, quant_storage="bf16")
    assert configured is not None
    assert configured.config_kwargs() == {
        "load_in_4bit": True, "bnb_4bit_quant_type": "fp4", "bnb_4bit_compute_dtype": "float32",
        "bnb_4bit_use_double_quant": True, "bnb_4bit_quant_storage": "bfloat16",
    }  # fmt: skip
    assert configured.id_words(PRECISIONS["fp4"].bitsandbytes) == ("compute_fp32", "double_quant", "storage_bf16")  # type: ignore[arg-type]
    # Settings equal to the precision's own are no change (and no word in the test id); None keeps it.
    same = bitsandbytes_for("nf4", compute_dtype="bf16", use_double_quant=False, quant_storage="uint8")
    assert same == PRECISIONS["nf4"].bitsandbytes == bitsandbytes_for("nf4")
    # 8 bits has no 4-bit settings; plain dtypes and GGUF types have no bitsandbytes at all.
    assert bitsandbytes_for("int8", compute_dtype="fp32", use_double_quant=True) == PRECISIONS["int8"].bitsandbytes
    assert bitsandbytes_for("bf16", use_double_quant=True) is None
    assert bitsandbytes_for("q4_k_m", use_double_quant=True) is None


@pytest.mark.parametrize(
    ("key", "value", "allowed"),
    [
        ("bnb_4bit_compute_dtype", "float32", "fp32, bf16, fp16"),
        ("bnb_4bit_compute_dtype", 16, "fp32, bf16, fp16"),
        ("bnb_4bit_use_double_quant", "yes", "true, false"),
        ("bnb_4bit_quant_storage", "fp64", "uint8, int8, fp32, bf16, fp16"),
        ("bnb_4bit_quant_storage", "int8", None),
        ("bnb_4bit_use_double_quant", True, None),
        ("prompt_template", 3, None),  # not a 4-bit setting: not this function's to judge
    ],
)
def test_4bit_setting_errors_name_the_key_the_value_and_what_is_allowed(
    key: str, value: object, allowed: str | None
) -> None:
    error = f"{key} {value!r} is not allowed; allowed: {allowed}" if allowed is not None else None
    assert bnb_4bit_setting_error(key, value) == error
    if error is not None:
        with pytest.raises(ValueError, match=re.escape(error)):
            bitsandbytes_for("nf4", **{key.removeprefix("bnb_4bit_"): value})  # type: ignore[arg-type]
