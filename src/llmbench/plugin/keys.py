"""The plugin's stash keys and parametrized argument names, shared by its hook modules.

The settings key and the argument names live beside what they hold (:mod:`llmbench.config`), so that
the library (``llmbench ab`` collects with the plugin) reads them without importing the plugin.
"""

from __future__ import annotations

import pytest

from llmbench.backends.loaded_models import LoadedModels
from llmbench.config.combination import COMBINATION_ARG, LOAD_COMBINATION_ARG
from llmbench.config.settings import SETTINGS_KEY

__all__ = ["COMBINATION_ARG", "LOAD_COMBINATION_ARG", "MODELS_KEY", "SETTINGS_KEY"]

MODELS_KEY = pytest.StashKey[LoadedModels]()
