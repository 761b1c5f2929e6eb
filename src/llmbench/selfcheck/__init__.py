"""``llmbench selfcheck``: the harness's figures against independent readings, on this machine.

Engine counters against the decode calls timed from Python and the harness's clock, the harness
against a bare loop of the same library, the harness's own cost inside the timed call, bandwidth by a
second method, the peak-memory probe against sampling and a known allocation (``--device cpu``,
docs/metrics.md); on a GPU (``--device cuda``) its timer, the driver's memory, the energy counter and
the fingerprint (docs/gpu.md). Each check has a tolerance, measured by a committed script it names,
and, where it fails, what to fix. The modules: checks (one cross-check), agreement (the speed figures
against the engines' counters and bare calls), hf_bare (the bare transformers references), machine
(bandwidth, the peak-memory probe), cuda_device (what the GPU rows drive and read), gpu_checks (the
GPU rows), run (every check in order).
"""

from __future__ import annotations

from llmbench.selfcheck.checks import Check, render_checks

__all__ = ["Check", "render_checks"]
