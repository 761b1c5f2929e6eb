"""The one table of precision facts."""

from __future__ import annotations

import pytest

from llmbench.config.precisions import (
    GGUF_PRECISIONS,
    KNOWN_PRECISIONS,
    PRECISIONS,
    TORCH_PRECISIONS,
    backend_for,
    cost_factor,
    is_gguf,
    precision_color,
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


def test_colours_are_fixed_for_known_precisions_only() -> None:
    assert precision_color("fp32") == "#0072B2"
    assert precision_color("q4_k_m") == "#56B4E9"
    assert precision_color("unknown-precision") is None
    assert (
        PRECISIONS["nf4"].bytes_per_weight < PRECISIONS["int8"].bytes_per_weight < PRECISIONS["bf16"].bytes_per_weight
    )


def test_the_table_says_how_bitsandbytes_quantizes_int8_and_nf4_and_nothing_else() -> None:
    int8, nf4 = PRECISIONS["int8"].bitsandbytes, PRECISIONS["nf4"].bitsandbytes
    assert int8 is not None
    assert nf4 is not None
    assert int8.config_kwargs() == {"load_in_8bit": True}
    assert nf4.config_kwargs() == {
        "load_in_4bit": True, "bnb_4bit_quant_type": "nf4", "bnb_4bit_compute_dtype": "bfloat16",
    }  # fmt: skip
    quantized = {name for name, facts in PRECISIONS.items() if facts.bitsandbytes is not None}
    assert quantized == {"int8", "nf4"}
    assert all(PRECISIONS[p].quantization == f"bitsandbytes {p}" for p in quantized)
