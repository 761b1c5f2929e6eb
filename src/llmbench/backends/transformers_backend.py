"""The Hugging Face transformers backend: fp32, bf16, fp16 and bitsandbytes int8/nf4 on cpu, cuda or mps.

Imported lazily by :func:`llmbench.backends.get_backend`, so torch and transformers load only when a
transformers combination is collected.

Sources (``ModelSpec.source``):

* ``package:<name>``: a packaged GGUF, dequantized once into a cached Hugging Face directory
  (:func:`llmbench.backends.model_files.converted_hf_dir`);
* ``path:<dir>``: a local Hugging Face directory;
* ``hub:<org/name>``: loaded from its snapshot in the local Hugging Face cache without contacting the
  hub (reproducible, no network wait); downloaded only when not cached, the hub is reachable and
  ``HF_HUB_OFFLINE`` is not set.
"""

from __future__ import annotations

import contextlib
import functools
import gc
import json
import logging
import os
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
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
    StoppingCriteria,
    StoppingCriteriaList,
)
from transformers.generation.streamers import BaseStreamer

from llmbench.backends.base import (
    BackendUnavailable,
    Generation,
    KVLayout,
    cut_at_blank_line,
    has_blank_line_after_text,
)
from llmbench.backends.model_files import converted_hf_dir, package_missing_reason
from llmbench.config.combination import Combination, ModelSpec
from llmbench.config.precisions import GGUF_PRECISIONS, TORCH_PRECISIONS, precision_facts

__all__ = ["TransformersBackend", "TransformersModel"]

#: Values of HF_HUB_OFFLINE that mean offline, as huggingface_hub reads them.
_TRUE_VALUES = {"1", "ON", "YES", "TRUE"}
#: Seconds to wait for the hub before calling it unreachable (huggingface_hub itself retries for
#: about 25 s on a machine without DNS: too slow for collection).
_HUB_PROBE_TIMEOUT_S = 3.0
_INT8_CAST_MESSAGE = "MatMul8bitLt: inputs will be cast from"


class TransformersBackend:
    """Runs :data:`llmbench.config.combination.TORCH_PRECISIONS` with transformers (and bitsandbytes for int8/nf4)."""

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
        if reason is None and _quantization(precision) is not None:
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

    def load(self, combination: Combination, cache_dir: Path) -> TransformersModel:
        """Load tokenizer and model onto the device; BackendUnavailable when the weights cannot be had."""
        spec, precision, device = combination.model, combination.precision, combination.device
        reason = self.unavailable_reason(spec, precision, device)
        if reason is not None:
            raise BackendUnavailable(reason)
        source = _resolve_source(spec, cache_dir)
        try:
            with _progress_bars_off():
                tokenizer = AutoTokenizer.from_pretrained(
                    source.name_or_path, trust_remote_code=spec.trust_remote_code
                )
                model = _load_model(spec, precision, device, source)
        except OSError as error:
            if source.directory is None:  # a hub download: no network, gated, renamed...
                raise BackendUnavailable(
                    f"cannot load {spec.source} from the Hugging Face hub: {error}"
                ) from error
            raise
        return TransformersModel(combination, model, tokenizer, source)


@dataclass(frozen=True)
class _Source:
    """Where ``from_pretrained`` reads from."""

    name_or_path: str
    #: The local directory holding the files; None for a hub id still to be downloaded.
    directory: Path | None
    hub_id: str | None = None


def _resolve_source(spec: ModelSpec, cache_dir: Path) -> _Source:
    kind, value = spec.source_kind, spec.source_value
    if kind == "package":
        directory = converted_hf_dir(cache_dir, value)
        return _Source(str(directory), directory)
    if kind == "path":
        directory = Path(value).expanduser()
        return _Source(str(directory), directory)
    if kind == "hub":
        snapshot = cached_hub_snapshot(value)
        if snapshot is not None:
            return _Source(str(snapshot), snapshot, hub_id=value)
        return _Source(value, None, hub_id=value)
    raise ValueError(f"model {spec.name!r}: source {spec.source!r} must start with package:, path: or hub:")


