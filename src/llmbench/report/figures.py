"""What every report plot is made of: :class:`Plot` (a figure and the data drawn in it), :class:`PlotSeries`,
one colour per precision (:func:`plot_color`) and the figure and scaling helpers the plots share.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never pyplot: no global
state, no display needed.
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure

from llmbench.config.precisions import precision_color

__all__ = [
    "REGRESSION_COLOR",
    "Plot",
    "PlotSeries",
    "nan_values",
    "new_figure",
    "no_data",
    "plot_color",
    "scaled",
]

_OTHER_COLORS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b", "#e377c2", "#bcbd22")
#: Regressions and change points that are regressions, in every plot.
REGRESSION_COLOR = "#d62728"


def plot_color(precision: str) -> str:
    """The colour of a precision, the same in every plot (unknown names: a stable hash into a palette)."""
    return precision_color(precision) or _OTHER_COLORS[zlib.crc32(precision.encode()) % len(_OTHER_COLORS)]


@dataclass(frozen=True)
class PlotSeries:
    """One line, set of bars or points drawn in a plot: labels or numbers on x, values on y (None: n/a,
    not drawn)."""

    label: str
    x: tuple[str | float, ...]
    y: tuple[float | None, ...]
    #: Error bars (lower and upper ends, in y's unit), where drawn.
    low: tuple[float | None, ...] = ()
    high: tuple[float | None, ...] = ()
    color: str = ""

    def points(self) -> dict[str | float, float | None]:
        return dict(zip(self.x, self.y, strict=True))


@dataclass
class Plot:
    """A figure and the data behind it."""

    name: str
    title: str
    figure: Figure
    series: list[PlotSeries] = field(default_factory=list)
    xlabel: str = ""
    ylabel: str = ""
    #: One or two sentences under the image: what is drawn and how to read it.
    caption: str = ""

    def labels(self) -> list[str]:
        return [s.label for s in self.series]

    def series_named(self, label: str) -> PlotSeries:
        for series in self.series:
            if series.label == label:
                return series
        raise KeyError(f"no series {label!r} in plot {self.name!r} (have {self.labels()})")

    def png(self, dpi: int = 100) -> bytes:
        buffer = io.BytesIO()
        FigureCanvasAgg(self.figure)
        self.figure.savefig(buffer, format="png", dpi=dpi)
        return buffer.getvalue()


def new_figure(count: int, height: float = 4.5, per_item: float = 0.45, panels: int = 1) -> tuple[Figure, list[Axes]]:
    width = min(max(8.0, 2.5 + per_item * count), 40.0)
    figure = Figure(figsize=(width, height * panels), layout="constrained")
    axes = [figure.add_subplot(panels, 1, i + 1) for i in range(panels)]
    return figure, axes


def no_data(axes: Axes, what: str) -> None:
    axes.text(0.5, 0.5, f"no {what} in this run", ha="center", va="center", transform=axes.transAxes)
    axes.set_xticks([])
    axes.set_yticks([])


def scaled(values: Sequence[float | None], factor: float) -> tuple[float | None, ...]:
    return tuple(None if v is None else v / factor for v in values)


def nan_values(values: Sequence[float | None]) -> list[float]:
    return [float("nan") if v is None else v for v in values]
