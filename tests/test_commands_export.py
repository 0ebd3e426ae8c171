"""导出 through the whole bot: a signed link on DingTalk that downloads the workbook, a file
message in the WeCom admins' robot group, each role's scope, refusals, and no public address."""

from __future__ import annotations

import asyncio
import io
import re
import sys
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from openpyxl import load_workbook
from sqlalchemy import func, select

from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.duerules import Period
from bot.ledger.instances import materialise
from bot.ledger.stats import bounds
from bot.models import StoredFile, TaskInstance
from tests.chat import Chat, make_chat
from tests.configs import SAMPLE_SECRETS, mini, write
from tests.test_serve import env_for

PUBLIC = "https://duban.example.cn"
ADMINS_GROUP = "wrkSFfCgAAadminsGroup01"  # g_admins: WeCom, posted into by a group robot
C5_UNITS = {"住建局", "自然资源规划局", "交通运输局", "水利局", "城管局", "生态环境局", "国动办",
            "公积金中心"}  # fmt: skip


@pytest.fixture
async def linked(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, clock: FixedClock
) -> Chat:
    """The chat harness with a public address, and the WeCom AI bot's callbacks mounted."""
    return await make_chat(
        aiohttp_server, aiohttp_client, database_url, clock, wecom_aibot=True, public_url=PUBLIC
    )


def link_in(reply: str) -> str:
    found = re.search(r"\((https://duban\.example\.cn/files/[^)\s]+)\)", reply)
    assert found, reply
    return found[1]


async def download(chat: Chat, url: str) -> Any:
    resp = await chat.client.get(url.removeprefix(PUBLIC))
    assert resp.status == 200
    assert resp.content_type == "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
    assert "filename*=UTF-8''%E5%8F%B0%E8%B4%A6-2026-11.xlsx" in resp.headers["Content-Disposition"]
    return load_workbook(io.BytesIO(await resp.read()))


def units_of(book: Any) -> set[str]:
    return {row[0].value for row in book["任务实例"].iter_rows(min_row=2)}


async def november_instances(chat: Chat) -> int:
    """Instances due in November: the month's, and quarter and year ones due then."""
    start, end = bounds(date(2026, 11, 1), date(2026, 11, 30))
    async with chat.ledger() as s:
        return int(
            await s.scalar(
                select(func.count()).where(TaskInstance.due_at >= start, TaskInstance.due_at < end)
            )
            or 0
        )


async def test_admin_gets_a_signed_link_to_the_whole_ledger(linked: Chat) -> None:
    reply = await linked.one("p_admin_li", "导出 2026-11")
    assert "**2026年11月台账**（全部单位）已生成" in reply
    assert "链接 11月3日 09:00 前有效" in reply
    book = await download(linked, link_in(reply))
    assert book.sheetnames == ["任务实例", "报送记录", "问题整改", "统计"]
    rows = book["任务实例"].max_row - 1
    assert rows == await november_instances(linked) > 0
    assert f"任务 {rows} 项" in reply
    assert len(units_of(book)) == 58
    stats = [r[0].value for r in book["统计"].iter_rows(min_row=2)]
    assert stats.count("单位") == 58 and stats.count("共同体") == 8 and stats.count("合计") == 1
    async with linked.ledger() as s:
        stored = (await s.scalars(select(StoredFile))).one()
    assert (stored.kind, stored.filename) == ("export", "台账-2026-11.xlsx")
    assert stored.expires_at == linked.clock.now() + timedelta(hours=24)


async def test_one_to_one_and_the_aliases(linked: Chat) -> None:
    reply = await linked.one("p_admin_li", "导出台账 十一月", group=None)
    assert "2026年11月台账" in reply and link_in(reply)
    reply = await linked.one("p_admin_li", "export 第四季度 第五共同体")
    assert "**2026年第四季度台账**（第五党建共同体）" in reply
    book = await download_any(linked, link_in(reply))
    assert units_of(book) <= C5_UNITS


async def download_any(chat: Chat, url: str) -> Any:
    resp = await chat.client.get(url.removeprefix(PUBLIC))
    assert resp.status == 200
    return load_workbook(io.BytesIO(await resp.read()))


async def test_lead_unit_gets_its_community_and_a_member_its_own_unit(linked: Chat) -> None:
    reply = await linked.one("p_zjj_ll1", "导出")
    assert "（第五党建共同体）" in reply
    book = await download(linked, link_in(reply))
    assert units_of(book) == C5_UNITS
    stats = [[c.value for c in r] for r in book["统计"].iter_rows(min_row=2, max_row=10)]
    assert [r[0] for r in stats[:9]] == ["单位"] * 8 + ["共同体"]
    assert all(r[-2] is None for r in stats[:9])  # no ranks before the report is published

    reply = await linked.one("p_zrj_ll1", "导出 2026-11")
    assert "（自然资源规划局）" in reply
    assert units_of(await download(linked, link_in(reply))) == {"自然资源规划局"}


