"""What every report plot is made of: :class:`Plot` (a figure and the data drawn in it), :class:`PlotSeries`,
the one visual encoding of a combination (:class:`Encoding`, :class:`Style`) and the figure and scaling
helpers the plots share.

The encoding (docs/reports.md, "How plots tell combinations apart"): **colour by model**, **marker (and a
bar's hatch) by precision**, **line style (and a bar's edge) by device**, **marker size by batch size** where
batch size is not the x axis. A model's colour is its name's CRC-32 in a fixed palette, so it is the same
in every report whatever else ran; two models of one report whose names fall on one colour are told apart
by moving the one that sorts later to the next free colour (the models of the report's own run are placed
before those seen only in its history). Markers and line styles are placed the same way, from a fixed
order of the known precisions and devices.

Figures are built with :class:`matplotlib.figure.Figure` and the Agg canvas, never pyplot: no global
state, no display needed.
"""

from __future__ import annotations

import io
import math
import zlib
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

__all__ = [
    "DEVICE_LINESTYLES",
    "MODEL_COLORS",
    "PRECISION_HATCHES",
    "PRECISION_MARKERS",
    "REGRESSION_COLOR",
    "Encoding",
    "Identified",
    "Plot",
    "PlotSeries",
    "Style",
    "legend_title",
    "nan_values",
    "new_figure",
    "no_data",
    "scaled",
]

#: Regressions and change points that are regressions, in every plot.
REGRESSION_COLOR = "#d62728"
#: One colour per model: matplotlib's tab10 without its red (regressions) and grey (the memory plot's
#: parts, change points), and two darker tab20b colours.
MODEL_COLORS: tuple[str, ...] = (
    "#1f77b4", "#ff7f0e", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#bcbd22", "#17becf", "#393b79", "#637939",
)  # fmt: skip
#: One marker per precision, and the hatch of its bars at the same place (full precision: a plain bar).
PRECISION_MARKERS: tuple[str, ...] = ("o", "s", "^", "D", "v", "P", "X", "*", "<", ">", "p", "h")
PRECISION_HATCHES: tuple[str, ...] = ("", "//", "\\\\", "xx", "..", "oo", "++", "--", "||", "**", "OO", "///")
#: The precisions' places in :data:`PRECISION_MARKERS` (modulo its length); another precision: its CRC-32.
_PRECISION_ORDER: tuple[str, ...] = (
    "fp32", "bf16", "fp16", "q4_k_m", "int8", "nf4", "q8_0", "fp4", "q6_k", "q5_k_m", "q4_0", "q2_k",
    "f32", "f16", "bf16-gguf", "q5_k_s", "q5_0", "q4_k_s", "iq4_xs", "q3_k_m",
)  # fmt: skip
#: One line style per device: name -> matplotlib's line style.
DEVICE_LINESTYLES: dict[str, str | tuple[float, tuple[float, ...]]] = {
    "solid": "-", "dashed": "--", "dashdot": "-.", "dotted": ":", "dashdotdotted": (0, (3, 1, 1, 1, 1, 1)),
    "long dashed": (0, (8, 3)), "densely dotted": (0, (1, 1)),
}  # fmt: skip
_DEVICE_ORDER = {"cpu": 0, "cuda": 1, "cuda:0": 1, "mps": 2}


def _crc(name: str) -> int:
    return zlib.crc32(name.encode("utf-8"))


