"""Energy per generated token: a cumulative energy counter read at the start and the end of the timed
rounds, over a window long enough for the counter's update period.

Two counters, one interface (:class:`EnergyCounter`): on CUDA the driver's total-energy counter (NVML,
millijoules, Volta and newer, updated about every 100 ms); on a CPU the kernel's RAPL package counters
(``/sys/class/powercap/intel-rapl:N/energy_uj``, microjoules, wrapping at ``max_energy_range_uj``). An
:class:`EnergyMeter` finds its device's counter on first use and otherwise says why there is none
(RAPL unreadable, NVML missing, a GPU older than Volta); the figures are then n/a with that reason.

A reading is stale by up to one update period at each end of the window, so the window must be many
periods long: :func:`min_window_s` (at least 1 s, and 20 update periods: 2 s on NVML). Where the timed
rounds are shorter, :class:`EnergyWindow` is kept open while the caller repeats the same ``generate``
call outside pytest-benchmark's rounds (:meth:`GenerateBenchmark.close_energy_window
<llmbench.measure.generate.GenerateBenchmark>`), and the tokens of those calls count too. Nothing is
read inside a timed call. docs/metrics.md and docs/gpu.md.
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from llmbench.gpu_driver import ENERGY_UPDATE_PERIOD_S, GpuDriverUnavailable, LazyGpuDriver
from llmbench.metrics import Metric

__all__ = [
    "MIN_WINDOW_S",
    "RAPL_ROOT",
    "UPDATE_PERIODS_PER_WINDOW",
    "EnergyCounter",
    "EnergyMeter",
    "EnergyReading",
    "EnergyUnavailable",
    "EnergyWindow",
    "NoEnergyMeter",
    "NvmlEnergyCounter",
    "NvmlEnergyMeter",
    "RaplEnergyCounter",
    "RaplEnergyMeter",
    "RaplZone",
    "energy_metrics",
    "min_window_s",
]

#: The shortest energy window, whatever the counter.
MIN_WINDOW_S = 1.0
#: A window spans at least this many counter update periods: each end's reading is stale by up to one
#: period, so the energy is off by at most 1/20 of the window's (5%), and about half that on average.
UPDATE_PERIODS_PER_WINDOW = 20
#: Where Linux exposes the RAPL counters (the powercap framework).
RAPL_ROOT = Path("/sys/class/powercap")
#: RAPL's counters update about every millisecond.
RAPL_UPDATE_PERIOD_S = 0.001
#: A window is extended by at most this many extra calls (a call that returns at once cannot hang it).
MAX_EXTRA_CALLS = 10_000


class EnergyUnavailable(RuntimeError):
    """No energy counter can be read here; the message says why."""


def min_window_s(update_period_s: float) -> float:
    """How long an energy window must be for a counter updated every ``update_period_s``."""
    return max(MIN_WINDOW_S, UPDATE_PERIODS_PER_WINDOW * update_period_s)


class EnergyCounter(ABC):
    """A cumulative energy counter. :meth:`read` gives an opaque snapshot; :meth:`joules` the energy
    between two snapshots (wraparound handled)."""

    #: What is counted, for the metric's note ("NVML total energy of NVML device 0").
    description: str
    #: How often the counter moves.
    update_period_s: float

    @abstractmethod
    def read(self) -> tuple[int, ...]:
        """The counter now, in its own units."""

    @abstractmethod
    def joules(self, before: Sequence[int], after: Sequence[int]) -> float:
        """The energy counted between two :meth:`read` snapshots, in joules."""


class NvmlEnergyCounter(EnergyCounter):
    """The GPU driver's total-energy counter (millijoules since the driver loaded; 64 bits, no wrap)."""

    def __init__(self, driver: LazyGpuDriver) -> None:
        self.driver = driver.get()
        self.description = f"NVML total energy of {self.driver.description}"
        self.update_period_s = ENERGY_UPDATE_PERIOD_S

    def read(self) -> tuple[int, ...]:
        return (self.driver.energy_mj(),)

    def joules(self, before: Sequence[int], after: Sequence[int]) -> float:
        return (after[0] - before[0]) / 1e3


