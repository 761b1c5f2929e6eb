"""The end-of-session table: one row per combination with the figures LLM users compare.

Human units (ms, tok/s, MiB/GiB, %), n/a where a figure could not be measured, fits 120 columns.
"""

from __future__ import annotations

import textwrap
from collections.abc import Iterable, Mapping
from typing import Any

from llmbench.gpu_driver import THROTTLE_INFO_KEY, throttle_note
from llmbench.metrics import Metric, metrics_of
from llmbench.tables import Column, text_table
from llmbench.units import format_compact

#: The column of a metric's bootstrap interval rather than its value.
ACCURACY_CI = "accuracy ci"
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
#: The third table, where a run has any of its figures: energy and the GPU memory figures side by side, each
#: named for where it comes from (docs/gpu.md).
DEVICE_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("J/token", "energy_per_token_j", 8),
    ("mean W", "mean_power_w", 7),
    ("GPU proc", "peak_gpu_process_bytes", 9),
    ("CUDA alloc", "peak_cuda_allocated_bytes", 10),
    ("CUDA resv", "peak_cuda_reserved_bytes", 9),
    ("GPU used", "peak_gpu_used_bytes", 9),
    ("host RSS", "peak_rss_bytes", 9),
)
#: The fourth table, where a run has accuracy checks: the share correct with its bootstrap interval, its share of
#: the reference's (another model, precision or device where the matrix file says so; docs/quality.md,
#: "References and comparisons"), and the outputs identical to the reference's ("Accuracy checks").
QUALITY_COLUMNS: tuple[tuple[str, str, int], ...] = (
    ("accuracy", "accuracy", 8),
    ("95% CI", ACCURACY_CI, 13),
    ("of ref.", "accuracy_share", 7),
    ("ROUGE-L", "rougeLsum", 7),
    ("same", "drift_identical_share", 6),
)
#: On a GPU, the memory column shows the process's GPU memory as the driver sees it, else CUDA's allocated
#: peak (the driver's figure n/a: no nvidia-ml-py), else n/a; never the host RSS (the third table has it).
GPU_MEMORY = ("peak_gpu_process_bytes", "peak_cuda_allocated_bytes")


def _measured(metrics: Mapping[str, Metric], name: str) -> bool:
    metric = metrics.get(name)
    return metric is not None and metric.value is not None


def cell(metrics: Mapping[str, Metric], name: str, headline: bool = True) -> str:
    """One figure for a column; in the headline table, the memory column is the GPU's where there is one."""
    if name == ACCURACY_CI:
        found = metrics.get("accuracy")
        if found is None or found.ci is None:
            return "n/a"
        return f"{format_compact(found.ci[0], found.unit)}-{format_compact(found.ci[1], found.unit)}"
    metric = metrics.get(name)
    on_gpu = [metrics[gpu] for gpu in GPU_MEMORY if gpu in metrics]
    if name == "peak_rss_bytes" and headline and on_gpu:  # a GPU's row: its GPU memory, n/a where unmeasured
        metric = next((m for m in on_gpu if m.value is not None), on_gpu[0])
    if metric is None:
        return "n/a"
    return format_compact(metric.value, metric.unit)


def combination_label(extra: Mapping[str, Any]) -> str:
    """``gemma3-270m q4_k_m cpu bs1``, and the data set and prompt length (``prompt1024``) where the test id
    names them."""
    label = f"{extra.get('model')} {extra.get('precision')} {extra.get('device')} bs{extra.get('batch_size')}"
    label = f"{label} {extra['dataset']}" if extra.get("dataset") else label
    return f"{label} prompt{extra['prompt_length']}" if extra.get("prompt_length") is not None else label


def _table(benchmarks: Iterable[Mapping[str, Any]], columns: tuple[tuple[str, str, int], ...]) -> list[str]:
    """Header, rule and one row per benchmark with LLM figures; empty where there are none."""
    rows = []
    for bench in benchmarks:
        extra = bench.get("extra_info") or {}
        metrics = metrics_of(bench)
        if "model" not in extra or "latency_s" not in metrics:
            continue
        headline = columns is not DEVICE_COLUMNS
        rows.append([combination_label(extra)] + [cell(metrics, name, headline) for _, name, _ in columns])
    if not rows:
        return []
    header = [Column("combination"), *(Column(title, "right", width) for title, _, width in columns)]
    return text_table(header, rows, gap=1, rule="line")


def _rouge_reasons(benchmarks: list[Mapping[str, Any]]) -> list[str]:
    """Why ROUGE-L is n/a, where the run saved a reason (a data set without references), one line per reason."""
    found: dict[str, list[str]] = {}
    for bench in benchmarks:
        metric = metrics_of(bench).get("rougeLsum")
        if metric is not None and metric.value is None and metric.note:
            label = combination_label(bench.get("extra_info") or {})
            found.setdefault(metric.note.removeprefix("n/a: "), []).append(label)
    out: list[str] = []
    for reason, labels in found.items():
        out.extend(textwrap.wrap(f"ROUGE-L n/a for {', '.join(labels)}: {reason}", 120, subsequent_indent="  "))
    return out


def render(benchmarks: Iterable[Mapping[str, Any]]) -> list[str]:
    """The table's lines for benchmarks shaped like pytest-benchmark's JSON (``extra_info`` with ``metrics``),
    then, where any benchmark has them, the engine's decode figure and the latency distribution, the energy
    and GPU memory figures, the accuracy figures, and a warning for each combination whose GPU throttled."""
    benchmarks = list(benchmarks)
    out = _table(benchmarks, COLUMNS)
    if not out:
        return []
    out.append("decode/s: tokens/s per sequence after the first token; batch/s: the whole batch's tokens/s;")
    out.append("MBU: share of the peak memory bandwidth; same: share of outputs identical to the reference's")
    names = {name for _, name, _ in DISTRIBUTION_COLUMNS}
    if any(names & set(metrics_of(bench)) for bench in benchmarks):
        out.append("")
        out.extend(_table(benchmarks, DISTRIBUTION_COLUMNS))
        out.append("decode/s above is end-to-end; engine/s: the engine's own decode steps (docs/metrics.md);")
        out.append("TPOT per sequence, ITL per token, over all timed rounds (n/a: too few samples for the percentile)")
    device = {name for _, name, _ in DEVICE_COLUMNS[:3]}
    if any(_measured(metrics_of(bench), name) for bench in benchmarks for name in device):
        out.append("")
        out.extend(_table(benchmarks, DEVICE_COLUMNS))
        out.append("J/token: energy per generated token over the timed rounds (NVML on CUDA, RAPL on a CPU);")
        out.append("GPU proc: the process's GPU memory from the driver; CUDA alloc/resv: torch's allocator;")
        out.append("GPU used: every process on the GPU (docs/gpu.md)")
    if any("accuracy" in metrics_of(bench) for bench in benchmarks):
        out.append("")
        out.extend(_table(benchmarks, QUALITY_COLUMNS))
        out.append("accuracy: share of the items answered correctly under their checks, 95% bootstrap interval;")
        out.append("of ref.: accuracy as a share of the reference's (docs/quality.md)")
    out.extend(_rouge_reasons(benchmarks))
    for bench in benchmarks:
        extra = bench.get("extra_info") or {}
        note = throttle_note(extra.get(THROTTLE_INFO_KEY))
        if note:
            out.extend(textwrap.wrap(f"warning: {combination_label(extra)}: {note}", 120, subsequent_indent="  "))
    return out
