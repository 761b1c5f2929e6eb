"""The llama.cpp backend: GGUF files run through llama-cpp-python.

A GGUF precision (``q4_k_m``, ...) of a model names its file in :attr:`ModelSpec.gguf`: ``package:<dist>``
(a PyPI package shipping it in chunks, assembled once into ``<cache_dir>/gguf/``), ``path:<file>`` or a
plain path, or ``hub:<org>/<name>/<file.gguf>`` (used only when already in the local hub cache).

Generation uses llama-cpp-python's token iterator with a greedy sampler, so token ids and counts are
exact and every token gets its own timestamp. Each sequence starts from an empty KV cache, so repeated
rounds do not skip their prefill. The native library's plumbing: :mod:`llmbench.backends.llama_cpp_native`.
"""

from __future__ import annotations

import re
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from llmbench.backends.base import BackendUnavailable, Generation, KVLayout, cut_at_blank_line
from llmbench.backends.llama_cpp_native import (
    INSTALL_HINT,
    default_threads,
    ends_with_blank_line,
    import_llama_cpp,
    model_params_override,
    route_llama_cpp_logs,
    system_info,
    token_piece,
)
from llmbench.backends.model_files import assemble_packaged_gguf, package_missing_reason
from llmbench.config.combination import Combination, ModelSpec
from llmbench.engine_types import Timer

#: Layers offloaded to the device: all of them on a GPU (-1), none on the CPU.
GPU_LAYERS: Mapping[str, int] = {"cpu": 0, "cuda": -1, "mps": -1}
#: The rebuild that gives llama-cpp-python offload to each GPU kind.
GPU_REBUILD: Mapping[str, str] = {"cuda": "-DGGML_CUDA=on", "mps": "-DGGML_METAL=on"}
#: Greedy decoding: the sampler chain reduces to argmax (temperature 0 selects llama.cpp's greedy
#: sampler); the other values make the intent explicit and switch off every penalty.
GREEDY: Mapping[str, float] = {
    "temp": 0.0,
    "top_k": 1,
    "top_p": 1.0,
    "min_p": 0.0,
    "repeat_penalty": 1.0,
    "frequency_penalty": 0.0,
    "presence_penalty": 0.0,
}
#: Sliding-window layer patterns llama.cpp hard-codes for architectures whose GGUF files do not
#: declare one (llama-model.cpp, ``hparams.set_swa_pattern(n)``): of every ``n`` layers, the last
#: one attends globally and the others within the window.
SWA_PATTERNS: Mapping[str, int] = {"gemma2": 2, "gemma3": 6}
#: Bytes per cached K or V element: llama.cpp's default KV cache type is f16.
KV_BYTES_PER_ELEMENT = 2
#: How the engine decode figure is read (see docs/metrics.md).
ENGINE_CLOCK = "llama.cpp's counters: n_eval single-token decodes in t_eval_ms"
_SOURCE_KIND = re.compile(r"^([a-z][a-z0-9_+-]+):")


# --------------------------------------------------------------------------------------------------
# GGUF file resolution


