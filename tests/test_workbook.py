"""The 台账 workbook against a hand-made ledger, reopened with openpyxl: sheets, headers, every
row (values, hyperlinks, number formats), the statistics, and what a scoped export shows."""

from __future__ import annotations

import io
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from openpyxl import load_workbook
from openpyxl.worksheet.worksheet import Worksheet
from sqlalchemy import select

from bot.clock import SHANGHAI
from bot.db import Database
from bot.deployment import load
from bot.duerules import Period
from bot.ledger import checkins, problem_admin, problems, reviews
from bot.links import Links
from bot.messages import Media
from bot.models import Person, PlanTask, ReportPublication, TaskInstance, Unit
from bot.reports.workbook import build_ledger, write_ledger
from bot.sync import sync
from tests.configs import ENV, mini, write

NOW = datetime(2026, 11, 28, 12, 0, tzinfo=SHANGHAI)
NOV = Period.parse("2026-11")
URL = "https://img.example.cn/evidence/a.jpg?sign=1"


def at(month: int, day: int, hour: int = 23, minute: int = 59) -> datetime:
    second = 59 if (hour, minute) == (23, 59) else 0
    return datetime(2026, month, day, hour, minute, second, tzinfo=SHANGHAI)


def local(month: int, day: int, hour: int = 23, minute: int = 59) -> datetime:
    """What a reader sees in the workbook: a naive Beijing time."""
    return at(month, day, hour, minute).replace(tzinfo=None)


@dataclass
class Built:
    unit: dict[str, int]
    person: dict[str, int]
    problem: dict[str, int]


