"""Every cross-check of ``llmbench selfcheck`` on this machine, in order (:func:`run_selfcheck`).

On the CPU (``--device cpu``) the models are loaded in this process (one process: no drift between the
sides); on a GPU (``--device cuda``) the rows are :mod:`llmbench.selfcheck.gpu_checks`, on matmuls and a
known allocation (no model). The command, its options and the agreement table it prints are
:mod:`llmbench.commands.selfcheck`.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from llmbench.backends import BackendUnavailable, get_backend
from llmbench.config.combination import Combination
from llmbench.config.models import BUILTIN_MODELS
from llmbench.config.options import default_cache_dir
from llmbench.data import SHIPPED_DATA, load_items
from llmbench.measure.probes import probes_for
from llmbench.selfcheck.agreement import (
    MAX_PAIRS,
    bare_llama_cpp,
    bare_transformers,
    harness_overhead,
    llama_cpp_checks,
    transformers_checks,
)
from llmbench.selfcheck.checks import Check
from llmbench.selfcheck.cuda_device import open_cuda_device
from llmbench.selfcheck.gpu_checks import cuda_checks
from llmbench.selfcheck.machine import cpu_bandwidth_check, cpu_memory_checks

if TYPE_CHECKING:
    from llmbench.backends.llama_cpp_backend import LlamaCppModel
    from llmbench.backends.transformers_backend import TransformersModel

__all__ = ["run_selfcheck"]


def _skipped(names: Sequence[str], reason: str) -> list[Check]:
    return [Check(name, None, None, "tok/s", 0.0, skipped=reason) for name in names]


def _with_model(
    combination: Combination, cache_dir: Path, threads: int | None, checks: Callable[[Any], list[Check]],
    names: Sequence[str],
) -> list[Check]:  # fmt: skip
    backend = get_backend(combination.backend, threads)
    reason = backend.unavailable_reason(combination.model, combination.precision, combination.device)
    if reason is not None:
        return _skipped(names, reason)
    try:
        model = backend.load(combination, cache_dir, probes_for(combination.device).timer)
    except BackendUnavailable as error:
        return _skipped(names, str(error))
    try:
        return checks(model)
    finally:
        model.close()


def _max_pairs(args: argparse.Namespace) -> int:
    return max(int(args.pairs), int(getattr(args, "max_pairs", MAX_PAIRS)))


def run_selfcheck(args: argparse.Namespace, say: Callable[[str], None]) -> list[Check]:
    """Every check, in order: on the CPU llama.cpp counters and overhead, transformers bare loop and
    overhead, machine; on a CUDA device (``args.device``, checked available first) its rows."""
    if args.device != "cpu":
        return cuda_checks(open_cuda_device(args.device), args.rounds, say)
    spec = BUILTIN_MODELS[args.model]
    cache_dir = args.cache_dir or default_cache_dir()
    prompts = [spec.format_prompt(load_items(SHIPPED_DATA)[0].text)]
    memory = probes_for("cpu").memory
    if args.threads is not None:
        import torch

        torch.set_num_threads(args.threads)
    out: list[Check] = []

    def llama(model: LlamaCppModel) -> list[Check]:
        found = llama_cpp_checks(model, prompts, args.max_new_tokens, args.rounds)
        counts = model.generate(prompts, args.max_new_tokens).generated_tokens
        bare = bare_llama_cpp(model, prompts, counts)
        overhead = harness_overhead(
            lambda: model.generate(prompts, args.max_new_tokens), bare, memory, args.pairs, _max_pairs(args)
        )
        found.append(overhead.check("harness overhead (llama.cpp)", "LlamaCppModel.generate"))
        found.extend(cpu_memory_checks(lambda: model.generate(prompts, args.max_new_tokens)))
        return found

    def transformers(model: TransformersModel) -> list[Check]:
        found = transformers_checks(model, prompts, args.max_new_tokens, args.rounds)
        longest = max(model.generate(prompts, args.max_new_tokens).generated_tokens)
        bare = bare_transformers(model, prompts, longest)
        overhead = harness_overhead(
            lambda: model.generate(prompts, longest), bare, memory, args.pairs, _max_pairs(args)
        )
        found.append(overhead.check("harness overhead (transformers)", "TransformersModel.generate"))
        return found

    if args.gguf_precision != "none":
        say(f"llama.cpp: {spec.name} {args.gguf_precision} cpu ...")
        names: tuple[str, ...] = (
            "decode tokens vs llama.cpp n_eval", "engine decode vs timed llama_decode calls",
            "end-to-end decode vs llama.cpp counters", "harness overhead (llama.cpp)", "peak RSS vs sampled RSS",
            "peak RSS vs a known allocation",
        )  # fmt: skip
        combination = Combination(spec, args.gguf_precision, "cpu", 1)
        out.extend(_with_model(combination, cache_dir, args.threads, llama, names))
    if args.torch_precision != "none":
        say(f"transformers: {spec.name} {args.torch_precision} cpu (a first run converts the weights once) ...")
        names = (
            "end-to-end decode vs bare generate", "engine decode vs bare forward loop",
            "harness overhead (transformers)",
        )  # fmt: skip
        combination = Combination(spec, args.torch_precision, "cpu", 1)
        out.extend(_with_model(combination, cache_dir, args.threads, transformers, names))
    say("bandwidth ...")
    out.append(cpu_bandwidth_check())
    return out
