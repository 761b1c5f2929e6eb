"""The one table of precision facts: which backend runs a precision, its weights' dtype or quantization (and
how bitsandbytes applies it, with the 4-bit settings a model entry may change), bytes per weight, shard
cost factor and report rank.

Names outside the table (a saved run of a newer version, a typo) get neutral answers from the functions
below: rank after every known precision, cost factor 1. See docs/matrix-and-models.md.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Literal, TypeGuard, get_args

__all__ = [
    "BNB_4BIT_COMPUTE_DTYPES",
    "BNB_4BIT_SETTINGS",
    "BNB_4BIT_STORAGE_DTYPES",
    "GGUF_PRECISIONS",
    "KNOWN_PRECISIONS",
    "PRECISIONS",
    "TORCH_PRECISIONS",
    "BackendName",
    "BitsAndBytes",
    "Precision",
    "PrecisionFacts",
    "backend_for",
    "bitsandbytes_for",
    "bnb_4bit_setting_error",
    "cost_factor",
    "is_gguf",
    "is_known_precision",
    "precision_facts",
    "precision_rank",
]

BackendName = Literal["transformers", "llama_cpp"]

#: Every precision the harness knows, in report order (full precision first, the reference of drift).
Precision = Literal[
    "fp32", "f32", "bf16", "fp16", "f16", "bf16-gguf", "q8_0", "int8", "q6_k", "q5_k_m", "q5_k_s",
    "q5_0", "q4_k_m", "q4_k_s", "q4_0", "nf4", "fp4", "iq4_xs", "q3_k_m", "q2_k",
]  # fmt: skip

#: ``bnb_4bit_compute_dtype`` of a model entry: the dtype 4-bit layers compute in, by the names of the
#: plain-dtype precisions -> torch dtype name.
BNB_4BIT_COMPUTE_DTYPES: dict[str, str] = {"fp32": "float32", "bf16": "bfloat16", "fp16": "float16"}
#: ``bnb_4bit_quant_storage``: the dtype the packed 4-bit values are stored in -> torch dtype name. uint8
#: by default; a float type packs the same bits into wider elements (FSDP shards them with the other
#: weights). transformers also takes float64, left out here.
BNB_4BIT_STORAGE_DTYPES: dict[str, str] = {"uint8": "uint8", "int8": "int8", **BNB_4BIT_COMPUTE_DTYPES}
#: The 4-bit settings of a model entry (``[models.<name>]`` keys, named as transformers' ``BitsAndBytesConfig``
#: arguments) -> what each allows.
BNB_4BIT_SETTINGS: dict[str, str] = {
    "bnb_4bit_compute_dtype": ", ".join(BNB_4BIT_COMPUTE_DTYPES),
    "bnb_4bit_use_double_quant": "true, false",
    "bnb_4bit_quant_storage": ", ".join(BNB_4BIT_STORAGE_DTYPES),
}


@dataclass(frozen=True)
class BitsAndBytes:
    """How bitsandbytes quantizes a transformers precision as the weights load (``BitsAndBytesConfig``).

    The table holds each precision's defaults; a model entry's 4-bit settings replace them
    (:meth:`configured`), and the test id names each one that differs (:meth:`id_words`).
    """

    #: Bits per quantized weight: 8 (``LLM.int8()``, which casts each matmul input to fp16) or 4.
    bits: Literal[8, 4]
    #: The 4-bit data type ("nf4", "fp4"); None for 8 bits.
    quant_type: str | None = None
    #: torch dtype name that 4-bit layers compute in; None for 8 bits.
    compute_dtype: str | None = None
    #: Nested quantization: the per-block absmax statistics quantized again (8-bit, one fp32 per 256).
    use_double_quant: bool = False
    #: torch dtype name that the packed 4-bit values are stored in.
    quant_storage: str = "uint8"

    def config_kwargs(self) -> dict[str, object]:
        """The keyword arguments of transformers' ``BitsAndBytesConfig`` (dtypes as torch dtype names)."""
        if self.bits == 8:
            return {"load_in_8bit": True}
        return {
            "load_in_4bit": True,
            "bnb_4bit_quant_type": self.quant_type,
            "bnb_4bit_compute_dtype": self.compute_dtype,
            "bnb_4bit_use_double_quant": self.use_double_quant,
            "bnb_4bit_quant_storage": self.quant_storage,
        }

    def configured(
        self, compute_dtype: str | None = None, use_double_quant: bool | None = None, quant_storage: str | None = None
    ) -> BitsAndBytes:
        """These facts with a model entry's 4-bit settings (as written: ``"bf16"``, ``True``, ``"uint8"``;
        None keeps the precision's own). 8 bits has none: unchanged. ValueError for a value outside
        :data:`BNB_4BIT_SETTINGS`."""
        if self.bits != 4:
            return self
        given = {"bnb_4bit_compute_dtype": compute_dtype, "bnb_4bit_use_double_quant": use_double_quant,
                 "bnb_4bit_quant_storage": quant_storage}  # fmt: skip
        for key, value in given.items():
            reason = bnb_4bit_setting_error(key, value) if value is not None else None
            if reason is not None:
                raise ValueError(reason)
        return replace(
            self,
            compute_dtype=self.compute_dtype if compute_dtype is None else BNB_4BIT_COMPUTE_DTYPES[compute_dtype],
            use_double_quant=self.use_double_quant if use_double_quant is None else use_double_quant,
            quant_storage=self.quant_storage if quant_storage is None else BNB_4BIT_STORAGE_DTYPES[quant_storage],
        )

    def id_words(self, default: BitsAndBytes) -> tuple[str, ...]:
        """A word for each setting that differs from ``default`` (the precision's own), for the test id:
        ``compute_fp32``, ``double_quant`` (``no_double_quant``), ``storage_bf16``."""
        words = []
        if self.compute_dtype != default.compute_dtype:
            words.append(f"compute_{_setting_name(BNB_4BIT_COMPUTE_DTYPES, self.compute_dtype)}")
        if self.use_double_quant != default.use_double_quant:
            words.append("double_quant" if self.use_double_quant else "no_double_quant")
        if self.quant_storage != default.quant_storage:
            words.append(f"storage_{_setting_name(BNB_4BIT_STORAGE_DTYPES, self.quant_storage)}")
        return tuple(words)


