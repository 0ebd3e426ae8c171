"""绑定群: an admin makes the group chat they are writing in a community's group."""

from __future__ import annotations

from bot.ledger.groups import (
    CHAT_CHANNEL,
    BindRefused,
    bind_group,
    community_hints,
    find_communities,
)
from bot.routing import Ctx, Router, UserError, actor_of

router = Router()
USAGE, EXAMPLE = "绑定群 共同体", "绑定群 第五共同体"


@router.command(
    "绑定群",
    "bind group",
    summary="在群里发送，把本群设为某个党建共同体的工作群",
    usage=USAGE,
    example=EXAMPLE,
    audience="admin",
)
async def bind(ctx: Ctx, args: str) -> None:
    chat = ctx.msg.chat
    if not chat.is_group or ctx.msg.platform not in CHAT_CHANNEL:
        raise UserError("errors/groups_not_in_group.md.j2")
    wanted = args.strip()
    if not wanted:
        raise UserError(
            "errors/usage.md.j2", problem="请写上共同体名称。", usage=USAGE, example=EXAMPLE
        )
    found = await find_communities(ctx.session, wanted)
    if len(found) != 1:
        hints = [c.name for c in found] or await community_hints(ctx.session, wanted)
        raise UserError(
            "errors/groups_unknown_community.md.j2", word=wanted, hints=hints, many=bool(found)
        )
    community = found[0]
    configured = next(
        (c.group for c in ctx.deployment.spec.communities if c.id == community.key), None
    )
    try:
        bound = await bind_group(
            ctx.session,
            community,
            platform=ctx.msg.platform,
            chat_id=chat.chat_id,
            title=chat.title,
            configured=configured,
            actor=actor_of(ctx.msg, ctx.who),
            now=ctx.now,
        )
    except BindRefused as e:
        raise UserError(
            "errors/groups_configured.md.j2",
            group=e.group,
            owners=e.owners,
            community=community.name,
        ) from None
    await ctx.reply("replies/groups_bound.md.j2", bound=bound)
