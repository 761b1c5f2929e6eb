"""bitsandbytes 4-bit loads (fp4, and a model entry's 4-bit settings) on the tiny Gemma 3, in process.

bitsandbytes 0.50 runs on CPU (a fallback path for CUDA's kernels), so what the loaded model carries is
checked here: its quantization config, and its 4-bit layers before the first forward pass (on some CPUs
that pass re-lays the weights out for the CPU kernel, docs/matrix-and-models.md), then that it generates.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

from llmbench.backends.transformers_backend import TransformersBackend, TransformersModel
from llmbench.config.combination import Combination, ModelSpec
from llmbench.config.precisions import Precision
from llmbench.measure.timers import CpuTimer

pytest.importorskip("bitsandbytes", reason="bitsandbytes is not installed (the bitsandbytes extra)")

#: One torch thread (tests/conftest.py): these tests check what loads, not speed.
pytestmark = pytest.mark.usefixtures("one_torch_thread")

#: The quantization config a default fp4 load carries: fp4 in nf4's layout, bf16 compute as nf4.
FP4_DEFAULTS = {
    "load_in_4bit": True,
    "bnb_4bit_quant_type": "fp4",
    "bnb_4bit_compute_dtype": "bfloat16",
    "bnb_4bit_use_double_quant": False,
    "bnb_4bit_quant_storage": "uint8",
}


@pytest.fixture
def loaded() -> Iterator[list[TransformersModel]]:
    """Models a test loads, closed at its end."""
    models: list[TransformersModel] = []
    yield models
    for model in models:
        model.close()


def _load(directory: Path, precision: Precision, loaded: list[TransformersModel], **settings: Any) -> TransformersModel:
    spec = ModelSpec(name="tiny", family="causal", source=f"path:{directory}", **settings)
    model = TransformersBackend().load(Combination(spec, precision, "cpu", 1), Path("/nonexistent"), CpuTimer())
    loaded.append(model)
    return model


def _carried(model: TransformersModel) -> dict[str, object]:
    """The bitsandbytes settings the loaded model's config carries (dtypes as torch dtype names)."""
    config = model.model.config.quantization_config
    carried = config if isinstance(config, dict) else config.to_dict()
    return {key: carried[key] for key in FP4_DEFAULTS}


def _layers(model: TransformersModel) -> list[Any]:
    from bitsandbytes.nn.modules import Linear4bit

    layers = [m for m in model.model.modules() if isinstance(m, Linear4bit)]
    assert layers, "no 4-bit layer"
    return layers


@pytest.mark.parametrize(
    ("settings", "changed"),
    [
        ({}, {}),
        ({"bnb_4bit_compute_dtype": "fp32"}, {"bnb_4bit_compute_dtype": "float32"}),
        ({"bnb_4bit_use_double_quant": True}, {"bnb_4bit_use_double_quant": True}),
        ({"bnb_4bit_quant_storage": "bf16"}, {"bnb_4bit_quant_storage": "bfloat16"}),
    ],
    ids=["defaults", "compute_fp32", "double_quant", "storage_bf16"],
)
def test_fp4_loads_with_each_4bit_setting_and_generates(
    tiny_gemma3_dir: Path, loaded: list[TransformersModel], settings: dict[str, Any], changed: dict[str, object]
) -> None:
    model = _load(tiny_gemma3_dir, "fp4", loaded, **settings)
    expected = {**FP4_DEFAULTS, **changed}
    assert _carried(model) == expected
    for layer in _layers(model):
        state = layer.weight.quant_state
        assert state.quant_type == "fp4"
        assert layer.compute_dtype == getattr(torch, str(expected["bnb_4bit_compute_dtype"]))
        assert state.nested is expected["bnb_4bit_use_double_quant"]
        assert layer.weight.dtype == getattr(torch, str(expected["bnb_4bit_quant_storage"]))
    # The modules bitsandbytes leaves as they are load in bf16 whatever the 4-bit settings.
    assert model.model.get_input_embeddings().weight.dtype == torch.bfloat16
    result = model.generate(["The river runs"], max_new_tokens=3)
    assert result.generated_tokens == (3,)
    assert len(result.step_times_s) == 3


def test_nf4_and_fp4_quantize_the_same_weights_differently(
    tiny_gemma3_dir: Path, loaded: list[TransformersModel]
) -> None:
    nf4, fp4 = _load(tiny_gemma3_dir, "nf4", loaded), _load(tiny_gemma3_dir, "fp4", loaded)
    assert _carried(nf4) == {**FP4_DEFAULTS, "bnb_4bit_quant_type": "nf4"}
    nf4_layer, fp4_layer = _layers(nf4)[0], _layers(fp4)[0]
    assert (nf4_layer.weight.quant_state.quant_type, fp4_layer.weight.quant_state.quant_type) == ("nf4", "fp4")
    # The same packed size (two 4-bit values a byte), other codes for the same weights.
    assert nf4_layer.weight.shape == fp4_layer.weight.shape
    assert not torch.equal(nf4_layer.weight.data, fp4_layer.weight.data)
    assert nf4.weight_bytes() == fp4.weight_bytes()
