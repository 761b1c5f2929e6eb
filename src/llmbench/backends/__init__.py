"""Model backends behind one interface (:class:`llmbench.backends.base.Backend`).

The modules: base (the Protocol), transformers_backend with hf_generation (the clocks and the stop it
hooks into ``generate``) and hf_sources (where its weights come from), llama_cpp_backend with
llama_cpp_native, model_files (GGUF assembly, converted cache), loaded_models (the session cache).
"""

from __future__ import annotations

from llmbench.backends.base import Backend, BackendUnavailable, Generation, LoadedModel
from llmbench.config.precisions import BackendName

__all__ = ["Backend", "BackendUnavailable", "Generation", "LoadedModel", "get_backend"]


def get_backend(name: BackendName, threads: int | None = None) -> Backend:
    """The backend object for a name; imports its heavy libraries lazily.

    ``threads``: CPU threads for llama.cpp (transformers uses torch's global setting, which the
    plugin sets from ``--llmbench-threads``).
    """
    if name == "transformers":
        from llmbench.backends.transformers_backend import TransformersBackend

        return TransformersBackend()
    if name == "llama_cpp":
        from llmbench.backends.llama_cpp_backend import LlamaCppBackend

        return LlamaCppBackend(n_threads=threads)
    raise ValueError(f"unknown backend {name!r}; known: transformers, llama_cpp")
