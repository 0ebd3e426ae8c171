"""How ledger values become cells of openpyxl's write-only sheets: a styled header row, safe
text, Beijing times as real dates, percentages and links.

Times are written as naive Asia/Shanghai datetimes with a date number format. Excel has no time
zones (openpyxl refuses aware datetimes) and whoever reads the ledger means Beijing time; a
real date, not text, still sorts and filters as one.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import ILLEGAL_CHARACTERS_RE
from openpyxl.styles import Alignment, Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet

from bot.clock import SHANGHAI

DATE_FORMAT = "yyyy-mm-dd hh:mm"
PERCENT_FORMAT = "0.0%"
DAYS_FORMAT = "0.0"
CELL_MAX = 32767  # Excel's limit for the text of one cell
URL_MAX = 2000  # longer hyperlinks make Excel call the file damaged
_WEB = re.compile(r"https?://[^\s\x00-\x1f\x7f]+", re.IGNORECASE)
_HEADER_FONT, _LINK_FONT = Font(bold=True), Font(color="0563C1", underline="single")
_HEADER_FILL = PatternFill("solid", fgColor="DDEBF7")
_HEADER_ALIGN = Alignment(horizontal="center", vertical="center", wrap_text=True)


def start_sheet(ws: WriteOnlyWorksheet, columns: Sequence[tuple[str, int]]) -> None:
    """Widths, a frozen bold header row: all before the first row, which a write-only sheet
    writes out at once together with its view and columns."""
    ws.freeze_panes = "A2"
    for i, (_, width) in enumerate(columns, start=1):
        ws.column_dimensions[get_column_letter(i)].width = width
    header = []
    for name, _ in columns:
        cell = WriteOnlyCell(ws, value=name)
        cell.font, cell.fill, cell.alignment = _HEADER_FONT, _HEADER_FILL, _HEADER_ALIGN
        header.append(cell)
    ws.append(header)


def text(ws: WriteOnlyWorksheet, value: str) -> Any:
    """User text as a string cell: control characters (which Excel refuses) dropped, and text
    starting with "=" kept as text, never turned into a formula."""
    clean = ILLEGAL_CHARACTERS_RE.sub("", value)[:CELL_MAX]
    if not clean.startswith("="):
        return clean
    cell = WriteOnlyCell(ws, value=clean)
    cell.data_type = "s"
    return cell


def when(ws: WriteOnlyWorksheet, value: datetime | None) -> Any:
    if value is None:
        return None
    cell = WriteOnlyCell(ws, value=value.astimezone(SHANGHAI).replace(tzinfo=None))
    cell.number_format = DATE_FORMAT
    return cell


def number(ws: WriteOnlyWorksheet, value: float | None, number_format: str) -> Any:
    if value is None:
        return None
    cell = WriteOnlyCell(ws, value=value)
    cell.number_format = number_format
    return cell


def web_address(ref: str) -> str | None:
    """``ref`` when it is an http(s) address Excel can open; never another scheme."""
    return ref if _WEB.fullmatch(ref) and len(ref) <= URL_MAX else None


def link(ws: WriteOnlyWorksheet, label: str, url: str) -> Any:
    cell = WriteOnlyCell(ws, value=label)
    cell.hyperlink, cell.font = url, _LINK_FONT
    return cell
