"""帮助: what I can do in my role, with an example for each command."""

from __future__ import annotations

from bot.routing import Ctx, Router, UserError

router = Router()


@router.command(
    "帮助", "help", "？", "?", summary="查看我能做什么", usage="帮助 [指令名]", example="帮助 打卡"
)
async def help_(ctx: Ctx, args: str) -> None:
    role = (
        "admin"
        if ctx.who and ctx.who.is_admin
        else ("worker" if ctx.who and ctx.who.units else "guest")
    )
    visible = [c for c in ctx.router.commands if _visible(c.audience, role)]
    wanted = args.strip()
    if wanted:
        match = ctx.router.match(wanted)
        if match is None or match[0] not in visible:
            raise UserError("errors/unknown_command.md.j2", word=wanted, hints=[])
        await ctx.reply("replies/help_one.md.j2", cmd=match[0])
        return
    await ctx.reply("replies/help.md.j2", commands=visible, role=role)


def _visible(audience: str, role: str) -> bool:
    return audience == "all" or role == "admin" or (audience == "worker" and role == "worker")
