"""Report charts: the data drawn matches the input; every character resolves to a real CJK glyph.

Glyph coverage is checked twice over: fontTools reads the cmap of the very face matplotlib uses
for each text, and rendering runs with warnings as errors (matplotlib warns "Glyph … missing"
when it falls back to its placeholder font).
"""

from __future__ import annotations

import copy
import functools
import logging
import math
import warnings
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import matplotlib
import numpy as np
import pytest
from fontTools.ttLib import TTCollection, TTFont
from matplotlib import font_manager
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.collections import QuadMesh
from matplotlib.colors import to_rgba
from matplotlib.container import BarContainer
from matplotlib.figure import Figure
from matplotlib.text import Text

from bot.ledger.stats import Figures
from bot.reports import charts
from bot.reports.fonts import (
    DEFAULT_CANDIDATES,
    ENV_VAR,
    ChartFont,
    ChartFontMissing,
    chart_font,
    configured,
    find_cjk_font,
    register,
)

NOTO = Path("/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc")
WQY = Path("/usr/share/fonts/truetype/wqy/wqy-microhei.ttc")

ROWS = [
    ("第一共同体（机关党建联建）", Figures(12, on_time=6, late=2, overdue=1, excused=1, open=2)),
    ("第二共同体", Figures(5, on_time=5)),
    ("第三共同体", Figures()),
    ("第四共同体", Figures(3, open=3)),
]
TASKS = [
    "三会一课",
    "主题党日",
    "意识形态工作责任制落实情况报告",
    "组织生活会",
    "民主评议",
    "党费",
    "志愿服务",
]
UNITS = ["区委办", "区委组织部", "区委宣传部机关第一党支部"]
ALL_STATES: list[str | None] = ["done", "late", "pending", "returned", "overdue", "excused", None]
STATES = [ALL_STATES, ALL_STATES[::-1], ["done"] * 7]
POINTS: list[tuple[str, float | None, int]] = [
    (f"{m}月", None if m in (2, 7) else 0.5 + m / 30, 0 if m in (2, 7) else 30 + m)
    for m in range(1, 13)
]


def big_matrix() -> Figure:
    states = [[ALL_STATES[(i * 3 + j) % 7] for j in range(20)] for i in range(58)]
    tasks = [f"第{j + 1}项 党建重点任务落实情况" for j in range(20)]
    return charts.build_matrix(
        "全区任务进度", [f"单位{i + 1:02d}" for i in range(58)], tasks, states
    )


BUILDERS: dict[str, Callable[[], Figure]] = {
    "completion": lambda: charts.build_completion("2026年11月 各共同体完成情况", ROWS),
    "matrix": lambda: charts.build_matrix("2026年11月 任务进度", UNITS, TASKS, STATES),
    "matrix_58x20": big_matrix,
    "trend": lambda: charts.build_trend("近12个月按时率", POINTS),
    "empty_completion": lambda: charts.build_completion("无数据", []),
    "empty_matrix": lambda: charts.build_matrix("无数据", [], [], []),
    "empty_trend": lambda: charts.build_trend("无数据", []),
}


@functools.cache
def face_cmap(path: str, index: int) -> tuple[str, dict[int, str]]:
    """Family name and cmap of one face, read by fontTools independently of matplotlib."""
    if Path(path).suffix.lower() in (".ttc", ".otc"):
        with TTCollection(path, lazy=True) as collection:
            face = collection.fonts[index]
            return face["name"].getDebugName(1) or "", dict(face.getBestCmap())
    with TTFont(path, lazy=True) as face:
        return face["name"].getDebugName(1) or "", dict(face.getBestCmap())


def render(fig: Figure) -> bytes:
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # "Glyph 30563 (…) missing from font(s)" becomes a failure
        return charts.to_png(fig)


def drawn_texts(fig: Figure) -> list[Text]:
    return [t for t in fig.findobj(Text) if isinstance(t, Text) and t.get_text()]


def assert_every_glyph_in(fig: Figure, family: str) -> None:
    """Each text resolves to a face of `family` (no default font) whose cmap has every character."""
    texts = drawn_texts(fig)
    assert any(not t.get_text().isascii() for t in texts)
    for text in texts:
        resolved = font_manager.findfont(text.get_fontproperties(), fallback_to_default=False)
        name, cmap = face_cmap(resolved.path, resolved.face_index)
        assert name == family, text.get_text()
        missing = {c for c in text.get_text() if ord(c) not in cmap}
        assert not missing, f"{text.get_text()!r} lacks {missing} in {name}"


def test_chart_font_is_the_simplified_chinese_face() -> None:
    font = chart_font()
    family, cmap = face_cmap(font.path, font.index)
    assert family == font.family
    assert Path(font.path) == NOTO.resolve(), "the project installs fonts-noto-cjk"
    assert font.family == "Noto Sans CJK SC"
    # Same code points, regional shapes: the JP face (index 0) draws 骨 and 直 differently.
    _, japanese = face_cmap(font.path, 0)
    assert cmap[ord("骨")] != japanese[ord("骨")] and cmap[ord("直")] != japanese[ord("直")]


