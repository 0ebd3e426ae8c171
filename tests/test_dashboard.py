"""The dashboard over plain HTTP: signed links (forged, expired, another scope), security
headers, bad periods and unknown communities; and the 看板 command for each role and place.

The app runs on the sample configuration with the admins' group moved to DingTalk (so the
admins' group can be written to by the fake), DUBAN_PUBLIC_URL set, and a few check-ins,
an excuse and a problem made by chat (`seed`), as people would.
"""

from __future__ import annotations

import logging
import shutil
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest
import yaml
from pydantic import SecretStr
from sqlalchemy import select

from bot.clock import SHANGHAI, FixedClock
from bot.dashboard.trend import trend_chart
from bot.duerules import Period
from bot.ledger.stats import Figures
from bot.models import AuditEntry, CheckIn, PlanTask, TaskInstance, Unit
from tests.chat import C5, STAFF, Chat, make_chat
from tests.configs import SAMPLE_CONFIG

PUBLIC = "https://duban.example.cn"
ADMINS = "cidADMINSgroupXXXXXXXXXXXXXX=="  # the admins' group, on DingTalk in these tests
ADMIN = "p_admin_li"
LATER = datetime(2026, 11, 20, 10, 0, tzinfo=SHANGHAI)  # T04 (党费, due the 15th) is overdue
PAGE_HEADERS = {
    "X-Frame-Options": "DENY",
    "Referrer-Policy": "no-referrer",
    "Cache-Control": "private, no-store",
    "X-Content-Type-Options": "nosniff",
}


def config_with_dingtalk_admins(directory: Path) -> Path:
    for name in ("units.yaml", "plan.yaml"):
        shutil.copy(SAMPLE_CONFIG / name, directory / name)
    data = yaml.safe_load((SAMPLE_CONFIG / "duban.yaml").read_text(encoding="utf-8"))
    admins = next(g for g in data["groups"] if g["id"] == data["committee"]["admin_group"])
    admins.update(platform="dingtalk", chat_id=ADMINS, channel={"type": "dingtalk_openapi"})
    (directory / "duban.yaml").write_text(
        yaml.safe_dump(data, allow_unicode=True, sort_keys=False), encoding="utf-8"
    )
    return directory


@pytest.fixture
async def board(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, tmp_path: Path, clock: FixedClock
) -> Chat:
    """The whole bot, as the `chat` fixture, with a public URL (links enabled)."""
    (tmp_path / "conf").mkdir()
    return await make_chat(
        aiohttp_server,
        aiohttp_client,
        database_url,
        clock,
        config=config_with_dingtalk_admins(tmp_path / "conf"),
        dingtalk_groups=(C5, ADMINS),
        public_url=PUBLIC,
        link_secret=SecretStr("dashboard-test-secret-" * 2),
    )


async def instance(chat: Chat, unit: str, title_part: str) -> TaskInstance:
    async with chat.ledger() as s:
        found = await s.scalar(
            select(TaskInstance)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(
                Unit.key == unit,
                PlanTask.title.contains(title_part),
                TaskInstance.period == "2026-11",
            )
        )
    assert found is not None
    return found


async def seed(chat: Chat) -> dict[str, int]:
    """On 2 November 住建局 reports 党费 (T04, due the 15th) and is accepted; on the 20th
    自然资源规划局 reports it late, 交通运输局 is excused from it, 水利局 gets a problem; the
    other five members of c5 have not reported it: overdue."""
    nos = {u: (await instance(chat, u, "党费")).no for u in ("zjj", "zrj", "jtj", "slj")}
    assert "已记录" in await chat.one("p_zjj_ll1", f"打卡 {nos['zjj']} 已足额收缴")
    async with chat.ledger() as s:
        checkin = await s.scalar(select(CheckIn.id))
    assert "已通过" in (await chat.say(ADMIN, f"审核通过 {checkin}", group=None))[0]
    chat.clock.at = LATER
    assert "迟报" in await chat.one("p_zrj_ll1", f"打卡 {nos['zrj']} 补交完毕")
    said = await chat.say(ADMIN, f"免报 交通运输局 {nos['jtj']} 并入局机关", group=None)
    assert "已免报" in said[0]
    said = await chat.say(ADMIN, "问题新增 水利局 党费收缴台账不全 12月31日", group=None)
    assert any("已登记问题" in r for r in said)
    return nos


def local(url: str) -> str:
    assert url.startswith(PUBLIC + "/dashboard/"), url
    return url.removeprefix(PUBLIC)


def link_in(text: str) -> str:
    start = text.index(PUBLIC)
    return text[start : text.index(")", start)]


