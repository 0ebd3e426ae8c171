"""本月任务: my unit's task instances for a period, numbered, with deadlines and status."""

from __future__ import annotations

from bot.duerules import Period
from bot.ledger.instances import unit_instances
from bot.routing import Ctx, Router, UserError
from bot.textdates import parse_period

router = Router()

STATUS = {
    "pending": "未报送",
    "submitted": "已报送待审核",
    "accepted": "已通过",
    "returned": "已退回",
    "overdue": "逾期",
    "excused": "免报",
}


@router.command(
    "本月任务",
    "任务清单",
    "tasks",
    summary="查看本单位本月（或指定月份）的任务",
    usage="本月任务 [月份]",
    example="本月任务 十月",
    audience="worker",
    together=True,
)
async def tasks(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    month = Period.containing("monthly", ctx.now.date())
    if args.strip():
        wanted = parse_period(args, ctx.now.date())
        if wanted is None or wanted.cadence != "monthly":
            raise UserError(
                "errors/usage.md.j2",
                problem=f"看不懂月份“{args.strip()}”。",
                usage="本月任务 [月份]",
                example="本月任务 十月、本月任务 2026年10月",
            )
        month = wanted
    units = []
    for unit in who.units:
        units.append((unit, await unit_instances(ctx.session, unit.id, month)))
    await ctx.reply("replies/tasks.md.j2", month=month, units=units, status=STATUS)