@dataclass(frozen=True)
class RaplZone:
    """One RAPL package zone: its counter file (microjoules) and the value at which it wraps to 0."""

    name: str
    energy_file: Path
    max_energy_uj: int

    def read_uj(self) -> int:
        return int(self.energy_file.read_text().strip())


class RaplEnergyCounter(EnergyCounter):
    """The sum of the CPU packages' RAPL counters (every core and the uncore of each socket; DRAM is a
    separate zone, not counted). A counter read lower than before has wrapped once at its
    ``max_energy_range_uj`` (the windows here are seconds long, a wrap takes many minutes)."""

    def __init__(self, zones: Sequence[RaplZone]) -> None:
        self.zones = tuple(zones)
        names = ", ".join(f"{zone.name} ({zone.energy_file.parent.name})" for zone in self.zones)
        self.description = f"RAPL package energy: {names}"
        self.update_period_s = RAPL_UPDATE_PERIOD_S

    def read(self) -> tuple[int, ...]:
        return tuple(zone.read_uj() for zone in self.zones)

    def joules(self, before: Sequence[int], after: Sequence[int]) -> float:
        total = 0
        for zone, start, end in zip(self.zones, before, after, strict=True):
            total += end - start if end >= start else end + zone.max_energy_uj - start
        return total / 1e6


def rapl_zones(root: Path = RAPL_ROOT) -> list[RaplZone]:
    """The top-level package zones under ``root`` (``intel-rapl:0``, ``intel-rapl:1``, ...; not their
    sub-zones ``intel-rapl:0:0``, which are parts of a package, nor ``psys``, which overlaps them), checked
    readable. Raises :class:`EnergyUnavailable` with the reason where there are none or one cannot be read."""
    if not root.is_dir():
        raise EnergyUnavailable(f"no RAPL counters: {root} does not exist (no powercap driver, or not a Linux host)")
    zones = []
    for directory in sorted(root.glob("intel-rapl:*")):
        if directory.name.count(":") != 1:
            continue
        try:
            name = (directory / "name").read_text().strip()
            if name == "psys":
                continue
            zone = RaplZone(name, directory / "energy_uj", int((directory / "max_energy_range_uj").read_text()))
            zone.read_uj()
        except (OSError, ValueError) as error:
            raise EnergyUnavailable(
                f"RAPL counter {directory / 'energy_uj'} cannot be read ({type(error).__name__}: {error}); "
                "since Linux 5.10 it is readable by root only"
            ) from None
        zones.append(zone)
    if not zones:
        raise EnergyUnavailable(f"no RAPL package zones (intel-rapl:N) under {root}")
    return zones


class EnergyMeter(ABC):
    """Where one device's energy counter comes from; looked for on first use (building one costs nothing)."""

    @abstractmethod
    def counter(self) -> EnergyCounter:
        """The counter, or :class:`EnergyUnavailable` with the reason."""

    def unavailable_reason(self) -> str | None:
        try:
            self.counter()
        except EnergyUnavailable as error:
            return str(error)
        return None


class RaplEnergyMeter(EnergyMeter):
    """A CPU's RAPL package counters (``root``: the powercap directory, a fake tree in tests)."""

    def __init__(self, root: Path = RAPL_ROOT) -> None:
        self.root = root
        self._found: RaplEnergyCounter | str | None = None

    def counter(self) -> EnergyCounter:
        if self._found is None:
            try:
                self._found = RaplEnergyCounter(rapl_zones(self.root))
            except EnergyUnavailable as error:
                self._found = str(error)
        if isinstance(self._found, str):
            raise EnergyUnavailable(self._found)
        return self._found


class NvmlEnergyMeter(EnergyMeter):
    """A GPU's total-energy counter through the driver (NVML)."""

    def __init__(self, driver: LazyGpuDriver) -> None:
        self.driver = driver
        self._found: NvmlEnergyCounter | str | None = None

    def counter(self) -> EnergyCounter:
        if self._found is None:
            try:
                counter = NvmlEnergyCounter(self.driver)
                counter.read()
                self._found = counter
            except GpuDriverUnavailable as error:
                self._found = str(error)
            except Exception as error:  # NVMLError: Not Supported before Volta, No Permission, ...
                self._found = (
                    f"the GPU's energy counter cannot be read ({type(error).__name__}: {error}); "
                    "NVML has it on Volta and newer GPUs"
                )
        if isinstance(self._found, str):
            raise EnergyUnavailable(self._found)
        return self._found


