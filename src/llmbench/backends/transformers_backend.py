"""The Hugging Face transformers backend: fp32, bf16, fp16 and bitsandbytes int8/nf4/fp4 on cpu, cuda or mps.

Imported lazily by :func:`llmbench.backends.get_backend`, so torch and transformers load only when a
transformers combination is collected. Where the weights come from: :mod:`llmbench.backends.hf_sources`.
"""

from __future__ import annotations

import contextlib
import gc
import logging
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, cast

import torch
from transformers import (
    AutoModelForCausalLM,
    AutoModelForSeq2SeqLM,
    AutoTokenizer,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
    StoppingCriteriaList,
)

from llmbench.backends.base import (
    BackendUnavailable,
    Generation,
    KVLayout,
    cut_at_blank_line,
)
from llmbench.backends.hf_generation import FORWARD_CLOCK, BlankLineStop, ForwardClock, StepClock
from llmbench.backends.hf_sources import (
    HfSource,
    bitsandbytes_unavailable_reason,
    cached_hub_snapshot,
    device_unavailable_reason,
    resolve_source,
    source_unavailable_reason,
    weight_files,
)
from llmbench.backends.model_files import converted_hf_dir
from llmbench.config.combination import Combination, ModelSpec
from llmbench.config.precisions import GGUF_PRECISIONS, TORCH_PRECISIONS, BitsAndBytes, precision_facts
from llmbench.engine_types import Timer

__all__ = ["TransformersBackend", "TransformersModel"]

_INT8_CAST_MESSAGE = "MatMul8bitLt: inputs will be cast from"


class TransformersBackend:
    """Runs :data:`llmbench.config.precisions.TORCH_PRECISIONS` with transformers (bitsandbytes for int8/nf4/fp4)."""

    name = "transformers"

    def unavailable_reason(self, spec: ModelSpec, precision: str, device: str) -> str | None:
        """Why this combination cannot run here, or None. Cheap (no weights read), called at collection."""
        if precision in GGUF_PRECISIONS:
            return f"{precision} is a GGUF quantization: the llama_cpp backend runs it, not transformers"
        if precision not in TORCH_PRECISIONS:
            return f"unknown precision {precision!r} for transformers; known: {', '.join(TORCH_PRECISIONS)}"
        if precision in spec.unsupported:
            return spec.unsupported[precision]
        if spec.family not in ("causal", "seq2seq"):
            return f"unknown family {spec.family!r} of model {spec.name!r}; known: causal, seq2seq"
        reason = device_unavailable_reason(device)
        if reason is None and _bitsandbytes(precision) is not None:
            reason = bitsandbytes_unavailable_reason()
        if reason is None:
            reason = source_unavailable_reason(spec)
        return reason

    def prepare(self, combination: Combination, cache_dir: Path) -> None:
        """Make the weights local before a timed load: converts a ``package:`` GGUF once (about a minute).

        :meth:`load` does the same on its own when needed. Hub models not in the local cache are
        still downloaded by :meth:`load`.
        """
        if combination.model.source_kind == "package":
            converted_hf_dir(cache_dir, combination.model.source_value)

    def load(self, combination: Combination, cache_dir: Path, timer: Timer) -> TransformersModel:
        """Load tokenizer and model onto the device; BackendUnavailable when the weights cannot be had.

        ``timer`` is the device's timer: it times the model's forward calls (``engine_decode``).
        """
        spec, precision, device = combination.model, combination.precision, combination.device
        reason = self.unavailable_reason(spec, precision, device)
        if reason is not None:
            raise BackendUnavailable(reason)
        source = resolve_source(spec, cache_dir)
        try:
            with _progress_bars_off():
                tokenizer = AutoTokenizer.from_pretrained(source.name_or_path, trust_remote_code=spec.trust_remote_code)
                model = _load_model(spec, precision, device, source)
        except OSError as error:
            if source.directory is None:  # a hub download: no network, gated, renamed...
                raise BackendUnavailable(f"cannot load {spec.source} from the Hugging Face hub: {error}") from error
            raise
        return TransformersModel(combination, model, tokenizer, source, timer)


