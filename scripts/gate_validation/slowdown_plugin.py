"""Inject known changes into a benchmark session, to measure what the gate catches (docs/gate-validation.md).

Load it with ``-p`` (``scripts/gate_validation`` on ``PYTHONPATH``)::

    pytest benchmarks -p slowdown_plugin --gate-validation-slowdown=0.10
    pytest benchmarks -p slowdown_plugin --gate-validation-hold-mib=1024 --gate-validation-truncate

``--gate-validation-slowdown=SHARE``: after every timed ``generate`` call, sleep SHARE of that call's
own duration (latency up by SHARE; the backend's per-token timestamps, hence TTFT and decode rates,
are not touched). ``--gate-validation-hold-mib=N``: from the first call on, the process holds N MiB
more (written, so resident): peak RSS up by N MiB. ``--gate-validation-truncate``: every generated text
keeps only its first half of words (ROUGE down). The plugin wraps the model that
``GenerateBenchmark.run`` (timed calls) and ``QualityRuns.get`` (quality) are given, and undoes it when
the session ends.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from typing import Any

import pytest

from llmbench.backends import Generation, LoadedModel
from llmbench.config.combination import Combination
from llmbench.measure.generate import GenerateBenchmark
from llmbench.quality.runs import QualityRun, QualityRuns

MiB = 1024**2
#: The benchmark's extra_info key that records what was injected (and the seconds slept).
INFO_KEY = "gate_validation"
_HELD: list[bytearray] = []


class SlowedModel:
    """A loaded model whose ``generate`` takes ``1 + share`` times as long; the rest is delegated."""

    def __init__(self, model: LoadedModel, share: float, hold_bytes: int, truncate: bool) -> None:
        self._model = model
        self._share = share
        self._hold_bytes = hold_bytes
        self._truncate = truncate
        #: (seconds of each generate call, seconds slept after it), saved with the benchmark.
        self.calls: list[tuple[float, float]] = []

    def generate(self, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        if self._hold_bytes and not _HELD:
            block = bytearray(self._hold_bytes)
            block[::4096] = b"\x01" * len(range(0, self._hold_bytes, 4096))  # touch every page
            _HELD.append(block)
        start = time.perf_counter()
        generation = self._model.generate(prompts, max_new_tokens)
        elapsed = time.perf_counter() - start
        if self._share > 0:
            time.sleep(self._share * elapsed)
        self.calls.append((elapsed, time.perf_counter() - start - elapsed))
        if self._truncate:
            halves = tuple(" ".join(text.split()[: len(text.split()) // 2]) for text in generation.texts)
            generation = dataclasses.replace(generation, texts=halves)
        return generation

    def __getattr__(self, name: str) -> Any:
        return getattr(self._model, name)


def _share(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise pytest.UsageError(f"--gate-validation-slowdown must be a number such as 0.10, not {text!r}") from None
    if not 0 <= value <= 10:
        raise pytest.UsageError(f"--gate-validation-slowdown must be from 0 to 10, not {text!r}")
    return value


def pytest_addoption(parser: pytest.Parser) -> None:
    group = parser.getgroup("gate-validation", "injected changes for gate validation (docs/gate-validation.md)")
    group.addoption("--gate-validation-slowdown", metavar="SHARE", default="0",
                    help="sleep this share of each generate call's time after it. Default: %(default)r")  # fmt: skip
    group.addoption("--gate-validation-hold-mib", metavar="N", type=int, default=0,
                    help="hold N MiB more from the first generate call on. Default: %(default)r")  # fmt: skip
    group.addoption("--gate-validation-truncate", action="store_true",
                    help="keep the first half of the words of every generated text")  # fmt: skip


def pytest_configure(config: pytest.Config) -> None:
    share = _share(str(config.getoption("--gate-validation-slowdown")))
    hold_bytes = int(config.getoption("--gate-validation-hold-mib")) * MiB
    truncate = bool(config.getoption("--gate-validation-truncate"))
    if share == 0 and hold_bytes == 0 and not truncate:
        return
    # The wrapped model is the one in this process: with models in worker processes nothing would change.
    isolation = getattr(config.option, "llmbench_isolation", None)
    if isolation not in (None, "none"):
        raise pytest.UsageError(f"gate-validation injections need --llmbench-isolation=none, not {isolation!r}")
    patch = pytest.MonkeyPatch()
    original_run, original_get = GenerateBenchmark.run, QualityRuns.get

    def run(self: GenerateBenchmark, llm: LoadedModel, prompts: Sequence[str], max_new_tokens: int) -> Generation:
        slowed = SlowedModel(llm, share, hold_bytes, truncate)
        result = original_run(self, slowed, prompts, max_new_tokens)
        self.benchmark.extra_info[INFO_KEY] = {
            "slowdown": share, "hold_mib": hold_bytes // MiB, "truncate": truncate,
            "generate_s": [c[0] for c in slowed.calls], "slept_s": [c[1] for c in slowed.calls],
        }  # fmt: skip
        return result

    def get(self: QualityRuns, combination: Combination, llm: LoadedModel, max_new_tokens: int) -> QualityRun:
        return original_get(self, combination, SlowedModel(llm, 0.0, 0, truncate), max_new_tokens)

    patch.setattr(GenerateBenchmark, "run", run)
    if truncate:
        patch.setattr(QualityRuns, "get", get)
    config.add_cleanup(patch.undo)
    config.add_cleanup(_HELD.clear)
