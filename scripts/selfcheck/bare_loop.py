"""Where the transformers decode figures and a bare ``model.generate`` part (issue 14, docs/metrics.md).

Usage (from the repository root; one process, the sides interleaved round by round, their order rotated)::

    .venv/bin/python scripts/selfcheck/bare_loop.py --model tiny --rounds 30 --tokens 32 --threads 1
    .venv/bin/python scripts/selfcheck/bare_loop.py --model gemma3-270m --precision fp32 --rounds 12 --threads 1

Per round, seven calls on the same prompt (the first shipped article), in an order that rotates:

- ``harness``: ``TransformersModel.generate`` for g tokens: its step-clock decode rate
  (g - 1) / (t[g-1] - t[0]), its forward-clock (engine) rate, and its wall time;
- ``bare(g)`` and ``bare(1)``: ``model.generate`` for g and 1 new tokens, nothing attached, each with
  its own prefill (the selfcheck's reference before issue 14's fix);
- ``stamped(g)``: ``model.generate`` for g tokens with a streamer that only stamps each step;
- ``cached(g)`` and ``cached(1)``: ``model.generate`` from a copy of the prompt's KV cache (no prefill
  in the call), and ``forwards``: the model's forward in a bare loop from that cache, each call timed
  (the selfcheck's references now: src/llmbench/selfcheck/hf_bare.py).

With ``--parts``, four more calls per round time the harness's attachments one at a time on the
cached-prompt ``model.generate`` for g tokens: its streamer (the step clock), its stopping criterion
(the blank-line stop), its forward hooks (the forward clock) and all three, each against the bare
cached call of the same round: where the end-to-end row's difference from a bare ``generate`` comes from.

It prints every round, then the reference rates: the per-round difference (g - 1) / (T(g) - T(1))
with and without the prefill in the calls, the same from the medians of T(g) and T(1), the stamped
bare call and the forward loop; the spread of each side says how much of a difference is noise.
"""

from __future__ import annotations

import argparse
import functools
import os
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import torch
from transformers import StoppingCriteriaList

from llmbench.backends.hf_generation import BlankLineStop, ForwardClock, StepClock
from llmbench.backends.transformers_backend import TransformersBackend, TransformersModel
from llmbench.config.combination import Combination, ModelSpec
from llmbench.config.models import BUILTIN_MODELS
from llmbench.config.options import default_cache_dir
from llmbench.config.precisions import is_known_precision
from llmbench.data import SHIPPED_DATA, load_items
from llmbench.measure.speed import engine_decode_rate, round_speed
from llmbench.measure.timers import CpuTimer
from llmbench.selfcheck.hf_bare import PrefilledPrompt
from llmbench.testing.tiny_models import build_tiny_gemma3


def load_spec(name: str, scratch: Path) -> ModelSpec:
    """The tiny test model (built into ``scratch``) or a built-in model."""
    if name == "tiny":
        return ModelSpec(name="tiny", family="causal", source=f"path:{build_tiny_gemma3(scratch)}")
    return BUILTIN_MODELS[name]


def load(name: str, precision: str, scratch: Path) -> tuple[TransformersModel, str]:
    if not is_known_precision(precision):
        raise SystemExit(f"--precision {precision!r} is not a known precision")
    spec = load_spec(name, scratch)
    model = TransformersBackend().load(Combination(spec, precision, "cpu", 1), default_cache_dir(), CpuTimer())
    return model, spec.format_prompt(load_items(SHIPPED_DATA)[0].text)


def bare(model: TransformersModel, prompt: str, tokens: int, streamer: StepClock | None = None) -> float:
    started = time.perf_counter()
    input_ids, attention_mask = model.encode([prompt])
    with torch.inference_mode():
        model.model.generate(  # type: ignore[operator]
            input_ids=input_ids, attention_mask=attention_mask, max_new_tokens=tokens, streamer=streamer
        )
    return time.perf_counter() - started


