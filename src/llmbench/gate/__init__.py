"""The regression gate: rules, statistics, the decision on one metric, the baseline, the verdict, comparing runs.

Where a verdict is decided: :func:`llmbench.gate.decision.decide` (one metric) and
:func:`llmbench.gate.compare.compare_runs` (a run against its baseline). See docs/gate.md.
"""

from __future__ import annotations

from llmbench.gate.baseline import Baseline, BaselineSpec, GateError, choose_baseline, parse_baseline
from llmbench.gate.compare import MARKER, MARKER_INFO_KEY, compare_runs, current_run, publish_markdown
from llmbench.gate.decision import STATUSES, Decision, Status, decide, decide_all
from llmbench.gate.pooling import PooledMetric, benchmark_metrics, pool_baseline
from llmbench.gate.rules import DEFAULT_RULES, FailSpecError, Rule, parse_fail_spec
from llmbench.gate.settings import FingerprintMode, GateSettings, gate_settings
from llmbench.gate.verdict import MARKDOWN_LIMIT, CombinationResult, DecisionCells, Verdict, decision_cells

__all__ = [
    "DEFAULT_RULES",
    "MARKDOWN_LIMIT",
    "MARKER",
    "MARKER_INFO_KEY",
    "STATUSES",
    "Baseline",
    "BaselineSpec",
    "CombinationResult",
    "Decision",
    "DecisionCells",
    "FailSpecError",
    "FingerprintMode",
    "GateError",
    "GateSettings",
    "PooledMetric",
    "Rule",
    "Status",
    "Verdict",
    "benchmark_metrics",
    "choose_baseline",
    "compare_runs",
    "current_run",
    "decide",
    "decide_all",
    "decision_cells",
    "gate_settings",
    "parse_baseline",
    "parse_fail_spec",
    "pool_baseline",
    "publish_markdown",
]
