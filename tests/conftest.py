"""Shared fixtures of the harness's own tests."""

from __future__ import annotations

import contextlib
import os
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import scipy.stats  # noqa: F401  (a second import gives new classes that scipy's own checks reject)
import torch

# Import the heavy native libraries once, in the outer process: pytester's in-process runs restore
# sys.modules after each run, and importing torch or llama_cpp a second time crashes the process.
import llmbench.backends.transformers_backend

# bitsandbytes too (an optional extra): a second import fails registering its torch operators.
with contextlib.suppress(ImportError):
    import bitsandbytes  # noqa: F401

try:
    import llama_cpp  # noqa: F401

    import llmbench.backends.llama_cpp_backend  # noqa: F401
except ImportError:  # the llama-cpp extra is optional
    pass

pytest_plugins = ["pytester"]

#: What pytest-xdist tells its worker processes (``make test`` runs this suite on one per core).
XDIST_VARIABLES = ("PYTEST_XDIST_WORKER", "PYTEST_XDIST_WORKER_COUNT", "PYTEST_XDIST_TESTRUNUID")


@pytest.fixture(scope="session", autouse=True)
def _sessions_under_test_are_not_xdist_workers() -> Iterator[None]:
    """The pytest sessions the tests start (pytester, subprocesses) are not xdist workers, even when this
    suite runs on several: pytest-benchmark reads ``PYTEST_XDIST_WORKER`` and would disable their benchmarks."""
    saved = {name: os.environ.pop(name) for name in XDIST_VARIABLES if name in os.environ}
    yield
    os.environ.update(saved)


@pytest.fixture(scope="session")
def tiny_gemma3_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random Gemma 3 causal model with a real SentencePiece tokenizer, built offline."""
    from llmbench.testing.tiny_models import build_tiny_gemma3

    return build_tiny_gemma3(tmp_path_factory.mktemp("tiny-gemma3"))


@pytest.fixture(scope="session")
def tiny_t5_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random T5 encoder-decoder with a real SentencePiece tokenizer, built offline."""
    from llmbench.testing.tiny_models import build_tiny_t5

    return build_tiny_t5(tmp_path_factory.mktemp("tiny-t5"))


@pytest.fixture(scope="session")
def tiny_t5gemma_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A tiny random T5Gemma encoder-decoder with a real SentencePiece tokenizer, built offline."""
    from llmbench.testing.tiny_models import build_tiny_t5gemma

    return build_tiny_t5gemma(tmp_path_factory.mktemp("tiny-t5gemma"))


@pytest.fixture
def suite(pytester: pytest.Pytester) -> pytest.Pytester:
    """A pytester directory for a benchmark suite: the plugin's own fixtures and data set are all it needs."""
    return pytester


#: The folder the transformers backend converts the real model into, inside a model cache.
REAL_HF_DIR = Path("hf") / "gemma3-270m"


@pytest.fixture(scope="session")
def real_gguf_cache(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A model cache the real-model tests of a run share, its xdist workers too (it lies in the run's base
    temporary folder, the parent of each worker's): the real model's packaged GGUF is assembled into it once
    (``gguf/``, about 2 s) and converted for transformers once (``hf/``, about 45 s), each by the first test
    that needs it while the others wait on the cache's file lock (``llmbench.backends.model_files``).

    It starts with a half-written conversion (a directory without its completion marker, as an interrupted
    writer of an older version could leave it), so that the run's one conversion is a rebuild of it:
    ``tests/backends/test_transformers_backend.py`` checks the result."""
    from llmbench.backends.model_files import file_lock

    root = tmp_path_factory.getbasetemp()
    if hasattr(request.config, "workerinput"):  # an xdist worker: its base folder is one of the run's
        root = root.parent
    cache = root / "llmbench-cache"
    with file_lock(root / "llmbench-cache.lock"):
        if not cache.is_dir():
            made = root / ".llmbench-cache.tmp"
            shutil.rmtree(made, ignore_errors=True)
            half = made / REAL_HF_DIR
            half.mkdir(parents=True)
            (half / "config.json").write_text("{")
            (half / "model.safetensors").write_bytes(b"\0" * 1024)
            os.replace(made, cache)
    return cache


@pytest.fixture
def one_torch_thread() -> Iterator[None]:
    """torch on one thread for the test: on a shared machine a descheduled thread stalls every op's
    thread barrier, which turns a tiny model's millisecond steps into tens of milliseconds (a module of
    tiny-model tests ran 45 s on two threads under load, 16 s on one)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="session")
def real_llama_model(real_gguf_cache: Path) -> Iterator[object]:
    """The real model (Gemma 3 270M Q4_K_M) loaded once in llama.cpp for the session's real-model tests,
    on one thread: llama.cpp's spinning thread barrier slows down by orders of magnitude when its
    threads outnumber the free cores. Each ``generate`` starts from a cleared state, so the tests that
    share it do not see each other's calls. Skipped where llama-cpp-python or the model is not installed."""
    pytest.importorskip("llama_cpp", reason="llama-cpp-python is not installed")
    from llmbench.backends.llama_cpp_backend import LlamaCppBackend
    from llmbench.config.combination import Combination
    from llmbench.config.models import BUILTIN_MODELS

    backend = LlamaCppBackend(n_threads=1)
    spec = BUILTIN_MODELS["gemma3-270m"]
    reason = backend.unavailable_reason(spec, "q4_k_m", "cpu")
    if reason is not None:
        pytest.skip(reason)
    model = backend.load(Combination(spec, "q4_k_m", "cpu", 1), real_gguf_cache)
    yield model
    model.close()
