"""Report charts as PNG: completion by community, the unit × task status matrix, the trend.

Plain values in, PNG bytes out; `build_*` return the Figure so tests can read the data drawn.
Only the object API with the Agg canvas: pyplot keeps global state, and these run inside the
async server, possibly in a worker thread. Every text is set in the CJK font from
bot.reports.fonts (never matplotlib's default, which has no Chinese). The PNG carries no
software tag or timestamp, so the same input gives the same bytes, and stays under the WeCom
robot's 2 MB image limit.
"""

from __future__ import annotations

import io
import math
import unicodedata
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import numpy as np
from matplotlib.artist import Artist
from matplotlib.axes import Axes
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.figure import Figure
from matplotlib.legend import Legend
from matplotlib.legend_handler import HandlerPatch
from matplotlib.patches import Patch
from matplotlib.text import Text
from matplotlib.ticker import MaxNLocator, PercentFormatter
from matplotlib.transforms import Transform

from bot.reports.fonts import ChartFont, chart_font

if TYPE_CHECKING:
    from bot.ledger.stats import Figures

MAX_PNG_BYTES = 2 * 1024 * 1024  # WeCom group robot: image message at most 2 MB
DPI = 150
HEADER = 0.95  # inches above the axes for the title and the legend

GREEN = "#2e9b57"
YELLOW = "#f2c037"
RED = "#d9483b"
GREY = "#a5abb3"
PALE = "#cfe0f3"  # not yet due: neither good nor bad
BLANK = "#ffffff"
INK = "#1f2933"
MUTED = "#616e7c"
GRID = "#d5dae0"
LINE = "#1d64b0"
BAR = "#c7d7ea"

NO_DATA = "暂无数据"
COUNT_AXIS = "任务数（项）"

# (Figures field, legend label, colour), in the order the segments stack.
SEGMENTS: tuple[tuple[str, str, str], ...] = (
    ("on_time", "按时", GREEN),
    ("late", "迟报", YELLOW),
    ("overdue", "逾期", RED),
    ("excused", "免报", GREY),
    ("open", "未到期", PALE),
)

# state: (legend label, colour, character in the cell). Three states share yellow; the character
# tells them apart, and helps colour-blind readers, who cannot rely on red against green.
STATES: dict[str | None, tuple[str, str, str]] = {
    "done": ("按时完成", GREEN, ""),
    "late": ("迟报", YELLOW, "迟"),
    "pending": ("待报", YELLOW, "待"),
    "returned": ("退回", YELLOW, "退"),
    "overdue": ("逾期", RED, ""),
    "excused": ("免报", GREY, ""),
    None: ("无此任务", BLANK, ""),
}

RATE_LABEL = "按时率"
ASSIGNED_LABEL = "应报任务数"


def completion_by_community(
    title: str, rows: Sequence[tuple[str, Figures]], font: ChartFont | None = None
) -> bytes:
    return to_png(build_completion(title, rows, font))


def status_matrix(
    title: str,
    units: Sequence[str],
    tasks: Sequence[str],
    states: Sequence[Sequence[str | None]],
    font: ChartFont | None = None,
) -> bytes:
    return to_png(build_matrix(title, units, tasks, states, font))


def trend(
    title: str, points: Sequence[tuple[str, float | None, int]], font: ChartFont | None = None
) -> bytes:
    return to_png(build_trend(title, points, font))


def shorten(text: str, width: int) -> str:
    """At most `width` columns (a Chinese character or … takes two), ending in … when cut."""
    if _columns(text) <= width:
        return text
    kept = ""
    for char in text:
        if _columns(kept + char) + 2 > width:
            break
        kept += char
    return kept.rstrip() + "…"


def _columns(text: str) -> int:
    return sum(2 if unicodedata.east_asian_width(c) in "WF" else 1 for c in text)


def rate_text(f: Figures) -> str:
    if f.rate is not None:
        return f"{RATE_LABEL} {f.rate:.0%}"
    return "尚未到期" if f.owed else "无应报"  # nothing to judge yet vs nothing owed at all


