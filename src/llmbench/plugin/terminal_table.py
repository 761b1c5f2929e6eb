"""The end-of-session table: one row per combination with the figures LLM users compare.

Human units (ms, tok/s, MiB/GiB, %), n/a where a figure could not be measured, fits 120 columns.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any

from llmbench.metrics import Metric, metrics_of

MiB = 2**20
GiB = 2**30


def fmt_seconds(value: float) -> str:
    return f"{value * 1000:.0f} ms" if value < 10 else f"{value:.1f} s"


def fmt_rate(value: float) -> str:
    return f"{value:.1f}" if value < 1000 else f"{value:.0f}"


def fmt_bytes(value: float) -> str:
    return f"{value / GiB:.2f} GiB" if value >= GiB else f"{value / MiB:.0f} MiB"


def fmt_share(value: float) -> str:
    return f"{value * 100:.1f}%"


def fmt_score(value: float) -> str:
    return f"{value:.3f}"


#: (header, metric name, formatter, width)
COLUMNS: tuple[tuple[str, str, Callable[[float], str], int], ...] = (
    ("latency", "latency_s", fmt_seconds, 8),
    ("TTFT", "ttft_s", fmt_seconds, 8),
    ("prefill/s", "prefill_tok_s", fmt_rate, 9),
    ("decode/s", "decode_tok_s_per_seq", fmt_rate, 8),
    ("batch/s", "decode_tok_s_total", fmt_rate, 7),
    ("peak mem", "peak_rss_bytes", fmt_bytes, 9),
    ("weights", "weight_bytes", fmt_bytes, 9),
    ("MBU", "mbu", fmt_share, 6),
    ("ROUGE-L", "rougeLsum", fmt_score, 7),
    ("same", "drift_identical_share", fmt_share, 6),
)
#: The memory column shows CUDA's allocated peak where the run was on a GPU.
GPU_MEMORY = "peak_cuda_allocated_bytes"


def cell(metrics: Mapping[str, Metric], name: str, formatter: Callable[[float], str]) -> str:
    metric = metrics.get(name)
    if name == "peak_rss_bytes" and GPU_MEMORY in metrics:
        metric = metrics[GPU_MEMORY]
    if metric is None or metric.value is None:
        return "n/a"
    return formatter(metric.value)


def combination_label(extra: Mapping[str, Any]) -> str:
    return f"{extra.get('model')} {extra.get('precision')} {extra.get('device')} bs{extra.get('batch_size')}"


def render(benchmarks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The table's lines for benchmarks shaped like pytest-benchmark's JSON (``extra_info`` with ``metrics``)."""
    rows = []
    for bench in benchmarks:
        extra = bench.get("extra_info") or {}
        metrics = metrics_of(bench)
        if "model" not in extra or "latency_s" not in metrics:
            continue
        rows.append([combination_label(extra)] + [cell(metrics, name, fmt) for _, name, fmt, _ in COLUMNS])
    if not rows:
        return []
    first = max(len("combination"), *(len(row[0]) for row in rows))
    widths = [first] + [max(width, *(len(row[i + 1]) for row in rows)) for i, (_, _, _, width) in enumerate(COLUMNS)]
    header = ["combination"] + [title for title, _, _, _ in COLUMNS]

    def line(values: list[str]) -> str:
        return " ".join(
            [values[0].ljust(widths[0])] + [v.rjust(w) for v, w in zip(values[1:], widths[1:], strict=True)]
        )

    out = [line(header), "-" * len(line(header))]
    out.extend(line(row) for row in rows)
    out.append("decode/s: tokens/s per sequence after the first token; batch/s: the whole batch's tokens/s;")
    out.append("MBU: share of the peak memory bandwidth; same: share of outputs identical to the reference precision")
    return out
