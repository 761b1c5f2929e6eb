"""``llmbench selfcheck``: the harness's figures against independent readings, on this machine.

Engine counters against the harness's clock, the harness against a bare loop of the same library,
the harness's own cost inside the timed call, bandwidth by a second method, the peak-memory probe
against sampling and the kernel's maximum. Each check has a tolerance; see docs/metrics.md.
The modules: checks (one cross-check), agreement (the speed figures against the engines' counters and
bare calls), hf_bare (the bare transformers references), machine (bandwidth, the peak-memory probe).
"""

from __future__ import annotations

from llmbench.selfcheck.checks import Check, render_checks

__all__ = ["Check", "render_checks"]