def weight_dtype(precision: str) -> torch.dtype:
    """The torch dtype of a precision's weights; for int8/nf4, of the modules bitsandbytes leaves as they
    are (bf16: see docs/matrix-and-models.md)."""
    facts = precision_facts(precision)
    if facts is None or facts.torch_dtype is None:
        raise ValueError(f"{precision!r} is not a transformers precision; known: {', '.join(TORCH_PRECISIONS)}")
    dtype = getattr(torch, facts.torch_dtype)
    assert isinstance(dtype, torch.dtype), facts.torch_dtype
    return dtype


def _quantization(precision: str) -> str | None:
    facts = precision_facts(precision)
    return facts.quantization if facts is not None else None


def _load_model(spec: ModelSpec, precision: str, device: str, source: _Source) -> PreTrainedModel:
    from transformers import BitsAndBytesConfig

    kwargs: dict[str, Any] = {
        "dtype": weight_dtype(precision),
        "trust_remote_code": spec.trust_remote_code,
        # Load straight onto the device (bitsandbytes requires it, and for the others it avoids a
        # full copy in host memory before `.to(device)`).
        "device_map": {"": device},
    }
    if source.directory is not None and weight_files(source.directory)[1]:
        kwargs["use_safetensors"] = True
    if precision == "int8":
        kwargs["quantization_config"] = BitsAndBytesConfig(load_in_8bit=True)  # type: ignore[no-untyped-call]
    elif precision == "nf4":
        kwargs["quantization_config"] = BitsAndBytesConfig(  # type: ignore[no-untyped-call]
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_compute_dtype=torch.bfloat16
        )
    # Gemma 3 4B and larger are multimodal: AutoModelForCausalLM maps them to
    # Gemma3ForConditionalGeneration, whose generate() runs on text alone.
    auto = AutoModelForCausalLM if spec.family == "causal" else AutoModelForSeq2SeqLM
    model = auto.from_pretrained(source.name_or_path, **kwargs)
    if not (isinstance(model, PreTrainedModel) and isinstance(model, GenerationMixin)):
        raise ValueError(
            f"model {spec.name!r}: {type(model).__name__} from {spec.source} cannot generate text"
        )
    model.eval()  # type: ignore[no-untyped-call]
    return model


