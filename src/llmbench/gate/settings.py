"""The gate's settings, resolved once per session from the plugin's options (:mod:`llmbench.config.options`).

Each value remembers where it came from, so an error names the flag or ini key and the bad value.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import pytest

from llmbench.benchmark_storage import NotFileStorage, file_storage_path
from llmbench.config.options import parse_positive_int
from llmbench.config.settings import Setting, raw_value, resolve, resolve_path
from llmbench.gate.baseline import DEFAULT_DRIFT_HISTORY, BaselineSpec, GateError, parse_baseline
from llmbench.gate.rules import (
    DEFAULT_RULES,
    FIRST_BASELINE_ALLOWANCE,
    PAIRED_RULES,
    FailSpecError,
    Rule,
    merge_rules,
    parse_fail_spec,
    with_first_baseline_allowance,
)
from llmbench.runs import machine_id_here

__all__ = [
    "FINGERPRINT_MODES",
    "GATE_SCOPES",
    "FingerprintMode",
    "GateScope",
    "GateSettings",
    "gate_settings",
    "parse_fingerprint_mode",
    "parse_first_baseline_allowance",
    "resolve_rules",
]

FingerprintMode = Literal["warn", "strict", "ignore"]
FINGERPRINT_MODES: tuple[FingerprintMode, ...] = ("warn", "strict", "ignore")
GateScope = Literal["llm", "all"]
GATE_SCOPES: tuple[GateScope, ...] = ("llm", "all")


def parse_fingerprint_mode(text: str, origin: str, what: str = "--llmbench-fingerprint") -> FingerprintMode:
    value = text.strip().lower()
    for mode in FINGERPRINT_MODES:
        if value == mode:
            return mode
    raise GateError(f"{what}: {text!r} is not a mode (from {origin}); allowed: {', '.join(FINGERPRINT_MODES)}")


def parse_first_baseline_allowance(
    text: str, what: str = "--llmbench-first-baseline-allowance", origin: str = "the command line"
) -> float | None:
    """``14%`` -> 0.14; ``off`` -> None (a first baseline's speed changes are only ever noisy). Raises GateError."""
    value = text.strip().lower()
    if value in ("off", "none"):
        return None
    number = value.removesuffix("%").strip()
    try:
        allowance = float(number) / 100 if value.endswith("%") else float("nan")
    except ValueError:
        allowance = float("nan")
    if not (allowance >= 0 and allowance != float("inf")):
        raise GateError(
            f"{what}: {text!r} is not an allowance (from {origin}); give a percentage of at least 0, e.g. "
            f"{FIRST_BASELINE_ALLOWANCE:.0%} (the default, docs/gate.md), or 'off' (a first baseline's speed "
            "changes are only noisy)"
        )
    return allowance


def resolve_rules(
    text: str | None, origin: str, what: str = "--llmbench-fail", base: Mapping[str, Rule] = DEFAULT_RULES
) -> dict[str, Rule]:
    """The ``base`` rules (the defaults; :data:`PAIRED_RULES` for a paired A/B run) with the
    ``--llmbench-fail`` items in place. Raises :class:`GateError`."""
    if text is None:
        return dict(base)
    try:
        return merge_rules(base, parse_fail_spec(text, origin, base=base, what=what))
    except FailSpecError as error:
        raise GateError(str(error)) from None


@dataclass(frozen=True)
class GateSettings:
    """The gate's options, parsed. ``active``: compare at the end of the session."""

    active: bool
    baseline: BaselineSpec
    rules: Mapping[str, Rule]
    #: The same ``--llmbench-fail`` items over :data:`PAIRED_RULES`, for ``llmbench ab``.
    paired_rules: Mapping[str, Rule]
    fingerprint: FingerprintMode
    verdict_path: Path | None
    #: ``--llmbench-drift-history``: how many same-machine saved runs show the drift between runs.
    drift_history: int
    #: pytest-benchmark's storage folder and this machine's id (``Linux-CPython-3.11-64bit``).
    storage: Path | None
    machine_id: str
    #: Why the gate does not run although asked (a non-file storage), or "".
    inactive_reason: str = ""
    #: ``--llmbench-gate-scope``: "llm" judges the benchmarks with llmbench's figures only, "all" also
    #: plain pytest-benchmark benchmarks (their latency).
    scope: GateScope = "llm"
    #: Why a ``--benchmark-compare`` value names no baseline the gate can read ("no baseline: ..."), or "".
    no_baseline: str = ""


def gate_settings(config: pytest.Config) -> GateSettings:
    """Parse the gate's options (always, so a bad value fails at once). Raises :class:`pytest.UsageError`.

    The gate is active when ``--benchmark-compare`` is given or ``--llmbench-baseline`` is set (command
    line or ini). Without ``--llmbench-baseline``, ``--benchmark-compare=NUM`` names the baseline run.
    Each option is resolved by :mod:`llmbench.config.settings`, which remembers where its value came from.
    """
    no_baseline = ""
    try:
        raw = raw_value(config, "--llmbench-baseline")
        compare = config.getoption("benchmark_compare", default=None)
        if raw is not None:
            baseline = parse_baseline(raw.value, raw.origin)
        elif isinstance(compare, str) and compare:
            try:
                baseline = parse_baseline(compare, "--benchmark-compare on the command line", "--benchmark-compare")
            except GateError as error:
                # pytest-benchmark reads more (globs, machine/NNNN): it compares, the gate has no baseline.
                baseline, no_baseline = BaselineSpec("last"), f"no baseline: {error}"
        else:
            baseline = BaselineSpec("last")
        fail = raw_value(config, "--llmbench-fail")
        rules = resolve_rules(fail.value if fail else None, fail.origin if fail else "the default")
        allowance = raw_value(config, "--llmbench-first-baseline-allowance")
        if allowance is not None:
            what = "--llmbench-first-baseline-allowance"
            parsed = parse_first_baseline_allowance(allowance.value, what, allowance.origin)
            rules = with_first_baseline_allowance(rules, parsed)
        paired_rules = resolve_rules(fail.value if fail else None, fail.origin if fail else "the default",
                                     base=PAIRED_RULES)  # fmt: skip
        default_mode: Setting[FingerprintMode] = Setting("warn", "the default")
        mode = resolve(config, "--llmbench-fingerprint", _fingerprint_mode, default_mode).value
        default_scope: Setting[GateScope] = Setting("llm", "the default")
        scope = resolve(config, "--llmbench-gate-scope", _gate_scope, default_scope).value
    except GateError as error:
        raise pytest.UsageError(str(error)) from None
    default_history = Setting(DEFAULT_DRIFT_HISTORY, "the default")
    drift_history = resolve(config, "--llmbench-drift-history", parse_positive_int, default_history).value
    verdict_raw = raw_value(config, "--llmbench-verdict")
    verdict_path = None
    if verdict_raw is not None:
        verdict_path = resolve_path(config, verdict_raw)
        if verdict_path.is_dir():
            raise pytest.UsageError(
                f"--llmbench-verdict: {verdict_raw.value!r} is a folder (from {verdict_raw.origin}); "
                "give the path of a markdown file"
            )
    active = bool(compare) or raw is not None
    storage, machine_id, reason = None, "", ""
    if active:
        try:
            storage = file_storage_path(config)
        except NotFileStorage as error:
            reason = f"the gate reads file storage only, not {error.uri!r} (--benchmark-storage)"
        else:
            machine_id = machine_id_here()
    return GateSettings(
        active=active and not reason, baseline=baseline, rules=rules, paired_rules=paired_rules, fingerprint=mode,
        verdict_path=verdict_path, drift_history=drift_history, storage=storage, machine_id=machine_id,
        inactive_reason=reason, scope=scope, no_baseline=no_baseline,
    )  # fmt: skip


def _fingerprint_mode(text: str, what: str, origin: str) -> FingerprintMode:
    return parse_fingerprint_mode(text, origin, what)


def _gate_scope(text: str, what: str, origin: str) -> GateScope:
    value = text.strip().lower()
    for scope in GATE_SCOPES:
        if value == scope:
            return scope
    raise GateError(f"{what}: {text!r} is not a scope (from {origin}); allowed: {', '.join(GATE_SCOPES)}")
