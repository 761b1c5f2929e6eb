"""Wires this repository's own fixtures (``fixtures/``) into every pytest session run in it.

The layout of docs/design.md: ``fixtures/`` holds this suite's fixture modules and data (the examples'
documents, questions and their twins' workspaces: ``fixtures/examples.py``), registered here as plugins.
What a user of the installed plugin needs ships with the package instead (``llmbench.plugin``,
``src/llmbench/data``).

Fixtures only: no hooks, nothing autouse, and nothing heavy imported when pytest starts (torch and the
models are loaded inside the fixtures that need them), so ``pytest tests`` and ``pytest benchmarks``
collect and run as they would without it.
"""

pytest_plugins = ["fixtures.examples"]
