"""Per-item figures: every item of a pass over the data set, timed in the call that generated it.

A pass generates the data set's items in batches: the quality pass at ``--llmbench-quality-batch-size``
(``--llmbench-per-item=quality``, the default), or each test's own pass at its batch size
(``--llmbench-per-item=batch-sizes``). :class:`ItemTimer` runs one untimed call of the pass's first batch
(the first call after a load, or at a new batch shape, pays one-time costs), then times each call as a timed
round in a worker is timed: the wall clock around the memory probe around ``generate``. Every item of a call
gets a record (:func:`item_records`): the call's latency and peak memory, the item's own tokens, TTFT and
decode rate (:func:`llmbench.measure.speed.sequence_speeds`). The records are saved in the benchmark's
``extra_info["per_item"]``; their fields are documented in docs/metrics.md (Per-item figures).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Literal

from llmbench.engine_types import Generation, LoadedModel
from llmbench.measure.probes import MemoryReading, Probes
from llmbench.measure.speed import sequence_speeds

__all__ = [
    "PER_ITEM_KEY",
    "RECORD_FIELDS",
    "CallFn",
    "ItemTimer",
    "Source",
    "TimedCall",
    "in_process_call",
    "item_records",
    "time_pass",
]

#: The ``extra_info`` key of a benchmark's per-item records (a list of them, in item order).
PER_ITEM_KEY = "per_item"
#: Which pass timed a record: the quality pass, or the test's own pass at its batch size.
Source = Literal["quality", "test"]
#: Every record's fields, in order; the peak memory figures of the call follow (``peak_*``, named for
#: their source: ``peak_rss_bytes`` always, the device's beside it on a GPU).
RECORD_FIELDS = (
    "item", "index", "source", "batch_size", "call", "call_items",
    "latency_s", "ttft_s", "prompt_tokens", "generated_tokens", "decode_tok_s",
)  # fmt: skip


@dataclass(frozen=True)
class TimedCall:
    """One timed ``generate`` call: what it produced, its wall-clock seconds, its memory reading."""

    generation: Generation
    seconds: float
    memory: MemoryReading


#: Times one ``generate(prompts, max_new_tokens)`` call of a loaded model (in process, or in its worker).
CallFn = Callable[[LoadedModel, Sequence[str], int], TimedCall]


def in_process_call(probes: Probes) -> CallFn:
    """A :data:`CallFn` for a model in this process: ``perf_counter`` around ``probes.memory`` around the call,
    as a worker times a round (:mod:`llmbench.workers.serve`)."""

    def call(llm: LoadedModel, prompts: Sequence[str], max_new_tokens: int) -> TimedCall:
        started = time.perf_counter()
        with probes.memory.measure() as reading:
            generation = llm.generate(list(prompts), max_new_tokens)
        return TimedCall(generation, time.perf_counter() - started, reading)

    return call


def _peaks(reading: MemoryReading) -> dict[str, float]:
    """The call's measured peak figures by name (``peak_rss_bytes``, ``peak_gpu_process_bytes``, ...)."""
    return {m.name: m.value for m in reading.metrics() if m.name.startswith("peak_") and m.value is not None}


def item_records(
    call: TimedCall, ids: Sequence[str], first_index: int, source: Source, batch_size: int, call_index: int
) -> list[dict[str, Any]]:
    """One record per item of ``call`` (``ids`` in batch order; ``first_index``: the first one's position in
    the data set). The call's ``latency_s`` and peak memory are every one of its items'; tokens, ``ttft_s`` and
    ``decode_tok_s`` are the item's own sequence's."""
    generation = call.generation
    if len(ids) != len(generation.generated_tokens):
        raise ValueError(f"{len(ids)} item ids for a call that generated {len(generation.generated_tokens)} sequences")
    peaks = _peaks(call.memory)
    speeds = sequence_speeds(generation)
    records = []
    for k, (item, speed) in enumerate(zip(ids, speeds, strict=True)):
        record = {
            "item": item, "index": first_index + k, "source": source, "batch_size": batch_size,
            "call": call_index, "call_items": len(ids), "latency_s": call.seconds, "ttft_s": speed.ttft_s,
            "prompt_tokens": generation.prompt_tokens[k], "generated_tokens": generation.generated_tokens[k],
            "decode_tok_s": speed.decode_tok_s, **peaks,
        }  # fmt: skip
        records.append(record)
    return records


class ItemTimer:
    """Times the calls of one pass over the data set, each item's figures recorded (one timer per pass).

    Called as the quality pass's ``TimedBatch`` (:mod:`llmbench.quality.runs`):
    ``timer(llm, prompts, max_new_tokens, ids)`` returns the generation and one record per item. Before its
    first timed call it runs that call once untimed (``warmup``).
    """

    def __init__(self, call: CallFn, source: Source, batch_size: int, warmup: bool = True) -> None:
        self.call = call
        self.source: Source = source
        self.batch_size = batch_size
        self.warmup = warmup
        self.calls = 0
        self.items = 0

    def __call__(
        self, llm: LoadedModel, prompts: list[str], max_new_tokens: int, ids: list[str]
    ) -> tuple[Generation, list[dict[str, Any]]]:
        if self.warmup and self.calls == 0:
            self.call(llm, prompts, max_new_tokens)  # untimed: the first call after a load or at a new shape
        timed = self.call(llm, prompts, max_new_tokens)
        records = item_records(timed, ids, self.items, self.source, self.batch_size, self.calls)
        self.calls += 1
        self.items += len(ids)
        return timed.generation, records


def time_pass(
    timer: ItemTimer, llm: LoadedModel, ids: Sequence[str], prompts: Sequence[str], max_new_tokens: int
) -> list[dict[str, Any]]:
    """Generate every prompt in batches of ``timer.batch_size``, each call timed: the records of every item
    (``ids[i]`` is ``prompts[i]``'s item), in order."""
    if len(ids) != len(prompts):
        raise ValueError(f"{len(ids)} item ids for {len(prompts)} prompts")
    records: list[dict[str, Any]] = []
    size = timer.batch_size
    for start in range(0, len(prompts), size):
        _, batch = timer(llm, list(prompts[start : start + size]), max_new_tokens, list(ids[start : start + size]))
        records.extend(batch)
    return records