async def build(db: Database, tmp_path: Path) -> Built:
    data = mini()
    data["people"].append({"id": "p_c_ll", "name": "丙联络员", "dingtalk": "staff_c_ll"})
    data["units"].append(
        {"id": "uc", "name": "丙局机关党委", "short": "丙局", "liaisons": ["p_c_ll"]}
    )
    deployment = load(write(tmp_path / "conf", data), env=ENV)
    async with db.begin() as s:
        await sync(s, deployment.spec, at(11, 1, 8, 0))
    async with db.begin() as s:
        unit = {u.key: u.id for u in (await s.scalars(select(Unit))).all()}
        task = {t.key: t.id for t in (await s.scalars(select(PlanTask))).all()}
        person = {p.key: p.id for p in (await s.scalars(select(Person))).all()}
        made: dict[tuple[str, int], TaskInstance] = {}
        for u, no, t, period, due in [
            ("ua", 1, "T01", "2026-11", at(11, 25)),
            ("ua", 2, "T02", "2026-Q4", at(11, 20)),
            ("ua", 3, "T01", "2026-10", at(10, 25)),  # another month: not in the ledger
            ("ub", 1, "T01", "2026-11", at(11, 25)),
            ("ub", 2, "T03", "2026", at(11, 10)),
            ("ub", 3, "T02", "2026-Q4", at(11, 30)),  # not yet due
            ("uc", 1, "T01", "2026-11", at(11, 25)),
        ]:
            inst = TaskInstance(
                task_id=task[t],
                unit_id=unit[u],
                period=period,
                no=no,
                due_at=due,
                created_at=at(10, 1, 9, 0),
                updated_at=at(10, 1, 9, 0),
            )
            s.add(inst)
            made[(u, no)] = inst
        await s.flush()

        async def report(
            u: str, no: int, who: str, when: datetime, text: str, *media: Media, proxy: bool = False
        ) -> int:
            done = await checkins.record(
                s,
                made[(u, no)],
                reporter_id=person[who],
                for_unit_id=unit[u],
                on_behalf=proxy,
                text=text,
                media=media,
                platform="dingtalk",
                msg_id=f"{u}{no}{when:%d%H}",
                now=when,
                actor="test",
            )
            await s.flush()
            return done.checkin.id

        async def decide(checkin: int, decision: str, reason: str, when: datetime) -> None:
            await reviews.decide(
                s,
                checkin,
                decision=decision,
                reason=reason,
                reviewer_id=person["p_admin"],
                now=when,
                actor="test",
            )

        evidence = (Media("image", URL), Media("image", "dl-code-xyz"))
        first = await report("ua", 1, "p_a_ll", at(11, 20, 10, 0), "11月主题党日已开展", *evidence)
        await decide(first, "accept", "", at(11, 21, 9, 0))
        second = await report("ua", 2, "p_a_ll", at(11, 18, 9, 0), "=1+1 联席会议\x07已召开")
        await decide(second, "return", "缺照片", at(11, 19, 9, 0))
        await report("ua", 3, "p_a_ll", at(10, 20, 9, 0), "10月的")
        await report("ub", 1, "p_a_ll", at(11, 27, 9, 0), "代乙局报送", proxy=True)
        await reviews.excuse(s, made[("ub", 2)], reason="机构调整", now=at(11, 5, 9, 0), actor="t")
        await report("uc", 1, "p_c_ll", at(11, 24, 9, 0), "报错了")
        assert await checkins.withdraw(s, made[("uc", 1)], now=at(11, 24, 10, 0), actor="t")

        problem: dict[str, int] = {}
        for name, u, found, deadline, closed in [
            ("half", "ua", at(11, 5, 10, 0), at(11, 30), None),
            ("ignored", "ub", at(10, 20, 10, 0), at(11, 15), None),
            ("fixed", "ua", at(11, 1, 10, 0), at(11, 20), at(11, 18, 10, 0)),
            ("old", "ub", at(9, 1, 10, 0), at(9, 30), at(10, 10, 10, 0)),  # closed before Nov
        ]:
            p = await problem_admin.create(
                s,
                unit_id=unit[u],
                description=f"问题：{name}",
                deadline=deadline,
                created_by=person["p_admin"],
                now=found,
                actor="test",
            )
            problem[name] = p.id
            for when, text in {
                "half": [(at(11, 10, 9, 0), "已制定方案"), (at(11, 20, 9, 0), "完成一半")],
                "fixed": [(at(11, 17, 9, 0), "已整改到位")],
            }.get(name, []):
                await problems.rectify(
                    s,
                    p.id,
                    unit_ids=None,
                    reporter_id=person["p_a_ll"],
                    text=text,
                    media=(),
                    platform="dingtalk",
                    now=when,
                    actor="test",
                )
            if closed is not None:
                await problem_admin.close(s, p, note="", now=closed, actor="test")
    return Built(unit, person, problem)


def rows(ws: Worksheet) -> list[list[Any]]:
    return [[c.value for c in row] for row in ws.iter_rows(min_row=2)]


def formats(ws: Worksheet, column: int) -> set[str]:
    return {
        row[column - 1].number_format
        for row in ws.iter_rows(min_row=2)
        if row[column - 1].value is not None
    }


