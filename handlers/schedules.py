"""日程: the scheduled jobs' times — list, show, set, pause, resume, run now, reset (admins)."""

from __future__ import annotations

from bot.routing import Ctx, Router, UserError, actor_of
from bot.schedules import ScheduleError
from bot.scheduling import Effective, scheduling_for
from bot.text import closest, match_command
from jobs.registry import JOBS, Job, find_job

router = Router()
SET_USAGE = "日程设置 任务名 时间"
SET_EXAMPLE = "日程设置 提示 工作日 8:30"
SOURCES = {"admin": "管理员设置", "config": "配置默认", "built-in": "内置默认"}
_NAMES = [name for job in JOBS for name in job.names] + ["monthly report"]
_LIST_WORDS = ("", "列表", "全部", "所有", "list", "all")


@router.command(
    "日程",
    "schedules",
    "schedule",
    summary="查看定时任务的执行时间",
    usage="日程 [任务名]",
    example="日程 提示",
    audience="admin",
)
async def show(ctx: Ctx, args: str) -> None:
    scheduling = scheduling_for(ctx)
    if args.strip().lower() in _LIST_WORDS:
        items = await scheduling.effective(ctx.session)
        await ctx.reply("replies/schedules_list.md.j2", items=items, sources=SOURCES)
        return
    job, rest = _job(args, "日程 任务名", "日程 提示")
    if rest:
        raise UserError(
            "errors/usage.md.j2",
            problem="查看日程只需写任务名；要修改时间请用 日程设置。",
            usage=SET_USAGE,
            example=SET_EXAMPLE,
        )
    eff = await scheduling.effective_one(ctx.session, job)
    await _reply_one(ctx, "shown", eff)


@router.command(
    "日程 设置",
    "日程 修改",
    "schedule set",
    summary="修改定时任务的执行时间，可写中文或 cron",
    usage=SET_USAGE,
    example=SET_EXAMPLE,
    audience="admin",
)
async def set_(ctx: Ctx, args: str) -> None:
    scheduling = scheduling_for(ctx)
    job, expression = _job(args, SET_USAGE, SET_EXAMPLE)
    if not expression:
        raise UserError(
            "errors/usage.md.j2",
            problem=f"请写上“{job.label}”的新时间。",
            usage=SET_USAGE,
            example=SET_EXAMPLE,
        )
    try:
        eff = await scheduling.set(
            ctx.session, job, expression, actor_of(ctx.msg, ctx.who), ctx.now
        )
    except ScheduleError as e:
        raise UserError("errors/schedules_bad_expression.md.j2", job=job, reason=e.reason) from None
    await _reply_one(ctx, "set", eff)


@router.command(
    "日程 暂停",
    "schedule pause",
    summary="暂停一个定时任务",
    usage="日程暂停 任务名",
    example="日程暂停 提示",
    audience="admin",
)
async def pause(ctx: Ctx, args: str) -> None:
    scheduling = scheduling_for(ctx)
    job = _job_only(args, "日程暂停 任务名", "日程暂停 提示")
    before = await scheduling.effective_one(ctx.session, job)
    eff = await scheduling.pause(ctx.session, job, actor_of(ctx.msg, ctx.who), ctx.now)
    await _reply_one(ctx, "already_paused" if before.paused else "paused", eff)


@router.command(
    "日程 恢复",
    "schedule resume",
    summary="恢复一个暂停的定时任务",
    usage="日程恢复 任务名",
    example="日程恢复 提示",
    audience="admin",
)
async def resume(ctx: Ctx, args: str) -> None:
    scheduling = scheduling_for(ctx)
    job = _job_only(args, "日程恢复 任务名", "日程恢复 提示")
    before = await scheduling.effective_one(ctx.session, job)
    eff = await scheduling.resume(ctx.session, job, actor_of(ctx.msg, ctx.who), ctx.now)
    await _reply_one(ctx, "resumed" if before.paused else "not_paused", eff)


@router.command(
    "日程 重置",
    "schedule reset",
    summary="把定时任务的时间恢复为配置默认值",
    usage="日程重置 任务名",
    example="日程重置 提示",
    audience="admin",
)
async def reset(ctx: Ctx, args: str) -> None:
    scheduling = scheduling_for(ctx)
    job = _job_only(args, "日程重置 任务名", "日程重置 提示")
    eff = await scheduling.reset(ctx.session, job, actor_of(ctx.msg, ctx.who), ctx.now)
    await _reply_one(ctx, "reset", eff)


@router.command(
    "日程 立即执行",
    "日程 执行",
    "schedule run",
    summary="立即执行一次定时任务",
    usage="日程立即执行 任务名",
    example="日程立即执行 提示",
    audience="admin",
)
async def run_now(ctx: Ctx, args: str) -> None:
    scheduling = scheduling_for(ctx)
    job = _job_only(args, "日程立即执行 任务名", "日程立即执行 督查")
    if not scheduling.runnable(job):
        raise UserError("errors/schedules_not_ready.md.j2", job=job)
    scheduling.run_after_commit(ctx.session, job)
    ctx.audit("schedule.run_now", "schedule", job.name)
    await ctx.reply("replies/schedules_run.md.j2", job=job)


async def _reply_one(ctx: Ctx, what: str, eff: Effective) -> None:
    calendar = scheduling_for(ctx).calendar()
    unknown = sorted({t.year for t in eff.next_times if not calendar.known(t.year)})
    await ctx.reply(
        "replies/schedules_one.md.j2",
        what=what,
        eff=eff,
        sources=SOURCES,
        unknown_years=unknown if eff.spec.uses_workdays else [],
    )


def _job(args: str, usage: str, example: str) -> tuple[Job, str]:
    """The job named at the start of args (Chinese label or English name), and the rest."""
    text = args.strip()
    found = match_command(text, _NAMES) if text else None
    job = find_job(found[0]) if found else None
    if found is None or job is None:
        if not text:
            raise UserError(
                "errors/usage.md.j2", problem="请写上任务名。", usage=usage, example=example
            )
        word = text.split(" ")[0]
        raise UserError(
            "errors/schedules_unknown_job.md.j2",
            word=word,
            hints=closest(word, _NAMES),
            jobs=JOBS,
        )
    return job, found[1].strip()


def _job_only(args: str, usage: str, example: str) -> Job:
    job, rest = _job(args, usage, example)
    if rest:
        raise UserError(
            "errors/usage.md.j2", problem="这里只需写任务名。", usage=usage, example=example
        )
    return job
