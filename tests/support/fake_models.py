"""What the fake loaded models of the ``llmbench ab`` tests share: fixed sizes, no KV layout, pinning noted."""

from __future__ import annotations

from llmbench.engine_types import KVLayout


class FakeModelFacts:
    """A fake model's facts (1000 bytes of weights, a 2000-byte file, no KV-cache layout) and the CPUs it was
    last pinned to (``llmbench ab --duet``)."""

    cpus: frozenset[int] | None = None

    def weight_bytes(self) -> int:
        return 1000

    def file_bytes(self) -> int | None:
        return 2000

    def kv_cache_layout(self) -> KVLayout | None:
        return None

    def pin(self, cpus: frozenset[int]) -> None:
        self.cpus = cpus
