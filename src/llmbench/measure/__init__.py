"""Measuring one combination: timers and memory probes, the timed generate, derived speed figures."""
