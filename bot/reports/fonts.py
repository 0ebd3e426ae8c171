"""The CJK font the charts draw with: found on disk, checked, registered with matplotlib once.

Matplotlib's default (DejaVu Sans) has no Chinese; left alone it draws tofu boxes and only logs a
warning. So the charts never rely on a default: `chart_font()` finds a font that really covers
simplified Chinese, registers it, checks that matplotlib resolves its family name to that face
(no silent fallback), and raises ChartFontMissing, naming the packages to install, when there
is none.

Where it looks, first hit wins:
- DUBAN_CHART_FONT, when set: a .ttf/.otf/.ttc file or a directory of them. Only that is tried, so
  a wrong value fails loudly instead of quietly picking another font. Read in `configured()` only.
- Noto Sans CJK (Debian/Ubuntu `fonts-noto-cjk`; the same file on Arch, Fedora, Alpine paths),
  then WenQuanYi Micro Hei (`fonts-wqy-microhei`), then Source Han Sans SC.

A .ttc holds several faces: NotoSansCJK-Regular.ttc has JP, KR, SC, TC and HK faces with the same
code points but regional glyph shapes, and JP comes first. We take the face whose family name says
SC (or CN), so 直 and 骨 look the way a mainland reader expects. Matplotlib selects a face inside
a collection by its family name only since 3.11 (before, it always took the first face: JP).
"""

from __future__ import annotations

import os
import re
import threading
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

from matplotlib import font_manager, ft2font

ENV_VAR = "DUBAN_CHART_FONT"

DEFAULT_CANDIDATES: tuple[Path, ...] = tuple(
    Path(p)
    for p in (
        "/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc",  # Debian, Ubuntu
        "/usr/share/fonts/noto-cjk/NotoSansCJK-Regular.ttc",  # Arch
        "/usr/share/fonts/google-noto-sans-cjk-fonts/NotoSansCJK-Regular.ttc",  # Fedora
        "/usr/share/fonts/noto/NotoSansCJK-Regular.ttc",  # Alpine
        "/usr/share/fonts/truetype/wqy/wqy-microhei.ttc",  # Debian, Ubuntu
        "/usr/share/fonts/wqy-microhei/wqy-microhei.ttc",  # Fedora, Alpine
        "/usr/share/fonts/adobe-source-han-sans/SourceHanSansSC-Regular.otf",
        "/usr/share/fonts/opentype/source-han-sans/SourceHanSansSC-Regular.otf",
    )
)

# Characters every chart draws, several of them simplified-only (报 务 区 迟 项): a face that
# lacks one is a Japanese or traditional-only font and is passed over.
PROBE = "督办按时迟报逾期免未到完成率社区共同体单位任务项月退回应数无此暂据0123456789%…"

FONT_SUFFIXES = (".ttc", ".otf", ".ttf", ".otc")
_SIMPLIFIED = re.compile(r"\b(SC|CN)\b")


class ChartFontMissing(RuntimeError):
    """No font with simplified Chinese was found; the message says what to install."""

    def __init__(self, looked_in: Iterable[Path]) -> None:
        places = ", ".join(str(p) for p in looked_in) or "(nowhere)"
        super().__init__(
            "未找到含简体中文的字体，无法生成图表。请安装 fonts-noto-cjk（或 fonts-wqy-microhei），"
            f"或设置 {ENV_VAR} 为含简体中文的 .ttf/.otf/.ttc 字体文件或目录。"
            " / No font with Simplified Chinese found for charts: install the Debian package"
            f" fonts-noto-cjk (or fonts-wqy-microhei), or set {ENV_VAR} to such a font file or"
            f" directory. Looked in: {places}"
        )


@dataclass(frozen=True, slots=True)
class ChartFont:
    path: str  # resolved, as matplotlib opens it
    index: int  # face inside a collection (.ttc); 0 for a single-face file
    family: str  # the name the charts ask matplotlib for


