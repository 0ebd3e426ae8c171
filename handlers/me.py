"""我: who the bot thinks I am."""

from __future__ import annotations

from bot.routing import Ctx, Router

router = Router()


@router.command(
    "我", "我是谁", "me", "whoami", summary="查看我的身份、单位和角色", usage="我", example="我"
)
async def me(ctx: Ctx, args: str) -> None:
    who = ctx.known()
    await ctx.reply("replies/me.md.j2", person=who)
