"""A fixed clock for the model workers of a copied source tree, for end-to-end tests of ``llmbench ab``.

:func:`inject_fixed_clock` appends :data:`FIXED_CLOCK` to a copy's ``llmbench/workers/serve.py``: every
figure a worker measures then comes from controlled inputs, never from the machine, so a paired verdict
on them cannot depend on load. The worker still runs the real model (greedy outputs, token counts, the
memory probe around each call); only what it reports is replaced:

- the clock (``time.perf_counter`` of serve.py) moves only by a fixed time per call: 0.2 s per
  ``generate``, 0.5 s per load; so ``latency_s`` is 200 ms, and ``load_s`` 0;
- each round's step times are 100 ms for the first token, then 10 ms more per step (``ttft_s``, prefill
  and decode rates, inter-token latencies; each sequence's, for a backend that runs a batch one sequence
  after the other, as llama.cpp) and the engine's own decode account is 10 ms per decoded token
  (``engine_decode_tok_s``);
- the memory figures of each timed round are a fixed 400 MiB (``peak_rss_bytes``, ``rss_before_bytes``).

``SLOW_SHARE`` (:func:`set_slow_share`) makes all of these times that share longer: a slower engine step,
not a sleep, in every timed figure at once. Memory is unchanged by it.

This module holds no tests.
"""

from __future__ import annotations

import re
from pathlib import Path

__all__ = ["FIXED_CLOCK", "SERVE", "inject_fixed_clock", "set_slow_share"]

#: serve.py, relative to a source tree's ``src``.
SERVE = Path("llmbench") / "workers" / "serve.py"

FIXED_CLOCK = '''

# --- tests/support/fixed_clock_worker.py: a fixed clock, fixed memory figures, and a slowdown -----------------
import dataclasses as _dataclasses
import time as _real_time

#: Share of every timed figure that this commit adds (0.0: none).
SLOW_SHARE = 0.0
_FIXED_MEMORY_BYTES = 400 * 2**20


class _FixedClock:
    """Stands in for the time module here: the clock moves only by the fixed time of each call."""

    now = 1000.0
    sleep = staticmethod(_real_time.sleep)

    def perf_counter(self):
        return _FixedClock.now


class _Fixed:
    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, prompts, max_new_tokens):
        out = self._inner.generate(prompts, max_new_tokens)
        slower = 1 + SLOW_SHARE
        _FixedClock.now += 0.2 * slower
        steps = tuple(slower * (0.1 + 0.01 * i) for i in range(len(out.step_times_s)))
        sequences = tuple(
            tuple(slower * (0.1 + 0.01 * i) for i in range(len(times))) for times in out.sequence_step_times_s
        )
        engine = tuple((tokens, slower * 0.01 * tokens) for tokens, _ in out.engine_decode)
        return _dataclasses.replace(out, step_times_s=steps, sequence_step_times_s=sequences, engine_decode=engine)


def _fixed_memory(memory):
    figures = tuple(_dataclasses.replace(m, value=float(_FIXED_MEMORY_BYTES)) for m in memory.figures)
    return MemoryFigures(_FIXED_MEMORY_BYTES, _FIXED_MEMORY_BYTES, _FIXED_MEMORY_BYTES, figures)


_handle = ModelServer.handle


def _handle_fixed(self, request):
    if isinstance(request, (Load, MeasureLoad)):
        _FixedClock.now += 0.5  # loads take a fixed 0.5 s too
    reply = _handle(self, request)
    if isinstance(request, Load) and self.model is not None and not isinstance(self.model, _Fixed):
        self.model = _Fixed(self.model)
    if isinstance(reply, TimedRound):
        reply = _dataclasses.replace(reply, memory=_fixed_memory(reply.memory))
    return reply


ModelServer.handle = _handle_fixed
time = _FixedClock()
'''

_SHARE = re.compile(r"^SLOW_SHARE = [0-9.]+$", re.MULTILINE)


def inject_fixed_clock(src: Path, slow_share: float = 0.0) -> None:
    """Append :data:`FIXED_CLOCK` to ``src``'s serve.py (``src``: a copy's ``src`` folder), with ``slow_share``."""
    serve = src / SERVE
    serve.write_text(serve.read_text() + FIXED_CLOCK)
    set_slow_share(src, slow_share)


def set_slow_share(src: Path, share: float) -> None:
    """Set the share of every timed figure that ``src``'s fixed-clock workers add (0.2: 20% slower)."""
    serve = src / SERVE
    text, count = _SHARE.subn(f"SLOW_SHARE = {share!r}", serve.read_text())
    assert count == 1, f"{serve} has no fixed clock: call inject_fixed_clock first"
    serve.write_text(text)