def configured(env: Mapping[str, str] | None = None) -> tuple[Path, ...]:
    """Where to look: DUBAN_CHART_FONT alone when set, else the packaged locations."""
    value = (os.environ if env is None else env).get(ENV_VAR, "").strip()
    return (Path(value),) if value else DEFAULT_CANDIDATES


def _font_files(candidate: Path) -> list[Path]:
    if candidate.is_dir():
        return sorted(
            p for p in candidate.rglob("*") if p.suffix.lower() in FONT_SUFFIXES and p.is_file()
        )
    return [candidate] if candidate.is_file() else []


def _face_in(path: Path) -> ChartFont | None:
    """The simplified-Chinese face of one file, or None when no face covers PROBE."""
    try:
        count = ft2font.FT2Font(str(path)).num_faces
        faces = [ft2font.FT2Font(str(path), face_index=i) for i in range(count)]
    except (OSError, RuntimeError, ValueError):
        return None  # not a font FreeType can read
    covering = [
        ChartFont(os.path.realpath(path), i, face.family_name)
        for i, face in enumerate(faces)
        if _draws(face.get_charmap(), PROBE)
    ]
    # Proportional before monospaced: Noto's "Sans Mono CJK SC" would widen every digit.
    covering.sort(key=lambda f: (not _SIMPLIFIED.search(f.family), "Mono" in f.family))
    return covering[0] if covering else None


def _draws(cmap: Mapping[int, int], text: str) -> bool:
    """Every character has a glyph of its own; fallback fonts like Last Resort map whole
    Unicode blocks onto one placeholder glyph, which is no better than a box."""
    glyphs = [cmap.get(ord(c), 0) for c in set(text)]
    return 0 not in glyphs and len(set(glyphs)) == len(glyphs)


def find_cjk_font(candidates: Iterable[Path]) -> ChartFont:
    """The first font among candidates (files or directories) with a simplified-Chinese face."""
    looked = list(candidates)
    for candidate in looked:
        for path in _font_files(candidate):
            face = _face_in(path)
            if face is not None:
                return face
    raise ChartFontMissing(looked)


def register(font: ChartFont, manager: font_manager.FontManager | None = None) -> ChartFont:
    """Make matplotlib know the font, and its bold beside it, and check that its family name
    resolves to it."""
    manager = manager or font_manager.fontManager
    known = {(os.path.realpath(e.fname), e.index) for e in manager.ttflist}
    if (font.path, font.index) not in known:
        manager.addfont(font.path)
    # Matplotlib lists the system's fonts once, into a cache kept across runs: a font package
    # installed after that is missing from it, and the charts' bold headings would come out
    # regular, with a warning, for as long as the cache lives.
    bold = _bold_beside(font.path)
    if bold is not None and not any(path == bold for path, _ in known):
        manager.addfont(bold)
    prop = font_manager.FontProperties(family=[font.family])
    try:
        resolved = manager.findfont(prop, fallback_to_default=False)
    except ValueError:
        raise ChartFontMissing([Path(font.path)]) from None
    face = ft2font.FT2Font(resolved.path, face_index=resolved.face_index)
    if face.family_name != font.family:
        raise ChartFontMissing([Path(font.path)])
    # Another copy of the same face (a second install) is as good; report what matplotlib uses.
    return ChartFont(os.path.realpath(resolved.path), resolved.face_index, font.family)


def _bold_beside(path: str) -> str | None:
    """The bold file packaged with a regular one: NotoSansCJK-Bold.ttc, SourceHanSansSC-Bold.otf."""
    regular = Path(path)
    if "-Regular" not in regular.stem:
        return None
    bold = regular.with_name(regular.name.replace("-Regular", "-Bold"))
    return os.path.realpath(bold) if bold.is_file() else None


_lock = threading.Lock()
_chosen: ChartFont | None = None


def chart_font() -> ChartFont:
    """The registered CJK font; looked up on first use (safe from several threads)."""
    global _chosen
    with _lock:
        if _chosen is None:
            _chosen = register(find_cjk_font(configured()))
        return _chosen