@pytest.mark.parametrize(
    ("who", "text", "expected"),
    [
        ("p_zrj_ll1", "导出 第五共同体", "您只能导出本单位的台账"),
        ("p_zjj_ll1", "导出 第六共同体", "牵头单位只能导出本共同体的台账"),
        ("stranger", "导出", "我还不认识您"),
        ("p_admin_li", "导出 2026-13", "看不懂“2026-13”"),
        ("p_admin_li", "导出 明年春天", "正确格式：**导出 [月份、季度或年度] [共同体]**"),
    ],
)
async def test_refusals_store_nothing(linked: Chat, who: str, text: str, expected: str) -> None:
    reply = await linked.one(who, text)
    assert expected in reply
    assert "/files/" not in reply
    async with linked.ledger() as s:
        assert await s.scalar(select(func.count()).select_from(StoredFile)) == 0


async def test_without_a_public_address_the_reply_says_what_to_set(chat: Chat) -> None:
    reply = await chat.one("p_admin_li", "导出 2026-11")
    assert "DUBAN_PUBLIC_URL" in reply and "duban export --period 2026-11" in reply
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).select_from(StoredFile)) == 0


async def test_wecom_robot_group_gets_the_workbook_as_a_file(linked: Chat) -> None:
    wecom = linked.wecom
    query, body = wecom.signed_aibot_callback(
        "@督办助手 导出 2026-11", "lihuimin", ADMINS_GROUP, "wecom-export-1"
    )
    resp = await linked.client.post("/hooks/wecom-bot", params=query, json=body)
    assert resp.status == 200
    await linked.deps.inbox.drain()
    await linked.delivered()
    text, file_msg = wecom.sent
    assert (
        text.msgtype == "markdown" and text.target == SAMPLE_SECRETS["DUBAN_SECRET_WEBHOOK_ADMINS"]
    )
    assert "**2026年11月台账**（全部单位）见下方文件 台账-2026-11.xlsx" in (text.text or "")
    assert "[点此下载](https://duban.example.cn/files/" in (text.text or "")
    assert file_msg.msgtype == "file"
    media = wecom.media[file_msg.payload["file"]["media_id"]]
    assert media.filename == "台账-2026-11.xlsx" and media.type == "file"
    book = load_workbook(io.BytesIO(media.data))
    assert book["任务实例"].max_row - 1 == await november_instances(linked)
    async with linked.ledger() as s:
        stored = (await s.scalars(select(StoredFile))).one()
    assert stored.data == media.data  # the same workbook behind the link


# --- duban export --------------------------------------------------------------------------


async def cli(*args: str, env: dict[str, str], cwd: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        *args,
        env=env,
        cwd=cwd,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await proc.communicate()
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def test_cli_export_writes_the_workbook(database_url: str, tmp_path: Path) -> None:
    config = write(tmp_path / "conf", mini())
    env = env_for(database_url, config)
    code, out, err = await cli("config", "apply", env=env, cwd=tmp_path)
    assert code == 0, err
    db = Database(database_url)
    start, end = bounds(date(2026, 11, 1), date(2026, 11, 30))
    try:
        async with db.begin() as s:
            now = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
            assert await materialise(s, Period.parse("2026-11"), now=now)
            made = await s.scalar(
                select(func.count()).where(TaskInstance.due_at >= start, TaskInstance.due_at < end)
            )
    finally:
        await db.dispose()
    assert made

    code, out, err = await cli("export", "--period", "2026-11", env=env, cwd=tmp_path)
    assert code == 0, err
    path = tmp_path / "台账-2026-11.xlsx"
    assert str(path.name) in out and "任务实例 " in out
    book = load_workbook(path)
    assert book["任务实例"].max_row - 1 == made
    assert f"任务实例 {made} 行" in out
    totals = [r for r in book["统计"].iter_rows(min_row=2, values_only=True) if r[0] == "合计"]
    assert totals == [("合计", "测试机关工委", None, made, *totals[0][4:])]

    target = tmp_path / "out" / "q4.xlsx"
    target.parent.mkdir()
    code, out, _ = await cli(
        "export", "--period", "2026-Q4", "--out", str(target), env=env, cwd=tmp_path
    )
    assert code == 0 and str(target) in out and load_workbook(target).sheetnames[0] == "任务实例"


async def test_cli_export_refuses_a_bad_period_in_chinese(tmp_path: Path) -> None:
    env = env_for(f"sqlite+aiosqlite:///{tmp_path / 'unused.db'}", write(tmp_path, mini()))
    code, out, err = await cli("export", "--period", "2026-13", env=env, cwd=tmp_path)
    assert code == 2 and out == ""
    assert "无法识别的期间“2026-13”：应为月份 2026-11、季度 2026-Q4 或年度 2026" in err
    code, _, err = await cli("export", "--period", "2026-11", env=env, cwd=tmp_path)
    assert code == 1 and "duban db upgrade" in err  # an empty database: nothing to export
    assert not (tmp_path / "台账-2026-11.xlsx").exists()
