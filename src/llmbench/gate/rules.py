"""Per-metric regression rules: which way is better, how large a change must be, and whether it must be
significant; the defaults, and the ``--llmbench-fail`` syntax that overrides them (docs/gate.md).

A rule's thresholds are all required at once (``peak_rss_bytes``: more than 10% *and* more than 16 MiB);
a threshold that is None is not checked; a ``target`` is a floor or ceiling whatever the baseline. The
syntax, a comma list of ``NAME:VALUE`` items: ``decode_tok_s:-5%,peak_rss_bytes:+16MiB,rougeLsum:-0.01,
drift_identical_share:>=0.9``. The sign is the *bad* direction; ``%`` is relative, a plain number or
B/KiB/MiB/GiB absolute; ``>=``/``<=`` set a target. An item replaces only what it names. ``decode_tok_s``
names both decode metrics, ``rouge`` the three ROUGE metrics.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, replace
from typing import Literal

from llmbench.metrics import Direction
from llmbench.units import GiB, KiB, MiB

__all__ = [
    "ALIASES",
    "DEFAULT_RULES",
    "FIRST_BASELINE_ALLOWANCE",
    "PAIRED_RULES",
    "PAIRED_THRESHOLD",
    "FailSpecError",
    "Rule",
    "SampleKind",
    "merge_rules",
    "parse_fail_spec",
    "rule_for",
    "with_first_baseline_allowance",
]

#: How a metric's raw samples relate to each other:
#: ``rounds``: repeated measurements of one figure (timed rounds), compared with a rank test on medians;
#: ``items``: one score per item of the data set, in data-set order, compared item by item (paired).
SampleKind = Literal["rounds", "items"]


#: The significance level of the rank test. With the default 5 rounds a side, the smallest two-sided
#: Mann-Whitney p-value is 2 / C(10, 5) = 0.0079: 0.01 is the smallest round level 5 rounds can reach.
#: (asv uses 0.002 with its larger sample counts.)
DEFAULT_ALPHA = 0.01

#: Where the drift between runs on this machine is unknown (fewer than 2 steady saved runs with its
#: fingerprint: a first baseline), a timed change is ``regressed`` (``improved``) only beyond its threshold
#: plus this allowance, and ``noisy`` below it. The 99th percentile of how far one process's speed figures
#: of unchanged code moved from another's, minutes to hours apart, on the shared 2-core machines (decode
#: per sequence: 13.8%), rounded up: ``scripts/gate/first_baseline_allowance.py`` over the saved pairs of
#: scripts/ab/data, docs/gate.md (*A first baseline*). ``--llmbench-first-baseline-allowance`` sets it.
FIRST_BASELINE_ALLOWANCE = 0.14


@dataclass(frozen=True)
class Rule:
    """When a change of one metric counts as a regression (or an improvement)."""

    metric: str
    direction: Direction
    #: A change must exceed this fraction of the baseline (0.05 = 5%). None: not checked.
    relative: float | None = None
    #: A change must exceed this much, in the metric's unit (bytes, F1, ...). None: not checked.
    absolute: float | None = None
    #: The change must also be statistically significant over the raw samples of both sides.
    significance: bool = False
    sample_kind: SampleKind = "rounds"
    #: A floor (higher is better) or ceiling (lower is better) the current value must meet, whatever
    #: the baseline. None: no target.
    target: float | None = None
    #: False: the verdict is shown but never fails the build (informational).
    gate: bool = True
    alpha: float = DEFAULT_ALPHA
    #: Where the rule came from, for messages ("the default", "--llmbench-fail on the command line").
    origin: str = "the default"
    #: One line on why these thresholds.
    reason: str = ""
    #: A timed rule's allowance for the drift between runs where no saved runs show it (a fraction, added
    #: to the threshold; :data:`FIRST_BASELINE_ALLOWANCE`). None: such a change is only ever ``noisy``.
    first_baseline_allowance: float | None = None

    def __post_init__(self) -> None:
        for name in ("relative", "absolute", "first_baseline_allowance"):
            value = getattr(self, name)
            if value is not None and not (math.isfinite(value) and value >= 0):
                raise ValueError(f"Rule for {self.metric}: {name} threshold must be finite, >= 0: {value!r}")
        if self.target is not None and not math.isfinite(self.target):
            raise ValueError(f"Rule for {self.metric}: target must be finite, got {self.target!r}")
        if not 0 < self.alpha < 1:
            raise ValueError(f"Rule for {self.metric}: alpha must be between 0 and 1, got {self.alpha!r}")
        if self.direction == "none" and (self.relative, self.absolute, self.target) != (None, None, None):
            raise ValueError(f"Rule for {self.metric}: a metric with no better direction takes no thresholds")

    @property
    def has_threshold(self) -> bool:
        return self.relative is not None or self.absolute is not None

    def describe(self) -> str:
        """The thresholds in the ``--llmbench-fail`` syntax, e.g. ``+5% and +16MiB, significant``."""
        if self.direction == "none":
            return "not compared (no better direction)"
        sign = "-" if self.direction == "higher" else "+"
        parts = []
        if self.relative is not None:
            parts.append(f"{sign}{_number(self.relative * 100)}%")
        if self.absolute is not None:
            if self.metric.endswith("_bytes") and self.absolute >= MiB and self.absolute % MiB == 0:
                parts.append(f"{sign}{_number(self.absolute / MiB)}MiB")
            else:
                parts.append(f"{sign}{_number(self.absolute)}")
        text = " and ".join(parts)
        if self.significance and parts:
            text += f", significant at p<{_number(self.alpha)}"
        if self.target is not None:
            bound = ">=" if self.direction == "higher" else "<="
            text = f"{text}; {bound}{_number(self.target)}" if text else f"{bound}{_number(self.target)}"
        if not self.gate:
            text += " (informational)"
        return text


def _number(value: float) -> str:
    return f"{value:g}"


def _speed(
    metric: str,
    direction: Direction,
    relative: float,
    reason: str,
    *,
    gate: bool = True,
    allowance: float | None = FIRST_BASELINE_ALLOWANCE,
) -> Rule:
    return Rule(metric, direction, relative=relative, significance=True, gate=gate, reason=reason,
                first_baseline_allowance=allowance)  # fmt: skip


def _memory(metric: str, reason: str, *, relative: float = 0.05, gate: bool = True) -> Rule:
    return Rule(metric, "lower", relative=relative, absolute=16 * MiB, gate=gate, reason=reason)


def _items(metric: str, absolute: float, reason: str) -> Rule:
    return Rule(metric, "higher", absolute=absolute, significance=True, sample_kind="items", reason=reason)


_TIMING = (
    "medians of separate runs of unchanged code drift by about 5% (docs/gate-validation.md): "
    "5% and a significant rank test over the rounds"
)
_MEMORY = "5% and 16 MiB: page and allocator granularity make small models move by a few MiB"
_RSS = (
    "10% and 16 MiB, beyond the saved runs' range too: RSS is the whole process's, and what earlier models "
    "and the allocator left behind moves it between runs of unchanged code (docs/gate-validation.md)"
)
_SIZE = "deterministic: any change is a change of quantization or storage; 1% allows metadata"
_GPU_PROCESS = (
    "10% and 16 MiB, beyond the saved runs' range too, like RSS: the driver's figure is the whole process's on "
    "the GPU (CUDA context, every allocator's reserve, libraries); not yet checked by A/A runs on a GPU (docs/gpu.md)"
)
_ENERGY = (
    "10%, beyond the saved runs' range too, like memory: the counter's readings are stale by up to one update "
    "period, at most 5% of the window (docs/metrics.md); the A/A spread on a GPU is still to be measured "
    "(docs/gpu.md)"
)

_RULES: tuple[Rule, ...] = (
    _speed("latency_s", "lower", 0.05, _TIMING),
    _speed("ttft_s", "lower", 0.05, _TIMING),
    _speed("prefill_tok_s", "higher", 0.05, _TIMING),
    _speed("decode_tok_s_per_seq", "higher", 0.05, _TIMING),
    _speed("decode_tok_s_total", "higher", 0.05, _TIMING),
    _speed(
        "load_s", "lower", 0.10,
        "loading depends on the page cache and disk: noisier than generation, 10% and significant",
        # Steady loads of unchanged code moved by up to +145% between processes (docs/gate.md): no allowance.
        allowance=None,
    ),
    _memory("peak_rss_bytes", _RSS, relative=0.10),
    _memory("peak_cuda_allocated_bytes", _MEMORY),
    _memory("peak_cuda_reserved_bytes", "the caching allocator's reserve: gate on allocated", gate=False),
    _memory("rss_before_bytes", "what the process held before the call: context", gate=False),
    _memory("cuda_allocated_before_bytes", "what PyTorch held before the call: context", gate=False),
    _memory("peak_gpu_process_bytes", _GPU_PROCESS, relative=0.10),
    _memory("gpu_process_before_bytes", "what the process held on the GPU before the call: context", gate=False),
    _memory("peak_gpu_used_bytes", "every process on the GPU: context (the process's own is gated)", gate=False),
    Rule("energy_per_token_j", "lower", relative=0.10, reason=_ENERGY),
    Rule("mean_power_w", "none", gate=False, reason="describes the draw, not the code: energy per token is gated"),
    Rule("weight_bytes", "lower", relative=0.01, reason=_SIZE),
    Rule("file_bytes", "lower", relative=0.01, reason=_SIZE),
    Rule(
        "kv_cache_bytes", "lower", relative=0.01, gate=False,
        reason="follows the generated length, which follows the outputs: context, gated through quality",
    ),
    _items(
        "rouge1", 0.01,
        "a drop of more than 0.01 that the per-item scores (paired) or the intervals say is real",
    ),
    _items(
        "rouge2", 0.01,
        "a drop of more than 0.01 that the per-item scores (paired) or the intervals say is real",
    ),
    _items(
        "rougeLsum", 0.01,
        "a drop of more than 0.01 that the per-item scores (paired) or the intervals say is real",
    ),
    _items(
        "accuracy", 0.01,
        "gated like ROUGE: a drop of more than 0.01 (on the shipped 48 items, any lost answer) that the per-item "
        "0/1 scores (paired) or the intervals say is real",
    ),
    _items(
        "drift_identical_share", 0.05,
        "greedy outputs are deterministic per build: a significant drop of more than 5 points of agreement "
        "with the reference precision; no fixed floor by default, since quantized precisions legitimately "
        "differ from fp32 on many items (set one with drift_identical_share:>=0.9)",
    ),
    _speed(
        "mbu", "higher", 0.05,
        "derived from decode speed and the measured bandwidth: decode speed is the gate, MBU the context",
        gate=False,
    ),
    Rule("peak_bandwidth", "none", gate=False, reason="describes the machine, not the code"),
    _speed(
        "engine_decode_tok_s", "higher", 0.05,
        "the engine's own decode time, without the loop around it: the gate is on the end-to-end figures "
        "(docs/metrics.md)",
        gate=False,
    ),
    *(
        Rule(
            name, "lower", relative=0.10, gate=False,
            reason="a tail: its value against the baseline's, not a rank test (which tests the middle); "
            "informational until A/A runs say how noisy it is here (docs/metrics.md)",
        )
        for name in (
            "itl_p50_s", "itl_p90_s", "itl_p99_s", "tpot_p50_s", "tpot_p90_s", "tpot_p99_s", "ttft_p90_s", "ttft_p99_s"
        )
    ),
)

#: The built-in rules, by metric name.
DEFAULT_RULES: Mapping[str, Rule] = {rule.metric: rule for rule in _RULES}

#: A paired A/B run (``llmbench ab``) has no drift between runs to allow for: each load pair's
#: ratio head/base varies by about 1% on this machine (docs/ab.md), so its speed and peak RSS
#: thresholds are 3% (peak RSS still with the 16 MiB floor), low enough to catch a 5% change.
PAIRED_THRESHOLD = 0.03
_PAIRED_REASON = (
    "paired A/B run: base and head interleaved on one machine, the drift cancels in the per-load ratios; "
    "3% is above their spread in A/A runs (docs/ab.md)"
)
PAIRED_RULES: Mapping[str, Rule] = {
    **DEFAULT_RULES,
    **{
        name: replace(DEFAULT_RULES[name], relative=PAIRED_THRESHOLD, reason=_PAIRED_REASON)
        for name in ("latency_s", "ttft_s", "prefill_tok_s", "decode_tok_s_per_seq", "decode_tok_s_total",
                     "peak_rss_bytes")
    },
}  # fmt: skip

#: Short names that stand for several metrics in ``--llmbench-fail``.
ALIASES: Mapping[str, tuple[str, ...]] = {
    "decode_tok_s": ("decode_tok_s_per_seq", "decode_tok_s_total"),
    "rouge": ("rouge1", "rouge2", "rougeLsum"),
}


def rule_for(metric: str, rules: Mapping[str, Rule] = DEFAULT_RULES, direction: Direction = "none") -> Rule:
    """The rule of ``metric``, or for a metric without one an informational 5% rule in its own direction.

    ``direction`` is the metric's saved direction, used only where no rule names the metric.
    """
    rule = rules.get(metric)
    if rule is not None:
        return rule
    if direction == "none":
        return Rule(metric, "none", gate=False, reason="no rule and no better direction")
    return Rule(metric, direction, relative=0.05, gate=False, reason="no rule: 5%, informational")


class FailSpecError(ValueError):
    """A ``--llmbench-fail`` value that cannot be used; the message names the item, the problem, the origin
    and what is allowed."""


_ITEM = re.compile(
    r"""^(?P<name>[A-Za-z_][A-Za-z0-9_.\-]*)\s*:\s*
        (?P<op>[+\-]|>=|<=)\s*
        (?P<number>(?:\d+\.?\d*|\.\d+)(?:[eE][+\-]?\d+)?)\s*
        (?P<unit>[A-Za-z%]*)$""",
    re.VERBOSE,
)
_UNSIGNED = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]*\s*:\s*[\d.]")
_BYTE_UNITS = {"b": 1, "kib": KiB, "mib": MiB, "gib": GiB}
_SYNTAX = (
    "expected NAME:SIGN NUMBER[UNIT] with SIGN + or - (the bad direction) and UNIT %, a plain number, "
    "or B/KiB/MiB/GiB for *_bytes metrics, or NAME:>=NUMBER / NAME:<=NUMBER for a target, "
    "e.g. 'decode_tok_s:-5%,peak_rss_bytes:+16MiB,rougeLsum:-0.01'"
)


@dataclass
class _Parsed:
    direction: Direction
    relative: float | None = None
    absolute: float | None = None
    target: float | None = None


def parse_fail_spec(
    text: str,
    origin: str,
    *,
    base: Mapping[str, Rule] = DEFAULT_RULES,
    what: str = "--llmbench-fail",
) -> list[Rule]:
    """Parse a ``--llmbench-fail`` value into rules, each merged onto its rule in ``base``.

    ``origin`` says where the text came from ("--llmbench-fail on the command line", "llmbench_fail in
    pyproject.toml"); ``what`` is the flag or marker named in errors. Returns one rule per metric named
    (aliases expanded), in the order first named. Raises :class:`FailSpecError`.
    """
    parsed: dict[str, _Parsed] = {}
    for raw_item in text.split(","):
        item = raw_item.strip()
        if not item:
            continue
        match = _ITEM.match(item)
        if match is None:
            if ":" not in item:
                problem = "has no ':'"
            elif _UNSIGNED.match(item):
                problem = "needs a sign: '-' where a drop is bad (speed, quality), '+' where a rise is"
            else:
                problem = "cannot be parsed"
            raise FailSpecError(f"{what}: {item!r} {problem} (from {origin}); {_SYNTAX}")
        name, op, number_text, unit = match["name"], match["op"], match["number"], match["unit"]
        number = float(number_text)
        if not math.isfinite(number):
            raise FailSpecError(f"{what}: {item!r} has a number out of range (from {origin}); {_SYNTAX}")
        for metric in ALIASES.get(name, (name,)):
            entry = _item_rule(item, metric, op, number, unit, base.get(metric), what, origin)
            _merge_item(parsed, metric, entry, item, what, origin)
    rules = []
    for metric, entry in parsed.items():
        known = base.get(metric)
        if known is None:
            rules.append(
                Rule(
                    metric, entry.direction, relative=entry.relative, absolute=entry.absolute,
                    target=entry.target, origin=origin, reason=f"from {origin}",
                )
            )
        else:
            rules.append(
                replace(
                    known,
                    relative=known.relative if entry.relative is None else entry.relative,
                    absolute=known.absolute if entry.absolute is None else entry.absolute,
                    target=known.target if entry.target is None else entry.target,
                    gate=True,
                    origin=origin,
                )
            )
    return rules


def _item_rule(
    item: str, metric: str, op: str, number: float, unit: str, known: Rule | None, what: str, origin: str
) -> _Parsed:
    where = f"{what}: {item!r}"
    direction: Direction = "higher" if op in ("-", ">=") else "lower"
    if known is not None:
        if known.direction == "none":
            gated = (name for name, rule in DEFAULT_RULES.items() if rule.direction != "none")
            raise FailSpecError(
                f"{where} names {metric}, which has no better direction (from {origin}); it is reported, "
                f"not gated. Metrics that can be gated: {', '.join(sorted(gated))}"
            )
        if known.direction != direction:
            good = "-" if known.direction == "higher" else "+"
            bound = ">=" if known.direction == "higher" else "<="
            better = "higher" if known.direction == "higher" else "lower"
            allowed = f"'{good}' (the bad direction) or '{bound}' for a target"
            raise FailSpecError(
                f"{where} has the wrong direction for {metric}, {op!r} (from {origin}); {metric} is better "
                f"{better}, so use {allowed}, e.g. '{metric}:{good}5%'"
            )
    lowered = unit.lower()
    if op in (">=", "<="):
        if lowered == "%":
            raise FailSpecError(
                f"{where} gives a target as a percentage (from {origin}); a target is a value in the "
                f"metric's unit, e.g. '{metric}:{op}0.9'"
            )
        return _Parsed(direction, target=number * _byte_factor(where, metric, unit, origin))
    if lowered == "%":
        if direction == "higher" and number > 100:
            raise FailSpecError(
                f"{where} asks for a drop of {number:g}%, which cannot happen (from {origin}); "
                "give at most -100%"
            )
        return _Parsed(direction, relative=number / 100)
    return _Parsed(direction, absolute=number * _byte_factor(where, metric, unit, origin))


def _byte_factor(where: str, metric: str, unit: str, origin: str) -> float:
    if unit == "":
        return 1.0
    if unit.lower() in _BYTE_UNITS:
        if not metric.endswith("_bytes"):
            raise FailSpecError(
                f"{where} has the byte unit {unit!r}, but {metric} is not a byte metric (from {origin}); "
                "use % or a plain number in the metric's unit"
            )
        return float(_BYTE_UNITS[unit.lower()])
    raise FailSpecError(
        f"{where} has an unknown unit {unit!r} (from {origin}); allowed: % (relative), none (the metric's "
        "own unit), B, KiB, MiB, GiB (for *_bytes metrics)"
    )


def _merge_item(
    parsed: dict[str, _Parsed], metric: str, entry: _Parsed, item: str, what: str, origin: str
) -> None:
    previous = parsed.get(metric)
    if previous is None:
        parsed[metric] = entry
        return
    if previous.direction != entry.direction:
        raise FailSpecError(
            f"{what}: {item!r} gives {metric} the opposite direction of an earlier item (from {origin}); "
            "use one sign per metric"
        )
    for field in ("relative", "absolute", "target"):
        new = getattr(entry, field)
        if new is None:
            continue
        if getattr(previous, field) is not None:
            kind = {"relative": "a relative (%)", "absolute": "an absolute", "target": "a target"}[field]
            raise FailSpecError(
                f"{what}: {item!r} gives {metric} {kind} threshold again (from {origin}); give each once"
            )
        setattr(previous, field, new)


def with_first_baseline_allowance(rules: Mapping[str, Rule], allowance: float | None) -> dict[str, Rule]:
    """``rules`` with ``allowance`` (None: none) in place of each rule's own, where a rule has one (the timed
    rules but ``load_s``; ``--llmbench-first-baseline-allowance``)."""
    return {
        name: replace(rule, first_baseline_allowance=allowance) if rule.first_baseline_allowance is not None else rule
        for name, rule in rules.items()
    }


def merge_rules(base: Mapping[str, Rule], overrides: Iterable[Rule]) -> dict[str, Rule]:
    """``base`` with each rule of ``overrides`` in place of the rule of the same metric (later wins)."""
    merged = dict(base)
    for rule in overrides:
        merged[rule.metric] = rule
    return merged
