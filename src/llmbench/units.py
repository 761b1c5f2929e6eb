"""The one formatter of values and units, and the one parser of sizes.

Every figure shown to people (gate verdicts, the terminal table, reports) is formatted here, from the
metric's unit (:data:`llmbench.metrics.Unit`): bytes in binary units, seconds in ms below 1 s, ratios
as percentages, ``n/a`` where a value is missing. The byte constants are defined only here.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

__all__ = [
    "GiB",
    "KiB",
    "MiB",
    "SizeError",
    "TiB",
    "byte_axis_scale",
    "format_bytes",
    "format_change",
    "format_change_interval",
    "format_compact",
    "format_number",
    "format_reading",
    "format_value",
    "parse_size",
    "scale_for",
    "split_number_unit",
]

KiB = 1024
MiB = 1024 * KiB
GiB = 1024 * MiB
TiB = 1024 * GiB

_BINARY: tuple[tuple[str, int], ...] = (("TiB", TiB), ("GiB", GiB), ("MiB", MiB), ("KiB", KiB))
#: Units not written after a number (a ratio or a score reads as a plain number).
_SILENT_UNITS = frozenset({"ratio", "F1", "count", ""})
_SIZE_UNITS: dict[str, float] = {
    "": 1.0, "b": 1.0, "kb": 1e3, "mb": 1e6, "gb": 1e9, "tb": 1e12,
    "kib": KiB, "mib": MiB, "gib": GiB, "tib": TiB,
}  # fmt: skip


class SizeError(ValueError):
    """A memory size that cannot be read; the message names the flag and the value."""


def format_number(value: float) -> str:
    """A number with the digits people read: ``1,234``, ``41.8``, ``3.52``, ``0.0123``."""
    size = abs(value)
    if size >= 100:
        return f"{value:,.0f}"
    if size >= 10:
        return f"{value:.1f}"
    if size >= 1:
        return f"{value:.2f}"
    return f"{value:.3g}"


def scale_for(unit: str, values: Sequence[float]) -> tuple[float, str]:
    """A divisor and the unit text to show, chosen once for all ``values`` (both sides of a comparison)."""
    largest = max((abs(v) for v in values), default=0.0)
    if unit == "bytes":
        for name, divisor in _BINARY[1:]:
            if largest >= divisor:
                return float(divisor), name
        return 1.0, "B"
    if unit == "s" and 0 < largest < 1:
        return 1e-3, "ms"
    return 1.0, "" if unit in _SILENT_UNITS else unit


def byte_axis_scale(values: Sequence[float | None]) -> tuple[float, str]:
    """The divisor and unit of a plot's byte axis: GiB where the largest value is at least 1 GiB, else MiB."""
    largest = max((abs(v) for v in values if v is not None), default=0.0)
    return (GiB, "GiB") if largest >= GiB else (MiB, "MiB")


def format_bytes(value: float) -> str:
    """``3.00 GiB``, ``235.00 MiB``, ``512 B``."""
    for unit, size in _BINARY:
        if abs(value) >= size:
            return f"{value / size:.2f} {unit}"
    return f"{value:.0f} B"


def format_value(value: float | None, unit: str) -> str:
    """A metric value for people: ``n/a`` where missing, bytes in binary units, seconds in ms below 1 s."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "bytes":
        return format_bytes(value)
    if unit == "bytes/s":
        return f"{value / 1e9:.1f} GB/s"
    if unit == "s":
        return f"{value * 1000:.1f} ms" if abs(value) < 1 else f"{value:.2f} s"
    if unit == "tok/s":
        return f"{value:.1f} tok/s"
    if unit == "ratio":
        return f"{value:.1%}"
    if unit == "F1":
        return f"{value:.3f}"
    if unit == "tokens":
        return f"{value:.1f}"
    if unit in ("J/tok", "W"):
        return f"{value:.4g} {unit}"
    return f"{value:.4g}"


def format_compact(value: float | None, unit: str) -> str:
    """A value for a narrow column: ``1234 ms``, ``41.8``, ``3.00 GiB``, ``235 MiB``, ``45.1%``, ``0.612``."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "s":
        return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"
    if unit == "bytes":
        return f"{value / GiB:.2f} GiB" if value >= GiB else f"{value / MiB:.0f} MiB"
    if unit == "ratio":
        return f"{value * 100:.1f}%"
    if unit == "F1":
        return f"{value:.3f}"
    if unit == "J/tok":  # a GPU spends hundredths of a joule per token, a CPU joules
        return f"{value:.3g}"
    return f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def format_reading(value: float | None, unit: str) -> str:
    """A reading set beside another reading of the same figure (``llmbench selfcheck``): times below 1 s
    in ms with two decimals (``12.34 ms``), bandwidths in GB/s, the rest as :func:`format_compact`."""
    if value is None or not math.isfinite(value):
        return "n/a"
    if unit == "s" and value < 1:
        return f"{value * 1e3:.2f} ms"
    if unit == "bytes/s":
        return format_value(value, unit)
    return format_compact(value, unit)


def format_change(change: float) -> str:
    """A relative change (0.05 for 5% more) as ``+5.0%``; ``from 0`` where it is infinite (from a zero)."""
    return "from 0" if math.isinf(change) else f"{change * 100:+.1f}%"


def format_change_interval(low: float, high: float) -> str:
    """An interval of relative changes (-0.031, 0.004) as ``-3.1%..+0.4%``."""
    return f"{low * 100:+.1f}%..{high * 100:+.1f}%"


def split_number_unit(text: str) -> tuple[str, str]:
    """``"26 GB/s"`` -> ``("26", "gb/s")``: the number and the lower-cased unit after it ("" if none)."""
    number = text.strip()
    for index, char in enumerate(number):
        if char.isalpha():
            return number[:index].strip(), number[index:].strip().lower()
    return number, ""


def parse_size(text: str, what: str = "--memory-budget") -> float:
    """A memory size such as ``8GiB``, ``512MiB``, ``16GB`` or plain bytes, in bytes. Raises :class:`SizeError`."""
    number, unit = split_number_unit(text)
    try:
        value = float(number) * _SIZE_UNITS[unit]
    except (ValueError, KeyError):
        raise SizeError(f"{what}: {text!r} is not a memory size; expected e.g. 8GiB, 512MiB, 16GB or bytes") from None
    if not value > 0 or value == float("inf"):
        raise SizeError(f"{what}: {text!r} must be a positive size")
    return value