def build_completion(
    title: str, rows: Sequence[tuple[str, Figures]], font: ChartFont | None = None
) -> Figure:
    """Stacked horizontal bars, first row on top, the on-time rate at each bar's end."""
    fig, ax = _figure(title, 8.0, 1.7 + 0.48 * max(len(rows), 2))
    if not rows:
        return _finish(fig, font, empty=ax)
    y = np.arange(len(rows))
    left = np.zeros(len(rows))
    totals = [sum(getattr(f, field) for field, _, _ in SEGMENTS) for _, f in rows]
    smallest = max(totals) * 0.045  # narrower segments get no count: it would not fit
    for field, label, colour in SEGMENTS:
        widths = np.array([getattr(f, field) for _, f in rows], dtype=float)
        bars = ax.barh(y, widths, left=left, height=0.62, color=colour, label=label)
        ink = "white" if colour in (GREEN, RED) else INK
        counts = [f"{w:.0f}" if w and w >= smallest else "" for w in widths]
        ax.bar_label(bars, labels=counts, label_type="center", color=ink, fontsize=9)
        left += widths
    for i, (_, f) in enumerate(rows):
        _note(ax, rate_text(f), (left[i], i), (6, 0), va="center", fontsize=10, color=INK)
    ax.set_xlim(0, max(max(totals), 1) * 1.28)  # room for the rate label
    ax.set_yticks(y, [shorten(name, 16) for name, _ in rows])
    ax.invert_yaxis()
    ax.xaxis.set_major_locator(MaxNLocator(integer=True))
    ax.set_xlabel(COUNT_AXIS, color=MUTED)
    ax.spines[["top", "right"]].set_visible(False)
    ax.tick_params(axis="y", length=0, labelsize=11)
    _legend(fig, *ax.get_legend_handles_labels(), ncols=len(SEGMENTS))
    return _finish(fig, font)


def build_matrix(
    title: str,
    units: Sequence[str],
    tasks: Sequence[str],
    states: Sequence[Sequence[str | None]],
    font: ChartFont | None = None,
) -> Figure:
    """One row per unit, one column per task, a coloured cell per state."""
    if len(states) != len(units) or any(len(row) != len(tasks) for row in states):
        raise ValueError(f"states must be {len(units)} rows of {len(tasks)}")
    unknown = {s for row in states for s in row} - STATES.keys()
    if unknown:
        raise ValueError(f"unknown states: {sorted(map(str, unknown))}")
    cell_w, cell_h = 0.42, 0.3
    width = max(6.5, 1.9 + cell_w * len(tasks))
    fig, ax = _figure(title, width, 2.9 + cell_h * max(len(units), 3))
    fig.set_dpi(120)  # 58 units make a tall picture; 120 dpi keeps it sharp and small
    if not units or not tasks:
        return _finish(fig, font, empty=ax)
    # One quad per cell; the quad edges are the grid lines.
    rows, cols = np.arange(len(units) + 1) - 0.5, np.arange(len(tasks) + 1) - 0.5
    cells = ax.pcolormesh(cols, rows, np.zeros((len(units), len(tasks))), edgecolors=GRID)
    cells.set_array(None)
    cells.set_facecolor([STATES[s][1] for row in states for s in row])
    cells.set_linewidth(1)
    ax.set(xlim=(cols[0], cols[-1]), ylim=(rows[-1], rows[0]))  # first unit on top
    for i, row in enumerate(states):
        for j, state in enumerate(row):
            if mark := STATES[state][2]:
                # Inside the cells by construction: the layout need not measure a thousand marks.
                ax.text(
                    j, i, mark, ha="center", va="center", fontsize=8, color=INK, in_layout=False
                )
    ax.tick_params(length=0, labelsize=9)
    ax.xaxis.tick_top()
    ax.set_xticks(
        range(len(tasks)),
        [shorten(t, 14) for t in tasks],
        rotation=50,
        ha="left",
        rotation_mode="anchor",
    )
    ax.set_yticks(range(len(units)), [shorten(u, 14) for u in units])
    for spine in ax.spines.values():
        spine.set_color(GRID)
    swatches = {Patch(facecolor=c, edgecolor=GRID): (label, m) for label, c, m in STATES.values()}
    marked = {patch: _MarkedPatch(m) for patch, (_, m) in swatches.items() if m}
    labels = [label for label, _ in swatches.values()]
    ncols = min(len(labels), max(3, int(width / 1.05)))
    _legend(fig, list(swatches), labels, ncols, handler_map=marked)
    return _finish(fig, font)


