"""Every metric the harness builds has its unit and direction in ``METRIC_FACTS`` (src/llmbench/metrics.py)."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from llmbench.metrics import METRIC_FACTS, Metric
from tests.support.paths import REPO

SRC = REPO / "src" / "llmbench"


def test_metric_of_takes_unit_and_direction_from_the_table() -> None:
    metric = Metric.of("decode_tok_s_total", 41.8, [41.2, 41.9], ci=(41.0, 42.0), note="n")
    assert metric == Metric("decode_tok_s_total", 41.8, "tok/s", "higher", (41.2, 41.9), (41.0, 42.0), "n")
    assert Metric.of("peak_mps_driver_bytes", None) == Metric("peak_mps_driver_bytes", None, "bytes", "lower")


def test_metric_of_an_unknown_name_raises() -> None:
    with pytest.raises(ValueError, match="metric 'decode_speed' has no entry in METRIC_FACTS"):
        Metric.of("decode_speed", 1.0)


def _named_metrics(path: Path) -> set[str]:
    """The literal names of ``Metric(...)`` and ``Metric.of(...)`` calls in a source file."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if not (isinstance(node, ast.Call) and node.args and isinstance(node.args[0], ast.Constant)):
            continue
        func = node.func
        is_metric = (isinstance(func, ast.Name) and func.id == "Metric") or (
            isinstance(func, ast.Attribute) and func.attr == "of" and isinstance(func.value, ast.Name)
            and func.value.id == "Metric"
        )  # fmt: skip
        if is_metric and isinstance(node.args[0].value, str):
            names.add(node.args[0].value)
    return names


def test_every_metric_named_in_the_source_has_facts() -> None:
    named = {name: path for path in SRC.rglob("*.py") for name in _named_metrics(path)}
    assert {"peak_rss_bytes", "peak_mps_allocated_bytes", "kv_cache_bytes", "semantic_sim"} <= set(named)
    missing = {name: str(path.relative_to(SRC)) for name, path in named.items() if name not in METRIC_FACTS}
    assert not missing


def test_the_memory_probes_metrics_all_have_facts() -> None:
    for name in (
        "peak_rss_bytes", "rss_before_bytes", "peak_cuda_allocated_bytes", "peak_cuda_reserved_bytes",
        "cuda_allocated_before_bytes", "peak_mps_allocated_bytes", "peak_mps_driver_bytes",
        "mps_allocated_before_bytes",
    ):  # fmt: skip
        assert (METRIC_FACTS[name].unit, METRIC_FACTS[name].direction) == ("bytes", "lower"), name