def weight_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision's weights; for int8/nf4/fp4, of the modules bitsandbytes leaves as they
    are (bf16: see docs/matrix-and-models.md)."""
    facts = precision_facts(precision)
    if facts is None or facts.torch_dtype is None:
        raise ValueError(f"{precision!r} is not a transformers precision; known: {', '.join(TORCH_PRECISIONS)}")
    dtype = getattr(torch, facts.torch_dtype)
    assert isinstance(dtype, torch.dtype), facts.torch_dtype
    return dtype


def _bitsandbytes(precision: str) -> BitsAndBytes | None:
    """How bitsandbytes quantizes ``precision`` at load (the precision table says), or None."""
    facts = precision_facts(precision)
    return facts.bitsandbytes if facts is not None else None


def _quantization_config(quantization: BitsAndBytes) -> Any:
    """transformers' ``BitsAndBytesConfig`` for a combination's bitsandbytes facts (it takes dtype names)."""
    from transformers import BitsAndBytesConfig

    return BitsAndBytesConfig(**quantization.config_kwargs())  # type: ignore[no-untyped-call]


def _load_model(spec: ModelSpec, precision: str, device: str, source: HfSource) -> PreTrainedModel:
    kwargs: dict[str, Any] = {
        "dtype": weight_dtype(precision),
        "trust_remote_code": spec.trust_remote_code,
        # Load straight onto the device (bitsandbytes requires it, and for the others it avoids a
        # full copy in host memory before `.to(device)`).
        "device_map": {"": device},
    }
    if source.directory is not None and weight_files(source.directory)[1]:
        kwargs["use_safetensors"] = True
    quantization = spec.bitsandbytes(precision)  # the precision's facts with the model's 4-bit settings
    if quantization is not None:
        kwargs["quantization_config"] = _quantization_config(quantization)
    # Gemma 3 4B and larger are multimodal: AutoModelForCausalLM maps them to
    # Gemma3ForConditionalGeneration, whose generate() runs on text alone.
    auto = AutoModelForCausalLM if spec.family == "causal" else AutoModelForSeq2SeqLM
    model = auto.from_pretrained(source.name_or_path, **kwargs)
    if not (isinstance(model, PreTrainedModel) and isinstance(model, GenerationMixin)):
        raise ValueError(f"model {spec.name!r}: {type(model).__name__} from {spec.source} cannot generate text")
    model.eval()  # type: ignore[no-untyped-call]
    return model


class TransformersModel:
    """A transformers model and its tokenizer, ready on the device (satisfies ``LoadedModel``)."""

    def __init__(
        self, combination: Combination, model: PreTrainedModel, tokenizer: Any, source: HfSource, timer: Timer
    ) -> None:
        spec = combination.model
        self._combination = combination
        self._spec = spec
        self._model: PreTrainedModel | None = model
        self._device = torch.device(combination.device)
        self._timer = timer
        self._source = source
        if spec.chat and not getattr(tokenizer, "chat_template", None):
            raise ValueError(
                f"model {spec.name!r}: chat = true, but the tokenizer of {spec.source} has no chat template; "
                "set chat = false and put the format into prompt_template"
            )
        if tokenizer.pad_token_id is None:
            tokenizer.pad_token = tokenizer.eos_token
        if spec.family == "causal":
            # Batched decoder-only generation appends to the right end of every row: pad on the left.
            tokenizer.padding_side = "left"
        self._tokenizer = tokenizer
        self._eos_ids = _eos_ids(model, tokenizer)
        # A clean greedy configuration replaces the checkpoint's (which may carry sampling settings such
        # as Gemma's top_k/top_p, and with them a warning on every greedy call). generate() fills unset
        # fields from model.generation_config, so that one is replaced rather than passed alongside.
        previous = model.generation_config
        model.generation_config = GenerationConfig(  # type: ignore[no-untyped-call]
            do_sample=False,
            num_beams=1,
            eos_token_id=self._eos_ids,
            pad_token_id=tokenizer.pad_token_id,
            bos_token_id=_first_set("bos_token_id", previous, model.config),
            decoder_start_token_id=_first_set("decoder_start_token_id", previous, model.config),
            use_cache=True,
        )

    @property
    def combination_key(self) -> tuple[str, str, str]:
        return self._combination.load_key

    @property
    def model(self) -> PreTrainedModel:
        """The loaded transformers model (for probes that need it; raises after :meth:`close`)."""
        if self._model is None:
            raise RuntimeError(f"{self._combination.id}: the model was closed")
        return self._model

    def _format(self, prompt: str) -> str:
        if not self._spec.chat:
            return prompt
        text: str = self._tokenizer.apply_chat_template(
            [{"role": "user", "content": prompt}], add_generation_prompt=True, tokenize=False
        )
        return text

    def encode(self, prompts: Sequence[str]) -> tuple[torch.Tensor, torch.Tensor]:
        """The padded batch's input ids and attention mask on the device, as :meth:`generate` feeds them."""
        encoded = self._tokenizer(
            [self._format(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            # A chat template already starts with <bos>.
            add_special_tokens=not self._spec.chat,
        )
        return encoded["input_ids"].to(self._device), encoded["attention_mask"].to(self._device)

    def text_tokens(self, text: str) -> list[int]:
        """The token ids of plain ``text``, no special tokens (for prompts of a given length)."""
        ids: list[int] = self._tokenizer(text, add_special_tokens=False)["input_ids"]
        return ids

    def text_of(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens``, special tokens dropped."""
        text: str = self._tokenizer.decode(list(tokens), skip_special_tokens=True, clean_up_tokenization_spaces=False)
        return text

    def prompt_token_count(self, prompt: str) -> int:
        """The tokens :meth:`generate` feeds for ``prompt`` (BOS or the chat template included)."""
        return len(self._tokenizer(self._format(prompt), add_special_tokens=not self._spec.chat)["input_ids"])

    def context_tokens(self) -> int | None:
        """The trained context: the (text or decoder) config's ``max_position_embeddings`` (None where the
        config has none, e.g. T5's relative positions)."""
        return context_from_config(self.model.config)

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        """Greedy generation of up to ``max_new_tokens`` tokens for a batch of formatted prompts.

        ``step_times_s`` are taken from the call's start, tokenization included, so step 0 is the
        time to first token as a caller sees it.
        """
        started = time.perf_counter()
        model = self.model
        if not prompts:
            raise ValueError("generate() needs at least one prompt")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {max_new_tokens}")
        input_ids, attention_mask = self.encode(prompts)
        clock = StepClock()
        forwards = ForwardClock(model, self._timer)
        stop = BlankLineStop(self._tokenizer, len(prompts)) if self._spec.stop_at_blank_line else None
        with torch.inference_mode(), self._quiet(), forwards.measure():
            # A GenerationMixin: checked at load.
            sequences = cast(GenerationMixin, model).generate(
                input_ids=input_ids,
                attention_mask=attention_mask,
                max_new_tokens=max_new_tokens,
                streamer=clock,
                stopping_criteria=StoppingCriteriaList([stop]) if stop is not None else None,
            )
        rows: list[list[int]] = sequences[:, clock.prompt_length :].tolist()
        texts: list[str] = []
        token_ids: list[tuple[int, ...]] = []
        for index, row in enumerate(rows):
            count = len(row)
            stopped = stop.stopped_at[index] if stop is not None else None
            if stopped is not None:
                count = min(count, stopped)
            for position, token in enumerate(row[:count]):
                if token in self._eos_ids:
                    count = position + 1
                    break
            kept = row[:count]
            text: str = self._tokenizer.decode(kept, skip_special_tokens=True)
            texts.append(cut_at_blank_line(text) if self._spec.stop_at_blank_line else text.strip())
            token_ids.append(tuple(kept))
        return Generation(
            texts=tuple(texts),
            prompt_tokens=tuple(int(n) for n in attention_mask.sum(dim=1).tolist()),
            generated_tokens=tuple(len(ids) for ids in token_ids),
            token_ids=tuple(token_ids),
            step_times_s=tuple(stamp - started for stamp in clock.stamps),
            engine_decode=forwards.engine_decode([len(ids) for ids in token_ids]),
            engine_clock=FORWARD_CLOCK,
        )

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Drop bitsandbytes' 8-bit "inputs will be cast to float16" line, logged on every matmul call."""
        quantization = _bitsandbytes(self._combination.precision)
        if quantization is None or quantization.bits != 8:
            yield
            return
        bnb_logger = logging.getLogger("bitsandbytes.autograd._functions")
        bnb_logger.addFilter(_drop_int8_cast_message)
        try:
            yield
        finally:
            bnb_logger.removeFilter(_drop_int8_cast_message)

    def weight_bytes(self) -> int:
        """Bytes of parameters and buffers as stored, plus bitsandbytes' quantization statistics.

        A bitsandbytes ``Params4bit`` is a uint8 tensor of two 4-bit values per byte, so
        ``numel * element_size`` is already its packed size; its ``quant_state`` adds one absmax per
        64-value block (fp32, bf16 after the first forward pass on CPU) and, when nested, a second
        level. An ``Int8Params`` is int8 data plus one fp32 scale per output row (``SCB``, on the
        weight before the first forward pass, on the module's ``state`` after).

        ``model.get_memory_footprint()`` counts the same parameters and buffers but not these statistics;
        they change after the first forward pass, so measure after a warm-up (figures for Gemma 3 270M:
        docs/metrics.md).
        """
        model = self.model
        total = 0
        for tensor in (*model.parameters(), *model.buffers()):
            total += tensor.numel() * tensor.element_size()
            quant_state = getattr(tensor, "quant_state", None)
            if quant_state is not None:
                total += _quant_state_bytes(quant_state)
        for module in model.modules():
            weight = getattr(module, "weight", None)
            scb = getattr(weight, "SCB", None)
            if scb is None:
                scb = getattr(getattr(module, "state", None), "SCB", None)
            if isinstance(scb, torch.Tensor):
                total += scb.numel() * scb.element_size()
        return total

    def file_bytes(self) -> int | None:
        """Bytes of the weight files loaded (safetensors, or .bin where there are none).

        For ``package:`` sources this is the converted directory (fp32 safetensors), not the GGUF file,
        which the llama.cpp backend reports.
        """
        directory = self._source.directory
        if directory is None and self._source.hub_id is not None:
            directory = cached_hub_snapshot(self._source.hub_id)
        if directory is None:
            return None
        files, _ = weight_files(directory)
        if not files or not all(f.is_file() for f in files):
            return None
        return sum(f.stat().st_size for f in files)

    def kv_cache_layout(self) -> KVLayout | None:
        """The decoder's self-attention KV cache per token, from the config (None where it does not say).

        For encoder-decoder models this is the decoder's self-attention cache (the cross-attention
        cache is fixed by the input length and not counted). The element size is that of the
        activations: the dtype of the modules left unquantized (bf16 for int8, nf4 and fp4, whose 4-bit
        layers return their input's dtype whatever they compute in), the weights' dtype otherwise.
        """
        if self._model is None:
            return None
        return kv_layout_from_config(self._model.config, _kv_element_bytes(self._model))

    def close(self) -> None:
        """Release the weights now (and the device's cached blocks on CUDA and MPS). Idempotent."""
        if self._model is None:
            return
        self._model = None
        gc.collect()
        if self._device.type == "cuda":
            torch.cuda.empty_cache()
        elif self._device.type == "mps":
            torch.mps.empty_cache()


@contextlib.contextmanager
def _progress_bars_off() -> Iterator[None]:
    """Hide transformers' per-load "Loading weights" bars (restored afterwards)."""
    from transformers.utils import logging as hf_logging

    was_enabled = hf_logging.is_progress_bar_enabled()
    hf_logging.disable_progress_bar()  # type: ignore[no-untyped-call]
    try:
        yield
    finally:
        if was_enabled:
            hf_logging.enable_progress_bar()  # type: ignore[no-untyped-call]


def _drop_int8_cast_message(record: logging.LogRecord) -> bool:
    return not str(record.msg).startswith(_INT8_CAST_MESSAGE)


def _quant_state_bytes(quant_state: Any) -> int:
    """Bytes of a bitsandbytes 4-bit ``QuantState``: block absmax (+ offset and nested statistics)."""
    total = 0
    for name in ("absmax", "offset"):
        tensor = getattr(quant_state, name, None)
        if isinstance(tensor, torch.Tensor):
            total += tensor.numel() * tensor.element_size()
    nested = getattr(quant_state, "state2", None)
    if nested is not None:
        total += _quant_state_bytes(nested)
    return total


def _first_set(name: str, *configs: Any) -> Any:
    """The first value of attribute ``name`` among ``configs`` that is not None."""
    for config in configs:
        value = getattr(config, name, None)
        if value is not None:
            return value
    return None


def _eos_ids(model: PreTrainedModel, tokenizer: Any) -> list[int]:
    """Token ids that end generation: the checkpoint's generation config's, else the tokenizer's."""
    eos = model.generation_config.eos_token_id
    if eos is None:
        eos = model.config.eos_token_id
    if eos is None:
        eos = tokenizer.eos_token_id
    if eos is None:
        return []
    return [int(e) for e in eos] if isinstance(eos, (list, tuple)) else [int(eos)]


def _kv_element_bytes(model: PreTrainedModel) -> int:
    for parameter in model.parameters():
        if parameter.dtype.is_floating_point:
            return int(torch.empty((), dtype=parameter.dtype).element_size())
    return 2


def _decoder_config(config: Any) -> Any:
    """The text or decoder config of a multimodal or encoder-decoder config, else ``config`` itself."""
    for name in ("text_config", "decoder"):
        nested = getattr(config, name, None)
        if nested is not None and not isinstance(nested, (bool, int, str)):
            return nested
    return config


def context_from_config(config: Any) -> int | None:
    """``max_position_embeddings`` (or ``n_positions``) of a (text or decoder) config, or None."""
    config = _decoder_config(config)
    for name in ("max_position_embeddings", "n_positions"):
        value = getattr(config, name, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    return None


def kv_layout_from_config(config: Any, bytes_per_element: int) -> KVLayout | None:
    """Layers, KV heads, head size and sliding windows of a decoder from its (text or decoder) config."""
    config = _decoder_config(config)
    layers = getattr(config, "num_decoder_layers", None) or getattr(config, "num_hidden_layers", None)
    heads = getattr(config, "num_attention_heads", None) or getattr(config, "num_heads", None)
    kv_heads = getattr(config, "num_key_value_heads", None) or heads
    head_dim = getattr(config, "head_dim", None) or getattr(config, "d_kv", None)
    if head_dim is None and heads:
        hidden = getattr(config, "hidden_size", None) or getattr(config, "d_model", None)
        head_dim = hidden // heads if hidden else None
    if not (layers and kv_heads and head_dim):
        return None
    window = getattr(config, "sliding_window", None)
    layer_types = getattr(config, "layer_types", None) or []
    sliding = sum(1 for kind in layer_types if kind == "sliding_attention") if window else 0
    return KVLayout(
        layers=int(layers),
        kv_heads=int(kv_heads),
        head_dim=int(head_dim),
        bytes_per_element=bytes_per_element,
        sliding_window=int(window) if window and sliding else None,
        sliding_layers=sliding,
    )