def _setting_name(names: dict[str, str], torch_name: str | None) -> str:
    """The name a model entry writes for a torch dtype name (``bfloat16`` -> ``bf16``)."""
    return next((name for name, dtype in names.items() if dtype == torch_name), str(torch_name))


def bnb_4bit_setting_error(key: str, value: object) -> str | None:
    """Why ``value`` cannot be the 4-bit setting ``key`` (saying what is allowed), or None; None as well for
    a key that is not a 4-bit setting."""
    if key not in BNB_4BIT_SETTINGS:
        return None
    if key == "bnb_4bit_use_double_quant":
        valid = isinstance(value, bool)
    else:
        names = BNB_4BIT_COMPUTE_DTYPES if key == "bnb_4bit_compute_dtype" else BNB_4BIT_STORAGE_DTYPES
        valid = isinstance(value, str) and value in names
    return None if valid else f"{key} {value!r} is not allowed; allowed: {BNB_4BIT_SETTINGS[key]}"


@dataclass(frozen=True)
class PrecisionFacts:
    """What the harness knows of one precision."""

    name: Precision
    backend: BackendName
    #: torch dtype name of the weights (transformers); for int8/nf4/fp4 the dtype of the modules bitsandbytes
    #: leaves unquantized, which nf4 and fp4 also compute in (by default). None for GGUF.
    torch_dtype: str | None
    #: "bitsandbytes int8", "bitsandbytes nf4" (fp4), the GGUF tensor type ("Q4_K_M"), or None (plain dtype).
    quantization: str | None
    #: Approximate bytes per weight of the quantized tensors (GGUF: the block type's bits per weight / 8).
    bytes_per_weight: float
    #: Time per generated token relative to fp32, for shard balancing (see docs/ci-and-security.md).
    cost_factor: float
    #: How bitsandbytes quantizes it at load (int8, nf4, fp4), by default; None where it does not.
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
    bitsandbytes: BitsAndBytes | None = None,
) -> PrecisionFacts:
    return PrecisionFacts(name, "transformers", dtype, quantization, size, cost, bitsandbytes)


