"""The gate's verdict on one comparison: per combination and metric, as structured data and rendered.

:class:`Verdict` holds :class:`CombinationResult` objects (label, status, decisions); each
:class:`~llmbench.gate.decision.Decision` has its status, change and interval as numbers, and
:func:`decision_cells` gives the table cells as the terminal and markdown show them (the HTML report
renders the same objects). ``lines()`` is the terminal report, ``markdown()`` the pull-request comment.
"""

from __future__ import annotations

import math
import textwrap
from collections import Counter
from dataclasses import dataclass

import pytest

from llmbench.gate.decision import STATUSES, Decision, Status
from llmbench.gate.settings import FingerprintMode
from llmbench.gate.statistics import CONFIDENCE
from llmbench.tables import Column, markdown_header, markdown_line, markdown_row, text_table
from llmbench.units import format_change, format_change_interval, format_number, scale_for

__all__ = [
    "MARKDOWN_LIMIT",
    "QUIET_STATUSES",
    "TABLE_COLUMNS",
    "CombinationResult",
    "DecisionCells",
    "Verdict",
    "decision_cells",
]

#: GitHub rejects pull-request comments over 65,536 characters; keep the markdown under this.
MARKDOWN_LIMIT = 65_000
#: At most this many regression (and noisy) lines in the markdown, so that the table keeps room.
MARKDOWN_BULLETS = 150
#: The terminal table is laid out to fit this many columns.
WIDTH = 120
#: Rows the terminal table leaves out unless verbose (one count line says how many): nothing changed there.
QUIET_STATUSES: tuple[Status, ...] = ("unchanged", "n/a")
#: The verdict's table (terminal, markdown and the HTML report): the figures right-aligned.
TABLE_COLUMNS = (
    Column("combination"), Column("metric"), Column("baseline", "right"), Column("current", "right"),
    Column("change", "right"), Column(f"interval ({CONFIDENCE:.0%})", "right"), Column("verdict"),
)  # fmt: skip


@dataclass(frozen=True)
class DecisionCells:
    """One decision as the verdict's table shows it (formatted text; "" where there is nothing to show)."""

    metric: str
    baseline: str
    current: str
    change: str
    interval: str
    verdict: str

    def as_tuple(self) -> tuple[str, str, str, str, str, str]:
        return self.metric, self.baseline, self.current, self.change, self.interval, self.verdict


@dataclass(frozen=True)
class CombinationResult:
    """The decisions of one benchmark (one combination of the matrix)."""

    fullname: str
    label: str
    decisions: tuple[Decision, ...]

    @property
    def regressions(self) -> list[Decision]:
        return [d for d in self.decisions if d.fails]

    @property
    def status(self) -> Status:
        """The combination's status: ``regressed`` with a failing regression, else ``noisy`` with a noisy
        gating metric, else the first status of :data:`~llmbench.gate.decision.STATUSES` among its decisions."""
        if self.regressions:
            return "regressed"
        if any(d.verdict == "noisy" and d.rule.gate for d in self.decisions):
            return "noisy"
        present = {d.verdict for d in self.shown if d.verdict != "regressed"}
        return next((status for status in STATUSES if status in present), "unchanged")

    @property
    def shown(self) -> list[Decision]:
        """The decisions in the table: regressions first, then by verdict; metrics with no better
        direction (peak_bandwidth) are left out."""
        rows = [d for d in self.decisions if d.rule.direction != "none"]
        return sorted(rows, key=lambda d: (not d.fails, STATUSES.index(d.verdict)))