class NoEnergyMeter(EnergyMeter):
    """A device without an energy counter the harness can read (MPS)."""

    def __init__(self, reason: str) -> None:
        self.reason = reason

    def counter(self) -> EnergyCounter:
        raise EnergyUnavailable(self.reason)


@dataclass(frozen=True)
class EnergyReading:
    """The energy of one window: joules, seconds, the tokens generated in it and how it was extended."""

    joules: float
    seconds: float
    tokens: int
    #: ``generate`` calls added after the timed rounds to make the window long enough.
    extra_calls: int
    min_window_s: float
    counter: str

    @property
    def joules_per_token(self) -> float | None:
        return self.joules / self.tokens if self.tokens > 0 else None

    @property
    def watts(self) -> float | None:
        return self.joules / self.seconds if self.seconds > 0 else None


class EnergyWindow:
    """One window over a counter: :meth:`start` before the first timed round, :meth:`add_tokens` for each
    call in the window, repeat calls while :meth:`too_short`, then :meth:`stop`."""

    def __init__(
        self, counter: EnergyCounter, clock: Callable[[], float] = time.perf_counter, minimum_s: float | None = None
    ) -> None:
        self.counter = counter
        self.clock = clock
        self.min_window_s = min_window_s(counter.update_period_s) if minimum_s is None else minimum_s
        self.tokens = 0
        self.extra_calls = 0
        self._start: tuple[float, tuple[int, ...]] | None = None

    @property
    def started(self) -> bool:
        return self._start is not None

    def start(self) -> None:
        self._start = (self.clock(), self.counter.read())

    def elapsed_s(self) -> float:
        if self._start is None:
            raise RuntimeError("the energy window was not started")
        return self.clock() - self._start[0]

    def too_short(self) -> bool:
        return self.elapsed_s() < self.min_window_s

    def add_tokens(self, tokens: int, *, extra: bool = False) -> None:
        self.tokens += tokens
        self.extra_calls += int(extra)

    def extend(self, call: Callable[[], int]) -> None:
        """Repeat ``call`` (one more ``generate``, returning its generated tokens) while the window is too
        short, counting its tokens (at most :data:`MAX_EXTRA_CALLS` calls)."""
        while self.too_short() and self.extra_calls < MAX_EXTRA_CALLS:
            self.add_tokens(call(), extra=True)

    def stop(self) -> EnergyReading:
        if self._start is None:
            raise RuntimeError("the energy window was not started")
        started, before = self._start
        after, seconds = self.counter.read(), self.clock() - started
        return EnergyReading(
            self.counter.joules(before, after), seconds, self.tokens, self.extra_calls, self.min_window_s,
            self.counter.description,
        )  # fmt: skip


def energy_metrics(reading: EnergyReading | None, reason: str = "") -> list[Metric]:
    """``energy_per_token_j`` and ``mean_power_w`` of a window; n/a with ``reason`` where there is none."""
    if reading is None:
        note = f"n/a: {reason}"
        return [Metric.of("energy_per_token_j", None, note=note), Metric.of("mean_power_w", None, note=note)]
    extended = (
        f", extended by {reading.extra_calls} untimed calls to reach {reading.min_window_s:g} s"
        if reading.extra_calls else ""
    )  # fmt: skip
    note = (
        f"{reading.counter}: {reading.joules:.4g} J over {reading.seconds:.3g} s and {reading.tokens} generated "
        f"tokens (the timed rounds{extended})"
    )
    if reading.tokens == 0:
        note = f"n/a: no generated tokens in the window; {note}"
    return [
        Metric.of("energy_per_token_j", reading.joules_per_token, note=note),
        Metric.of("mean_power_w", reading.watts, note=note),
    ]
