"""Whether the GPU throttled during a combination's timed rounds: the driver's clock event reasons,
sampled in a background thread from the start of the first timed round to the end of the last.

A throttled GPU runs below its clocks, so its figures read slow although the code did not change. The
reasons that count as throttling (power cap, thermal and hardware slowdowns, power brake, board and
reliability limits) and those that do not (idle, application clocks, sync boost, display clock) are
listed in :mod:`llmbench.gpu_driver`. The result goes into the benchmark's ``extra_info``
(:data:`~llmbench.gpu_driver.THROTTLE_INFO_KEY`), from which the terminal, the verdict and the report
warn. The reasons are device-wide, so the parent process samples them for a model in a worker too.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Any

from llmbench.gpu_driver import GpuDriver, GpuDriverUnavailable, LazyGpuDriver, reason_names, throttling_reasons

__all__ = ["THROTTLE_SAMPLE_INTERVAL_S", "ClockEventSampler", "ClockEvents"]

#: How often the reasons are sampled: the driver's own power and thermal control acts on this scale or
#: slower, and one NVML call every 100 ms costs nothing.
THROTTLE_SAMPLE_INTERVAL_S = 0.1


@dataclass(frozen=True)
class ClockEvents:
    """The clock event reasons seen over the timed rounds."""

    samples: int
    #: Samples in which at least one throttling reason was set.
    throttled_samples: int
    #: Every reason seen in any sample, throttling or not.
    reasons: tuple[str, ...]
    #: The throttling ones among them: the warning's subject.
    throttling: tuple[str, ...]
    source: str
    #: Why no sample could be taken, where none could.
    unavailable: str | None = None

    def as_info(self) -> dict[str, Any]:
        """For the benchmark's ``extra_info``."""
        info: dict[str, Any] = {
            "samples": self.samples, "throttled_samples": self.throttled_samples, "reasons": list(self.reasons),
            "throttling": list(self.throttling), "source": self.source,
            "interval_s": THROTTLE_SAMPLE_INTERVAL_S,
        }  # fmt: skip
        if self.unavailable:
            info["unavailable"] = self.unavailable
        return info


@dataclass
class ClockEventSampler:
    """Samples the GPU's clock event reasons: :meth:`start` a thread, :meth:`stop` for the result.
    :meth:`sample` takes one sample (tests call it directly, without the thread)."""

    driver: LazyGpuDriver
    interval_s: float = THROTTLE_SAMPLE_INTERVAL_S
    masks: list[int] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None
    _gpu: GpuDriver | None = None
    _unavailable: str | None = None

    def _open(self) -> GpuDriver | None:
        if self._gpu is None and self._unavailable is None:
            try:
                self._gpu = self.driver.get()
            except GpuDriverUnavailable as error:
                self._unavailable = str(error)
        return self._gpu

    def sample(self) -> None:
        gpu = self._open()
        if gpu is None:
            return
        try:
            self.masks.append(gpu.clock_event_reasons())
        except Exception as error:  # NVMLError: a sampler thread must not die
            self.errors.append(f"{type(error).__name__}: {error}")

    def _run(self) -> None:
        while not self._stop.wait(self.interval_s):
            self.sample()

    def start(self) -> None:
        """One sample now, then one every ``interval_s`` in a daemon thread."""
        self.sample()
        if self._gpu is not None:
            self._thread = threading.Thread(target=self._run, name="llmbench-clock-events", daemon=True)
            self._thread.start()

    def stop(self) -> ClockEvents:
        """Stop the thread, take a last sample, and return what was seen."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join()
            self._thread = None
        self.sample()
        return self.result()

    def result(self) -> ClockEvents:
        seen = 0
        for mask in self.masks:
            seen |= mask
        unavailable = self._unavailable
        if unavailable is None and not self.masks and self.errors:
            unavailable = f"every sample failed: {self.errors[0]}"
        source = self._gpu.description if self._gpu is not None else f"cuda:{self.driver.index}"
        return ClockEvents(
            samples=len(self.masks),
            throttled_samples=sum(1 for mask in self.masks if throttling_reasons(mask)),
            reasons=reason_names(seen),
            throttling=throttling_reasons(seen),
            source=source,
            unavailable=unavailable,
        )
