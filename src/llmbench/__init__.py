"""pytest-llmbench: a pytest-based performance regression harness for LLM inference."""

from __future__ import annotations

__version__ = "0.1.0"
