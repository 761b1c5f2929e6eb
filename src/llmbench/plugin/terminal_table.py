"""The end-of-session table: one row per combination with the figures LLM users compare.

Human units (ms, tok/s, MiB/GiB, %), n/a where a figure could not be measured, fits 120 columns.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from llmbench.metrics import Metric, metrics_of
from llmbench.tables import Column, text_table
from llmbench.units import format_compact

#: (header, metric name, width); values are formatted by :func:`llmbench.units.format_compact`.
COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("latency", "latency_s", 8),
    ("TTFT", "ttft_s", 8),
    ("prefill/s", "prefill_tok_s", 9),
    ("decode/s", "decode_tok_s_per_seq", 8),
    ("batch/s", "decode_tok_s_total", 7),
    ("peak mem", "peak_rss_bytes", 9),
    ("weights", "weight_bytes", 9),
    ("MBU", "mbu", 6),
    ("ROUGE-L", "rougeLsum", 7),
    ("same", "drift_identical_share", 6),
)
#: The second table: the engine's decode figure and the latency distribution (docs/metrics.md).
DISTRIBUTION_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("engine/s", "engine_decode_tok_s", 8),
    ("TPOT p50", "tpot_p50_s", 8),
    ("p90", "tpot_p90_s", 7),
    ("p99", "tpot_p99_s", 7),
    ("ITL p50", "itl_p50_s", 7),
    ("p90", "itl_p90_s", 7),
    ("p99", "itl_p99_s", 7),
    ("TTFT p90", "ttft_p90_s", 8),
    ("p99", "ttft_p99_s", 7),
)
#: The memory column shows CUDA's allocated peak where the run was on a GPU.
GPU_MEMORY = "peak_cuda_allocated_bytes"


def cell(metrics: Mapping[str, Metric], name: str) -> str:
    metric = metrics.get(name)
    if name == "peak_rss_bytes" and GPU_MEMORY in metrics:
        metric = metrics[GPU_MEMORY]
    if metric is None:
        return "n/a"
    return format_compact(metric.value, metric.unit)


def combination_label(extra: Mapping[str, Any]) -> str:
    return f"{extra.get('model')} {extra.get('precision')} {extra.get('device')} bs{extra.get('batch_size')}"


def _table(benchmarks: Iterable[Mapping[str, Any]], columns: tuple[tuple[str, str, int], ...]) -> list[str]:
    """Header, rule and one row per benchmark with LLM figures; empty where there are none."""
    rows = []
    for bench in benchmarks:
        extra = bench.get("extra_info") or {}
        metrics = metrics_of(bench)
        if "model" not in extra or "latency_s" not in metrics:
            continue
        rows.append([combination_label(extra)] + [cell(metrics, name) for _, name, _ in columns])
    if not rows:
        return []
    header = [Column("combination"), *(Column(title, "right", width) for title, _, width in columns)]
    return text_table(header, rows, gap=1, rule="line")


def render(benchmarks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The table's lines for benchmarks shaped like pytest-benchmark's JSON (``extra_info`` with ``metrics``),
    then, where any benchmark has them, the engine's decode figure and the latency distribution."""
    benchmarks = list(benchmarks)
    out = _table(benchmarks, COLUMNS)
    if not out:
        return []
    out.append("decode/s: tokens/s per sequence after the first token; batch/s: the whole batch's tokens/s;")
    out.append("MBU: share of the peak memory bandwidth; same: share of outputs identical to the reference precision")
    names = {name for _, name, _ in DISTRIBUTION_COLUMNS}
    if any(names & set(metrics_of(bench)) for bench in benchmarks):
        out.append("")
        out.extend(_table(benchmarks, DISTRIBUTION_COLUMNS))
        out.append("decode/s above is end-to-end; engine/s: the engine's own decode steps (docs/metrics.md);")
        out.append("TPOT per sequence, ITL per token, over all timed rounds (n/a: too few samples for the percentile)")
    return out