def build_trend(
    title: str, points: Sequence[tuple[str, float | None, int]], font: ChartFont | None = None
) -> Figure:
    """The rate as a line (broken where a period owed nothing), assigned as bars behind it."""
    fig, ax = _figure(title, 8.0, 4.6)
    if not points:
        return _finish(fig, font, empty=ax)
    x = np.arange(len(points))
    rates = np.array([math.nan if r is None else r for _, r, _ in points], dtype=float)
    counts = [n for _, _, n in points]
    bars_ax = ax.twinx()
    # The twin axes is drawn over the first; lift the rate axes so the line stays on top.
    ax.set_zorder(bars_ax.get_zorder() + 1)
    ax.patch.set_visible(False)
    bars = bars_ax.bar(x, counts, width=0.6, color=BAR, label=ASSIGNED_LABEL)
    for i, n in enumerate(counts):  # at the foot of the bar, where the rate line seldom goes
        _note(bars_ax, f"{n}", (i, 0), (0, 3), ha="center", va="bottom", fontsize=8, color=MUTED)
    bars_ax.set_ylim(0, max(max(counts), 1) * 2.0)  # bars keep to the lower half
    bars_ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    bars_ax.set_ylabel(f"{ASSIGNED_LABEL}（项）", color=MUTED)
    (line,) = ax.plot(x, rates, color=LINE, marker="o", linewidth=2, label=RATE_LABEL)
    for i, rate in enumerate(rates):
        if not math.isnan(rate):
            _note(ax, f"{rate:.0%}", (i, rate), (0, 7), ha="center", fontsize=8, color=LINE)
    ax.set_ylim(0, 1.12)
    ax.set_yticks(np.linspace(0, 1, 6))
    ax.yaxis.set_major_formatter(PercentFormatter(1.0, decimals=0))
    ax.set_ylabel(RATE_LABEL, color=LINE)
    ax.set_xticks(x, [shorten(label, 8) for label, _, _ in points])
    ax.set_xlim(-0.6, len(points) - 0.4)
    ax.grid(axis="y", color=GRID, linewidth=0.8)
    for a in (ax, bars_ax):
        a.spines[["top"]].set_visible(False)
        a.tick_params(length=0)
    _legend(fig, [line, bars.patches[0]], [RATE_LABEL, ASSIGNED_LABEL], ncols=2)
    return _finish(fig, font)


def to_png(fig: Figure) -> bytes:
    """PNG bytes without metadata that varies; lower resolution only if over the size limit."""
    dpi = fig.get_dpi()
    for scale in (1.0, 0.75, 0.5):
        buf = io.BytesIO()
        fig.savefig(buf, format="png", dpi=dpi * scale, metadata={"Software": None})
        if buf.tell() < MAX_PNG_BYTES:
            return buf.getvalue()
    raise ValueError(f"chart too large for a WeCom image: {buf.tell()} bytes")


class _MarkedPatch(HandlerPatch):
    """A legend swatch with the character its cells carry."""

    def __init__(self, mark: str) -> None:
        super().__init__()
        self.mark = mark

    def create_artists(
        self,
        legend: Legend,
        orig_handle: Artist,
        xdescent: float,
        ydescent: float,
        width: float,
        height: float,
        fontsize: float,
        trans: Transform,
    ) -> Sequence[Artist]:
        box = (legend, orig_handle, xdescent, ydescent, width, height, fontsize, trans)
        mark = Text(width / 2 - xdescent, height / 2 - ydescent, self.mark, transform=trans)
        mark.set(ha="center", va="center", fontsize=fontsize * 0.8, color=INK)
        return [*super().create_artists(*box), mark]


def _figure(title: str, width: float, height: float) -> tuple[Figure, Axes]:
    # The title and legend sit in a fixed header band; constrained layout fits the axes and
    # its tick labels below it (an "outside" legend would collide with a suptitle).
    fig = Figure(figsize=(width, height), dpi=DPI, facecolor="white")
    fig.set_layout_engine("constrained", rect=(0, 0, 1, 1 - HEADER / height))
    FigureCanvasAgg(fig)
    heading = fig.text(0.5, 1 - 0.14 / height, title, ha="center", va="top", color=INK)
    heading.set(fontsize=15, fontweight="bold")
    return fig, fig.add_subplot()


def _note(
    ax: Axes, text: str, xy: tuple[float, float], offset: tuple[float, float], **style: Any
) -> None:
    """Text at a data point, shifted by a few points so it clears the mark it labels."""
    ax.annotate(text, xy=xy, xytext=offset, textcoords="offset points", **style)


def _legend(
    fig: Figure, handles: Sequence[Artist], labels: Sequence[str], ncols: int, **kwargs: Any
) -> Legend:
    top = 1 - 0.5 / fig.get_figheight()  # under the title, inside the header band
    return fig.legend(
        handles,
        labels,
        loc="upper center",
        bbox_to_anchor=(0.5, top),
        ncols=ncols,
        frameon=False,
        fontsize=10,
        **kwargs,
    )


def _finish(fig: Figure, font: ChartFont | None, empty: Axes | None = None) -> Figure:
    """Set every text in the CJK font; tick labels made later at draw time get it from
    tick_params."""
    family = (font or chart_font()).family
    if empty is not None:
        empty.set_axis_off()
        empty.text(0.5, 0.5, NO_DATA, ha="center", va="center", transform=empty.transAxes)
        empty.texts[-1].set(fontsize=14, color=MUTED)
    for ax in fig.axes:
        ax.tick_params(labelfontfamily=family)
    for text in fig.findobj(Text):
        assert isinstance(text, Text)
        text.set_fontfamily(family)
        text.set_parse_math(False)  # a "$" in a unit's name is not TeX
    return fig