class TransformersModel:
    """A transformers model and its tokenizer, ready on the device (satisfies ``LoadedModel``)."""

    def __init__(
        self, combination: Combination, model: PreTrainedModel, tokenizer: Any, source: _Source
    ) -> None:
        spec = combination.model
        self._combination = combination
        self._spec = spec
        self._model: PreTrainedModel | None = model
        self._device = torch.device(combination.device)
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
        encoded = self._tokenizer(
            [self._format(p) for p in prompts],
            return_tensors="pt",
            padding=True,
            # A chat template already starts with <bos>.
            add_special_tokens=not self._spec.chat,
        )
        input_ids = encoded["input_ids"].to(self._device)
        attention_mask = encoded["attention_mask"].to(self._device)
        clock = StepClock()
        stop = BlankLineStop(self._tokenizer, len(prompts)) if self._spec.stop_at_blank_line else None
        with torch.inference_mode(), self._quiet():
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
        )

    @contextlib.contextmanager
    def _quiet(self) -> Iterator[None]:
        """Drop bitsandbytes' int8 "inputs will be cast to float16" line, logged on every matmul call."""
        if self._combination.precision != "int8":
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

        ``model.get_memory_footprint()`` counts the same parameters and buffers but not these
        statistics. Gemma 3 270M, measured: fp32 1,072,394,756 bytes and bf16 536,198,402 (both
        equal to the footprint); nf4 385,793,282 footprint + 6,266,880 fp32 absmax at load, + 3,133,440
        once the first forward pass has re-laid them out in bf16 (so measure after a warm-up);
        int8 435,928,322 footprint + 497,664 of SCB. The unquantized tied embedding (262,144 x 640 in
        bf16, 336 MB) dominates both quantized figures.
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
        activations: the compute dtype (bf16 for nf4, the weights' dtype otherwise).
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


class StepClock(BaseStreamer):  # type: ignore[misc]
    """Records when each decoding step's tokens reach the host, inside ``generate``.

    ``generate`` calls ``put`` once with the prompt (the decoder's start ids for an encoder-decoder)
    before decoding, then once per step with that step's tokens, copied to the host: on CUDA that copy
    waits for the step, so the time stamp follows the token. (On MPS transformers defers the stop
    check and hands each token over during the following step, so stamps there are approximate.)
    A LogitsProcessor would fire before the token is chosen, and without a device sync.

    Overhead, measured on Gemma 3 270M bf16, batch 1, a 178-token prompt, 32 new tokens, 2-core Xeon,
    10 calls each, interleaved: median 1.238 s without the clock, 1.225 s with (-1.0%, i.e. noise);
    fastest 1.196 s and 1.193 s. ``put`` itself costs 0.1 us, 33 calls: about 3 us per generate call.
    """

    def __init__(self) -> None:
        self.stamps: list[float] = []
        self.prompt_length = -1

    def put(self, value: torch.Tensor) -> None:
        if self.prompt_length < 0:
            self.prompt_length = int(value.shape[-1])
        else:
            self.stamps.append(time.perf_counter())

    def end(self) -> None:
        """Nothing to flush."""


class BlankLineStop(StoppingCriteria):  # type: ignore[misc]
    """Stops each sequence once its generated text has a blank line after some text, per row.

    Runs after every step and decodes the generated tokens of the rows still running (tens of
    microseconds for a few dozen tokens, against steps of tens of milliseconds); leading blank lines
    do not count, as in the llama.cpp backend. ``stopped_at[row]`` is the number of generated tokens
    when the row stopped.
    """

    def __init__(self, tokenizer: Any, batch_size: int) -> None:
        self._decode = functools.partial(tokenizer.decode, skip_special_tokens=True)
        self.stopped_at: list[int | None] = [None] * batch_size
        self._start = -1
        self._done: torch.Tensor | None = None

    def __call__(self, input_ids: torch.Tensor, scores: Any, **kwargs: Any) -> torch.Tensor:
        length = int(input_ids.shape[1])
        if self._start < 0:  # the first call comes after the first generated token
            self._start = length - 1
        generated = length - self._start
        tail = input_ids[:, self._start :].tolist()
        changed = False
        for row, ids in enumerate(tail):
            if self.stopped_at[row] is None and has_blank_line_after_text(self._decode(ids)):
                self.stopped_at[row] = generated
                changed = True
        if self._done is None or changed:
            self._done = torch.tensor(
                [s is not None for s in self.stopped_at], dtype=torch.bool, device=input_ids.device
            )
        return self._done


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


# --- availability, cheap enough for collection -------------------------------------------------------


def device_unavailable_reason(device: str) -> str | None:
    """Why torch cannot use ``device`` here, or None."""
    if device == "cpu":
        return None
    if device == "cuda":
        if not torch.cuda.is_available():
            return f"CUDA is not available (torch {torch.__version__}, no GPU found)"
        return None
    if device == "mps":
        if not torch.backends.mps.is_available():
            return f"MPS is not available (torch {torch.__version__}, no Apple GPU found)"
        return None
    return f"unknown device {device!r}; known: cpu, cuda, mps"


@functools.cache
def bitsandbytes_unavailable_reason() -> str | None:
    """Why bitsandbytes (int8, nf4) cannot be used, or None."""
    try:
        import bitsandbytes  # noqa: F401
    except Exception as error:  # a missing package or a broken native library
        return (
            f"bitsandbytes is not importable ({type(error).__name__}: {error}); "
            "pip install 'pytest-llmbench[bitsandbytes]'"
        )
    return None


def source_unavailable_reason(spec: ModelSpec) -> str | None:
    """Why the weights of ``spec`` cannot be had here, or None. Never waits more than a few seconds."""
    kind, value = spec.source_kind, spec.source_value
    if kind == "package":
        return package_missing_reason(value)
    if kind == "path":
        directory = Path(value).expanduser()
        if not (directory / "config.json").is_file():
            what = "has no config.json" if directory.is_dir() else "does not exist"
            return (
                f"model {spec.name!r}: source path {directory} {what} "
                "(expected a Hugging Face model directory)"
            )
        return None
    if kind == "hub":
        if cached_hub_snapshot(value) is not None:
            return None
        if hub_offline():
            return (
                f"not available offline: {value} is not in the local Hugging Face cache "
                "(set HF_HUB_OFFLINE=0 with network access, or use a local path)"
            )
        unreachable = hub_unreachable_reason()
        if unreachable is not None:
            return (
                f"not available offline: {value} is not in the local Hugging Face cache and {unreachable} "
                "(download it where there is network access, or use a local path)"
            )
        return None
    return f"model {spec.name!r}: source {spec.source!r} must start with package:, path: or hub:"


def hub_offline() -> bool:
    """Whether HF_HUB_OFFLINE (or TRANSFORMERS_OFFLINE) is set now (huggingface_hub reads it at import)."""
    return any(
        os.environ.get(name, "").upper() in _TRUE_VALUES
        for name in ("HF_HUB_OFFLINE", "TRANSFORMERS_OFFLINE")
    )


@functools.cache
def hub_unreachable_reason() -> str | None:
    """Why the hub endpoint cannot be reached (one quick request per process), or None."""
    from huggingface_hub import constants, get_session

    endpoint = constants.ENDPOINT
    try:
        get_session().head(endpoint, timeout=_HUB_PROBE_TIMEOUT_S)
    except Exception as error:  # DNS, connection, proxy, TLS: all mean "cannot download now"
        return f"{endpoint} cannot be reached ({type(error).__name__}: {error})"
    return None


def cached_hub_snapshot(repo_id: str) -> Path | None:
    """The local snapshot directory of ``repo_id`` (revision main) if config and all weights are cached."""
    from huggingface_hub import try_to_load_from_cache

    config = try_to_load_from_cache(repo_id, "config.json")
    if not isinstance(config, str):
        return None
    snapshot = Path(config).parent
    files, _ = weight_files(snapshot)
    if not files or not all(f.is_file() for f in files):
        return None
    return snapshot


def weight_files(directory: Path) -> tuple[list[Path], bool]:
    """The weight files of a Hugging Face directory and whether they are safetensors.

    Safetensors win where both formats are present (transformers loads those); sharded checkpoints
    are read from their index.
    """
    for stem, safetensors in (("model.safetensors", True), ("pytorch_model.bin", False)):
        index = directory / f"{stem}.index.json"
        if index.is_file():
            try:
                weight_map = json.loads(index.read_text(encoding="utf-8"))["weight_map"]
            except (OSError, ValueError, KeyError):
                return [], safetensors
            return [directory / name for name in sorted(set(weight_map.values()))], safetensors
        if (directory / stem).is_file():
            return [directory / stem], safetensors
    return [], False


def _kv_element_bytes(model: PreTrainedModel) -> int:
    for parameter in model.parameters():
        if parameter.dtype.is_floating_point:
            return int(torch.empty((), dtype=parameter.dtype).element_size())
    return 2


def kv_layout_from_config(config: Any, bytes_per_element: int) -> KVLayout | None:
    """Layers, KV heads, head size and sliding windows of a decoder from its (text or decoder) config."""
    for name in ("text_config", "decoder"):
        nested = getattr(config, name, None)
        if nested is not None and not isinstance(nested, (bool, int, str)):
            config = nested
            break
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
