"""The dashboard in a real browser: headless Chromium on a phone-sized screen opens the signed
links the 看板 command hands out and must show the data the chat put in — the matrix in the
right colours, the overdue and problem lists, a twelve-point trend — without the page getting
wider than the phone. A screenshot goes to /tmp/dashboard_phone.png for a human to look at.

Chromium missing is a failure, not a skip: the issue asks for this check to run.
"""

from __future__ import annotations

from datetime import date
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.ledger.stats import bounds
from bot.models import Community, CommunityMember, TaskInstance, Unit
from tests.browser import BrowserMissing, Page, launch
from tests.chat import Chat
from tests.test_dashboard import ADMIN, board, link_in, local, seed  # noqa: F401  (fixture)

SCREENSHOT = Path("/tmp/dashboard_phone.png")
READ_PAGE = """(() => {
  const box = document.querySelector('#matrix-box');
  const colours = {};
  for (const td of document.querySelectorAll('#matrix td.cell')) {
    const unit = td.closest('tr').querySelector('th').textContent;
    colours[unit + '#' + td.dataset.no] = td.classList[1];
  }
  const red = document.querySelector('#matrix td.red');
  return {
    title: document.title,
    heading: document.querySelector('#heading').textContent,
    rows: document.querySelectorAll('#matrix tbody tr').length,
    tasks: document.querySelectorAll('#matrix thead th.task').length,
    cells: document.querySelectorAll('#matrix td.cell').length,
    colours,
    legend: [...document.querySelectorAll('#legend li')].map(li => li.textContent),
    overdue: [...document.querySelectorAll('#overdue li')].map(li => li.dataset.unit),
    overdueItems: [...document.querySelectorAll('#overdue li')].map(li => li.textContent),
    problems: [...document.querySelectorAll('#problems li')].map(li => li.dataset.unit),
    points: document.querySelectorAll('#trend circle').length,
    scrollWidth: document.documentElement.scrollWidth,
    innerWidth: window.innerWidth,
    boxScrolls: box.scrollWidth > box.clientWidth,
    redBackground: red ? getComputedStyle(red).backgroundColor : null,
    fontSize: parseFloat(getComputedStyle(document.body).fontSize),
  };
})()"""
# Scrolling the matrix sideways must leave the unit column in place.
STICKY = """(() => {
  const box = document.querySelector('#matrix-box');
  box.scrollLeft = box.scrollWidth;
  const unit = document.querySelector('#matrix tbody th.unit');
  const left = unit.getBoundingClientRect().left - box.getBoundingClientRect().left;
  return [box.scrollLeft, Math.round(left)];
})()"""


async def matrix_cells(chat: Chat, community: str | None) -> int:
    """(unit, task) pairs with an instance due in November, in the community or everywhere."""
    start, end = bounds(date(2026, 11, 1), date(2026, 11, 30))
    pairs = (
        select(TaskInstance.unit_id, TaskInstance.task_id)
        .distinct()
        .join(Unit, Unit.id == TaskInstance.unit_id)
        .where(TaskInstance.due_at >= start, TaskInstance.due_at < end, Unit.active)
    )
    if community is not None:
        pairs = (
            pairs.join(CommunityMember, CommunityMember.unit_id == Unit.id)
            .join(Community, Community.id == CommunityMember.community_id)
            .where(Community.key == community)
        )
    stmt = select(func.count()).select_from(pairs.subquery())
    async with chat.ledger() as s:
        return int(await s.scalar(stmt) or 0)


async def test_the_dashboard_on_a_phone(board: Chat, tmp_path: Path) -> None:  # noqa: F811
    nos = await seed(board)
    c5 = await signed_url(board, "看板 c5")
    committee = await signed_url(board, "看板")
    try:
        async with launch(tmp_path) as page:
            await page.phone()
            await page.goto(c5)
            seen = await page.evaluate(READ_PAGE)
            await page.screenshot(SCREENSHOT)
            await check_community(board, page, seen, nos)
            await page.goto(committee)
            seen = await page.evaluate(READ_PAGE)
            await page.screenshot(SCREENSHOT.with_name("dashboard_phone_committee.png"))
            await check_committee(board, page, seen)
            await page.screen(1280, 900, scale=1, mobile=False)  # and on a desk
            await page.goto(c5)
            seen = await page.evaluate(READ_PAGE)
            await page.screenshot(SCREENSHOT.with_name("dashboard_desktop.png"))
            assert seen["scrollWidth"] <= seen["innerWidth"] == 1280
            assert not seen["boxScrolls"]  # twenty tasks fit beside each other
    except BrowserMissing as e:
        pytest.fail(str(e))


async def signed_url(chat: Chat, command: str) -> str:
    """The link the admin is given, pointed at the app under test."""
    return str(chat.client.make_url(local(link_in(await chat.one(ADMIN, command, group=None)))))


async def check_community(
    chat: Chat, page: Page, seen: dict[str, Any], nos: dict[str, int]
) -> None:
    assert seen["title"] == "2026年11月 · 第五党建共同体 · 督办看板"
    assert "2026年11月" in seen["heading"]
    assert (seen["rows"], seen["cells"]) == (8, await matrix_cells(chat, "c5"))
    assert seen["tasks"] >= 8  # the eight monthly tasks at least
    colours = seen["colours"]
    assert colours[f"住建局#{nos['zjj']}"] == "green"  # on time, accepted
    assert colours[f"自然资源规划局#{nos['zrj']}"] == "yellow"  # late
    assert colours[f"交通运输局#{nos['jtj']}"] == "grey"  # excused
    assert colours[f"水利局#{nos['slj']}"] == "red"  # never reported
    assert set(colours.values()) == {"green", "yellow", "grey", "red"}
    assert seen["legend"] == ["按时完成", "迟报或已退回", "待报送（未到期）", "逾期未报", "免报"]
    dues = [text for text in seen["overdueItems"] if "按时足额收缴党费" in text]
    assert [text.split(" · ")[0] for text in dues] == [
        "水利局",
        "城管局",
        "生态环境局",
        "国动办",
        "公积金中心",
    ]
    assert all("截止 11月13日" in text and "逾期 7 天" in text for text in dues)
    assert seen["problems"] == ["水利局"]
    assert seen["points"] == 12
    assert seen["scrollWidth"] <= seen["innerWidth"] == 390  # no sideways page scroll
    assert seen["boxScrolls"]  # the matrix scrolls inside its own box instead
    assert seen["redBackground"] == "rgb(198, 40, 40)"  # the stylesheet was applied
    assert seen["fontSize"] >= 16
    scrolled, unit_left = await page.evaluate(STICKY)
    assert scrolled > 0 and unit_left <= 1  # the unit column stayed
    assert not [e for e in page.log if e.get("level") == "error"], page.log


async def check_committee(chat: Chat, page: Page, seen: dict[str, Any]) -> None:
    async with chat.ledger() as s:
        units = await s.scalar(select(func.count()).select_from(Unit).where(Unit.active))
    assert seen["title"] == "2026年11月 · 全部共同体 · 督办看板"
    assert (seen["rows"], seen["cells"]) == (units, await matrix_cells(chat, None))
    assert seen["points"] == 12
    assert seen["scrollWidth"] <= seen["innerWidth"]
    assert "水利局" in seen["overdue"] and seen["problems"] == ["水利局"]
    assert not [e for e in page.log if e.get("level") == "error"], page.log
