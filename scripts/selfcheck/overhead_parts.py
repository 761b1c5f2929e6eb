"""What each probe of the transformers harness costs, timed on its own (issue 14, docs/metrics.md).

Usage (from the repository root)::

    .venv/bin/python scripts/selfcheck/overhead_parts.py --model gemma3-270m --precision fp32 --threads 1

An interleaved harness/bare comparison of whole calls cannot resolve well under 1% on a shared
machine (calls vary by 1-3% from one to the next); the probes' own costs can be timed in isolation
many times over, on the loaded model and its tokenizer:

- the forward clock: a module call with the forward clock's two hooks against one without (the same
  ``torch.nn.Module.__call__`` dispatch; a hook's work is one ``Timer`` mark);
- the step clock: ``StepClock.put`` of one step's token;
- the blank-line stop: ``BlankLineStop`` after each of the g steps (it decodes the generated tokens);
- the memory probe: entering and leaving ``measure()`` once per call.

The sum per call over the bare call's median latency is the overhead the probes add. Not itemized:
setting up the clocks and cutting and decoding the rows once per call (an application decodes too);
the interleaved comparison of whole calls (``llmbench selfcheck``, benchmarks/test_overhead.py) has them.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))  # bare_loop, beside this file
from bare_loop import load_spec
from transformers import AutoTokenizer

from llmbench.backends.hf_generation import BlankLineStop, ForwardClock, StepClock
from llmbench.backends.hf_sources import resolve_source
from llmbench.backends.transformers_backend import TransformersBackend
from llmbench.config.combination import Combination
from llmbench.config.options import default_cache_dir
from llmbench.config.precisions import is_known_precision
from llmbench.data import SHIPPED_DATA, load_items
from llmbench.measure.probes import probes_for
from llmbench.selfcheck.agreement import bare_transformers


def per_call_s(call: Callable[[], object], repeats: int) -> float:
    """The best of 5 batches of ``repeats`` calls, per call (the best: a busy machine only adds)."""
    best = float("inf")
    for _ in range(5):
        started = time.perf_counter()
        for _ in range(repeats):
            call()
        best = min(best, (time.perf_counter() - started) / repeats)
    return best


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}", flush=True)
    if not is_known_precision(args.precision):
        raise SystemExit(f"--precision {args.precision!r} is not a known precision")
    with tempfile.TemporaryDirectory() as scratch:
        spec = load_spec(args.model, Path(scratch))
        combination = Combination(spec, args.precision, "cpu", 1)
        model = TransformersBackend().load(combination, default_cache_dir(), probes_for("cpu").timer)
        tokenizer = AutoTokenizer.from_pretrained(resolve_source(spec, default_cache_dir()).name_or_path)
    prompt = spec.format_prompt(load_items(SHIPPED_DATA)[0].text)
    generation = model.generate([prompt], args.tokens)
    g = max(generation.generated_tokens)
    bare = bare_transformers(model, [prompt], g)
    bare()
    latency = statistics.median(_timed(bare) for _ in range(5))

    class Noop(torch.nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return x

    noop, x = Noop(), torch.zeros(1)
    plain = per_call_s(lambda: noop(x), 20000)
    clock = ForwardClock(noop, probes_for("cpu").timer)
    with clock.measure():
        hooked = per_call_s(lambda: noop(x), 20000)
    stamps = StepClock()
    stamps.put(torch.zeros(1, 5, dtype=torch.long))
    step_token = torch.zeros(1, dtype=torch.long)
    put = per_call_s(lambda: stamps.put(step_token), 20000)
    stamps.stamps.clear()
    input_ids, _ = model.encode([prompt])
    full = torch.cat([input_ids, torch.tensor([list(generation.token_ids[0])])], dim=1)
    length = input_ids.shape[1]

    def stop_all_steps() -> None:
        stop = BlankLineStop(tokenizer, 1)
        for k in range(1, g + 1):
            stop(full[:, : length + k], None)

    stop_per_call = per_call_s(stop_all_steps, 20)
    memory = probes_for("cpu").memory

    def probe() -> None:
        with memory.measure():
            pass

    probe_per_call = per_call_s(probe, 200)
    forwards = g  # one forward per step, the prefill included
    parts = {
        "forward clock hooks": (hooked - plain) * forwards,
        "step clock put": put * g,
        "blank-line stop": stop_per_call,
        "memory probe": probe_per_call,
    }
    print(f"model {args.model} {args.precision}: {g} tokens, bare call median {latency * 1e3:.1f} ms")
    print(f"module call: {plain * 1e6:.2f} us plain, {hooked * 1e6:.2f} us with the forward clock's hooks")
    total = 0.0
    for name, seconds in parts.items():
        total += seconds
        print(f"  {name:22s} {seconds * 1e6:10.1f} us per call  {seconds / latency:+.4%} of the bare call")
    print(f"  {'sum':22s} {total * 1e6:10.1f} us per call  {total / latency:+.4%}")
    print(f"load average after: {os.getloadavg()}")


def _timed(call: Callable[[], object]) -> float:
    started = time.perf_counter()
    call()
    return time.perf_counter() - started


if __name__ == "__main__":
    main()
