"""Helpers for tests of benchmark suites: :mod:`llmbench.testing.tiny_models` builds tiny offline models."""
