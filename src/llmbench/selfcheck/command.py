"""``llmbench selfcheck``: run every cross-check on this machine and print the agreement table.

Exit status 0 where every check that ran agrees within its tolerance, 1 where one disagrees, 2 for a
usage error. The models are loaded in this process (one process: no drift between the sides).
"""

from __future__ import annotations

import argparse
import sys
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
    bare_llama_cpp,
    bare_transformers,
    harness_overhead,
    llama_cpp_checks,
    transformers_checks,
)
from llmbench.selfcheck.checks import Check, render_checks
from llmbench.selfcheck.machine import cpu_bandwidth_check, cpu_memory_checks

if TYPE_CHECKING:
    from llmbench.backends.llama_cpp_backend import LlamaCppModel
    from llmbench.backends.transformers_backend import TransformersModel

__all__ = ["add_selfcheck_arguments", "run_selfcheck", "selfcheck_main"]


def _positive(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be a positive integer, got {text!r}")
    return value


def add_selfcheck_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--model", default="gemma3-270m", metavar="NAME", help="a built-in model. Default: %(default)r")
    parser.add_argument(
        "--gguf-precision", default="q4_k_m", metavar="PRECISION",
        help="the llama.cpp precision checked against its counters ('none': skip). Default: %(default)r",
    )  # fmt: skip
    parser.add_argument(
        "--torch-precision", default="bf16", metavar="PRECISION",
        help="the transformers precision checked against a bare generate ('none': skip). Default: %(default)r",
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=_positive, default=9, metavar="N",
        help="interleaved rounds of each speed check (the median over rounds). Default: %(default)r",
    )  # fmt: skip
    parser.add_argument(
        "--pairs", type=_positive, default=10, metavar="N",
        help="interleaved harness/bare pairs for the overhead. Default: %(default)r",
    )  # fmt: skip
    parser.add_argument(
        "--max-new-tokens", type=_positive, default=32, metavar="N", help="tokens per generation. Default: %(default)r"
    )
    parser.add_argument(
        "--cache-dir", type=Path, default=None, metavar="DIR",
        help="where converted and assembled weights are kept. Default: ~/.cache/llmbench",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=_positive, default=None, metavar="N",
        help="CPU threads for llama.cpp and torch. Default: the libraries' own",
    )  # fmt: skip


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
        model = backend.load(combination, cache_dir)
    except BackendUnavailable as error:
        return _skipped(names, str(error))
    try:
        return checks(model)
    finally:
        model.close()


def run_selfcheck(args: argparse.Namespace, say: Callable[[str], None]) -> list[Check]:
    """Every check, in order: llama.cpp counters and overhead, transformers bare loop and overhead, machine."""
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
        overhead = harness_overhead(lambda: model.generate(prompts, args.max_new_tokens), bare, memory, args.pairs)
        found.append(overhead.check("harness overhead (llama.cpp)", "LlamaCppModel.generate"))
        found.extend(cpu_memory_checks(lambda: model.generate(prompts, args.max_new_tokens)))
        return found

    def transformers(model: TransformersModel) -> list[Check]:
        found = transformers_checks(model, prompts, args.max_new_tokens, args.rounds)
        longest = max(model.generate(prompts, args.max_new_tokens).generated_tokens)
        bare = bare_transformers(model, prompts, longest)
        overhead = harness_overhead(lambda: model.generate(prompts, longest), bare, memory, args.pairs)
        found.append(overhead.check("harness overhead (transformers)", "TransformersModel.generate"))
        return found

    if args.gguf_precision != "none":
        say(f"llama.cpp: {spec.name} {args.gguf_precision} cpu ...")
        names = ("engine decode vs llama.cpp counters", "end-to-end decode vs llama.cpp counters")
        combination = Combination(spec, args.gguf_precision, "cpu", 1)
        out.extend(_with_model(combination, cache_dir, args.threads, llama, names))
    if args.torch_precision != "none":
        say(f"transformers: {spec.name} {args.torch_precision} cpu (a first run converts the weights once) ...")
        names = ("end-to-end decode vs bare generate", "engine decode vs bare forward loop")
        combination = Combination(spec, args.torch_precision, "cpu", 1)
        out.extend(_with_model(combination, cache_dir, args.threads, transformers, names))
    say("bandwidth ...")
    out.append(cpu_bandwidth_check())
    return out


def selfcheck_main(args: argparse.Namespace) -> int:
    if args.model not in BUILTIN_MODELS:
        known = ", ".join(sorted(BUILTIN_MODELS))
        print(f"llmbench selfcheck: --model {args.model!r} is not a built-in model; known: {known}", file=sys.stderr)
        return 2
    checks = run_selfcheck(args, lambda line: print(line, file=sys.stderr, flush=True))
    for line in render_checks(checks):
        print(line)
    return 1 if any(c.status == "DISAGREES" for c in checks) else 0
