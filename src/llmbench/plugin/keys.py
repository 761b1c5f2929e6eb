"""The plugin's stash keys and parametrized argument names, shared by its hook modules."""

from __future__ import annotations

import pytest

from llmbench.backends.loaded_models import LoadedModels
from llmbench.config.settings import Settings

SETTINGS_KEY = pytest.StashKey[Settings]()
MODELS_KEY = pytest.StashKey[LoadedModels]()
COMBINATION_ARG = "llm_combination"
#: Parametrized with one combination per (model, precision, device): for what batch size does not change.
LOAD_COMBINATION_ARG = "llm_load_combination"
