"""Communities and their chat groups: finding a community by what admins type, binding a chat
to it (绑定群), and where each community's posts go.

A group bound by chat is a chat_groups row keyed `chat_<community>` whose channel is the
platform's own robot send (DingTalk OpenAPI, the WeCom AI bot): it needs no secret, so the
binding is complete without touching the configuration. Like people approved by chat, the
configuration sync leaves chat_… groups, and the communities bound to them, alone. A
community may also be bound back to the group the configuration gives it; a group the
configuration gives another community is refused: sharing it belongs in the configuration.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import cast

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from bot import audit
from bot.deployment import Loaded
from bot.messages import Platform
from bot.models import ChatGroup, Community
from bot.outbox import Target, group_target
from bot.sync import CHAT_PREFIX
from bot.text import closest, fold_width, replace_chinese_numerals

# The channel a chat-bound group posts through: one that needs no group secret.
CHAT_CHANNEL = {"dingtalk": "dingtalk_openapi", "wecom": "wecom_aibot", "console": "console"}
_NOISE = re.compile(r"[\s@＠第]|党建|共同体")


@dataclass(frozen=True, slots=True)
class CommunityGroup:
    community_id: int
    community_key: str
    community: str
    group: ChatGroup | None  # None: no active group, nothing can be posted to it


@dataclass(frozen=True, slots=True)
class Bound:
    community: str
    group: ChatGroup
    previous: str | None  # the group's name before, None when there was none
    changed: bool
    shared_with: tuple[str, ...]  # other communities posting into the same group


class BindRefused(Exception):
    def __init__(self, group: str, owners: tuple[str, ...]) -> None:
        super().__init__(group)
        self.group, self.owners = group, owners  # the configured group's name, its communities


def _canonical(text: str) -> str:
    """第五党建共同体, 第五共同体, 第5共同体 and 五 all read as 5."""
    return _NOISE.sub("", replace_chinese_numerals(fold_width(text)).lower())


async def find_communities(session: AsyncSession, text: str) -> list[Community]:
    """Active communities named by `text`: their id (c5), full name, or the name without 第,
    党建 and 共同体, in Chinese or Arabic numerals."""
    wanted = fold_width(text).strip().lstrip("@＠").lower()
    if not wanted:
        return []
    rows = (
        await session.scalars(select(Community).where(Community.active).order_by(Community.id))
    ).all()
    exact = [c for c in rows if wanted in (c.key.lower(), c.name.lower())]
    if exact:
        return exact
    canonical = _canonical(wanted)
    return [c for c in rows if canonical and _canonical(c.name) == canonical]


async def community_hints(session: AsyncSession, text: str) -> list[str]:
    names = (await session.scalars(select(Community.name).where(Community.active))).all()
    return closest(text, names)


async def community_groups(session: AsyncSession) -> list[CommunityGroup]:
    """Every active community with its active group, in configuration order."""
    rows = (
        await session.execute(
            select(Community, ChatGroup)
            .outerjoin(ChatGroup, (ChatGroup.id == Community.group_id) & ChatGroup.active.is_(True))
            .where(Community.active)
            .order_by(Community.id)
        )
    ).all()
    return [CommunityGroup(c.id, c.key, c.name, g) for c, g in rows]


def group_post_target(group: ChatGroup, deployment: Loaded) -> Target:
    """Where a post into `group` goes: a configured group through its configured channel (its
    secrets are read at send time), a chat-bound one through the platform's robot send."""
    configured = next((g for g in deployment.spec.groups if g.id == group.key), None)
    if configured is not None:
        return group_target(configured)
    return Target(cast(Platform, group.platform), group.chat_id, channel_type=group.channel_type)


async def bind_group(
    session: AsyncSession,
    community: Community,
    *,
    platform: str,
    chat_id: str,
    title: str,
    configured: str | None,
    actor: str,
    now: datetime,
) -> Bound:
    """Make the chat `chat_id` the community's group, in the caller's transaction.

    `configured` is the key of the group the configuration gives the community. Raises
    BindRefused when the chat is a configured group of other communities."""
    previous = (
        await session.get(ChatGroup, community.group_id) if community.group_id is not None else None
    )
    group = await _chat_group(session, community, platform, chat_id, title, actor, now)
    if not group.key.startswith(CHAT_PREFIX) and group.key != configured:
        owners = await session.scalars(
            select(Community.name).where(Community.group_id == group.id, Community.active)
        )
        raise BindRefused(group.name, tuple(owners.all()))
    changed = community.group_id != group.id
    if changed:
        audit.record(
            session,
            at=now,
            actor=actor,
            action="community.bind_group",
            entity="community",
            key=community.key,
            before=_group_state(previous),
            after=_group_state(group),
        )
        community.group_id, community.updated_at = group.id, now
        await session.flush()
    others = (
        await session.scalars(
            select(Community.name).where(
                Community.group_id == group.id, Community.id != community.id, Community.active
            )
        )
    ).all()
    return Bound(community.name, group, previous.name if previous else None, changed, tuple(others))


async def _chat_group(
    session: AsyncSession,
    community: Community,
    platform: str,
    chat_id: str,
    title: str,
    actor: str,
    now: datetime,
) -> ChatGroup:
    """The chat's group row: the existing one (configured or bound before), else this
    community's chat-bound row moved to the chat, else a new one."""
    group = await session.scalar(
        select(ChatGroup).where(ChatGroup.platform == platform, ChatGroup.chat_id == chat_id)
    )
    key = f"{CHAT_PREFIX}{community.key}"[:64]
    if group is None:
        group = await session.scalar(select(ChatGroup).where(ChatGroup.key == key))
    name = " ".join(title.split())[:255] or f"{community.name}工作群"
    channel = CHAT_CHANNEL[platform]
    if group is None:
        group = ChatGroup(
            key=key,
            name=name,
            platform=platform,
            chat_id=chat_id,
            channel_type=channel,
            channel={"rate_per_minute": 20},
            rate_per_minute=20,
            is_admin_group=False,
            active=True,
            created_at=now,
            updated_at=now,
        )
        session.add(group)
        await session.flush()
        audit.record(
            session,
            at=now,
            actor=actor,
            action="group.create",
            entity="group",
            key=key,
            after=_group_state(group),
        )
        return group
    if (group.platform, group.chat_id, group.active) != (platform, chat_id, True):
        before = _group_state(group)
        group.platform, group.chat_id, group.active, group.updated_at = platform, chat_id, True, now
        if group.key == key:  # our own row, moved to this chat
            group.name, group.channel_type = name, channel
        await session.flush()
        audit.record(
            session,
            at=now,
            actor=actor,
            action="group.update",
            entity="group",
            key=group.key,
            before=before,
            after=_group_state(group),
        )
    return group


def _group_state(group: ChatGroup | None) -> dict[str, str] | None:
    if group is None:
        return None
    return {
        "group": group.key,
        "name": group.name,
        "platform": group.platform,
        "chat": group.chat_id,
    }
