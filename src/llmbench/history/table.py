"""The result of ``llmbench history``: the change points found, as a terminal table and as markdown."""

from __future__ import annotations

from dataclasses import dataclass

from llmbench.history.detect import ChangePoint
from llmbench.history.series import KnownStep
from llmbench.tables import Column, markdown_header, markdown_line, markdown_row, text_table
from llmbench.units import format_change, format_change_interval, format_value

__all__ = ["History"]

#: GitHub's job summary and comments take at most 65,536 characters; keep the markdown under this.
MARKDOWN_LIMIT = 65_000
#: The change points' table; markdown right-aligns the figures, the terminal lists every column left-aligned.
_COLUMNS = (
    Column("combination"), Column("metric"), Column("run"), Column("commit"), Column("before"),
    Column("level before → after", "right"), Column("change", "right"), Column("interval (95%)", "right"),
    Column("verdict"),
)  # fmt: skip


@dataclass(frozen=True)
class History:
    """Every change point of the series read, with what a nightly job needs to decide."""

    storage: str
    series: int
    runs: int
    change_points: tuple[ChangePoint, ...]
    #: Per change point: its run is among the newest ``since`` runs of its storage folder.
    recent: tuple[bool, ...]
    since: int
    known_steps: tuple[KnownStep, ...] = ()
    notes: tuple[str, ...] = ()

    @property
    def recent_regressions(self) -> list[ChangePoint]:
        return [c for c, new in zip(self.change_points, self.recent, strict=True) if new and c.kind == "regression"]

    @property
    def open_regressions(self) -> list[ChangePoint]:
        """Regressions that no later improvement of the same series followed."""
        out = []
        for point in self.change_points:
            if point.kind != "regression":
                continue
            later = (c for c in self.change_points if c.series is point.series and c.index > point.index)
            if not any(c.kind == "improvement" for c in later):
                out.append(point)
        return out

    @property
    def exit_status(self) -> int:
        """1 where a regression change point lies among the newest ``since`` runs, else 0."""
        return 1 if self.recent_regressions else 0

    def summary(self) -> str:
        count = len(self.change_points)
        regressions = sum(1 for c in self.change_points if c.kind == "regression")
        head = (
            f"llmbench history: {count} change point{'s' if count != 1 else ''} ({regressions} "
            f"regression{'s' if regressions != 1 else ''}) in {self.series} series over {self.runs} runs"
        )
        recent = len(self.recent_regressions)
        if recent:
            return f"{head}; FAILED: {recent} regression{'s' if recent != 1 else ''} in the last {self.since} runs"
        return f"{head}; no regression in the last {self.since} runs"

    def rows(self) -> list[tuple[str, ...]]:
        rows: list[tuple[str, ...]] = []
        for point, new in zip(self.change_points, self.recent, strict=True):
            unit = point.series.unit
            level = f"{format_value(point.before, unit)} → {format_value(point.after, unit)}"
            change = format_change(point.change)
            interval = "" if point.interval is None else format_change_interval(*point.interval)
            verdict = point.kind + (f" (last {self.since} runs)" if new and point.kind == "regression" else "")
            label = point.series.label
            if point.series.fingerprint != "none" and self._several_machines():
                label += f" [{point.series.fingerprint}]"
            rows.append((label, point.series.metric, point.first.run, point.first.commit, point.previous.commit,
                         level, change, interval, verdict))  # fmt: skip
        return rows

    def _several_machines(self) -> bool:
        return len({(c.series.machine, c.series.fingerprint) for c in self.change_points}) > 1

    def lines(self) -> list[str]:
        out = [f"history: {self.storage} ({self.runs} runs, {self.series} series)"]
        out.extend(f"note: {note}" for note in self.notes)
        out.extend(f"known step: {step.sentence()}" for step in self.known_steps)
        rows = self.rows()
        if rows:
            out.append("")
            out.extend(text_table([column.title for column in _COLUMNS], rows))
        out.append("")
        out.append(self.summary())
        return out

    def markdown(self, limit: int = MARKDOWN_LIMIT) -> str:
        title = "FAILED" if self.exit_status else "no recent regression"
        md = markdown_line
        head = [f"## llmbench history: {title}", "", f"{md(self.storage)}: {self.runs} runs, {self.series} series", ""]
        head += [f"- note: {md(note)}" for note in self.notes]
        head += [f"- known step: {md(step.sentence())}" for step in self.known_steps]
        if self.notes or self.known_steps:
            head.append("")
        table = markdown_header(_COLUMNS)
        rows = [markdown_row(row) for row in self.rows()]
        tail = ["", f"**{md(self.summary())}**", ""]
        shown = rows
        while shown and len("\n".join(head + table + shown + tail)) > limit:
            shown = shown[: len(shown) * 9 // 10]
        cut = ["", f"{len(rows) - len(shown)} more rows (the terminal output has them all)."] if shown != rows else []
        body = table + shown + cut if rows else ["No change point."]
        return "\n".join(head + body + tail)
