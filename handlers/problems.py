"""问题 and 整改, the worker's side: my units' open problems, and progress on rectifying them
with text and photos. (The committee opens and closes problems with 问题 新增 / 整改 销号.)

Photos sent without a command within 10 minutes after 整改 become its evidence. That
fallback runs after 打卡's (handlers are included in handlers.ORDER, checkin before problems),
so photos after both a check-in and a rectification go to the check-in.
"""

from __future__ import annotations

from bot.ledger import problems
from bot.ledger.progress import units_in_reach
from bot.routing import Ctx, Router, UserError, actor_of
from bot.text import parse_numbers

router = Router()
USAGE, EXAMPLE = "整改 问题编号 说明", "整改 7 已重新修订会议记录制度，照片随后发"
SHOWN = 30  # problems listed at most; the rest are counted


@router.command(
    "问题",
    "problems",
    summary="查看本单位未销号的问题及整改期限",
    usage="问题",
    example="问题",
    audience="worker",
)
async def list_problems(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    if args.strip():
        raise UserError(
            "errors/usage.md.j2",
            problem="“问题”不需要参数。报送整改进展请用 **整改 问题编号 说明**。",
            usage="问题",
            example="问题",
        )
    unit_ids = None if who.is_admin else [u.id for u in await units_in_reach(ctx.session, who)]
    found = await problems.open_problems(ctx.session, unit_ids)
    several = unit_ids is None or len(unit_ids) > 1
    await ctx.reply(
        "replies/problems_list.md.j2",
        problems=found[:SHOWN],
        total=len(found),
        today=ctx.now.date(),
        everywhere=unit_ids is None,
        show_units=several,
    )


@router.command(
    "整改",
    "rectify",
    summary="报送问题整改进展，可附照片",
    usage=USAGE,
    example=EXAMPLE,
    audience="worker",
)
async def rectify(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    numbers, text = parse_numbers(args)
    if len(numbers) != 1:
        problem = "请写一个问题编号。" if numbers else "请写上问题编号（发送 **问题** 查看）。"
        raise UserError("errors/usage.md.j2", problem=problem, usage=USAGE, example=EXAMPLE)
    if not text and not ctx.msg.media:
        raise UserError(
            "errors/usage.md.j2",
            problem="请写一句整改进展，或附上照片。",
            usage=USAGE,
            example=EXAMPLE,
        )
    unit_ids = None if who.is_admin else {u.id for u in await units_in_reach(ctx.session, who)}
    try:
        done = await problems.rectify(
            ctx.session,
            numbers[0],
            unit_ids=unit_ids,
            reporter_id=who.person_id,
            text=text,
            media=ctx.msg.media,
            platform=ctx.msg.platform,
            now=ctx.now,
            actor=actor_of(ctx.msg, who),
        )
    except problems.RectificationRefused as e:
        raise UserError(f"errors/problems_{e.reason}.md.j2", no=numbers[0], unit=e.unit) from None
    await ctx.reply("replies/problems_rectified.md.j2", done=done, today=ctx.now.date())


@router.fallback
async def photos_after_rectification(ctx: Ctx, text: str) -> bool:
    """Pictures with no command, shortly after a rectification report, are its evidence."""
    if text or not ctx.msg.media or ctx.who is None:
        return False
    recent = await problems.recent_rectification_by(ctx.session, ctx.who.person_id, ctx.now)
    if recent is None:
        return False
    problems.attach(
        ctx.session,
        recent,
        ctx.msg.media,
        platform=ctx.msg.platform,
        now=ctx.now,
        actor=actor_of(ctx.msg, ctx.who),
    )
    await ctx.reply(
        "replies/problems_photos_attached.md.j2",
        count=len(ctx.msg.media),
        no=recent.problem_id,
    )
    return True
