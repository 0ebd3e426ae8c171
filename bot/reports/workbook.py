"""The 台账 (ledger) as an Excel workbook: task instances, check-ins with their evidence,
problems and rectifications, and the period's statistics, one sheet each.

Sized for a province (20,000 units): units are read in batches (``bot.reports.ledger_rows``),
a few set-based queries each, and their rows streamed into openpyxl's write-only sheets, so
memory follows the batch, not the period. openpyxl is pure Python: its work runs in a thread,
so that a large workbook never keeps the event loop from answering webhooks. How values
become cells (Beijing times as real dates, safe text, links) is in ``bot.reports.sheet_cells``.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from openpyxl import Workbook
from openpyxl.utils import get_column_letter
from openpyxl.worksheet._write_only import WriteOnlyWorksheet
from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.stats import Figures, Report, bounds, report
from bot.links import Links
from bot.reports.ledger_rows import (
    BATCH,
    Batch,
    is_published,
    most_evidence,
    read_batch,
    units_in_scope,
)
from bot.reports.sheet_cells import (
    DAYS_FORMAT,
    PERCENT_FORMAT,
    link,
    number,
    start_sheet,
    text,
    web_address,
    when,
)

__all__ = ["CONTENT_TYPE", "Ledger", "build_ledger", "ledger_filename", "write_ledger"]

CONTENT_TYPE = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
INSTANCE_COLUMNS = (("单位", 14), ("共同体", 18), ("编号", 6), ("任务", 36), ("周期", 14),
                    ("截止时间", 17), ("状态", 8), ("报送时间", 17), ("是否迟报", 9),
                    ("迟报天数", 9), ("审核结果", 24))  # fmt: skip
CHECKIN_COLUMNS = (("单位", 14), ("编号", 6), ("任务", 36), ("报送人", 10), ("代报", 6),
                   ("报送时间", 17), ("说明", 40), ("状态", 8))  # fmt: skip
REVIEW_COLUMNS = (("审核人", 10), ("审核意见", 30))
PROBLEM_COLUMNS = (("单位", 14), ("问题编号", 9), ("问题", 40), ("发现时间", 17),
                   ("整改期限", 17), ("状态", 10), ("销号时间", 17), ("整改报送人", 10),
                   ("整改时间", 17), ("整改说明", 40))  # fmt: skip
STAT_COLUMNS = (("层级", 8), ("共同体", 18), ("单位", 14), ("应报", 7), ("按时", 7),
                ("迟报", 7), ("逾期", 7), ("免报", 7), ("未到期", 8), ("按时率", 9),
                ("平均迟报天数", 13), ("未销号问题", 11), ("整改销号率", 11), ("排名", 7),
                ("共同体内排名", 13))  # fmt: skip
EVIDENCE_COLUMNS = 10  # at most; a check-in with more says how many more in the last one
INSTANCE_WORDS = {"pending": "待报送", "submitted": "已报送", "accepted": "已通过",
                  "returned": "已退回", "overdue": "逾期", "excused": "免报"}  # fmt: skip
CHECKIN_WORDS = {"submitted": "已报送", "withdrawn": "已撤回", "accepted": "已通过",
                 "returned": "已退回"}  # fmt: skip
KIND_WORDS = {"image": "图片", "file": "文件", "voice": "语音", "video": "视频"}
REF_WORDS = {"dingtalk": "钉钉 downloadCode", "wecom": "企业微信 media_id", "console": "控制台"}
FILE_LINK_DAYS = 7  # how long a link to a file the bot keeps, written into the ledger, works


@dataclass(frozen=True, slots=True)
class Ledger:
    data: bytes
    rows: dict[str, int]  # data rows per sheet


def ledger_filename(period: Period) -> str:
    return f"台账-{period.key}.xlsx"


async def build_ledger(
    session: AsyncSession,
    period: Period,
    now: datetime,
    *,
    links: Links | None = None,
    unit_ids: Collection[int] | None = None,
    committee: str = "",
) -> bytes:
    """The ledger of ``period`` for ``unit_ids`` (every active unit when None) as .xlsx bytes.

    ``links`` turns evidence the bot keeps itself (``/files/…``) into signed links;
    ``committee`` names the total row of the statistics.
    """
    built = await write_ledger(
        session, period, now, links=links, unit_ids=unit_ids, committee=committee
    )
    return built.data


async def write_ledger(
    session: AsyncSession,
    period: Period,
    now: datetime,
    *,
    links: Links | None = None,
    unit_ids: Collection[int] | None = None,
    committee: str = "",
) -> Ledger:
    """``build_ledger`` with the number of rows each sheet got."""
    start, end = bounds(period.first_day, period.last_day)
    units = await units_in_scope(session, unit_ids)
    evidence = min(EVIDENCE_COLUMNS, max(1, await most_evidence(session, unit_ids, start, end)))
    book = _Book(now, links, evidence, period)
    for i in range(0, len(units), BATCH):
        batch = await read_batch(session, units[i : i + BATCH], start, end)
        await asyncio.to_thread(book.write_batch, batch)
    figures = await report(session, period, now)
    ranks = unit_ids is None or await is_published(session, period.key)
    scope = None if unit_ids is None else {u.id for u in units}
    await asyncio.to_thread(book.write_statistics, figures, scope, ranks, committee)
    return await asyncio.to_thread(book.close)


@dataclass
class _Sheet:
    ws: WriteOnlyWorksheet
    width: int
    rows: int = 0

    def add(self, values: Sequence[Any]) -> None:
        self.ws.append(list(values))
        self.rows += 1


@dataclass
class _Book:
    now: datetime
    links: Links | None
    evidence: int
    period: Period
    wb: Workbook = field(default_factory=lambda: Workbook(write_only=True))
    labels: dict[str, str] = field(default_factory=dict)  # period key → 2026年11月

    def __post_init__(self) -> None:
        names = ["佐证", *(f"佐证{n}" for n in range(2, self.evidence + 1))]
        checkin_columns = (*CHECKIN_COLUMNS, *((n, 18) for n in names), *REVIEW_COLUMNS)
        self.instances = self._sheet("任务实例", INSTANCE_COLUMNS)
        self.checkins = self._sheet("报送记录", checkin_columns)
        self.problems = self._sheet("问题整改", PROBLEM_COLUMNS)
        self.stats = self._sheet("统计", STAT_COLUMNS)

    def _sheet(self, title: str, columns: Sequence[tuple[str, int]]) -> _Sheet:
        ws = self.wb.create_sheet(title)
        start_sheet(ws, columns)
        return _Sheet(ws, len(columns))

    def write_batch(self, batch: Batch) -> None:
        latest: dict[int, Any] = {}  # instance id → its current (not withdrawn) check-in
        for c in batch.checkins:
            if c.status != "withdrawn":
                latest[c.instance_id] = c
            self.checkins.add(self._checkin_row(batch, c))
        for i in batch.instances:
            self.instances.add(self._instance_row(batch, i, latest.get(i.id)))
        for p in batch.problems:
            self.problems.add(self._problem_row(batch, p))

    def _instance_row(self, batch: Batch, i: Any, checkin: Any) -> list[Any]:
        ws, unit = self.instances.ws, batch.units[i.unit_id]
        status = i.status
        if status == "pending" and i.due_at < self.now:
            status = "overdue"  # the 17:30 inspection has not marked it yet
        reported = checkin is not None and i.status in ("submitted", "accepted")
        late = days = verdict = None
        if reported:
            late = "是" if checkin.late else "否"
            days = _days_late(checkin.updated_at, i.due_at) if checkin.late else None
        if i.status == "excused":
            verdict = _join("免报", i.excused_reason)
        elif checkin is not None:
            verdict = _verdict(checkin.status, batch.reviews.get(checkin.id, []))
        return [
            text(ws, unit.short),
            text(ws, unit.community),
            i.no,
            text(ws, i.title),
            self._label(i.period),
            when(ws, i.due_at),
            INSTANCE_WORDS.get(status, status),
            when(ws, checkin.updated_at) if checkin is not None else None,
            late,
            days,
            text(ws, verdict) if verdict else None,
        ]

    def _checkin_row(self, batch: Batch, c: Any) -> list[Any]:
        ws = self.checkins.ws
        reviews = batch.reviews.get(c.id, [])
        # A withdrawn report's update time is its withdrawal: show when it was reported.
        at = c.submitted_at if c.status == "withdrawn" else c.updated_at
        items: list[Any] = [self._evidence(a) for a in batch.evidence.get(c.id, [])]
        if len(items) > self.evidence:
            more = len(items) - self.evidence + 1
            items = [*items[: self.evidence - 1], f"另有 {more} 项佐证"]
        items += [None] * (self.evidence - len(items))
        history = "；".join(_join("通过" if r.decision == "accept" else "退回", r.reason)
                           for r in reviews)  # fmt: skip
        return [
            text(ws, batch.units[c.unit_id].short),
            c.no,
            text(ws, c.title),
            text(ws, c.name),
            "是" if c.on_behalf else "否",
            when(ws, at),
            text(ws, c.text),
            CHECKIN_WORDS.get(c.status, c.status),
            *items,
            text(ws, reviews[-1].name) if reviews else None,
            text(ws, history) if history else None,
        ]

    def _problem_row(self, batch: Batch, p: Any) -> list[Any]:
        ws = self.problems.ws
        if p.status == "closed":
            status = "已销号"
        else:
            status = "逾期未改" if p.deadline < self.now else "整改中"
        return [
            text(ws, batch.units[p.unit_id].short),
            p.id,
            text(ws, p.description),
            when(ws, p.found_at),
            when(ws, p.deadline),
            status,
            when(ws, p.closed_at),
            text(ws, p.name) if p.name else None,
            when(ws, p.at),
            text(ws, p.text) if p.text is not None else None,
        ]

    def _evidence(self, a: Any) -> Any:
        """A link for a web address (never another scheme), else what the reference is."""
        word = KIND_WORDS.get(a.kind, a.kind)
        url = web_address(a.ref)
        if url is None and self.links is not None and a.ref.startswith("/files/"):
            url = self.links.url(a.ref, self.now + timedelta(days=FILE_LINK_DAYS))
        if url is None:
            return f"{word}（{REF_WORDS.get(a.platform, a.platform)}）"
        return link(self.checkins.ws, f"{word}（链接）", url)

    def write_statistics(
        self, figures: Report, scope: set[int] | None, ranks: bool, committee: str
    ) -> None:
        sheet, total = self.stats, Figures()
        for c in figures.communities:
            members = [u for u in c.units if scope is None or u.unit_id in scope]
            for u in members:
                total.add(u.figures)
                where = [u.rank, u.community_rank] if ranks else [None, None]
                sheet.add(["单位", c.name, u.short, *self._figures(u.figures), *where])
            if c.community_id and members and len(members) == len(c.units):
                rank = c.rank if ranks else None
                sheet.add(["共同体", c.name, "小计", *self._figures(c.figures), rank, None])
        label = (committee or "全部单位") if scope is None else "导出范围内单位"
        sheet.add(["合计", label, None, *self._figures(total), None, None])
        ws, local = sheet.ws, self.now.astimezone(SHANGHAI)
        ws.append([])
        notes = [
            f"{self.period.label}：截止时间在本期内的任务；数据截至 {local:%Y-%m-%d %H:%M}。",
            "按时率 = 按时 ÷（应报 − 免报 − 未到期）；平均迟报天数按迟报的任务计；"
            "整改销号率 = 整改期限在本期内的问题中已销号的比例。",
        ]
        if not ranks:
            notes.append("排名在机关工委发布本期报告后显示。")
        for note in notes:
            ws.append([note])

    def _figures(self, f: Figures) -> list[Any]:
        ws = self.stats.ws
        return [f.assigned, f.on_time, f.late, f.overdue, f.excused, f.open,
                number(ws, f.rate, PERCENT_FORMAT), number(ws, f.avg_days_late, DAYS_FORMAT),
                f.problems_open, number(ws, f.closure_rate, PERCENT_FORMAT)]  # fmt: skip

    def _label(self, key: str) -> str:
        if key not in self.labels:
            try:
                self.labels[key] = Period.parse(key).label
            except ValueError:
                self.labels[key] = key
        return self.labels[key]

    def close(self) -> Ledger:
        sheets = (self.instances, self.checkins, self.problems, self.stats)
        for s in sheets:
            s.ws.auto_filter.ref = f"A1:{get_column_letter(s.width)}{s.rows + 1}"
        self.wb.properties.title = f"台账 {self.period.label}"
        self.wb.properties.creator = "督办"
        out = io.BytesIO()
        self.wb.save(out)
        return Ledger(out.getvalue(), {s.ws.title: s.rows for s in sheets})


def _days_late(reported: datetime, due: datetime) -> int:
    """Calendar days in Beijing, at least one: as ``bot.ledger.stats`` counts them."""
    days = (reported.astimezone(SHANGHAI).date() - due.astimezone(SHANGHAI).date()).days
    return max(1, days)


def _verdict(status: str, reviews: Sequence[Any]) -> str:
    if status == "accepted":
        return "通过"
    if status == "returned":
        return _join("退回", reviews[-1].reason if reviews else "")
    return "待审核" if status == "submitted" else ""


def _join(word: str, reason: str | None) -> str:
    return f"{word}：{reason}" if reason else word