@dataclass(frozen=True)
class GgufSource:
    """Where the GGUF file of one precision of a model comes from."""

    kind: Literal["package", "path", "hub"]
    value: str
    #: ``model <name>: gguf[<precision>] = <raw>``, for messages.
    origin: str

    @classmethod
    def parse(cls, spec: ModelSpec, precision: str) -> GgufSource:
        """The source declared for ``precision``; ValueError for a malformed declaration."""
        raw = spec.gguf[precision]
        origin = f"model {spec.name}: gguf[{precision!r}] = {raw!r}"
        match = _SOURCE_KIND.match(raw)
        if match is None:  # a plain path (a Windows drive letter is one character: not a kind)
            return cls("path", raw, origin)
        kind, value = match.group(1), raw[match.end() :]
        if kind == "package":
            return cls("package", value, origin)
        if kind == "path":
            return cls("path", value, origin)
        if kind == "hub":
            if value.count("/") < 2 or not value.endswith(".gguf"):
                raise ValueError(f"{origin}: a hub GGUF source is hub:<org>/<name>/<file.gguf>")
            return cls("hub", value, origin)
        raise ValueError(
            f"{origin}: unknown source kind {kind!r}; "
            "use package:<distribution>, path:<file>, hub:<org>/<name>/<file.gguf> or a plain path"
        )

    @property
    def hub_repo_and_file(self) -> tuple[str, str]:
        org, name, filename = self.value.split("/", 2)
        return f"{org}/{name}", filename

    def unavailable_reason(self) -> str | None:
        """Why the file cannot be had here, without assembling or loading anything."""
        if self.kind == "package":
            missing = package_missing_reason(self.value)
            return None if missing is None else f"{self.origin}: {missing}"
        if self.kind == "path":
            path = Path(self.value).expanduser()
            return None if path.is_file() else f"{self.origin}: no such file {path}"
        return None if self._hub_cached_path() else self._hub_unavailable()

    def resolve(self, cache_dir: Path) -> Path:
        """The local GGUF file, assembling a packaged one into ``cache_dir`` on first use.

        Raises :class:`BackendUnavailable` when the file cannot be had here.
        """
        reason = self.unavailable_reason()
        if reason is not None:
            raise BackendUnavailable(reason)
        if self.kind == "package":
            return assemble_packaged_gguf(cache_dir, self.value)
        if self.kind == "path":
            return Path(self.value).expanduser().resolve()
        cached = self._hub_cached_path()
        if cached is None:  # removed from the cache since the check above
            raise BackendUnavailable(self._hub_unavailable())
        return cached

    def _hub_cached_path(self) -> Path | None:
        from huggingface_hub import try_to_load_from_cache

        repo_id, filename = self.hub_repo_and_file
        found = try_to_load_from_cache(repo_id, filename)
        return Path(found) if isinstance(found, str) else None

    def _hub_unavailable(self) -> str:
        repo_id, filename = self.hub_repo_and_file
        return (
            f"{self.origin}: not available offline: {filename} of {repo_id} is not in the local Hugging Face "
            f"cache (hf download {repo_id} {filename})"
        )


# --------------------------------------------------------------------------------------------------
# The backend


def _no_gguf_reason(spec: ModelSpec, precision: str) -> str:
    declared = ", ".join(spec.gguf) or "none"
    return f"no GGUF file for {precision} in model {spec.name} (declared GGUF precisions: {declared})"


class LlamaCppBackend:
    """Runs GGUF precisions with llama.cpp (llama-cpp-python).

    ``n_threads`` defaults to the CPUs this process may use (used for prompt evaluation and
    decoding alike); ``n_ctx`` must hold the longest prompt plus the new tokens.
    ``extra_buffer_types`` sets llama.cpp's ``use_extra_bufts`` model parameter (weight repacking
    into CPU-specific layouts). None (the default) leaves it on except in builds with AMX kernels,
    whose AMX buffer type segfaults on the first decode on AMX CPUs (a ``-DGGML_NATIVE=OFF``
    build has none and keeps repacking, which is measured to cost nothing here).
    """

    name = "llama_cpp"

    def __init__(self, n_threads: int | None = None, n_ctx: int = 2048, extra_buffer_types: bool | None = None) -> None:
        if n_threads is not None and n_threads < 1:
            raise ValueError(f"n_threads must be a positive integer, got {n_threads!r}")
        if n_ctx < 1:
            raise ValueError(f"n_ctx must be a positive integer, got {n_ctx!r}")
        self.n_threads = n_threads or default_threads()
        self.n_ctx = n_ctx
        self.extra_buffer_types = extra_buffer_types

    def unavailable_reason(self, spec: ModelSpec, precision: str, device: str) -> str | None:
        """Why ``precision`` of ``spec`` cannot run on ``device`` here, or None (no model is loaded)."""
        if precision not in spec.gguf:
            return _no_gguf_reason(spec, precision)
        if device not in GPU_LAYERS:
            return f"device {device!r} is not supported by the llama_cpp backend (supported: cpu, cuda, mps)"
        llama_cpp, reason = import_llama_cpp()
        if llama_cpp is None:
            return reason
        if GPU_LAYERS[device] != 0 and not llama_cpp.llama_supports_gpu_offload():
            return f"this llama-cpp-python build has no GPU offload (rebuild with CMAKE_ARGS={GPU_REBUILD[device]})"
        return GgufSource.parse(spec, precision).unavailable_reason()

    def prepare(self, combination: Combination, cache_dir: Path) -> None:
        """Assemble a packaged GGUF file once (about a second), outside the timed load."""
        self.resolve(combination.model, combination.precision, cache_dir)

    def resolve(self, spec: ModelSpec, precision: str, cache_dir: Path) -> Path:
        """The local GGUF file of ``precision`` (assembled into ``cache_dir`` on first use)."""
        if precision not in spec.gguf:
            raise BackendUnavailable(_no_gguf_reason(spec, precision))
        return GgufSource.parse(spec, precision).resolve(cache_dir)

    def load(self, combination: Combination, cache_dir: Path, timer: Timer | None = None) -> LlamaCppModel:
        """Resolve the GGUF file and load it with its layers on ``combination.device``, with a context of
        ``combination.context_tokens`` (the prompt-length axis) or else this backend's ``n_ctx``.

        ``timer`` is not used: llama.cpp counts its own decode time (``engine_decode``).
        """
        reason = self.unavailable_reason(combination.model, combination.precision, combination.device)
        if reason is not None:
            raise BackendUnavailable(reason)
        path = self.resolve(combination.model, combination.precision, cache_dir)
        return LlamaCppModel(
            combination,
            path,
            n_threads=self.n_threads,
            # On the prompt-length axis the load's context is sized to its longest prompt and the new tokens.
            n_ctx=combination.context_tokens or self.n_ctx,
            extra_buffer_types=self.extra_buffer_types,
        )