def test_the_bold_face_is_registered_beside_the_font() -> None:
    # A font cache from before fonts-noto-cjk was installed: it lists no Noto at all.
    stale = copy.copy(font_manager.fontManager)
    stale.ttflist = [e for e in stale.ttflist if "NotoSansCJK" not in e.fname]
    font = register(find_cjk_font([NOTO]), stale)
    bold = font_manager.FontProperties(family=[font.family], weight="bold")
    resolved = stale.findfont(bold, fallback_to_default=False)
    assert Path(resolved.path).name == "NotoSansCJK-Bold.ttc"  # not the regular, with a warning
    assert face_cmap(resolved.path, resolved.face_index)[0] == font.family


def test_missing_font_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "empty").mkdir()
    (tmp_path / "broken.ttf").write_bytes(b"not a font at all")
    latin_only = Path(matplotlib.get_data_path()) / "fonts" / "ttf"  # DejaVu, Last Resort
    candidates = [tmp_path / "empty", tmp_path / "nothing.ttc", tmp_path / "broken.ttf", latin_only]
    with pytest.raises(ChartFontMissing) as caught:
        find_cjk_font(candidates)
    message = str(caught.value)
    assert "未找到" in message and "fonts-noto-cjk" in message and ENV_VAR in message
    assert str(latin_only) in message


def test_where_fonts_are_looked_for() -> None:
    assert configured({}) == DEFAULT_CANDIDATES
    assert configured({ENV_VAR: " /srv/fonts/my.ttc "}) == (Path("/srv/fonts/my.ttc"),)
    if not WQY.exists():
        pytest.skip("fonts-wqy-microhei not installed")
    assert find_cjk_font([WQY.parent]) == ChartFont(str(WQY.resolve()), 0, "WenQuanYi Micro Hei")


@pytest.mark.parametrize("name", BUILDERS)
def test_every_text_resolves_to_a_real_glyph(name: str, caplog: pytest.LogCaptureFixture) -> None:
    fig = BUILDERS[name]()
    with caplog.at_level(logging.WARNING, logger="matplotlib"):
        png = render(fig)  # drawing also makes the tick labels
    assert not caplog.records, [r.getMessage() for r in caplog.records]
    assert png.startswith(b"\x89PNG\r\n\x1a\n") and len(png) < charts.MAX_PNG_BYTES
    assert_every_glyph_in(fig, chart_font().family)


def test_the_fallback_font_draws_everything_too() -> None:
    if not WQY.exists():
        pytest.skip("fonts-wqy-microhei not installed")
    font = register(find_cjk_font([WQY]))
    fig = charts.build_matrix("任务进度", UNITS, TASKS, STATES, font=font)
    render(fig)
    assert_every_glyph_in(fig, "WenQuanYi Micro Hei")


def test_a_missing_glyph_would_fail_the_render() -> None:
    """The warnings-as-errors check above is not vacuous: matplotlib's own font has no Chinese."""
    fig = Figure()
    FigureCanvasAgg(fig)
    fig.text(0.5, 0.5, "督办", fontfamily="DejaVu Sans")
    with pytest.raises(UserWarning, match="missing from font"):
        render(fig)


def test_completion_bars_are_the_counts() -> None:
    fig = BUILDERS["completion"]()
    ax = fig.axes[0]
    bars = [c for c in ax.containers if isinstance(c, BarContainer)]
    assert [c.get_label() for c in bars] == [label for _, label, _ in charts.SEGMENTS]
    left = [0.0] * len(ROWS)
    for container, (field, _, colour) in zip(bars, charts.SEGMENTS, strict=True):
        for i, (patch, (_, figures)) in enumerate(zip(container.patches, ROWS, strict=True)):
            assert patch.get_width() == getattr(figures, field)
            assert patch.get_x() == left[i]
            assert patch.get_y() + patch.get_height() / 2 == i  # in the order given
            assert patch.get_facecolor() == to_rgba(colour)
            left[i] += patch.get_width()
    assert ax.yaxis_inverted()  # first row on top
    assert [t.get_text() for t in ax.get_yticklabels()] == [
        "第一共同体（机…",
        "第二共同体",
        "第三共同体",
        "第四共同体",
    ]
    notes = {t.get_text(): t for t in ax.texts}
    assert notes["按时率 67%"].xy == (12, 0)  # 6 of the 9 fallen due, at the bar's end
    assert notes["按时率 100%"].xy == (5, 1)
    assert notes["无应报"].xy == (0, 2)
    assert notes["尚未到期"].xy == (3, 3)  # owed, none of it due yet
    assert {"6", "2", "1"} <= set(notes)  # counts inside the segments
    assert [t.get_text() for t in fig.legends[0].get_texts()] == [
        "按时",
        "迟报",
        "逾期",
        "免报",
        "未到期",
    ]


