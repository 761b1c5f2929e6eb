"""A fixed clock for pytest-benchmark sessions run by pytester (``pytester.makepyfile(fixed_clock=FIXED_CLOCK)``).

The module's ``now`` is the session's timer (``--benchmark-timer=fixed_clock.now``) and moves only when the
benchmark sleeps on it with ``sleep``, so each round takes exactly what it asks for: real sleeps on a busy
machine spread, and an unchanged benchmark read "noisy".
"""

from __future__ import annotations

FIXED_CLOCK = """
NOW = [0.0]


def now():
    return NOW[0]


def sleep(seconds):
    NOW[0] += seconds
"""