@dataclass(frozen=True)
class Style:
    """How one combination is drawn: colour (model), marker and hatch (precision), line style (device), marker
    size (batch size); ``filled``: False for a combination's derived line (a hollow marker), e.g. its limit."""

    color: str
    marker: str = "o"
    linestyle: str = "solid"
    hatch: str = ""
    markersize: float = 6.0
    filled: bool = True

    def hollow(self) -> Style:
        return replace(self, filled=False)

    def fields(self) -> dict[str, Any]:
        """The :class:`PlotSeries` fields of this style."""
        return {"color": self.color, "marker": self.marker, "linestyle": self.linestyle, "hatch": self.hatch,
                "markersize": self.markersize, "filled": self.filled}  # fmt: skip

    def line(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Axes.plot <matplotlib.axes.Axes.plot>` for a line in this style."""
        return {"color": self.color, "marker": self.marker, "linestyle": DEVICE_LINESTYLES[self.linestyle],
                "markersize": self.markersize, "markeredgecolor": self.color,
                "markerfacecolor": self.color if self.filled else "none"}  # fmt: skip

    def bar(self, edge: str = "#333333") -> dict[str, Any]:
        """Keyword arguments of :meth:`Axes.bar <matplotlib.axes.Axes.bar>` for a bar in this style."""
        return {"facecolor": self.color, "hatch": self.hatch, "edgecolor": edge, "linewidth": 1.0,
                "linestyle": DEVICE_LINESTYLES[self.linestyle]}  # fmt: skip

    def outline(self) -> dict[str, Any]:
        """Keyword arguments of :meth:`Axes.bar <matplotlib.axes.Axes.bar>` for an unfilled bar drawn over
        another (whose colours say something else): edge and hatch in this style."""
        return {"fill": False, "edgecolor": self.color, "hatch": self.hatch, "linewidth": 2.0,
                "linestyle": DEVICE_LINESTYLES[self.linestyle]}  # fmt: skip

    def line_handle(self, label: str) -> Line2D:
        """A legend entry for a line in this style."""
        return Line2D([], [], label=label, **self.line())

    def bar_handle(self, label: str, outline: bool = False) -> Patch:
        """A legend entry for a bar (``outline``: an unfilled one) in this style."""
        return Patch(label=label, **(self.outline() if outline else self.bar()))


class Identified(Protocol):
    """What the encoding reads of a combination (a report row)."""

    @property
    def model(self) -> str: ...
    @property
    def precision(self) -> str: ...
    @property
    def device(self) -> str: ...
    @property
    def batch_size(self) -> int | None: ...


def _assign(tiers: Sequence[Iterable[str]], slots: int, preferred: Callable[[str], int]) -> dict[str, int]:
    """Each name's slot: its preferred one, or the next free one where a name placed before it took that;
    names of an earlier tier are placed first, each tier in sorted order. With every slot taken, a new round
    of slots starts (names then share a slot)."""
    placed: dict[str, int] = {}
    taken: set[int] = set()
    for tier in tiers:
        for name in sorted(set(tier) - placed.keys()):
            if len(taken) == slots:
                taken.clear()
            start = preferred(name) % slots
            slot = next(s for s in ((start + i) % slots for i in range(slots)) if s not in taken)
            taken.add(slot)
            placed[name] = slot
    return placed


def _precision_slot(precision: str) -> int:
    return _PRECISION_ORDER.index(precision) if precision in _PRECISION_ORDER else _crc(precision)


def _device_slot(device: str) -> int:
    return _DEVICE_ORDER.get(device, _crc(device))


def _batch_markersize(batch_size: int | None) -> float:
    """Marker size (points) by batch size: 5 at batch 1, 2 more per doubling, at most 15."""
    return 6.0 if batch_size is None or batch_size < 1 else min(5.0 + 2.0 * math.log2(batch_size), 15.0)


@dataclass(frozen=True)
class Encoding:
    """Colour by model, marker and hatch by precision, line style by device, marker size by batch size: the
    slots of the combinations of one report (:meth:`of`), the same in each of its plots."""

    models: dict[str, int] = field(default_factory=dict)
    precisions: dict[str, int] = field(default_factory=dict)
    devices: dict[str, int] = field(default_factory=dict)

    @classmethod
    def of(cls, *tiers: Iterable[Identified]) -> Encoding:
        """The encoding of the combinations in ``tiers``: the report's own run first, then its history (whose
        names yield where they fall on a slot the first tier holds)."""
        rows = [list(tier) for tier in tiers]
        return cls(
            _assign([[r.model for r in t] for t in rows], len(MODEL_COLORS), _crc),
            _assign([[r.precision for r in t] for t in rows], len(PRECISION_MARKERS), _precision_slot),
            _assign([[r.device for r in t] for t in rows], len(DEVICE_LINESTYLES), _device_slot),
        )

    def color(self, model: str) -> str:
        return MODEL_COLORS[self.models.get(model, _crc(model)) % len(MODEL_COLORS)]

    def style(self, model: str, precision: str, device: str, batch_size: int | None = None) -> Style:
        """The style of a combination; ``batch_size`` sets the marker size (None: the plain size)."""
        marker = self.precisions.get(precision, _precision_slot(precision)) % len(PRECISION_MARKERS)
        line = list(DEVICE_LINESTYLES)[self.devices.get(device, _device_slot(device)) % len(DEVICE_LINESTYLES)]
        return Style(self.color(model), PRECISION_MARKERS[marker], line, PRECISION_HATCHES[marker],
                     _batch_markersize(batch_size))  # fmt: skip

    def style_of(self, row: Identified, batch: bool = False) -> Style:
        """The style of ``row``'s model, precision and device; ``batch``: its batch size sets the marker size."""
        return self.style(row.model, row.precision, row.device, row.batch_size if batch else None)


def legend_title(rows: Sequence[Identified]) -> str:
    """What every row shares, for a legend whose entries leave it out: ``model gemma3-270m, device cpu``."""
    parts = (("model", {r.model for r in rows}), ("precision", {r.precision for r in rows}),
             ("device", {r.device for r in rows}))  # fmt: skip
    return ", ".join(f"{what} {values.pop()}" for what, values in parts if len(values) == 1)


@dataclass(frozen=True)
class PlotSeries:
    """One line, set of bars or points drawn in a plot: labels or numbers on x, values on y (None: n/a,
    not drawn), and how it is drawn (:class:`Style`'s fields; ``key``: the model, precision and device it
    shows, None for a part or mark shared by combinations)."""

    label: str
    x: tuple[str | float, ...]
    y: tuple[float | None, ...]
    #: Error bars (lower and upper ends, in y's unit), where drawn.
    low: tuple[float | None, ...] = ()
    high: tuple[float | None, ...] = ()
    color: str = ""
    marker: str = ""
    linestyle: str = ""
    hatch: str = ""
    markersize: float = 0.0
    filled: bool = True
    key: tuple[str, str, str] | None = None
    #: The style of each point, where the points (bars) are combinations of their own (x names each).
    point_styles: tuple[Style, ...] = ()

    @property
    def style(self) -> tuple[str, str, str, str, float, bool]:
        """What tells this series from another in the figure: colour, marker, line style, hatch, size, fill."""
        return (self.color, self.marker, self.linestyle, self.hatch, self.markersize, self.filled)

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

    def legends(self) -> list[tuple[str, list[str]]]:
        """Each legend drawn in the figure: its title and its entries' texts."""
        found = [axes.get_legend() for axes in self.figure.axes]
        return [(legend.get_title().get_text(), [t.get_text() for t in legend.get_texts()])
                for legend in found if legend is not None]  # fmt: skip

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
