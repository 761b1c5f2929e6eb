"""Time bitsandbytes fp4 against nf4 on Gemma 3 270M, both loaded in one process and timed alternately
(docs/matrix-and-models.md: fp4's shard cost factor is nf4's).

One greedy generate of the first shipped summary, in the model's prompt, per round and precision; the
order alternates every round, so load on a shared machine falls on both alike. Prints each precision's
load time, median generate time, tokens/s and weight bytes (after the warm-up), and the ratio of the
medians.

Usage: python scripts/precisions/fp4_vs_nf4.py [--device cpu] [--rounds 8] [--new-tokens 32] [--threads N]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch

from llmbench.backends.transformers_backend import TransformersBackend, TransformersModel
from llmbench.config.combination import Combination
from llmbench.config.models import BUILTIN_MODELS
from llmbench.config.options import default_cache_dir
from llmbench.config.precisions import Precision
from llmbench.data import SHIPPED_DATA, load_items
from llmbench.measure.probes import probes_for

PRECISIONS: tuple[Precision, ...] = ("nf4", "fp4")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--rounds", type=int, default=8, help="timed generates per precision (default 8)")
    parser.add_argument("--new-tokens", type=int, default=32, help="max_new_tokens (default 32)")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    args = parser.parse_args()
    if args.threads is not None:
        torch.set_num_threads(args.threads)
    spec = BUILTIN_MODELS["gemma3-270m"]
    prompt = spec.format_prompt(load_items(SHIPPED_DATA)[0].text)
    models: dict[Precision, TransformersModel] = {}
    for precision in PRECISIONS:
        started = time.perf_counter()
        combination = Combination(spec, precision, args.device, 1)
        models[precision] = TransformersBackend().load(combination, default_cache_dir(), probes_for(args.device).timer)
        print(f"{precision}: loaded in {time.perf_counter() - started:.1f} s")
    for model in models.values():
        model.generate([prompt], 4)  # warm-up: bitsandbytes may re-lay the weights out at the first pass
    times: dict[Precision, list[float]] = {precision: [] for precision in PRECISIONS}
    tokens: dict[Precision, tuple[int, int]] = {}
    for round_number in range(args.rounds):
        for precision in PRECISIONS if round_number % 2 == 0 else PRECISIONS[::-1]:
            started = time.perf_counter()
            result = models[precision].generate([prompt], args.new_tokens)
            times[precision].append(time.perf_counter() - started)
            tokens[precision] = (result.prompt_tokens[0], result.generated_tokens[0])
    for precision in PRECISIONS:
        median = statistics.median(times[precision])
        prompt_tokens, new_tokens = tokens[precision]
        print(
            f"{precision}: median {median:.3f} s for {new_tokens} new tokens after {prompt_tokens} "
            f"({new_tokens / median:.1f} tokens/s, prefill included), weight bytes {models[precision].weight_bytes():,}"
        )
    ratio = statistics.median(times["fp4"]) / statistics.median(times["nf4"])
    print(f"fp4 / nf4 median time: {ratio:.3f} ({args.rounds} rounds each, {torch.get_num_threads()} torch threads)")
    for model in models.values():
        model.close()


if __name__ == "__main__":
    main()
