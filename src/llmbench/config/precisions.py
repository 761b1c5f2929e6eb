"""The one table of precision facts: which backend runs a precision, its weights' dtype or quantization (and
how bitsandbytes applies it), bytes per weight, shard cost factor, report rank and plot colour.

Names outside the table (a saved run of a newer version, a typo) get neutral answers from the functions
below: rank after every known precision, cost factor 1, no colour. See docs/matrix-and-models.md.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeGuard, get_args

__all__ = [
    "GGUF_PRECISIONS",
    "KNOWN_PRECISIONS",
    "PRECISIONS",
    "TORCH_PRECISIONS",
    "BackendName",
    "BitsAndBytes",
    "Precision",
    "PrecisionFacts",
    "backend_for",
    "cost_factor",
    "is_gguf",
    "is_known_precision",
    "precision_color",
    "precision_facts",
    "precision_rank",
]

BackendName = Literal["transformers", "llama_cpp"]

#: Every precision the harness knows, in report order (full precision first, the reference of drift).
Precision = Literal[
    "fp32", "f32", "bf16", "fp16", "f16", "bf16-gguf", "q8_0", "int8", "q6_k", "q5_k_m", "q5_k_s",
    "q5_0", "q4_k_m", "q4_k_s", "q4_0", "nf4", "iq4_xs", "q3_k_m", "q2_k",
]  # fmt: skip


@dataclass(frozen=True)
class BitsAndBytes:
    """How bitsandbytes quantizes a transformers precision as the weights load (``BitsAndBytesConfig``)."""

    #: Bits per quantized weight: 8 (``LLM.int8()``, which casts each matmul input to fp16) or 4.
    bits: Literal[8, 4]
    #: The 4-bit data type ("nf4"); None for 8 bits.
    quant_type: str | None = None
    #: torch dtype name that 4-bit layers compute in; None for 8 bits.
    compute_dtype: str | None = None

    def config_kwargs(self) -> dict[str, object]:
        """The keyword arguments of transformers' ``BitsAndBytesConfig`` (dtypes as torch dtype names)."""
        if self.bits == 8:
            return {"load_in_8bit": True}
        return {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": self.quant_type,
            "bnb_4bit_compute_dtype": self.compute_dtype,
        }


@dataclass(frozen=True)
class PrecisionFacts:
    """What the harness knows of one precision."""

    name: Precision
    backend: BackendName
    #: torch dtype name of the weights (transformers); for int8/nf4 the dtype of the modules bitsandbytes
    #: leaves unquantized, which nf4 also computes in. None for GGUF.
    torch_dtype: str | None
    #: "bitsandbytes int8", "bitsandbytes nf4", the GGUF tensor type ("Q4_K_M"), or None (plain dtype).
    quantization: str | None
    #: Approximate bytes per weight of the quantized tensors (GGUF: the block type's bits per weight / 8).
    bytes_per_weight: float
    #: Time per generated token relative to fp32, for shard balancing (see docs/ci-and-security.md).
    cost_factor: float
    #: Plot colour, the same in every plot (Okabe-Ito and tab10 shades, colour-blind safe first).
    color: str
    #: How bitsandbytes quantizes it at load (int8, nf4); None where it does not.
    bitsandbytes: BitsAndBytes | None = None

    @property
    def gguf(self) -> bool:
        return self.backend == "llama_cpp"

    @property
    def rank(self) -> int:
        """Position in the report's order: full precision first."""
        return _ORDER.index(self.name)


def _torch(
    name: Precision,
    dtype: str,
    quantization: str | None,
    size: float,
    cost: float,
    color: str,
    bitsandbytes: BitsAndBytes | None = None,
) -> PrecisionFacts:
    return PrecisionFacts(name, "transformers", dtype, quantization, size, cost, color, bitsandbytes)


