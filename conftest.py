"""Wires the suite's fixture modules in; the plugin itself (llmbench.plugin) loads by entry point."""

pytest_plugins = ["fixtures.data", "fixtures.models", "fixtures.quality"]