async def private(chat: Chat, who: str) -> list[str]:
    return [
        m.text or ""
        for m in chat.fake.sent
        if m.endpoint == "oToMessages/batchSend" and m.target == STAFF[who]
    ]


async def test_the_committee_link_opens_the_whole_picture(board: Chat) -> None:
    await seed(board)
    reply = await board.one(ADMIN, "看板", group=None)
    assert reply.startswith("### 数据看板")
    assert "链接 7 天内有效，至 11月27日 10:00" in reply and "请勿转发" in reply
    url = link_in(reply)
    assert urlsplit(url).path == "/dashboard/committee"
    page = await board.client.get(local(url))
    assert page.status == 200
    assert page.content_type == "text/html"
    for name, value in PAGE_HEADERS.items():
        assert page.headers[name] == value
    csp = page.headers["Content-Security-Policy"]
    assert "default-src 'none'" in csp and "script-src" not in csp
    html = await page.text()
    assert "<title>2026年11月 · 全部共同体 · 督办看板</title>" in html
    assert '<meta name="viewport"' in html and "<script" not in html
    assert "第五党建共同体" in html and "水利局" in html and "党费收缴台账不全" in html
    assert 'class="cell red overdue"' in html and 'class="cell grey excused"' in html
    # Links to the communities' pages carry their own signatures, to the same expiry.
    query = parse_qs(urlsplit(url).query)
    c5 = f"/dashboard/community/c5?period=2026-11&amp;exp={query['exp'][0]}&amp;sig="
    assert c5 in html
    async with board.ledger() as s:
        audit = await s.scalar(select(AuditEntry).where(AuditEntry.action == "dashboard.link"))
    assert audit is not None and audit.entity_key == "/dashboard/committee"


async def test_signatures_bind_the_scope_and_the_expiry(board: Chat, caplog: Any) -> None:
    admin = link_in(await board.one(ADMIN, "看板 c5", group=None))
    path, query = urlsplit(admin).path, parse_qs(urlsplit(admin).query)
    assert path == "/dashboard/community/c5"
    exp, sig = query["exp"][0], query["sig"][0]
    assert (await board.client.get(f"{path}?exp={exp}&sig={sig}")).status == 200

    def refused(records: list[logging.LogRecord]) -> list[str]:
        return [r.levelname for r in records if r.name == "bot.dashboard.routes"]

    forged = sig[:-1] + ("0" if sig[-1] != "0" else "1")
    for bad in (
        f"{path}?exp={exp}&sig={forged}",  # forged
        f"{path}?exp={int(exp) + 86400}&sig={sig}",  # extended by hand
        f"/dashboard/community/c6?exp={exp}&sig={sig}",  # another community, same signature
        f"/dashboard/committee?exp={exp}&sig={sig}",  # the committee, same signature
        path,  # unsigned
    ):
        caplog.clear()
        resp = await board.client.get(bad)
        assert resp.status == 403, bad
        assert "链接无效或已过期" in await resp.text()
        assert resp.headers["Referrer-Policy"] == "no-referrer"
        assert refused(caplog.records) == ["WARNING"]
        assert sig not in caplog.text  # the credential is never logged
    board.clock.at += timedelta(days=7, minutes=1)
    assert (await board.client.get(f"{path}?exp={exp}&sig={sig}")).status == 403


async def test_the_period_is_free_but_must_be_a_period(board: Chat, caplog: Any) -> None:
    url = link_in(await board.one(ADMIN, "看板 c5 十月", group=None))
    assert parse_qs(urlsplit(url).query)["period"] == ["2026-10"]
    html = await (await board.client.get(local(url))).text()
    assert "<title>2026年10月 · 第五党建共同体 · 督办看板</title>" in html
    signed = local(url).replace("period=2026-10", "period=2026-Q4")
    html = await (await board.client.get(signed)).text()
    assert "2026年第四季度 · 第五党建共同体" in html
    assert "period=2026-Q3&amp;" in html and "period=2026-11&amp;" in html  # 上季度, 按月
    for bad in ("2026-13", "next", "1999-01", "2026-11-02"):
        caplog.clear()
        resp = await board.client.get(local(url).replace("period=2026-10", f"period={bad}"))
        assert resp.status == 400, bad
        assert "月份写法不对" in await resp.text()
        assert [r.levelname for r in caplog.records if r.name.startswith("bot.dash")] == ["WARNING"]


async def test_a_signed_link_to_no_community_is_not_found(board: Chat) -> None:
    links = board.deps.links
    assert links is not None
    exp = int((board.clock.now() + timedelta(days=1)).timestamp())
    path = "/dashboard/community/c99"
    resp = await board.client.get(f"{path}?exp={exp}&sig={links.signature(path, exp)}")
    assert resp.status == 404
    assert "没有这个共同体" in await resp.text()
    assert resp.headers["X-Frame-Options"] == "DENY"