def _gguf(name: Precision, bits_per_weight: float, color: str) -> PrecisionFacts:
    return PrecisionFacts(name, "llama_cpp", None, name.upper(), bits_per_weight / 8, 0.4, color)


_ORDER: tuple[Precision, ...] = get_args(Precision)

_FACTS = (
    _torch("fp32", "float32", None, 4.0, 1.0, "#0072B2"),
    _torch("bf16", "bfloat16", None, 2.0, 1.0, "#E69F00"),
    _torch("fp16", "float16", None, 2.0, 1.0, "#009E73"),
    # int8 casts each matmul input to fp16 and measured about half the speed of fp32 on CPU.
    _torch("int8", "bfloat16", "bitsandbytes int8", 1.0, 2.0, "#CC79A7", BitsAndBytes(8)),
    # nf4: 4-bit weights plus one absmax per 64-weight block.
    _torch("nf4", "bfloat16", "bitsandbytes nf4", 0.5625, 1.0, "#D55E00", BitsAndBytes(4, "nf4", "bfloat16")),
    _gguf("f32", 32, "#0072B2"),
    _gguf("f16", 16, "#009E73"),
    _gguf("bf16-gguf", 16, "#E69F00"),
    _gguf("q8_0", 8.5, "#CC79A7"),
    _gguf("q6_k", 6.5625, "#7f7f7f"),
    _gguf("q5_k_m", 5.5, "#8c564b"),
    _gguf("q5_k_s", 5.5, "#ff7f0e"),
    _gguf("q5_0", 5.5, "#ff7f0e"),
    _gguf("q4_k_m", 4.5, "#56B4E9"),
    _gguf("q4_k_s", 4.5, "#56B4E9"),
    _gguf("q4_0", 4.5, "#17becf"),
    _gguf("iq4_xs", 4.25, "#8c564b"),
    _gguf("q3_k_m", 3.4375, "#bcbd22"),
    _gguf("q2_k", 2.625, "#9467bd"),
)
#: Precision name -> facts, in report order.
PRECISIONS: dict[Precision, PrecisionFacts] = {f.name: f for f in sorted(_FACTS, key=lambda f: f.rank)}

#: Precisions run by the transformers backend (int8 and nf4 through bitsandbytes), in the order users list them.
TORCH_PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16", "int8", "nf4")
#: GGUF quantization types that llama.cpp runs (lower case, as in file names).
GGUF_PRECISIONS: tuple[Precision, ...] = (
    "f32", "f16", "bf16-gguf", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_0",
    "q4_k_m", "q4_k_s", "q4_0", "q3_k_m", "q2_k", "iq4_xs",
)  # fmt: skip
KNOWN_PRECISIONS: tuple[Precision, ...] = TORCH_PRECISIONS + GGUF_PRECISIONS


def is_known_precision(name: str) -> TypeGuard[Precision]:
    return name in PRECISIONS


def precision_facts(name: str) -> PrecisionFacts | None:
    """The facts of a precision, or None for a name outside the table."""
    return PRECISIONS[name] if is_known_precision(name) else None


def is_gguf(name: str) -> bool:
    facts = precision_facts(name)
    return facts is not None and facts.gguf


def backend_for(name: str) -> BackendName:
    """The backend that runs a precision: GGUF types on llama.cpp, the rest on transformers."""
    return "llama_cpp" if is_gguf(name) else "transformers"


def precision_rank(name: str) -> int:
    """Full precision first: the order of tables and the reference of output differences; unknown last."""
    facts = precision_facts(name)
    return facts.rank if facts is not None else len(_ORDER)


def cost_factor(name: str) -> float:
    """Time per generated token relative to fp32 (1 for an unknown precision)."""
    facts = precision_facts(name)
    return facts.cost_factor if facts is not None else 1.0


def precision_color(name: str) -> str | None:
    """The plot colour of a known precision; None for others (the plot picks one from its palette)."""
    facts = precision_facts(name)
    return facts.color if facts is not None else None
