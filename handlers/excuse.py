"""免报: the working committee releases a unit from one task instance, with a reason."""

from __future__ import annotations

from bot.ledger import reviews
from bot.ledger.instances import instance_by_no
from bot.routing import Ctx, Router, UserError, actor_of
from handlers.review import leading_number, notify, one_unit, split_unit

router = Router()
USAGE, EXAMPLE = "免报 单位 任务编号 理由", "免报 住建局 12 已合并到全市专题党课"


@router.command(
    "免报",
    "excuse",
    summary="某单位某项任务本期不用报送",
    usage=USAGE,
    example=EXAMPLE,
    audience="admin",
)
async def excuse(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    unit_text, rest = split_unit(args)
    no, reason = leading_number(rest)
    if not unit_text or no is None or not reason:
        problem = (
            "请写上单位和任务编号。"
            if not unit_text or no is None
            else "请写明免报理由，便于日后核查。"
        )
        raise UserError("errors/usage.md.j2", problem=problem, usage=USAGE, example=EXAMPLE)
    unit = await one_unit(ctx, unit_text)
    found = await instance_by_no(ctx.session, unit.id, no)
    if found is None:
        raise UserError("errors/excuse_refused.md.j2", unit=unit, no=no, reason="unknown")
    try:
        await reviews.excuse(
            ctx.session, found.instance, reason=reason, now=ctx.now, actor=actor_of(ctx.msg, who)
        )
    except reviews.Refused as e:
        raise UserError("errors/excuse_refused.md.j2", unit=unit, no=no, reason=e.reason) from None
    told = await notify(
        ctx,
        [(unit.id, found)],
        "replies/excuse_notice.md.j2",
        kind="excuse",
        title="任务免报",
        unit=unit,
        reason=reason,
    )
    await ctx.reply("replies/excuse_done.md.j2", unit=unit, it=found, reason=reason, told=told)