async def test_the_community_page_for_its_lead(board: Chat) -> None:
    nos = await seed(board)
    replies = await board.say("p_zjj_ll1", "看板")  # asked in the community's group
    assert len(replies) == 2
    [told] = [r for r in replies if "已私信" in r]
    assert "不在群里发送" in told and "何明亮" in told
    [sent] = await private(board, "p_zjj_ll1")
    assert "第五党建共同体" in sent and "请勿转发" in sent and "本群" not in sent
    html = await (await board.client.get(local(link_in(sent)))).text()
    assert "<title>2026年11月 · 第五党建共同体 · 督办看板</title>" in html
    assert f'data-no="{nos["zjj"]}" title="住建局' in html
    assert "各单位完成情况" in html and "1. " not in html  # a roll-call, no places
    # One-to-one, the link comes back in the chat itself.
    again = await board.one("p_zjj_ll1", "数据看板", group=None)
    assert "/dashboard/community/c5?" in again


async def test_who_may_have_a_link(board: Chat) -> None:
    other = await board.one("p_zjj_ll1", "看板 c6", group=None)
    assert "不能获取第五党建共同体" not in other
    assert "不能获取第六党建共同体的" in other and "第五党建共同体的看板" in other
    member = await board.one("p_zrj_ll1", "看板", group=None)
    assert "只提供给机关工委管理员和各共同体牵头单位" in member and "进度" in member
    assert "申请绑定" in await board.one("stranger", "dashboard", group=None)
    usage = await board.one(ADMIN, "看板 乱写", group=None)
    assert "看不懂“乱写”" in usage and "看板 [共同体] [月份]" in usage
    assert not [m for m in board.fake.sent if PUBLIC in (m.text or "")]


async def test_admins_get_it_in_their_group_but_not_in_a_community_group(board: Chat) -> None:
    [in_admins] = await board.say(ADMIN, "看板", group=ADMINS)
    assert "/dashboard/committee?" in in_admins and "仅供本群（机关工委管理员群）使用" in in_admins
    replies = await board.say(ADMIN, "看板", group=C5)
    group = [r for r in replies if "已私信" in r]
    assert len(group) == 1 and PUBLIC not in group[0]
    [sent] = await private(board, ADMIN)
    assert "/dashboard/committee?" in sent


async def test_without_a_public_url_the_operator_is_asked_for_one(chat: Chat) -> None:
    reply = await chat.one(ADMIN, "看板", group=None)
    assert "DUBAN_PUBLIC_URL" in reply and "运维人员" in reply
    lead = await chat.one("p_zjj_ll1", "看板", group=None)
    assert "DUBAN_PUBLIC_URL" in lead


async def test_what_people_typed_is_shown_as_text(board: Chat) -> None:
    said = await board.say(
        ADMIN, "问题新增 水利局 <script>alert(1)</script>台账 12月31日", group=None
    )
    assert any("已登记问题" in r for r in said)
    html = await (
        await board.client.get(local(link_in(await board.one(ADMIN, "看板", group=None))))
    ).text()
    assert "&lt;script&gt;alert(1)&lt;/script&gt;台账" in html
    assert "<script" not in html
    assert "看板" in await board.one("p_zjj_ll1", "帮助", group=None)


def test_the_trend_breaks_where_nothing_was_owed() -> None:
    owed = Figures(assigned=4, on_time=3, late=1)
    series = [(Period("monthly", 2026, m), owed if m % 4 else Figures()) for m in range(1, 13)]
    series.insert(0, (Period("monthly", 2025, 12), owed))
    chart = trend_chart(series[-12:])
    assert len(chart.points) == 12
    assert [p.has_data for p in chart.points] == [m % 4 != 0 for m in range(1, 13)]
    assert [p.label for p in chart.points][:2] == ["1月", "2月"]
    assert chart.points[0].year == "2026" and chart.points[1].year == ""
    assert len(chart.runs) == 3 and all(len(run.split()) == 3 for run in chart.runs)
    assert chart.points[0].value == "75%" and chart.points[3].value == ""
    assert chart.points[0].title == "2026年1月：按时率 75%（应报 4，按时 3，迟报 1，逾期 0）"
    assert chart.points[3].title == "2026年4月：无应报任务"
    assert chart.points[-1].current and not chart.points[0].current
    top, bottom = chart.grid[-1][0], chart.grid[0][0]
    assert chart.points[0].y == round(bottom - 0.75 * (bottom - top), 1)