def test_matrix_cells_are_coloured_by_state() -> None:
    fig = BUILDERS["matrix"]()
    ax = fig.axes[0]
    cells = ax.collections[0]
    assert isinstance(cells, QuadMesh)
    assert cells.get_coordinates().shape == (4, 8, 2)  # corners of 3 × 7 cells
    faces = cells.get_facecolor().reshape(3, 7, 4)
    colour = {None: "#ffffff", "done": "#2e9b57", "overdue": "#d9483b", "excused": "#a5abb3"}
    colour |= dict.fromkeys(["late", "pending", "returned"], "#f2c037")
    for i, row in enumerate(STATES):
        for j, state in enumerate(row):
            assert tuple(faces[i, j]) == pytest.approx(to_rgba(colour[state])), (i, j, state)
    assert ax.yaxis_inverted()  # first unit on top
    marks = {
        (round(t.get_position()[0]), round(t.get_position()[1])): t.get_text() for t in ax.texts
    }
    assert marks == {
        (1, 0): "迟",
        (2, 0): "待",
        (3, 0): "退",
        (3, 1): "退",
        (4, 1): "待",
        (5, 1): "迟",
    }
    assert [t.get_text() for t in ax.get_yticklabels()] == ["区委办", "区委组织部", "区委宣传部机…"]
    tasks = [t.get_text() for t in ax.get_xticklabels()]
    assert tasks[2] == "意识形态工作…" and tasks[0] == "三会一课"
    legend = fig.legends[0]
    assert [t.get_text() for t in legend.get_texts()] == [
        "按时完成",
        "迟报",
        "待报",
        "退回",
        "逾期",
        "免报",
        "无此任务",
    ]
    assert {t.get_text() for t in drawn_texts(legend)} >= {"迟", "待", "退"}  # marks on swatches


def test_big_matrix_fits_a_wecom_image() -> None:
    fig = big_matrix()
    png = render(fig)
    assert len(png) < charts.MAX_PNG_BYTES
    ax = fig.axes[0]
    assert len(ax.get_yticklabels()) == 58 and len(ax.get_xticklabels()) == 20
    cells = ax.collections[0]
    assert isinstance(cells, QuadMesh) and cells.get_coordinates().shape == (59, 21, 2)
    # Each row at least as tall as a 9-point label, so unit names never overlap.
    row_pixels = ax.get_window_extent().height / 58
    assert row_pixels >= 9 / 72 * fig.dpi * 1.5


def test_matrix_rejects_bad_input() -> None:
    with pytest.raises(ValueError, match="rows"):
        charts.build_matrix("x", ["a", "b"], ["t"], [["done"]])
    with pytest.raises(ValueError, match="unknown states"):
        charts.build_matrix("x", ["a"], ["t"], [["finished"]])


def test_trend_line_has_gaps_and_bars_have_counts() -> None:
    fig = BUILDERS["trend"]()
    render(fig)
    rate_ax, bars_ax = fig.axes
    expected = [math.nan if r is None else r for _, r, _ in POINTS]
    np.testing.assert_array_equal(rate_ax.lines[0].get_ydata(), expected)
    assert [p.get_height() for p in bars_ax.patches] == [n for _, _, n in POINTS]
    assert [t.get_text() for t in rate_ax.get_xticklabels()] == [f"{m}月" for m in range(1, 13)]
    assert [t.get_text() for t in rate_ax.get_yticklabels()] == [
        "0%",
        "20%",
        "40%",
        "60%",
        "80%",
        "100%",
    ]
    rate_notes = [t.get_text() for t in rate_ax.texts]
    assert rate_notes[0] == "53%" and len(rate_notes) == 10  # none for the two empty months
    assert rate_ax.get_zorder() > bars_ax.get_zorder()  # the line is not hidden by the bars


def test_same_input_same_bytes_in_any_thread() -> None:
    first = charts.trend("近12个月按时率", POINTS)
    assert b"Software" not in first and b"Matplotlib" not in first
    with ThreadPoolExecutor(2) as pool:
        again = list(pool.map(lambda _: charts.trend("近12个月按时率", POINTS), range(2)))
    assert again == [first, first]
    rows = charts.completion_by_community("t", ROWS)
    assert rows == charts.completion_by_community("t", ROWS)
    matrix = charts.status_matrix("t", UNITS, TASKS, STATES)
    assert matrix.startswith(b"\x89PNG") and matrix == charts.status_matrix(
        "t", UNITS, TASKS, STATES
    )


def test_shorten_counts_chinese_as_two_columns() -> None:
    assert charts.shorten("组织生活会", 10) == "组织生活会"
    assert charts.shorten("意识形态工作责任制", 10) == "意识形态…"
    assert charts.shorten("Party building report", 10) == "Party bu…"
