"""Speed, size and bandwidth-utilization figures derived from what ``generate`` recorded.

Input: the :class:`~llmbench.engine_types.Generation` of each timed round (step timestamps in
seconds from the start of the call; for a sequential backend, from the start of each sequence)
and the latency of each round. Output: :class:`~llmbench.metrics.Metric` objects whose ``value``
is the median over rounds and whose ``samples`` are the per-round values. A figure that cannot be
computed is ``None``, shown as n/a; nothing here divides by zero. Formulas: :func:`round_speed`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from llmbench.engine_types import Generation, KVLayout
from llmbench.metrics import Metric, median

__all__ = [
    "RoundSpeed",
    "SequenceSpeed",
    "engine_decode_metric",
    "engine_decode_rate",
    "file_bytes_metric",
    "kv_cache_bytes",
    "kv_cache_metric",
    "latency_metric",
    "load_s_metric",
    "mbu_metric",
    "model_bandwidth_utilization",
    "round_speed",
    "sequence_speeds",
    "speed_metrics",
    "weight_bytes_metric",
]


@dataclass(frozen=True)
class RoundSpeed:
    """The speed figures of one ``generate`` call (None where not computable)."""

    ttft_s: float | None
    prefill_tok_s: float | None
    decode_tok_s_per_seq: float | None
    decode_tok_s_total: float | None
    #: Decode steps per second, each of which reads all the weights once (for MBU).
    decode_steps_per_s: float | None
    #: Mean tokens in one sequence's KV cache over the decode steps (prompt + half the generated).
    kv_tokens_per_seq: float | None
    #: Sequences whose KV caches one decode step reads.
    kv_batch: int


def _ratio(numerator: float, denominator: float) -> float | None:
    if denominator <= 0 or not math.isfinite(denominator) or not math.isfinite(numerator):
        return None
    return numerator / denominator


def _mean(values: Sequence[float | None]) -> float | None:
    present = [v for v in values if v is not None]
    return sum(present) / len(present) if present else None


def _check_shape(generation: Generation) -> int:
    batch = len(generation.generated_tokens)
    if len(generation.prompt_tokens) != batch:
        raise ValueError(f"Generation has {len(generation.prompt_tokens)} prompt_tokens entries for a batch of {batch}")
    if any(g < 0 for g in generation.generated_tokens) or any(p < 0 for p in generation.prompt_tokens):
        raise ValueError("Generation has a negative token count")
    return batch


def _batched(generation: Generation) -> RoundSpeed:
    batch = _check_shape(generation)
    times = generation.step_times_s
    longest = max(generation.generated_tokens, default=0)
    if not times or longest == 0:
        return RoundSpeed(None, None, None, None, None, None, batch)
    if len(times) < longest:
        raise ValueError(f"Generation has {len(times)} step times but a sequence generated {longest} tokens")
    first = times[0]
    ttft = first if first > 0 else None
    prefill = _ratio(sum(generation.prompt_tokens), first)
    per_seq = _mean([_ratio(g - 1, times[g - 1] - first) for g in generation.generated_tokens if g >= 2])
    after_first = sum(max(g - 1, 0) for g in generation.generated_tokens)
    # One step produces a token for every running sequence and reads the weights once: the step
    # rate is the decode rate of the longest sequence.
    steps_per_s = _ratio(longest - 1, times[longest - 1] - first) if longest >= 2 else None
    total = _ratio(after_first, times[longest - 1] - first) if longest >= 2 else None
    # A padded batch: every row's cache is as long as the longest prompt plus the steps so far,
    # and every row is read at every step (finished rows too).
    kv_tokens = max(generation.prompt_tokens, default=0) + longest / 2 if longest >= 2 else None
    return RoundSpeed(ttft, prefill, per_seq, total, steps_per_s, kv_tokens, batch)


def _sequential(generation: Generation) -> RoundSpeed:
    batch = _check_shape(generation)
    all_times = generation.sequence_step_times_s
    if not all_times:
        return RoundSpeed(None, None, None, None, None, None, 1)
    if len(all_times) != batch:
        raise ValueError(f"Generation has {len(all_times)} sequence_step_times_s entries for a batch of {batch}")
    ttfts: list[float | None] = []
    prefills: list[float | None] = []
    rates: list[float | None] = []
    decode_tokens, decode_time, kv_weighted = 0, 0.0, 0.0
    for prompt, generated, times in zip(generation.prompt_tokens, generation.generated_tokens, all_times, strict=True):
        if not times or generated == 0:
            continue  # not recorded, or nothing generated: n/a for this sequence
        if len(times) < generated:
            raise ValueError(f"Generation has {len(times)} step times for a sequence that generated {generated} tokens")
        first = times[0]
        ttfts.append(first if first > 0 else None)
        prefills.append(_ratio(prompt, first))
        if generated >= 2:
            elapsed = times[generated - 1] - first
            rates.append(_ratio(generated - 1, elapsed))
            if elapsed > 0:
                decode_tokens += generated - 1
                decode_time += elapsed
                # Mean cache length over this sequence's decode steps 1..g-1 is p + g/2.
                kv_weighted += (generated - 1) * (prompt + generated / 2)
    # Every generated token is its own step reading all the weights: steps/s = the total rate.
    total = _ratio(decode_tokens, decode_time)
    kv_tokens = kv_weighted / decode_tokens if decode_tokens else None
    return RoundSpeed(_mean(ttfts), _mean(prefills), _mean(rates), total, total, kv_tokens, 1)


_ROUND_SPEED: dict[str, Callable[[Generation], RoundSpeed]] = {
    "batched": _batched,
    "sequential": _sequential,
}


def round_speed(generation: Generation) -> RoundSpeed:
    """The speed figures of one round.

    Definitions per round (``g_i`` tokens generated and ``p_i`` prompt tokens for sequence ``i``,
    ``t`` the step timestamps):

    ``ttft_s``
        batched: ``t[0]``, the batch's first step (the call's start to its first tokens);
        sequential: the mean over sequences of their ``t_i[0]`` (each from its own start).
    ``prefill_tok_s``
        batched: ``sum(p_i) / t[0]``, the whole batch's prompt tokens over the batch's TTFT;
        sequential: the mean over sequences of ``p_i / t_i[0]``.
    ``decode_tok_s_per_seq``
        batched: the mean over sequences of ``(g_i - 1) / (t[g_i - 1] - t[0])`` (each sequence up to
        its own last step); sequential: the mean over sequences of ``(g_i - 1) / (t_i[g_i - 1] - t_i[0])``.
    ``decode_tok_s_total``
        batched: ``sum(g_i - 1) / (t[G - 1] - t[0])`` with ``G = max(g_i)``, all tokens after the first
        step over the batch's decode time; sequential: ``sum(g_i - 1) / sum(t_i[g_i - 1] - t_i[0])``.

    Sequences without a decode phase (``g_i < 2``) are left out of the per-sequence means.
    """
    try:
        compute = _ROUND_SPEED[generation.batch_mode]
    except KeyError:
        raise ValueError(
            f"Generation.batch_mode {generation.batch_mode!r} is not one of {sorted(_ROUND_SPEED)}"
        ) from None
    return compute(generation)


@dataclass(frozen=True)
class SequenceSpeed:
    """The speed figures of one sequence of a ``generate`` call (None where not computable)."""

    ttft_s: float | None
    decode_tok_s: float | None


def sequence_speeds(generation: Generation) -> list[SequenceSpeed]:
    """Each sequence's own TTFT and decode rate, in batch order (the per-item figures of
    :mod:`llmbench.measure.per_item`); the same definitions as :func:`round_speed`'s, for one sequence:

    ``ttft_s``
        batched: ``t[0]``, the batch's first step (one prefill for the whole batch: every row has it);
        sequential: ``t_i[0]``, from the sequence's own start.
    ``decode_tok_s``
        batched: ``(g_i - 1) / (t[g_i - 1] - t[0])``; sequential: ``(g_i - 1) / (t_i[g_i - 1] - t_i[0])``;
        None with fewer than 2 generated tokens.
    """
    batch = _check_shape(generation)
    if generation.batch_mode == "sequential":
        all_times = generation.sequence_step_times_s or tuple(() for _ in range(batch))
        if len(all_times) != batch:
            raise ValueError(f"Generation has {len(all_times)} sequence_step_times_s entries for a batch of {batch}")
    elif generation.batch_mode == "batched":
        all_times = tuple(generation.step_times_s for _ in range(batch))
    else:
        raise ValueError(f"Generation.batch_mode {generation.batch_mode!r} is not one of {sorted(_ROUND_SPEED)}")
    out = []
    for generated, times in zip(generation.generated_tokens, all_times, strict=True):
        if not times or generated == 0:
            out.append(SequenceSpeed(None, None))
            continue
        if len(times) < generated:
            raise ValueError(f"Generation has {len(times)} step times for a sequence that generated {generated} tokens")
        first = times[0]
        decode = _ratio(generated - 1, times[generated - 1] - first) if generated >= 2 else None
        out.append(SequenceSpeed(first if first > 0 else None, decode))
    return out


def _over_rounds(name: str, per_round: Sequence[float | None], note: str) -> Metric:
    samples = tuple(v for v in per_round if v is not None and math.isfinite(v))
    missing = len(per_round) - len(samples)
    if missing and samples:
        note = f"{note}; n/a in {missing} of {len(per_round)} rounds"
    return Metric.of(name, median(samples), samples, note=note)


_NOTES = {
    "batched": {
        "ttft_s": "batched: time of the batch's first step from the call's start",
        "prefill_tok_s": "batched: prompt tokens of the whole batch / ttft",
        "decode_tok_s_per_seq": "batched: mean over sequences of (own tokens - 1) / (own last step - first)",
        "decode_tok_s_total": "batched: tokens after the first step, whole batch / (last step - first step)",
    },
    "sequential": {
        "ttft_s": "sequential: mean over sequences of each one's first-token time from its own start",
        "prefill_tok_s": "sequential: mean over sequences of prompt tokens / own ttft",
        "decode_tok_s_per_seq": "sequential: mean over sequences of (tokens - 1) / (last - first token time)",
        "decode_tok_s_total": "sequential: tokens after the first, all sequences / sum of their decode times",
    },
}


def latency_metric(latencies_s: Sequence[float]) -> Metric:
    """``latency_s``: one ``generate`` call on the batch, per round (pytest-benchmark's rounds)."""
    return _over_rounds("latency_s", list(latencies_s), "one generate call on the batch")


def speed_metrics(generations: Sequence[Generation], latencies_s: Sequence[float]) -> list[Metric]:
    """``latency_s``, ``ttft_s``, ``prefill_tok_s``, ``decode_tok_s_per_seq``, ``decode_tok_s_total``.

    ``generations`` holds one Generation per timed round; ``latencies_s`` the seconds of each round.
    Each metric's value is the median over rounds and its samples the per-round values.
    """
    rounds = [round_speed(g) for g in generations]
    modes = {g.batch_mode for g in generations}
    notes = _NOTES[modes.pop()] if len(modes) == 1 else {}
    metrics = [latency_metric(latencies_s)]
    for name in ("ttft_s", "prefill_tok_s", "decode_tok_s_per_seq", "decode_tok_s_total"):
        per_round = [getattr(r, name) for r in rounds]
        metrics.append(_over_rounds(name, per_round, notes.get(name, "")))
    return metrics


def engine_decode_rate(generation: Generation) -> float | None:
    """The engine's decode tokens/s of one round: the mean over sequences of tokens / engine seconds.

    The engine's account (``Generation.engine_decode``) times only the decode steps, without the
    sampling, detokenization and Python loop around them that ``decode_tok_s_per_seq`` includes.
    None where the backend gave no account or no sequence decoded.
    """
    return _mean([_ratio(tokens, seconds) for tokens, seconds in generation.engine_decode if tokens > 0])


def engine_decode_metric(generations: Sequence[Generation]) -> Metric:
    """``engine_decode_tok_s``: :func:`engine_decode_rate` per round, the median over rounds."""
    clocks = sorted({g.engine_clock for g in generations if g.engine_decode})
    note = "n/a: the backend gives no engine account of its decode steps"
    if clocks:
        note = f"engine: {'; '.join(clocks)}; per sequence, mean over the batch"
    return _over_rounds("engine_decode_tok_s", [engine_decode_rate(g) for g in generations], note)


# ----------------------------------------------------------------------------- sizes and MBU


def kv_cache_bytes(layout: KVLayout | None, sequence_tokens: int, batch: int) -> int | None:
    """Bytes of the KV cache holding ``sequence_tokens`` tokens for each of ``batch`` sequences.

    2 (K and V) x kv_heads x head_dim x bytes_per_element x batch x (tokens on each layer), where
    a sliding-window layer holds at most ``sliding_window`` tokens. None where there is no layout.
    """
    if layout is None:
        return None
    if sequence_tokens < 0 or batch < 0:
        raise ValueError(f"kv_cache_bytes needs non-negative tokens and batch, got {sequence_tokens}, {batch}")
    if not 0 <= layout.sliding_layers <= layout.layers:
        raise ValueError(f"KVLayout has {layout.sliding_layers} sliding layers out of {layout.layers}")
    sliding = layout.sliding_layers if layout.sliding_window is not None else 0
    window_tokens = min(sequence_tokens, layout.sliding_window) if layout.sliding_window is not None else 0
    layer_tokens = (layout.layers - sliding) * sequence_tokens + sliding * window_tokens
    return 2 * layout.kv_heads * layout.head_dim * layout.bytes_per_element * batch * layer_tokens


def kv_cache_metric(layout: KVLayout | None, generation: Generation) -> Metric:
    """``kv_cache_bytes`` at the end of generation.

    Batched: every row is padded to the longest prompt and runs for the longest generation, so
    (max prompt + max generated) tokens x batch. Sequential: the cache is emptied between
    sequences, so the largest single sequence (prompt + generated) with batch 1.
    """
    batch = _check_shape(generation)
    if generation.batch_mode == "sequential":
        tokens = max(
            (p + g for p, g in zip(generation.prompt_tokens, generation.generated_tokens, strict=True)),
            default=0,
        )
        rows, how = 1, "sequential: largest single sequence, prompt + generated tokens"
    else:
        tokens = max(generation.prompt_tokens, default=0) + max(generation.generated_tokens, default=0)
        rows, how = batch, "batched: (longest prompt + longest generation) x batch"
    value = kv_cache_bytes(layout, tokens, rows)
    note = how if layout is not None else "n/a: the model config gives no KV cache layout"
    return Metric.of("kv_cache_bytes", None if value is None else float(value), note=note)


def model_bandwidth_utilization(
    bytes_per_step: float | None, steps_per_s: float | None, peak_bytes_per_s: float | None
) -> float | None:
    """Bytes read per decode step x decode steps per second / peak memory bandwidth.

    Model Bandwidth Utilization, as defined by Databricks, "LLM Inference Performance Engineering:
    Best Practices" (2023), https://www.databricks.com/blog/llm-inference-performance-engineering-best-practices:
    MBU = (model parameter bytes + KV cache bytes) / time per output token / peak bandwidth.
    """
    if bytes_per_step is None or steps_per_s is None or peak_bytes_per_s is None:
        return None
    return _ratio(bytes_per_step * steps_per_s, peak_bytes_per_s)


def mbu_metric(
    generations: Sequence[Generation],
    weight_bytes: int | None,
    layout: KVLayout | None,
    peak_bytes_per_s: float | None,
) -> Metric:
    """``mbu`` per round (median over rounds): (weights + KV read per step) x steps/s / peak bandwidth.

    A decode step reads all the weights once and the KV caches of the sequences it serves, whose
    mean length over the decode is prompt + half the generated tokens. Batched: one step serves the
    whole batch (steps/s = the step rate, the longest sequence's decode rate; KV of every padded
    row). Sequential: every token is a step of one sequence (steps/s = ``decode_tok_s_total``; KV
    of that sequence). None where the weights, the KV layout, the bandwidth or a decode phase are
    missing. Informational: it says how far a configuration is from the memory-bandwidth limit.
    """
    per_round: list[float | None] = []
    for generation in generations:
        speed = round_speed(generation)
        kv = (
            kv_cache_bytes(layout, round(speed.kv_tokens_per_seq), speed.kv_batch)
            if speed.kv_tokens_per_seq is not None
            else None
        )
        step_bytes = weight_bytes + kv if weight_bytes is not None and kv is not None else None
        per_round.append(model_bandwidth_utilization(step_bytes, speed.decode_steps_per_s, peak_bytes_per_s))
    missing = [
        what
        for what, absent in (
            ("weight bytes", weight_bytes is None),
            ("KV cache layout", layout is None),
            ("peak bandwidth", peak_bytes_per_s is None),
        )
        if absent
    ]
    note = "(weights + mean KV cache) x decode steps/s / peak bandwidth (Databricks MBU); informational"
    if missing:
        note = f"n/a: no {', no '.join(missing)}"
    return _over_rounds("mbu", per_round, note)


def weight_bytes_metric(weight_bytes: int) -> Metric:
    """``weight_bytes``: bytes held by the loaded weights, quantized storage counted as stored."""
    return Metric.of("weight_bytes", float(weight_bytes))


def file_bytes_metric(file_bytes: int | None) -> Metric:
    """``file_bytes``: bytes of the weight files on disk (None: not known, shown as n/a)."""
    return Metric.of("file_bytes", None if file_bytes is None else float(file_bytes))


def load_s_metric(seconds: float | Sequence[float], note: str = "") -> Metric:
    """``load_s``: from nothing in memory to a model ready on its device (median of the samples)."""
    samples = [seconds] if isinstance(seconds, int | float) else list(seconds)
    return _over_rounds("load_s", samples, note)
