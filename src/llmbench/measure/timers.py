"""Timers: one interface (:class:`~llmbench.engine_types.Timer`, re-exported here), one implementation per
device kind.

CPU: ``time.perf_counter``. CUDA: CUDA events recorded on the current stream at the start, at each
``mark()`` and at the end; reading waits on the last event once. The events time the stream, so work
queued inside the block counts even if the host returned before it finished. MPS: ``perf_counter``
with ``torch.mps.synchronize()`` at the start, at each mark and at the end. See docs/metrics.md.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from llmbench.engine_types import ReadingNotFinished, Timer, TimeReading

if TYPE_CHECKING:  # torch is imported where it is used: a llama.cpp worker never needs it
    import torch


__all__ = ["CpuTimer", "CudaTimer", "MpsTimer", "ReadingNotFinished", "TimeReading", "Timer"]


class _CpuTimeReading(TimeReading):
    def __init__(self) -> None:
        self._start = time.perf_counter()
        self._marks: list[float] = []
        self._end: float | None = None

    def mark(self) -> None:
        self._marks.append(time.perf_counter())

    def _finish(self) -> None:
        self._end = time.perf_counter()

    def seconds(self) -> float:
        if self._end is None:
            raise ReadingNotFinished("a timer reading")
        return self._end - self._start

    def marks_s(self) -> tuple[float, ...]:
        if self._end is None:
            raise ReadingNotFinished("a timer reading")
        return tuple(m - self._start for m in self._marks)


class CpuTimer(Timer):
    """Wall-clock time with ``time.perf_counter``."""

    @contextmanager
    def measure(self) -> Iterator[TimeReading]:
        reading = _CpuTimeReading()
        try:
            yield reading
        finally:
            reading._finish()


class _CudaTimeReading(TimeReading):
    def __init__(self, runtime: Any, device: torch.device) -> None:
        self._runtime = runtime
        self._device = device
        self._start = self._record()
        self._marks: list[Any] = []
        self._end: Any = None
        self._result: tuple[float, tuple[float, ...]] | None = None

    def _record(self) -> Any:
        event = self._runtime.Event(enable_timing=True)
        event.record(self._runtime.current_stream(self._device))
        return event

    def mark(self) -> None:
        self._marks.append(self._record())

    def _finish(self) -> None:
        self._end = self._record()

    def _read(self) -> tuple[float, tuple[float, ...]]:
        if self._end is None:
            raise ReadingNotFinished("a timer reading")
        if self._result is None:
            # The one synchronize: every event was recorded on the same stream before the end.
            self._end.synchronize()
            seconds = self._start.elapsed_time(self._end) / 1e3
            marks = tuple(self._start.elapsed_time(m) / 1e3 for m in self._marks)
            self._result = (seconds, marks)
        return self._result

    def seconds(self) -> float:
        return self._read()[0]

    def marks_s(self) -> tuple[float, ...]:
        return self._read()[1]


class CudaTimer(Timer):
    """GPU time with CUDA events on the current stream; one synchronize when the reading is read.

    ``runtime`` is ``torch.cuda`` (tests pass a fake with the same few functions).
    """

    def __init__(self, device: torch.device, runtime: Any = None) -> None:
        self.device = device
        import torch

        self._runtime = torch.cuda if runtime is None else runtime

    @contextmanager
    def measure(self) -> Iterator[TimeReading]:
        reading = _CudaTimeReading(self._runtime, self.device)
        try:
            yield reading
        finally:
            reading._finish()


class _MpsTimeReading(_CpuTimeReading):
    def __init__(self, runtime: Any) -> None:
        self._runtime = runtime
        runtime.synchronize()
        super().__init__()

    def mark(self) -> None:
        self._runtime.synchronize()
        super().mark()

    def _finish(self) -> None:
        self._runtime.synchronize()
        super()._finish()


class MpsTimer(Timer):
    """Wall-clock time on Apple's MPS: ``torch.mps.synchronize()`` before each timestamp, so queued GPU
    work is counted where it ran.

    ``runtime`` is ``torch.mps`` (tests pass a fake with ``synchronize``).
    """

    def __init__(self, runtime: Any = None) -> None:
        import torch

        self._runtime = torch.mps if runtime is None else runtime

    @contextmanager
    def measure(self) -> Iterator[TimeReading]:
        reading = _MpsTimeReading(self._runtime)
        try:
            yield reading
        finally:
            reading._finish()