def _gguf(name: Precision, bits_per_weight: float) -> PrecisionFacts:
    return PrecisionFacts(name, "llama_cpp", None, name.upper(), bits_per_weight / 8, 0.4)


_ORDER: tuple[Precision, ...] = get_args(Precision)

_FACTS = (
    _torch("fp32", "float32", None, 4.0, 1.0),
    _torch("bf16", "bfloat16", None, 2.0, 1.0),
    _torch("fp16", "float16", None, 2.0, 1.0),
    # int8 casts each matmul input to fp16 and measured about half the speed of fp32 on CPU.
    _torch("int8", "bfloat16", "bitsandbytes int8", 1.0, 2.0, BitsAndBytes(8)),
    # nf4: 4-bit weights plus one absmax per 64-weight block.
    _torch("nf4", "bfloat16", "bitsandbytes nf4", 0.5625, 1.0, BitsAndBytes(4, "nf4", "bfloat16")),
    # fp4 (bitsandbytes' 4-bit default, what load_in_4bit=True alone gives): nf4's layout, block size and
    # kernels with another table of 16 values; computes in bf16 like nf4 unless a model entry says
    # otherwise (docs/matrix-and-models.md).
    _torch("fp4", "bfloat16", "bitsandbytes fp4", 0.5625, 1.0, BitsAndBytes(4, "fp4", "bfloat16")),
    _gguf("f32", 32),
    _gguf("f16", 16),
    _gguf("bf16-gguf", 16),
    _gguf("q8_0", 8.5),
    _gguf("q6_k", 6.5625),
    _gguf("q5_k_m", 5.5),
    _gguf("q5_k_s", 5.5),
    _gguf("q5_0", 5.5),
    _gguf("q4_k_m", 4.5),
    _gguf("q4_k_s", 4.5),
    _gguf("q4_0", 4.5),
    _gguf("iq4_xs", 4.25),
    _gguf("q3_k_m", 3.4375),
    _gguf("q2_k", 2.625),
)
#: Precision name -> facts, in report order.
PRECISIONS: dict[Precision, PrecisionFacts] = {f.name: f for f in sorted(_FACTS, key=lambda f: f.rank)}

#: Precisions run by the transformers backend (int8, nf4 and fp4 through bitsandbytes), in the order users list them.
TORCH_PRECISIONS: tuple[Precision, ...] = ("fp32", "bf16", "fp16", "int8", "nf4", "fp4")
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


def bitsandbytes_for(
    name: str, compute_dtype: str | None = None, use_double_quant: bool | None = None, quant_storage: str | None = None
) -> BitsAndBytes | None:
    """How bitsandbytes quantizes precision ``name`` with a model entry's 4-bit settings (None: the
    precision's own), or None where it does not quantize."""
    facts = precision_facts(name)
    if facts is None or facts.bitsandbytes is None:
        return None
    return facts.bitsandbytes.configured(compute_dtype, use_double_quant, quant_storage)


def precision_rank(name: str) -> int:
    """Full precision first: the order of tables and the reference of output differences; unknown last."""
    facts = precision_facts(name)
    return facts.rank if facts is not None else len(_ORDER)


def cost_factor(name: str) -> float:
    """Time per generated token relative to fp32 (1 for an unknown precision)."""
    facts = precision_facts(name)
    return facts.cost_factor if facts is not None else 1.0
