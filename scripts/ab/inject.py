"""The injected changes of docs/ab.md: a head revision whose worker is slower or holds more memory.

``inject(checkout, slow=0.05)`` appends to the checkout's ``src/llmbench/workers/serve.py`` a wrapper
of the loaded model: each ``generate`` sleeps ``slow`` times its own duration, inside the timed call.
``hold_bytes`` (``hold_share``) makes the worker allocate and touch that many bytes (that share of its
RSS after the load) when the model is loaded, and hold them: every round's peak RSS grows by it.
The measurement commits the result as the head revision (scripts/ab/catch_rate.py).
"""

from __future__ import annotations

from pathlib import Path

SNIPPET = """

# --- scripts/ab/inject.py: an injected change, for docs/ab.md -----------------------------------
# Self-contained: it uses only what it imports here (llmbench's public API), not this module's names.
import time as _time

import psutil as _psutil

from llmbench.workers.protocol import Load as _Load
from llmbench.workers.serve import ModelServer as _ModelServer

_INJECT_SLOW = {slow!r}
_INJECT_HOLD_BYTES = {hold_bytes!r}
_INJECT_HOLD_SHARE = {hold_share!r}
_INJECT_HELD = []


class _InjectedModel:
    def __init__(self, inner):
        self._inner = inner

    def __getattr__(self, name):
        return getattr(self._inner, name)

    def generate(self, prompts, max_new_tokens):
        started = _time.perf_counter()
        out = self._inner.generate(prompts, max_new_tokens)
        if _INJECT_SLOW:
            _time.sleep(_INJECT_SLOW * (_time.perf_counter() - started))
        return out


_inject_handle = _ModelServer.handle


def _inject_handle_wrapped(self, request):
    reply = _inject_handle(self, request)
    if isinstance(request, _Load) and self.model is not None and not isinstance(self.model, _InjectedModel):
        size = _INJECT_HOLD_BYTES + int(_INJECT_HOLD_SHARE * _psutil.Process().memory_info().rss)
        if size:
            _INJECT_HELD.append(bytearray(b"\\x01") * size)  # touched: resident
        self.model = _InjectedModel(self.model)
    return reply


_ModelServer.handle = _inject_handle_wrapped
"""


def inject(checkout: Path, slow: float = 0.0, hold_bytes: int = 0, hold_share: float = 0.0) -> None:
    """Append the injected change to ``checkout``'s worker (see the module docstring)."""
    serve = checkout / "src" / "llmbench" / "workers" / "serve.py"
    serve.write_text(serve.read_text() + SNIPPET.format(slow=slow, hold_bytes=hold_bytes, hold_share=hold_share))
