"""The session model cache, with a stand-in loader whose preparation and load costs are injected."""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from llmbench.backends import BackendUnavailable
from llmbench.backends.loaded_models import LoadedModels
from llmbench.config.combination import Combination
from llmbench.config.models import BUILTIN_MODELS

GEMMA = BUILTIN_MODELS["gemma3-270m"]


class StandInModel:
    """Counts closes; nothing else of a model is needed by the cache."""

    def __init__(self) -> None:
        self.closed = 0

    def close(self) -> None:
        self.closed += 1


def test_preparation_is_not_part_of_the_load_time(tmp_path: Path) -> None:
    calls: list[str] = []

    def prepare(combination: Combination, cache: Path) -> None:
        calls.append("prepare")
        time.sleep(0.3)

    def load(combination: Combination, cache: Path) -> StandInModel:
        calls.append("load")
        time.sleep(0.02)
        return StandInModel()

    models = LoadedModels(tmp_path, loader=load, preparer=prepare)  # type: ignore[arg-type]
    combination = Combination(GEMMA, "bf16", "cpu", 1)
    models.get(combination)
    models.get(Combination(GEMMA, "bf16", "cpu", 4))  # same load key: no second load
    assert calls == ["prepare", "load"]
    load_s = models.load_time(combination.load_key)
    assert load_s is not None
    assert 0.02 <= load_s < 0.3


def test_release_closes_and_a_later_get_loads_again(tmp_path: Path) -> None:
    loaded: list[StandInModel] = []

    def load(combination: Combination, cache: Path) -> StandInModel:
        loaded.append(StandInModel())
        return loaded[-1]

    models = LoadedModels(tmp_path, loader=load, preparer=lambda c, p: None)  # type: ignore[arg-type]
    combination = Combination(GEMMA, "fp32", "cpu", 1)
    models.get(combination)
    models.release(combination.load_key)
    assert loaded[0].closed == 1
    assert not models.is_loaded(combination.load_key)
    models.get(combination)
    assert len(loaded) == 2
    models.release_all()
    assert loaded[1].closed == 1
    assert models.releases == [combination.load_key, combination.load_key]


def test_a_load_that_cannot_happen_is_remembered_as_a_skip(tmp_path: Path) -> None:
    attempts: list[int] = []

    def load(combination: Combination, cache: Path) -> StandInModel:
        attempts.append(1)
        raise BackendUnavailable("not available offline: org/model")

    models = LoadedModels(tmp_path, loader=load, preparer=lambda c, p: None)  # type: ignore[arg-type]
    for batch in (1, 4):
        with pytest.raises(BackendUnavailable, match="not available offline"):
            models.get(Combination(GEMMA, "fp32", "cpu", batch))
    assert attempts == [1]


CHILD = """
import numpy as np
from pathlib import Path
from llmbench.backends.loaded_models import LoadedModels
from llmbench.config.models import BUILTIN_MODELS
from llmbench.config.combination import Combination


def rss_mib():
    with open("/proc/self/statm") as statm:
        return int(statm.read().split()[1]) * 4096 / 2**20


class Fragmented:
    def __init__(self):
        self.blocks = [np.ones(1000) for _ in range(60_000)]  # about 460 MiB in small blocks

    def close(self):
        self.blocks = None


models = LoadedModels(Path("."), loader=lambda c, p: Fragmented(), preparer=lambda c, p: None)
combination = Combination(BUILTIN_MODELS["gemma3-270m"], "fp32", "cpu", 1)
before = rss_mib()
models.get(combination)
loaded = rss_mib()
models.release(combination.load_key)
print(loaded - before, rss_mib() - before)
"""


@pytest.mark.skipif(not Path("/proc/self/statm").exists(), reason="needs Linux /proc")
def test_release_returns_the_freed_memory_to_the_os(tmp_path: Path) -> None:
    """Many small allocations stay in glibc's free lists after ``del``; release trims them.

    In a child process: the freed heap would change how later tests' allocations behave.
    """
    out = subprocess.run([sys.executable, "-c", CHILD], capture_output=True, text=True, check=True, cwd=tmp_path)
    loaded, released = (float(x) for x in out.stdout.split())
    assert loaded > 400
    assert released < 100
