"""``llmbench selfcheck``: run every cross-check on this machine and print the agreement table.

Exit status 0 where every check that ran agrees within its tolerance, 1 where one disagrees (what to fix
is printed under the table), 2 for a usage error. ``--device cpu`` loads the models in this process (one
process: no drift between the sides); ``--device cuda`` checks the GPU's timer, driver memory, energy
counter and fingerprint. The checks are :func:`llmbench.selfcheck.run.run_selfcheck`. See
docs/metrics.md and docs/gpu.md.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from llmbench.commands.arguments import positive_int
from llmbench.config.models import BUILTIN_MODELS
from llmbench.selfcheck.agreement import MAX_PAIRS
from llmbench.selfcheck.checks import render_checks
from llmbench.selfcheck.cuda_device import cuda_unavailable_reason
from llmbench.selfcheck.run import run_selfcheck

__all__ = ["add_selfcheck_arguments", "selfcheck_main"]


def selfcheck_device(text: str) -> str:
    """``--device``: ``cpu``, ``cuda`` or ``cuda:<index>``."""
    kind, colon, index = text.partition(":")
    if text == "cpu" or (kind == "cuda" and (not colon or index.isdigit())):
        return text
    raise argparse.ArgumentTypeError(f"{text!r} is not a device; allowed: 'cpu', 'cuda', 'cuda:<index>'")


def add_selfcheck_arguments(parser: argparse.ArgumentParser) -> None:
    """Arguments of ``llmbench selfcheck``."""
    parser.add_argument(
        "--device", type=selfcheck_device, default="cpu", metavar="DEVICE",
        help=(
            "where to check: 'cpu' (the models' figures, bandwidth, peak RSS), 'cuda' or 'cuda:<index>' (the "
            "GPU's timer, driver memory, energy counter and fingerprint; the model options do not apply). "
            "Default: %(default)r"
        ),
    )  # fmt: skip
    parser.add_argument("--model", default="gemma3-270m", metavar="NAME", help="a built-in model. Default: %(default)r")
    parser.add_argument(
        "--gguf-precision", default="q4_k_m", metavar="PRECISION",
        help="the llama.cpp precision checked against its counters ('none': skip). Default: %(default)r",
    )  # fmt: skip
    parser.add_argument(
        "--torch-precision", default="fp32", metavar="PRECISION",
        help=(
            "the transformers precision checked against a bare generate ('none': skip); fp32 by default: bf16 on a "
            "CPU without bf16 instructions reads within the rows' 3%% by little (docs/metrics.md). Default: %(default)r"
        ),
    )  # fmt: skip
    parser.add_argument(
        "--rounds", type=positive_int, default=9, metavar="N",
        help=(
            "interleaved rounds of each speed check (the median over rounds); with --device cuda, the timer "
            "row's pairs. Default: %(default)r"
        ),
    )  # fmt: skip
    parser.add_argument(
        "--pairs", type=positive_int, default=10, metavar="N",
        help=(
            "interleaved harness/bare pairs for the overhead, and how many more each time its row reads noisy "
            "(up to --max-pairs). Default: %(default)r"
        ),
    )  # fmt: skip
    parser.add_argument(
        "--max-pairs", type=positive_int, default=MAX_PAIRS, metavar="N",
        help="the most overhead pairs per backend while its row reads noisy (docs/metrics.md). Default: %(default)r",
    )  # fmt: skip
    parser.add_argument(
        "--max-new-tokens", type=positive_int, default=32, metavar="N",
        help="tokens per generation. Default: %(default)r",
    )  # fmt: skip
    parser.add_argument(
        "--cache-dir", type=Path, default=None, metavar="DIR",
        help="where converted and assembled weights are kept. Default: ~/.cache/llmbench",
    )  # fmt: skip
    parser.add_argument(
        "--threads", type=positive_int, default=None, metavar="N",
        help="CPU threads for llama.cpp and torch. Default: the libraries' own",
    )  # fmt: skip


def selfcheck_main(args: argparse.Namespace) -> int:
    """``llmbench selfcheck``: 0 every check agrees, 1 one disagrees, 2 an unknown model or a device that is
    not here."""
    if args.model not in BUILTIN_MODELS:
        known = ", ".join(sorted(BUILTIN_MODELS))
        print(f"llmbench selfcheck: --model {args.model!r} is not a built-in model; known: {known}", file=sys.stderr)
        return 2
    if args.device != "cpu":
        reason = cuda_unavailable_reason(args.device)
        if reason is not None:
            print(
                f"llmbench selfcheck: --device {args.device!r}: {reason}; run it where torch's CUDA build sees the "
                "GPU (docs/gpu.md), or use --device cpu",
                file=sys.stderr,
            )
            return 2
    checks = run_selfcheck(args, lambda line: print(line, file=sys.stderr, flush=True))
    for line in render_checks(checks):
        print(line)
    return 1 if any(c.status == "DISAGREES" for c in checks) else 0
