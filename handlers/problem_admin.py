"""问题新增 and 整改销号: the working committee records an inspection finding for a unit, with
a deadline, and closes it once rectified; the unit's community group hears both."""

from __future__ import annotations

import re

from bot.ledger import problem_admin
from bot.ledger.instances import due_at
from bot.routing import Ctx, Router, UserError, actor_of
from bot.textdates import parse_date
from handlers.review import leading_number, notify, one_unit

router = Router()
ADD_USAGE = "问题新增 单位 问题描述 整改期限"
ADD_EXAMPLE = "问题新增 住建局 支部委员会会议记录不完整 12月31日"
CLOSE_USAGE, CLOSE_EXAMPLE = "整改销号 问题编号 [说明]", "整改销号 3 已补齐会议记录"
_DEADLINE_WORD = re.compile(r"^(?:整改期限|期限|限期|截止(?:日期|时间)?|于)[:：]?")


@router.command(
    "问题 新增",
    summary="给单位登记一个需整改的问题，并通知其工作群",
    usage=ADD_USAGE,
    example=ADD_EXAMPLE,
    audience="admin",
)
async def add(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    unit_text, *words = args.split() or [""]
    deadline_text = _DEADLINE_WORD.sub("", words.pop()) if words else ""
    if words and _DEADLINE_WORD.fullmatch(words[-1]):
        words.pop()  # 期限 12月31日 written apart
    description = " ".join(words)
    if not description or not deadline_text:
        raise UserError(
            "errors/usage.md.j2",
            problem="请依次写上单位、问题描述和整改期限。",
            usage=ADD_USAGE,
            example=ADD_EXAMPLE,
        )
    day = parse_date(deadline_text, ctx.now.date())
    if day is None or day < ctx.now.date():
        raise UserError(
            "errors/problem_admin_deadline.md.j2",
            text=deadline_text,
            past=day is not None,
            usage=ADD_USAGE,
            example=ADD_EXAMPLE,
        )
    unit = await one_unit(ctx, unit_text)
    problem = await problem_admin.create(
        ctx.session,
        unit_id=unit.id,
        description=description,
        deadline=due_at(day),
        created_by=who.person_id,
        now=ctx.now,
        actor=actor_of(ctx.msg, who),
    )
    told = await notify(
        ctx,
        [(unit.id, problem)],
        "replies/problem_admin_notice.md.j2",
        kind="problem",
        title="整改问题",
        secretary=True,
        unit=unit,
    )
    await ctx.reply("replies/problem_admin_created.md.j2", problem=problem, unit=unit, told=told)


@router.command(
    "整改 销号",
    summary="问题整改到位后销号，30天后回头看",
    usage=CLOSE_USAGE,
    example=CLOSE_EXAMPLE,
    audience="admin",
)
async def close(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    no, note = leading_number(args)
    if no is None:
        raise UserError(
            "errors/usage.md.j2",
            problem="请写上问题编号。",
            usage=CLOSE_USAGE,
            example=CLOSE_EXAMPLE,
        )
    try:
        problem, unit = await problem_admin.find(ctx.session, no)
        await problem_admin.close(
            ctx.session, problem, note=note, now=ctx.now, actor=actor_of(ctx.msg, who)
        )
    except problem_admin.Refused as e:
        raise UserError("errors/problem_admin_refused.md.j2", refusal=e) from None
    told = await notify(
        ctx,
        [(unit.id, problem)],
        "replies/problem_admin_close_notice.md.j2",
        kind="problem",
        title="问题销号",
        unit_name=unit.short_name,
        note=note,
    )
    await ctx.reply(
        "replies/problem_admin_closed.md.j2",
        problem=problem,
        unit_name=unit.short_name,
        note=note,
        told=told,
    )
