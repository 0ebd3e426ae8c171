"""Telling the admins' group that messages are dying: once per channel per hour.

The alert is itself an outbox row, queued in the transaction that marks the message dead,
with the deduplication key ``alert:<channel>:<YYYYMMDDHH>`` (Beijing time): a second dead
message on the same channel within the hour finds the key taken. Nothing is said about the
admins' group itself, nor about an alert: a broken admins' channel must not feed itself.
"""

from __future__ import annotations

import logging
from datetime import datetime

from sqlalchemy.ext.asyncio import AsyncSession

from bot.clock import SHANGHAI
from bot.deployment import Loaded
from bot.messages import Outbound
from bot.models import OutboxMessage
from bot.outbox import enqueue, group_target, groups_of

log = logging.getLogger(__name__)

ALERT_KIND = "alert"

_REASONS = {  # DeliveryError codes, as admins would put them
    "93000": "群机器人 webhook 地址无效（key 错误或机器人已被移除）",
    "300001": "钉钉机器人 access_token 无效",
    "310000": "钉钉机器人拒收（签名、关键词或 IP 白名单不符）",
    "45002": "消息过大，拆分后仍超出平台上限",
    "86003": "群聊不存在或应用不在群内",
    "config": "本服务未配置该渠道",
    "expired": "回复通道已失效",
    "unroutable": "目标群已不在配置中",
}


def reason_of(code: str) -> str:
    return _REASONS.get(code, "平台拒收")


async def alert_dead(
    session: AsyncSession,
    row: OutboxMessage,
    *,
    code: str,
    error: str,
    deployment: Loaded,
    now: datetime,
) -> bool:
    """Queue the hour's alert for ``row``'s channel; False when none is due or possible."""
    groups, admin_key = groups_of(deployment), deployment.spec.committee.admin_group
    admins = groups.by_key(admin_key) if admin_key else None
    if admins is None:
        log.warning("outbox #%d → %s dead; no admins' group to tell", row.id, row.channel)
        return False
    if row.kind == ALERT_KIND or row.group_key == admins.id:
        return False
    if (row.platform, row.chat_id) == (admins.platform, admins.chat_id):
        return False
    group = groups.by_key(row.group_key) if row.group_key else None
    where = group.name if group is not None else row.channel
    hour = now.astimezone(SHANGHAI).strftime("%Y%m%d%H")
    message = Outbound(
        body=(
            "**消息投递失败**\n\n"
            f"发往「{where}」的消息（编号 {row.id}）无法送达：{reason_of(code)}。\n\n"
            f"> {error}\n\n"
            f"排除问题后发送「投递 重试 {row.id}」重发。"
            "本小时内该渠道的其他失败不再逐条提醒，发送「投递 状态」可查看全部。"
        ),
        title="消息投递失败",
    )
    return await enqueue(
        session,
        message,
        to=group_target(admins),
        kind=ALERT_KIND,
        dedupe_key=f"alert:{row.channel}:{hour}",
        now=now,
    )