@dataclass(frozen=True)
class Verdict:
    """The gate's verdict on one comparison: per combination and metric, plus what could not be compared."""

    baseline: str
    current: str
    results: tuple[CombinationResult, ...] = ()
    new: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()
    machine_differences: tuple[str, ...] = ()
    fingerprint_mode: FingerprintMode = "warn"
    notes: tuple[str, ...] = ()
    #: False when there was nothing to compare with (an empty history).
    compared: bool = True
    #: Combinations whose test failed in the current run (no figures saved), as "label: reason".
    failed_combinations: tuple[str, ...] = ()

    @property
    def regressions(self) -> list[tuple[str, Decision]]:
        return [(result.label, d) for result in self.ordered for d in result.regressions]

    @property
    def ordered(self) -> list[CombinationResult]:
        """Combinations with regressions first, then noisy ones, then the rest, each in run order."""

        def rank(result: CombinationResult) -> int:
            if result.regressions:
                return 0
            return 1 if any(d.verdict == "noisy" for d in result.decisions) else 2

        return sorted(self.results, key=rank)

    @property
    def machine_failed(self) -> bool:
        return self.fingerprint_mode == "strict" and bool(self.machine_differences)

    @property
    def failed(self) -> bool:
        return bool(self.regressions) or self.machine_failed or bool(self.failed_combinations)

    @property
    def exit_status(self) -> int:
        return int(pytest.ExitCode.TESTS_FAILED) if self.failed else int(pytest.ExitCode.OK)

    def regression_lines(self) -> list[str]:
        """One line per regression, e.g. ``gemma3-270m nf4 cpu bs4: decode 41.8 → 35.2 tok/s (-15.8%, p<0.001)``."""
        return [f"{label}: {d.sentence()}" for label, d in self.regressions]

    def noisy_lines(self) -> list[str]:
        return [
            f"{result.label}: {d.sentence()}"
            for result in self.ordered
            for d in result.decisions
            if d.verdict == "noisy" and d.rule.gate
        ]

    def summary(self) -> str:
        if not self.compared:
            return "llmbench gate: nothing to compare with"
        metrics = sum(len(r.shown) for r in self.results)
        if self.failed:
            parts = []
            count = len(self.regressions)
            if count:
                combos = sum(1 for r in self.results if r.regressions)
                parts.append(f"{count} regression{'s' if count != 1 else ''} in {combos} of {len(self.results)} "
                             f"combination{'s' if len(self.results) != 1 else ''}")  # fmt: skip
            if self.machine_failed:
                parts.append("the machine differs from the baseline's (--llmbench-fingerprint=strict)")
            failed = len(self.failed_combinations)
            if failed:
                parts.append(f"{failed} combination{'s' if failed != 1 else ''} failed to run")
            return "llmbench gate: FAILED: " + "; ".join(parts)
        return (
            f"llmbench gate: no regression ({len(self.results)} combination{'s' if len(self.results) != 1 else ''}, "
            f"{metrics} metrics compared)"
        )

    def _machine_lines(self) -> list[str]:
        if not self.machine_differences or self.fingerprint_mode == "ignore":
            return []
        head = (
            "the machine differs from the baseline's (fails: --llmbench-fingerprint=strict):"
            if self.fingerprint_mode == "strict"
            else "warning: the machine differs from the baseline's (compared anyway):"
        )
        return [head, *(f"  {d}" for d in self.machine_differences)]

    def lines(self, width: int = WIDTH, verbose: bool = False) -> list[str]:
        """The terminal report: header, the table of what changed (every row with ``verbose``; otherwise
        unchanged and n/a rows are one count line), new/removed, regressions, noisy, the summary line."""
        out = [f"baseline: {self.baseline}", f"current:  {self.current}"]
        out.extend(self._machine_lines())
        for note in self.notes:
            out.extend(textwrap.wrap(f"note: {note}", width, subsequent_indent="  ", break_long_words=False,
                                     break_on_hyphens=False))  # fmt: skip
        decisions = [(r.label, d) for r in self.ordered for d in r.shown]
        listed = [(label, d) for label, d in decisions if verbose or d.verdict not in QUIET_STATUSES]
        rows = [(label, *decision_cells(d).as_tuple()) for label, d in listed]
        if rows:
            out.append("")
            # Too wide: the metric column is cut first, then the combination column.
            out.extend(text_table(TABLE_COLUMNS, rows, width=width, cut=(1, 0)))
        hidden = Counter(d.verdict for _, d in decisions) if not verbose else Counter[str]()
        quiet = [f"{hidden[status]} {status}" for status in QUIET_STATUSES if hidden[status]]
        if quiet:
            out.append("")
            rows_word = "row" if sum(hidden[status] for status in QUIET_STATUSES) == 1 else "rows"
            out.append(f"not listed: {' and '.join(quiet)} {rows_word} (-v lists every row)")
        if self.new:
            out.append(f"new (not in the baseline): {', '.join(self.new)}")
        if self.removed:
            out.append(f"removed (not in the current run): {', '.join(self.removed)}")
        if self.failed_combinations:
            out.append("")
            out.append(f"failed (the test failed, no figures saved) ({len(self.failed_combinations)}):")
            out.extend(f"  {line}" for line in self.failed_combinations)
        regressions = self.regression_lines()
        if regressions:
            out.append("")
            out.append(f"regressions ({len(regressions)}):")
            out.extend(f"  {line}" for line in regressions)
        noisy = self.noisy_lines()
        if noisy:
            out.append("")
            out.append(f"noisy, cannot tell ({len(noisy)}):")
            out.extend(f"  {line}" for line in noisy)
        out.append("")
        out.append(self.summary())
        return out

    def markdown(self, limit: int = MARKDOWN_LIMIT) -> str:
        """The verdict as GitHub markdown, under ``limit`` characters: unchanged rows are summarized first,
        then rows are cut from the end (regressions come first, so they stay)."""
        title = "FAILED" if self.failed else "no regression" if self.compared else "nothing to compare with"
        md = markdown_line
        head = [f"## llmbench regression gate: {title}", "",
                f"Baseline: {md(self.baseline)}  ", f"Current: {md(self.current)}", ""]  # fmt: skip
        machine = self._machine_lines()
        if machine:
            head += [f"> {md(machine[0])}", *(f"> - {md(line.strip())}" for line in machine[1:]), ""]
        head += [f"- note: {md(note)}" for note in self.notes]
        if self.notes:
            head.append("")
        sections = (
            ("Failed to run", list(self.failed_combinations)),
            ("Regressions", self.regression_lines()),
            ("Noisy, cannot tell", self.noisy_lines()),
        )
        for title_text, bullets in sections:
            if bullets:
                shown = [f"- {md(line)}" for line in bullets[:MARKDOWN_BULLETS]]
                if len(bullets) > MARKDOWN_BULLETS:
                    shown.append(f"- … and {len(bullets) - MARKDOWN_BULLETS} more (the terminal output has them all)")
                head += [f"**{title_text} ({len(bullets)})**", "", *shown, ""]
        tail = [""]
        if self.new:
            tail.append(f"New (not in the baseline): {md(', '.join(self.new))}  ")
        if self.removed:
            tail.append(f"Removed (not in the current run): {md(', '.join(self.removed))}  ")
        tail.append(f"**{md(self.summary())}**")
        header = markdown_header(TABLE_COLUMNS)
        rows = [(d, markdown_row((r.label, *decision_cells(d).as_tuple()))) for r in self.ordered for d in r.shown]

        def render(table_rows: list[str], extra: list[str]) -> str:
            table = header + table_rows if table_rows else []
            return "\n".join(head + table + extra + tail) + "\n"

        text = render([row for _, row in rows], [])
        if len(text) <= limit:
            return text
        kept = [row for d, row in rows if d.verdict != "unchanged"]
        unchanged = len(rows) - len(kept)
        note = ["", f"{unchanged} unchanged rows not listed (the terminal output with -v has them all)."]
        while kept and len(render(kept, note)) > limit:
            cut = max(1, len(kept) // 10)
            kept = kept[:-cut]
            note = ["", f"{len(rows) - len(kept)} rows not listed, {unchanged} of them unchanged "
                        "(the terminal output with -v has them all)."]  # fmt: skip
        return render(kept, note)


def decision_cells(d: Decision) -> DecisionCells:
    """The table cells of one decision: values in one unit for both sides, the change, the interval, the verdict."""
    shown = [v for v in (d.baseline, d.current) if v is not None]
    divisor, unit = scale_for(d.unit, shown)

    def value(v: float | None) -> str:
        if v is None:
            return "n/a"
        return f"{format_number(v / divisor)} {unit}".rstrip()

    change = ""
    if d.change is not None and d.difference is not None:
        if d.rule.sample_kind == "items" and d.rule.relative is None and not math.isinf(d.change):
            change = f"{d.difference:+.3g}"
        else:
            change = format_change(d.change)
    interval = ""
    if d.interval is not None:
        low, high = d.interval
        ratio = d.interval_of == "ratio"
        interval = format_change_interval(low - 1, high - 1) if ratio else f"{low:+.3g}..{high:+.3g}"
    verdict: str = d.verdict
    if d.verdict == "regressed" and not d.rule.gate:
        verdict = "worse (info)"
    elif d.verdict == "noisy" and d.rounds_needed:
        verdict = f"noisy (~{d.rounds_needed} rounds)" if d.rounds_needed < 10_000 else "noisy"
    return DecisionCells(d.metric, value(d.baseline), value(d.current), change, interval, verdict)
