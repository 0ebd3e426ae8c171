"""The working committee's commands: who may use them, and the parsing they share.

Helpers here are used by the other test_commands_admin_* files: the admin talks to the bot in a
one-to-one DingTalk chat, and notices go into community group C5 through the OpenAPI robot.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest
from sqlalchemy import func, select

from bot.models import (
    AuditEntry,
    BindRequest,
    CheckIn,
    OutboxMessage,
    PlanTask,
    Problem,
    Review,
    TaskInstance,
    Unit,
)
from handlers.review import leading_number, snippet, split_unit
from tests.chat import C5, Chat

ADMIN = "p_admin_li"
ADMIN_COMMANDS = [
    "待审核",
    "审核通过 1",
    "审核 退回 1 理由",
    "免报 住建局 3 合并开展",
    "问题新增 住建局 会议记录不全 12月31日",
    "整改销号 1",
    "任务新增 学习 每月 每月25日前",
    "任务修改 T04 截止 每月20日前",
    "任务取消 T05",
    "任务列表",
    "申请列表",
    "批准 1",
    "拒绝 1",
]


@dataclass
class Said:
    reply: str  # what the admin saw
    posts: list[str]  # what went into community group C5


async def admin(chat: Chat, text: str, who: str = ADMIN) -> Said:
    """`text` from `who` in a one-to-one chat: the one reply, and the posts into group C5."""
    chat.fake.add_group(C5)  # the robot is in the group, whether or not it was written to
    before = len(chat.fake.sent)
    await chat.say(who, text, group=None)
    new = chat.fake.sent[before:]
    replies = [m.text or "" for m in new if m.endpoint == "sendBySession"]
    assert len(replies) == 1, [m.text for m in new]
    posts = [m.text or "" for m in new if m.endpoint == "groupMessages/send" and m.target == C5]
    return Said(replies[0], posts)


async def instance_no(chat: Chat, unit: str, title_part: str, period: str = "2026-11") -> int:
    async with chat.ledger() as s:
        no = await s.scalar(
            select(TaskInstance.no)
            .join(Unit, Unit.id == TaskInstance.unit_id)
            .join(PlanTask, PlanTask.id == TaskInstance.task_id)
            .where(
                Unit.key == unit,
                PlanTask.title.contains(title_part),
                TaskInstance.period == period,
            )
        )
    assert no is not None
    return no


async def checked_in(chat: Chat, who: str, unit: str, title_part: str, text: str) -> int:
    """`who` reports `unit`'s instance in group C5; returns the review number (CheckIn id)."""
    no = await instance_no(chat, unit, title_part)
    assert "已记录" in await chat.one(who, f"打卡 {no} {text}")
    async with chat.ledger() as s:
        checkin_id = await s.scalar(select(func.max(CheckIn.id)))
    assert checkin_id is not None
    return checkin_id


async def audits(chat: Chat, prefix: str) -> list[AuditEntry]:
    """Audit entries of chat users (not of the configuration sync) whose action starts so."""
    async with chat.ledger() as s:
        return list(
            (
                await s.scalars(
                    select(AuditEntry)
                    .where(AuditEntry.action.like(f"{prefix}%"), AuditEntry.actor != "config")
                    .order_by(AuditEntry.id)
                )
            ).all()
        )


async def queued_mentions(chat: Chat, kind: str) -> list[dict[str, Any]]:
    """The mentions of the last notice of `kind` as queued (OpenAPI posts show names only)."""
    async with chat.ledger() as s:
        body = await s.scalar(
            select(OutboxMessage.body)
            .where(OutboxMessage.kind == kind)
            .order_by(OutboxMessage.id.desc())
            .limit(1)
        )
    assert body is not None
    return list(body["mentions"])


async def test_workers_are_told_only_admins_may(chat: Chat) -> None:
    for text in ADMIN_COMMANDS:
        reply = await chat.one("p_zjj_ll1", text)
        assert "只有机关工委管理员可以使用" in reply, (text, reply)
    async with chat.ledger() as s:
        for model in (Review, Problem, BindRequest):
            assert await s.scalar(select(func.count()).select_from(model)) == 0
        assert await s.scalar(select(func.count()).where(PlanTask.source == "chat")) == 0
        assert (await s.scalar(select(func.count()).where(TaskInstance.status == "excused"))) == 0
    refused = await audits(chat, "refused:")
    assert len(refused) == len(ADMIN_COMMANDS)
    assert {"refused:审核 通过", "refused:任务 新增", "refused:批准"} <= {a.action for a in refused}


async def test_strangers_are_asked_to_bind_first(chat: Chat) -> None:
    reply = await chat.one("stranger", "待审核")
    assert "我还不认识您" in reply and "申请绑定" in reply


async def test_help_shows_the_committee_commands_to_admins_only(chat: Chat) -> None:
    admin_help = (await admin(chat, "帮助")).reply
    for name in ("待审核", "审核 通过", "免报", "问题 新增", "任务 新增", "批准", "申请列表"):
        assert f"**{name}**" in admin_help
    worker_help = await chat.one("p_zjj_ll1", "帮助")
    assert "待审核" not in worker_help and "**批准**" not in worker_help
    detail = (await admin(chat, "帮助 审核退回")).reply
    assert "审核退回 审核编号 理由" in detail


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("12 照片不清楚", (12, "照片不清楚")),
        ("12 3张照片不清楚", (12, "3张照片不清楚")),  # a digit in the reason stays there
        ("12照片不清楚", (12, "照片不清楚")),
        ("#12,缺少签到表", (12, "缺少签到表")),
        ("第12号 缺少签到表", (12, "缺少签到表")),
        ("十二 缺少签到表", (12, "缺少签到表")),
        ("12", (12, "")),
        ("照片不清楚", (None, "照片不清楚")),
        ("", (None, "")),
    ],
)
def test_leading_number(text: str, expected: tuple[int | None, str]) -> None:
    assert leading_number(text) == expected


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("住建局 12 理由", ("住建局", "12 理由")),
        ("住建局12 理由", ("住建局", "12 理由")),
        ("住建局 三 理由", ("住建局", "三 理由")),
        ("", ("", "")),
    ],
)
def test_split_unit(text: str, expected: tuple[str, str]) -> None:
    assert split_unit(text) == expected


def test_snippet_flattens_and_shortens() -> None:
    assert snippet("第一行\n第二行") == "第一行 第二行"
    assert snippet("字" * 70) == "字" * 60 + "…"
