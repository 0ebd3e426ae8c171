"""公告: an admin's notice posted into every community group, or into the ones named first.

Syntax: `公告 内容` goes to all community groups; `公告 第五共同体、第六共同体 内容` (or ids:
`公告 c5,c6：内容`) only to those. A leading list counts as targets only when every item in
it names a community by 共同体 name or id; a list that looks like targets but names an unknown
community is refused rather than sent to everyone.
"""

from __future__ import annotations

import re

from bot.ledger.groups import (
    community_groups,
    community_hints,
    find_communities,
    group_post_target,
)
from bot.messages import Outbound
from bot.models import ChatGroup, Community
from bot.outbox import enqueue
from bot.routing import Ctx, Router, UserError

router = Router()
USAGE = "公告 [共同体、…] 内容"
EXAMPLE = "公告 第五共同体、第六共同体 请于本周五前报送主题党日材料"
_HEAD = re.compile(r"(?P<head>[^\s:]+)(?:[\s:]+(?P<body>.*))?", re.S)
_ITEMS = re.compile(r"[、,，;；]")
_ID = re.compile(r"[@＠]?c\d+", re.I)


@router.command(
    "公告",
    "announce",
    summary="向全部或指定共同体的工作群发布公告",
    usage=USAGE,
    example=EXAMPLE,
    audience="admin",
)
async def announce(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    chosen, content = await _targets(ctx, args.strip())
    if not content:
        raise UserError(
            "errors/usage.md.j2", problem="请写上公告内容。", usage=USAGE, example=EXAMPLE
        )
    wanted = [
        c for c in await community_groups(ctx.session) if chosen is None or c.community_id in chosen
    ]
    posts: dict[int, tuple[ChatGroup, list[str]]] = {}  # one post per group, however shared
    for c in wanted:
        if c.group is not None:
            posts.setdefault(c.group.id, (c.group, []))[1].append(c.community)
    missing = [c.community for c in wanted if c.group is None]
    if not posts:
        raise UserError("errors/announce_no_groups.md.j2", missing=missing)
    body = ctx.renderer.render("replies/announce_post.md.j2", content=content, sender=who.name)
    for group, _ in posts.values():
        await enqueue(
            ctx.session,
            Outbound(body, title="机关工委公告"),
            to=group_post_target(group, ctx.deployment),
            kind="announce",
            dedupe_key=f"announce:{ctx.msg.platform}:{ctx.msg.event_id}:{group.key}"[:255],
            now=ctx.now,
        )
    keys = sorted(group.key for group, _ in posts.values())
    ctx.audit(
        "announce", "announce", ctx.msg.event_id, after={"groups": keys, "chars": len(content)}
    )
    await ctx.reply("replies/announce_done.md.j2", posts=list(posts.values()), missing=missing)


async def _targets(ctx: Ctx, text: str) -> tuple[set[int] | None, str]:
    """The communities named at the start (None: all of them) and the content."""
    m = _HEAD.fullmatch(text)
    if m is None:
        return None, text
    items = [i for i in _ITEMS.split(m["head"]) if i]
    if not items or not all("共同体" in i or _ID.fullmatch(i) for i in items):
        return None, text
    chosen: set[int] = set()
    for item in items:
        found: list[Community] = await find_communities(ctx.session, item)
        if len(found) != 1:
            hints = [c.name for c in found] or await community_hints(ctx.session, item)
            raise UserError(
                "errors/groups_unknown_community.md.j2", word=item, hints=hints, many=bool(found)
            )
        chosen.add(found[0].id)
    return chosen, (m["body"] or "").strip()