class LlamaCppModel:
    """A GGUF model loaded in llama.cpp.

    What a batch means here: llama-cpp-python's high-level API generates one sequence at a time,
    so :meth:`generate` runs the prompts of a batch **sequentially** (``batch_mode="sequential"``),
    each from an empty KV cache. The latency of a batch is the sum of its sequences' latencies and
    batching brings no throughput gain; the honest speed figures are per sequence (prefill and
    decode tokens/s of each sequence, from ``sequence_step_times_s``). ``step_times_s`` is empty.

    Timestamps: for each sequence, the clock starts before its prompt is tokenized; step ``i`` is
    the time at which generated token ``i`` was sampled (step 0 includes the prefill). Sampling
    reads the logits back on the host, so on a GPU the time is taken after the device finished.
    The last sampled token is never evaluated, so llama.cpp's decode counter for a sequence of ``n``
    tokens is ``n - 1``, matching ``n - 1`` intervals between our timestamps.
    """

    batch_mode = "sequential"

    def __init__(
        self,
        combination: Combination,
        path: Path,
        *,
        n_threads: int,
        n_ctx: int = 2048,
        extra_buffer_types: bool | None = None,
    ) -> None:
        llama_cpp, reason = import_llama_cpp()
        if llama_cpp is None:
            raise BackendUnavailable(reason or INSTALL_HINT)
        self._lib = llama_cpp
        self._combination = combination
        self.path = path
        self.n_threads = n_threads
        self.n_ctx = n_ctx
        self.n_gpu_layers = GPU_LAYERS[combination.device]
        cpu_features = system_info(llama_cpp)
        if extra_buffer_types is None:
            extra_buffer_types = "AMX" not in cpu_features
        self.extra_buffer_types = extra_buffer_types
        self.system_info: str = cpu_features

        route_llama_cpp_logs(llama_cpp)
        overrides = {} if extra_buffer_types else {"use_extra_bufts": False}
        started = time.perf_counter()
        with model_params_override(llama_cpp, **overrides):
            self._llm: Any = llama_cpp.Llama(
                model_path=str(path),
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                n_gpu_layers=self.n_gpu_layers,
                seed=0,
                logits_all=False,
                verbose=False,
            )
        #: Seconds spent in ``Llama()`` alone (the file was resolved before).
        self.load_seconds = time.perf_counter() - started
        self._vocab = llama_cpp.llama_model_get_vocab(self._llm.model)
        self._weight_bytes = int(llama_cpp.llama_model_size(self._llm.model))
        self._file_bytes = path.stat().st_size
        self._chat_formatter: Any = None
        if combination.model.chat:
            try:
                self._chat_formatter = self._make_chat_formatter()
            except BackendUnavailable:
                self.close()
                raise
        self._perf: tuple[dict[str, float], ...] = ()

    @property
    def combination_key(self) -> tuple[str, str, str]:
        return self._combination.load_key

    @property
    def llama(self) -> Any:
        """The ``llama_cpp.Llama`` object (for checks that call the library bare; raises after :meth:`close`)."""
        if self._llm is None:
            raise RuntimeError(f"model {self._combination.id} was closed")
        return self._llm

    def prompt_tokens(self, prompt: str) -> list[int]:
        """The tokens :meth:`generate` evaluates for ``prompt``."""
        return self._prompt_tokens(prompt)

    def text_tokens(self, text: str) -> list[int]:
        """The token ids of plain ``text``: no BOS, no special tokens (for prompts of a given length)."""
        tokens: list[int] = self.llama.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        return tokens

    def text_of(self, tokens: Sequence[int]) -> str:
        """The text of ``tokens`` (a UTF-8 sequence cut in the middle loses its partial character)."""
        return bytes(self.llama.detokenize(list(tokens))).decode("utf-8", errors="ignore")

    def prompt_token_count(self, prompt: str) -> int:
        """How many tokens :meth:`generate` evaluates for ``prompt`` (BOS or the chat template included)."""
        return len(self._prompt_tokens(prompt))

    def context_tokens(self) -> int | None:
        """The context the model was trained for (the GGUF file's ``n_ctx_train``)."""
        value = int(self._lib.llama_model_n_ctx_train(self.llama.model))
        return value if value > 0 else None

    def _make_chat_formatter(self) -> Any:
        """A formatter for the GGUF file's own chat template (``tokenizer.chat_template``)."""
        template = self._llm.metadata.get("tokenizer.chat_template")
        if not template:
            raise BackendUnavailable(
                f"model {self._combination.model.name} has chat = true but its GGUF file {self.path} has "
                "no chat template (tokenizer.chat_template)"
            )
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        def token_text(token: int) -> str:
            return "" if token < 0 else str(self._lib.llama_vocab_get_text(self._vocab, token).decode())

        return Jinja2ChatFormatter(
            template=template,
            eos_token=token_text(self._lib.llama_vocab_eos(self._vocab)),
            bos_token=token_text(self._lib.llama_vocab_bos(self._vocab)),
            add_generation_prompt=True,
        )

    def _prompt_tokens(self, prompt: str) -> list[int]:
        """The prompt's tokens: plain text (BOS added as the vocabulary says), or the chat template's
        rendering (which writes its own BOS and special tokens)."""
        if self._chat_formatter is None:
            tokens: list[int] = self._llm.tokenize(prompt.encode("utf-8"), add_bos=True, special=False)
            return tokens
        rendered = self._chat_formatter(messages=[{"role": "user", "content": prompt}]).prompt
        chat_tokens: list[int] = self._llm.tokenize(rendered.encode("utf-8"), add_bos=False, special=True)
        return chat_tokens

    def _clear_state(self) -> None:
        """Forget everything evaluated before: the next prompt is evaluated in full.

        ``reset()`` zeroes llama-cpp-python's record of evaluated tokens (so ``generate`` finds no
        prefix to reuse); clearing llama.cpp's memory empties the KV cache itself; the performance
        counters restart so that they describe the next sequence alone.
        """
        lib, ctx = self._lib, self._llm.ctx
        self._llm.reset()
        lib.llama_memory_clear(lib.llama_get_memory(ctx), True)
        lib.llama_perf_context_reset(ctx)

    def _perf_counters(self) -> dict[str, float]:
        data = self._lib.llama_perf_context(self._llm.ctx)
        return {
            "n_p_eval": int(data.n_p_eval),
            "t_p_eval_ms": float(data.t_p_eval_ms),
            "n_eval": int(data.n_eval),
            "t_eval_ms": float(data.t_eval_ms),
            # Compute graphs llama.cpp reused between decode calls (not KV-cache reuse).
            "n_reused": int(data.n_reused),
        }

    def _generate_one(self, prompt: str, max_new_tokens: int) -> tuple[str, int, tuple[int, ...], tuple[float, ...]]:
        """One greedy sequence: its text, prompt length, token ids and per-token timestamps."""
        stop_at_blank_line = self._combination.model.stop_at_blank_line
        lib, vocab = self._lib, self._vocab
        started = time.perf_counter()
        prompt_tokens = self._prompt_tokens(prompt)
        if len(prompt_tokens) + max_new_tokens > self.n_ctx:
            raise ValueError(
                f"a prompt of {len(prompt_tokens)} tokens plus max_new_tokens={max_new_tokens} does not fit "
                f"the llama.cpp context of {self.n_ctx} tokens (LlamaCppBackend(n_ctx=...))"
            )
        self._clear_state()
        tokens: list[int] = []
        times: list[float] = []
        generated = b""
        iterator = self._llm.generate(prompt_tokens, reset=True, **GREEDY)
        try:
            for token in iterator:
                times.append(time.perf_counter() - started)
                tokens.append(int(token))
                if len(tokens) >= max_new_tokens or lib.llama_vocab_is_eog(vocab, token):
                    break
                if stop_at_blank_line:
                    piece = token_piece(lib, vocab, token)
                    generated += piece
                    if ends_with_blank_line(generated, piece):
                        break
        finally:
            iterator.close()
        text = b"".join(token_piece(lib, vocab, token) for token in tokens).decode("utf-8", errors="ignore")
        text = cut_at_blank_line(text) if stop_at_blank_line else text.strip()
        return text, len(prompt_tokens), tuple(tokens), tuple(times)

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        """Greedy generation of up to ``max_new_tokens`` per prompt, one prompt after the other.

        A sequence also ends at an end-of-generation token and, for models with
        ``stop_at_blank_line``, at the first blank line after some text (that token included in
        the counts; the text is cut before it).
        """
        if self._llm is None:
            raise RuntimeError(f"model {self._combination.id} was closed")
        if max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be a positive integer, got {max_new_tokens!r}")
        results = []
        perf = []
        for prompt in prompts:
            results.append(self._generate_one(prompt, max_new_tokens))
            perf.append(self._perf_counters())
        self._perf = tuple(perf)
        return Generation(
            texts=tuple(text for text, _, _, _ in results),
            prompt_tokens=tuple(n for _, n, _, _ in results),
            generated_tokens=tuple(len(ids) for _, _, ids, _ in results),
            token_ids=tuple(ids for _, _, ids, _ in results),
            sequence_step_times_s=tuple(times for _, _, _, times in results),
            batch_mode=self.batch_mode,
            engine_decode=tuple((int(p["n_eval"]), p["t_eval_ms"] / 1e3) for p in perf),
            engine_clock=ENGINE_CLOCK,
        )

    def perf_counters(self, sequence: int = -1) -> dict[str, float]:
        """llama.cpp's own counters for one sequence of the last :meth:`generate` call (the last
        by default): ``n_p_eval`` prompt tokens evaluated in ``t_p_eval_ms``, ``n_eval`` single-token
        decodes in ``t_eval_ms``, and ``n_reused`` (compute graphs reused, not cached tokens)."""
        if not self._perf:
            raise RuntimeError("perf_counters() needs a generate() call first")
        return dict(self._perf[sequence])

    def weight_bytes(self) -> int:
        """Bytes of the model's tensors as stored (quantized), from ``llama_model_size``."""
        return self._weight_bytes

    def file_bytes(self) -> int | None:
        """Size of the GGUF file (tensors plus metadata and the tokenizer)."""
        return self._file_bytes

    def kv_cache_layout(self) -> KVLayout | None:
        """The KV cache per token, from the GGUF metadata (None where it does not say enough).

        Elements are f16 (llama.cpp's default cache type). Sliding-window layers are counted with
        the pattern the file declares or the one llama.cpp uses for the architecture.
        """
        meta: Mapping[str, str] = self._llm.metadata if self._llm is not None else {}
        arch = meta.get("general.architecture", "")

        def number(key: str) -> int | None:
            value = meta.get(f"{arch}.{key}")
            return int(value) if value is not None and value.isdigit() else None

        layers, heads = number("block_count"), number("attention.head_count")
        kv_heads = number("attention.head_count_kv") or heads
        key_length, value_length = number("attention.key_length"), number("attention.value_length")
        if key_length is None and heads and number("embedding_length"):
            key_length = value_length = (number("embedding_length") or 0) // heads
        if layers is None or kv_heads is None or key_length is None or key_length != value_length:
            return None
        window = number("attention.sliding_window")
        if window is None:
            return KVLayout(layers, kv_heads, key_length, KV_BYTES_PER_ELEMENT)
        pattern = number("attention.sliding_window_pattern") or SWA_PATTERNS.get(arch)
        if pattern is None:
            return None
        sliding = sum(1 for layer in range(layers) if layer % pattern < pattern - 1)
        return KVLayout(layers, kv_heads, key_length, KV_BYTES_PER_ELEMENT, window, sliding)

    def settings(self) -> dict[str, object]:
        """The llama.cpp settings this model runs with, for a benchmark's ``extra_info``."""
        return {
            "llama_cpp_python": str(getattr(self._lib, "__version__", "unknown")),
            "gguf_file": str(self.path),
            "n_threads": self.n_threads,
            "n_ctx": self.n_ctx,
            "n_gpu_layers": self.n_gpu_layers,
            "extra_buffer_types": self.extra_buffer_types,
            "system_info": self.system_info,
            "batch_mode": self.batch_mode,
        }

    def close(self) -> None:
        """Free the model and its context now (later calls to :meth:`generate` fail)."""
        if self._llm is not None:
            self._llm.close()
            self._llm = None
        self._chat_formatter = None

    def __repr__(self) -> str:
        state = "closed" if self._llm is None else f"{self._weight_bytes / 2**20:.0f} MiB"
        return f"<LlamaCppModel {self._combination.id} {self.path.name} {state}>"


__all__ = ["GgufSource", "LlamaCppBackend", "LlamaCppModel", "cut_at_blank_line"]  # re-exported for tests
