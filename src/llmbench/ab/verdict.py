"""The verdict on a saved pair: the gate's rules, table and exit status over the paired statistic.

Timed and memory figures are decided by :func:`llmbench.ab.paired.decide_paired` on the per-load
values both runs carry; figures without per-load values (quality scores, which are per item and
deterministic) by the gate's own :func:`~llmbench.gate.decision.decide`. Used by ``llmbench ab``
and by ``llmbench compare`` when its two runs are the two sides of one pair.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from llmbench.ab.paired import decide_paired
from llmbench.gate.decision import Decision, decide
from llmbench.gate.pooling import benchmark_metrics
from llmbench.gate.rules import PAIRED_RULES, Rule, rule_for
from llmbench.gate.verdict import CombinationResult, Verdict
from llmbench.metrics import Direction
from llmbench.runs import SavedRun, benchmark_label

__all__ = ["AB_KEY", "compare_pair", "is_pair", "noisy_paired", "pair_marks"]

#: The machine_info and extra_info key of the pair marks (written by :mod:`llmbench.ab.save`).
AB_KEY = "llmbench_ab"


def pair_marks(run: SavedRun) -> Mapping[str, Any] | None:
    """The pair marks of a run saved by ``llmbench ab`` (``machine_info["llmbench_ab"]``), else None."""
    marks = run.machine_info.get(AB_KEY)
    return marks if isinstance(marks, Mapping) and "pair" in marks else None


def is_pair(base: SavedRun, head: SavedRun) -> bool:
    """Whether ``base`` and ``head`` are the base and head runs of one ``llmbench ab`` pair."""
    a, b = pair_marks(base), pair_marks(head)
    return (
        a is not None
        and b is not None
        and a["pair"] == b["pair"]
        and (a.get("side"), b.get("side")) == ("base", "head")
    )


def _per_load(bench: Mapping[str, Any], metric: str) -> list[float] | None:
    extra = bench.get("extra_info")
    marks = extra.get(AB_KEY) if isinstance(extra, Mapping) else None
    loads = marks.get("loads") if isinstance(marks, Mapping) else None
    if not isinstance(loads, list):
        return None
    values = [load.get(metric) if isinstance(load, Mapping) else None for load in loads]
    return [float(v) if isinstance(v, int | float) else float("nan") for v in values]


def _decisions(base: Mapping[str, Any], head: Mapping[str, Any], rules: Mapping[str, Rule],
               paired_only: bool = False) -> list[Decision]:  # fmt: skip
    base_metrics, _ = benchmark_metrics(base)
    head_metrics, _ = benchmark_metrics(head)
    out = []
    for name in [*head_metrics, *(n for n in base_metrics if n not in head_metrics)]:
        b, h = base_metrics.get(name), head_metrics.get(name)
        present = h if h is not None else b
        direction: Direction = present.direction if present is not None else "none"
        rule = rule_for(name, rules, direction)
        b_loads, h_loads = _per_load(base, name), _per_load(head, name)
        paired = rule.sample_kind == "rounds" and rule.direction != "none" and b_loads and h_loads
        if paired and b is not None and h is not None and b_loads is not None and h_loads is not None:
            out.append(decide_paired(name, b, h, b_loads, h_loads, rule))
        elif not paired_only:
            out.append(decide(name, b, h, rule))
    return out


def noisy_paired(base: Mapping[str, Any], head: Mapping[str, Any], rules: Mapping[str, Rule]) -> list[str]:
    """The figures of one benchmark (both sides' saved JSON) decided on per-load values that read
    ``noisy``: beyond the threshold, but the loads disagree. More load pairs can decide them."""
    return [d.metric for d in _decisions(base, head, rules, paired_only=True) if d.verdict == "noisy"]


def _extra(marks: Mapping[str, Any]) -> str:
    limit, loads = marks.get("max_loads"), marks.get("loads")
    return f" (up to {limit} where they disagreed)" if isinstance(limit, int) and limit != loads else ""


def _describe(run: SavedRun) -> str:
    marks = pair_marks(run) or {}
    ref = f"{marks.get('ref', '?')} ({str(marks.get('commit', ''))[:7]}{'+' if marks.get('dirty') else ''})"
    return f"{run.name} ({run.source}), {marks.get('side', '?')} side: {ref}"


def compare_pair(base: SavedRun, head: SavedRun, rules: Mapping[str, Rule] = PAIRED_RULES,
                 notes: Sequence[str] = ()) -> Verdict:  # fmt: skip
    """The verdict of ``head`` against ``base``, two sides of one pair. Never raises on bad data."""
    results = []
    for fullname, bench in head.benchmarks.items():
        other = base.benchmarks.get(fullname)
        if other is not None:
            results.append(CombinationResult(fullname, benchmark_label(bench), tuple(_decisions(other, bench, rules))))
    marks = pair_marks(head) or {}
    if marks.get("one_side_at_a_time") is True:
        rounds = "rounds per side, one side's worker at a time (the sides' order drawn per load pair)"
    elif marks.get("duet") is True:
        rounds = "rounds per side, each at the same time as the other side's, on CPUs of its own (duet)"
    else:
        rounds = "interleaved rounds per side"
    each = "each load pair's best round" if marks.get("per_load") == "best" else "each load pair's median round"
    how = (
        f"paired A/B run {marks.get('pair', '?')}: {marks.get('loads', '?')} load pairs{_extra(marks)} of "
        f"{marks.get('rounds', '?')} {rounds} (seed {marks.get('seed', '?')}); timed and memory "
        f"figures are decided on the per-load ratios head/base ({each} for timed figures), the load pair as the "
        "unit (docs/ab.md)"
    )
    new = tuple(benchmark_label(b) for name, b in head.benchmarks.items() if name not in base.benchmarks)
    removed = tuple(benchmark_label(b) for name, b in base.benchmarks.items() if name not in head.benchmarks)
    return Verdict(
        baseline=_describe(base), current=_describe(head), results=tuple(results), new=new, removed=removed,
        notes=(*base.notes, *head.notes, how, *notes),
    )  # fmt: skip
