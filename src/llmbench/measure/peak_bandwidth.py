"""The peak memory bandwidth of each device a session or an ``llmbench ab`` run measures on, for ``mbu``.

Given by the user (``--llmbench-peak-bandwidth``) or measured once per device with the device's
bandwidth meter (:func:`llmbench.measure.probes.probes_for`); see docs/metrics.md. Its own module, not
:mod:`llmbench.measure.bandwidth`: it needs :mod:`llmbench.measure.probes`, which builds on that one.
"""

from __future__ import annotations

from llmbench.measure.probes import BandwidthReading, probes_for
from llmbench.metrics import Metric

__all__ = ["PeakBandwidths"]


class PeakBandwidths:
    """The peak memory bandwidth of each device: given by the user, or measured once per session."""

    def __init__(self, given: float | None) -> None:
        self.given = given
        self._measured: dict[str, BandwidthReading] = {}

    def metric(self, device: str) -> Metric:
        if self.given is not None:
            return Metric.of("peak_bandwidth", self.given, note="given by --llmbench-peak-bandwidth")
        if device not in self._measured:
            self._measured[device] = probes_for(device).bandwidth.measure()
        reading = self._measured[device]
        return Metric.of("peak_bandwidth", reading.bytes_per_s, note=f"measured: {reading.method}")
