"""Installs ``LLMBENCH_FAULTS``'s faults when an interpreter starts with this folder on its PYTHONPATH.

It loads ``llmbench/testing/faults.py`` by its path under a private name, never importing the ``llmbench``
package: a model worker of an ``llmbench ab`` side gets its side's ``sys.path`` only after start, and must
import its own checkout's ``llmbench`` then. Another ``sitecustomize`` later on the path still runs. Where an
environment has a ``sitecustomize`` of its own first on the path, that one can run this file:
``runpy.run_path(".../faults_site/sitecustomize.py")``.
See :mod:`llmbench.testing.faults`.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import sys

#: The private name the faults module is loaded under in a faulted process.
NAME = "_llmbench_faults"


def _load_faults() -> None:
    if NAME in sys.modules or not os.environ.get("LLMBENCH_FAULTS"):
        return
    path = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "faults.py")
    spec = importlib.util.spec_from_file_location(NAME, path)
    if spec is None or spec.loader is None:
        raise ImportError(f"cannot load {path}")
    module = importlib.util.module_from_spec(spec)
    sys.modules[NAME] = module
    spec.loader.exec_module(module)
    module.install_from_site()


def _next_sitecustomize() -> None:
    """Run the ``sitecustomize`` this one shadows, if the path has another."""
    here = os.path.dirname(os.path.abspath(__file__))
    rest = [entry for entry in sys.path if os.path.abspath(entry or os.curdir) != here]
    spec = importlib.machinery.PathFinder.find_spec("sitecustomize", rest)
    # Not the one importing now (a sitecustomize of its own may run this file: runpy.run_path).
    running = getattr(sys.modules.get("sitecustomize"), "__file__", None)
    if spec is not None and spec.loader is not None and spec.origin not in (os.path.abspath(__file__), running):
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)


_load_faults()
_next_sitecustomize()