async def test_every_sheet_and_row(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    async with db.begin() as s:
        ledger = await write_ledger(s, NOV, NOW, committee="测试机关工委")
    book = load_workbook(io.BytesIO(ledger.data))
    assert book.sheetnames == ["任务实例", "报送记录", "问题整改", "统计"]
    assert ledger.rows == {"任务实例": 6, "报送记录": 4, "问题整改": 4, "统计": 5}
    for ws in book.worksheets:
        assert ws.freeze_panes == "A2"
        assert all(c.font.b for c in ws[1])
        assert ws.column_dimensions["A"].width == 14 or ws.title == "统计"

    instances = book["任务实例"]
    assert [c.value for c in instances[1]] == [
        "单位", "共同体", "编号", "任务", "周期", "截止时间", "状态", "报送时间", "是否迟报",
        "迟报天数", "审核结果",
    ]  # fmt: skip
    c1 = "第一共同体"
    assert rows(instances) == [
        ["甲局", c1, 1, "主题党日", "2026年11月", local(11, 25), "已通过", local(11, 20, 10, 0),
         "否", None, "通过"],
        ["甲局", c1, 2, "联席会议", "2026年第四季度", local(11, 20), "已退回",
         local(11, 18, 9, 0), None, None, "退回：缺照片"],
        ["乙局", c1, 1, "主题党日", "2026年11月", local(11, 25), "已报送", local(11, 27, 9, 0),
         "是", 2, "待审核"],
        ["乙局", c1, 2, "示范点", "2026年度", local(11, 10), "免报", None, None, None,
         "免报：机构调整"],
        ["乙局", c1, 3, "联席会议", "2026年第四季度", local(11, 30), "待报送", None, None, None,
         None],
        ["丙局", "未编入共同体", 1, "主题党日", "2026年11月", local(11, 25), "逾期", None, None,
         None, None],
    ]  # fmt: skip
    assert formats(instances, 6) == formats(instances, 8) == {"yyyy-mm-dd hh:mm"}
    assert instances.auto_filter.ref == "A1:K7"

    records = book["报送记录"]
    assert [c.value for c in records[1]] == [
        "单位", "编号", "任务", "报送人", "代报", "报送时间", "说明", "状态", "佐证", "佐证2",
        "审核人", "审核意见",
    ]  # fmt: skip
    assert rows(records) == [
        ["甲局", 1, "主题党日", "甲联络员", "否", local(11, 20, 10, 0), "11月主题党日已开展",
         "已通过", "图片（链接）", "图片（钉钉 downloadCode）", "王工委", "通过"],
        ["甲局", 2, "联席会议", "甲联络员", "否", local(11, 18, 9, 0), "=1+1 联席会议已召开",
         "已退回", None, None, "王工委", "退回：缺照片"],
        ["乙局", 1, "主题党日", "甲联络员", "是", local(11, 27, 9, 0), "代乙局报送", "已报送",
         None, None, None, None],
        ["丙局", 1, "主题党日", "丙联络员", "否", local(11, 24, 9, 0), "报错了", "已撤回", None,
         None, None, None],
    ]  # fmt: skip
    link = records["I2"]
    assert link.hyperlink is not None and link.hyperlink.target == URL
    assert records["J2"].hyperlink is None
    assert records["G3"].data_type == "s"  # "=1+1 …" is text, not a formula
    assert formats(records, 6) == {"yyyy-mm-dd hh:mm"}

    found = book["问题整改"]
    assert [c.value for c in found[1]] == [
        "单位", "问题编号", "问题", "发现时间", "整改期限", "状态", "销号时间", "整改报送人",
        "整改时间", "整改说明",
    ]  # fmt: skip
    half, fixed, ignored = built.problem["half"], built.problem["fixed"], built.problem["ignored"]
    assert rows(found) == [
        ["甲局", half, "问题：half", local(11, 5, 10, 0), local(11, 30), "整改中", None,
         "甲联络员", local(11, 10, 9, 0), "已制定方案"],
        ["甲局", half, "问题：half", local(11, 5, 10, 0), local(11, 30), "整改中", None,
         "甲联络员", local(11, 20, 9, 0), "完成一半"],
        ["甲局", fixed, "问题：fixed", local(11, 1, 10, 0), local(11, 20), "已销号",
         local(11, 18, 10, 0), "甲联络员", local(11, 17, 9, 0), "已整改到位"],
        ["乙局", ignored, "问题：ignored", local(10, 20, 10, 0), local(11, 15), "逾期未改",
         None, None, None, None],
    ]  # fmt: skip

    stats = book["统计"]
    assert [c.value for c in stats[1]] == [
        "层级", "共同体", "单位", "应报", "按时", "迟报", "逾期", "免报", "未到期", "按时率",
        "平均迟报天数", "未销号问题", "整改销号率", "排名", "共同体内排名",
    ]  # fmt: skip
    table = rows(stats)[:5]
    assert table == [
        ["单位", c1, "甲局", 2, 1, 0, 1, 0, 0, 0.5, None, 1, 0.5, 1, 1],
        ["单位", c1, "乙局", 3, 0, 1, 0, 1, 1, 0, 2, 1, 0, 2, 2],
        ["共同体", c1, "小计", 5, 1, 1, 1, 1, 1, 1 / 3, 2, 2, 1 / 3, 1, None],
        ["单位", "未编入共同体", "丙局", 1, 0, 0, 1, 0, 0, 0, None, 0, None, 3, 1],
        ["合计", "测试机关工委", None, 6, 1, 1, 2, 1, 1, 0.25, 2, 2, 1 / 3, None, None],
    ]
    assert stats.auto_filter.ref == "A1:O6"
    assert {stats.cell(r, 10).number_format for r in range(2, 7)} == {"0.0%"}
    assert stats.cell(3, 11).number_format == "0.0"
    notes = [r[0] for r in rows(stats)[6:]]
    assert notes[0] == "2026年11月：截止时间在本期内的任务；数据截至 2026-11-28 12:00。"
    assert len(notes) == 2  # the whole committee's ledger shows the ranks


async def test_scoped_export_shows_ranks_only_once_published(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    ua = built.unit["ua"]
    async with db.begin() as s:
        data = await build_ledger(s, NOV, NOW, unit_ids=[ua])
    book = load_workbook(io.BytesIO(data))
    assert {r[0] for r in rows(book["任务实例"])} == {"甲局"}
    assert [r[0] for r in rows(book["报送记录"])] == ["甲局", "甲局"]
    assert {r[0] for r in rows(book["问题整改"])} == {"甲局"}
    stats = rows(book["统计"])
    # One unit of two: no community subtotal, a total of the scope, no ranks yet.
    assert stats[:2] == [
        ["单位", "第一共同体", "甲局", 2, 1, 0, 1, 0, 0, 0.5, None, 1, 0.5, None, None],
        ["合计", "导出范围内单位", None, 2, 1, 0, 1, 0, 0, 0.5, None, 1, 0.5, None, None],
    ]
    assert stats[-1] == ["排名在机关工委发布本期报告后显示。", *[None] * 14]
    async with db.begin() as s:
        s.add(ReportPublication(kind="monthly", period="2026-11", approved_at=NOW))
    async with db.begin() as s:
        data = await build_ledger(s, NOV, NOW, unit_ids=[ua])
    assert rows(load_workbook(io.BytesIO(data))["统计"])[0][-2:] == [1, 1]


async def test_files_the_bot_keeps_become_signed_links(db: Database, tmp_path: Path) -> None:
    built = await build(db, tmp_path)
    async with db.begin() as s:
        first = await s.scalar(
            select(TaskInstance.id).where(TaskInstance.unit_id == built.unit["uc"])
        )
        assert first is not None
        inst = await s.get(TaskInstance, first)
        assert inst is not None
        done = await checkins.record(
            s,
            inst,
            reporter_id=built.person["p_c_ll"],
            for_unit_id=inst.unit_id,
            on_behalf=False,
            text="补报",
            media=(Media("file", "/files/abc"), Media("video", "javascript:alert(1)")),
            platform="wecom",
            msg_id="late",
            now=at(11, 26, 9, 0),
            actor="test",
        )
        assert done.late
    links = Links("https://duban.example.cn", b"k" * 32)
    async with db.begin() as s:
        data = await build_ledger(s, NOV, NOW, links=links, unit_ids=[built.unit["uc"]])
    records = load_workbook(io.BytesIO(data))["报送记录"]
    row = [c for c in records[3]]
    assert [row[8].value, row[9].value] == ["文件（链接）", "视频（企业微信 media_id）"]
    assert row[8].hyperlink is not None
    assert row[8].hyperlink.target.startswith("https://duban.example.cn/files/abc?exp=")
    assert row[9].hyperlink is None  # only web addresses become links