def spread(values: list[float]) -> str:
    q = statistics.quantiles(values, n=4)
    return f"median {statistics.median(values):.5g}  IQR/median {(q[2] - q[0]) / statistics.median(values):.1%}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", default="tiny", help="'tiny' (built offline) or a built-in model")
    parser.add_argument("--precision", default="fp32")
    parser.add_argument("--rounds", type=int, default=20)
    parser.add_argument("--tokens", type=int, default=32)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--parts", action="store_true", help="also time each of the harness's attachments")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"load average before: {os.getloadavg()}  torch threads: {torch.get_num_threads()}", flush=True)
    with tempfile.TemporaryDirectory() as scratch:
        model, prompt = load(args.model, args.precision, Path(scratch))
    g = max(model.generate([prompt], args.tokens).generated_tokens)
    print(f"model {args.model} {args.precision}: {g} tokens per call", flush=True)
    names = ("h_step", "h_engine", "h_wall", "bare_g", "bare_1", "st_rate", "cached_g", "cached_1", "fwd_rate")
    rows: dict[str, list[float]] = {k: [] for k in names}
    prefilled = PrefilledPrompt(model, [prompt])

    def harness() -> None:
        started = time.perf_counter()
        generation = model.generate([prompt], g)
        rows["h_wall"].append(time.perf_counter() - started)
        assert generation.generated_tokens == (g,), generation.generated_tokens
        rows["h_step"].append(round_speed(generation).decode_steps_per_s or float("nan"))
        rows["h_engine"].append(engine_decode_rate(generation) or float("nan"))

    def stamped() -> None:
        clock = StepClock()
        bare(model, prompt, g, clock)
        rows["st_rate"].append((g - 1) / (clock.stamps[g - 1] - clock.stamps[0]))

    sides: list[Callable[[], None]] = [
        harness,
        lambda: rows["bare_g"].append(bare(model, prompt, g)),
        lambda: rows["bare_1"].append(bare(model, prompt, 1)),
        stamped,
        lambda: rows["cached_g"].append(prefilled.generate_s(g)),
        lambda: rows["cached_1"].append(prefilled.generate_s(1)),
        lambda: rows["fwd_rate"].append((g - 1) / prefilled.forward_decode_s(g)),
    ]
    parts = ("stream", "stop", "hooks", "all")
    if args.parts:
        for part in parts:
            rows[f"c_{part}"] = []
            sides.append(functools.partial(lambda p: rows[f"c_{p}"].append(attached(model, prefilled, g, p)), part))
    for side in sides:  # warm-up
        side()
    for row in rows.values():
        row.clear()
    print("round   h_step  h_engine   st_rate  bare_diff cach_diff  fwd_rate    h_wall    bare_g    bare_1", flush=True)
    for r in range(args.rounds):
        for k in range(len(sides)):
            sides[(r + k) % len(sides)]()
        diff = (g - 1) / (rows["bare_g"][-1] - rows["bare_1"][-1])
        cached = (g - 1) / (rows["cached_g"][-1] - rows["cached_1"][-1])
        print(
            f"{r:5d} {rows['h_step'][-1]:8.2f} {rows['h_engine'][-1]:9.2f} {rows['st_rate'][-1]:9.2f} {diff:10.2f}"
            f" {cached:9.2f} {rows['fwd_rate'][-1]:9.2f} {rows['h_wall'][-1]:9.4f} {rows['bare_g'][-1]:9.4f}"
            f" {rows['bare_1'][-1]:9.4f}",
            flush=True,
        )
    per_round = [(g - 1) / (a - b) for a, b in zip(rows["bare_g"], rows["bare_1"], strict=True)]
    cached_rounds = [(g - 1) / (a - b) for a, b in zip(rows["cached_g"], rows["cached_1"], strict=True)]
    of_medians = (g - 1) / (statistics.median(rows["bare_g"]) - statistics.median(rows["bare_1"]))
    print(f"\nload average after: {os.getloadavg()}")
    for name in rows:
        print(f"{name:9s} {spread(rows[name])}")
    print(f"bare_diff {spread(per_round)}")
    print(f"cach_diff {spread(cached_rounds)}")
    print("\nreference rates (tok/s); the harness's step clock and engine (forward clock) against each:")
    step, engine = statistics.median(rows["h_step"]), statistics.median(rows["h_engine"])
    for name, reference in (
        ("per-round (g-1)/(T(g)-T(1)), prefill in both", statistics.median(per_round)),
        ("(g-1)/(median T(g) - median T(1)), prefill in both", of_medians),
        ("per-round (g-1)/(T(g)-T(1)), cached prompt", statistics.median(cached_rounds)),
        ("stamped bare generate (streamer stamps only)", statistics.median(rows["st_rate"])),
        ("bare forward loop, each call timed", statistics.median(rows["fwd_rate"])),
    ):
        print(f"  {name:52s} {reference:9.3f}  step {step / reference - 1:+.2%}  engine {engine / reference - 1:+.2%}")
    paired = [
        (
            "step clock / cached-prompt generate",
            cached_rounds,
            "h_step",
        ),
        ("engine / bare forward loop", rows["fwd_rate"], "h_engine"),
    ]
    for name, references, key in paired:
        ratios = [h / r - 1 for h, r in zip(rows[key], references, strict=True)]
        q = statistics.quantiles(ratios, n=4)
        print(f"paired per round, {name}: median {statistics.median(ratios):+.2%}, quartiles {q[0]:+.2%} {q[2]:+.2%}")
    walls = [h / b for h, b in zip(rows["h_wall"], rows["bare_g"], strict=True)]
    print(f"harness wall / bare(g) wall - 1, median over rounds: {statistics.median(walls) - 1:+.2%}")
    if args.parts:
        print("\neach attachment on the cached-prompt generate(g), against the bare one of the same round: the extra "
              "seconds per call, and as a share of the bare call's g - 1 decode steps (T(g) - T(1))")
        for part in parts:
            extra = [a - b for a, b in zip(rows[f"c_{part}"], rows["cached_g"], strict=True)]
            share = [e / (b - one) for e, b, one in zip(extra, rows["cached_g"], rows["cached_1"], strict=True)]
            q = statistics.quantiles(share, n=4)
            print(f"  {part:7s} {statistics.median(extra) * 1000:+8.2f} ms  {statistics.median(share):+.2%} of the "
                  f"decode (quartiles {q[0]:+.2%} {q[2]:+.2%})")


def attached(model: TransformersModel, prefilled: PrefilledPrompt, tokens: int, part: str) -> float:
    """Seconds of the cached-prompt ``generate`` with one of the harness's attachments (or ``all``)."""
    streamer = StepClock() if part in ("stream", "all") else None
    stop = StoppingCriteriaList([BlankLineStop(model._tokenizer, 1)]) if part in ("stop", "all") else None
    if part not in ("hooks", "all"):
        return prefilled.generate_s(tokens, streamer=streamer, stopping_criteria=stop)
    with ForwardClock(model.model, CpuTimer()).measure():
        return prefilled.generate_s(tokens, streamer=streamer, stopping_criteria=stop)


if __name__ == "__main__":
    main()
