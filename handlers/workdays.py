"""工作日: the working-day calendar — set a day (上班/休息), a month's special days, one day."""

from __future__ import annotations

import re
from datetime import date, timedelta

from bot.duerules import Period, weekday_is_workday
from bot.routing import Ctx, Router, UserError, actor_of
from bot.scheduling import optional_scheduling
from bot.textdates import parse_date, parse_period
from bot.workdays import WorkCalendar, load_calendar, set_day

router = Router()
USAGE = "工作日 日期 上班|休息 [说明]"
EXAMPLE = "工作日 2027-02-07 上班 春节调休"
_STATE = re.compile(
    r"(?P<date>.*?)\s*(?P<state>上班|补班|工作日|工作|休息|放假|休假|节假日)(?P<note>.*)", re.S
)
_WORK_WORDS = ("上班", "补班", "工作日", "工作")
_QUERY = re.compile(r"(?:查询|查看|查)\s*")


@router.command(
    "工作日",
    "workday",
    "workdays",
    summary="设置某天上班或休息（节假日、调休），查看某月或某天的安排",
    usage=f"{USAGE}；工作日 月份；工作日 查询 日期",
    example=EXAMPLE,
    audience="admin",
)
async def workdays(ctx: Ctx, args: str) -> None:
    text = args.strip()
    today = ctx.now.date()
    if query := _QUERY.match(text):
        await _show_day(ctx, _date(text[query.end() :], today, "工作日 查询 日期"))
        return
    if (m := _STATE.fullmatch(text)) and m["date"].strip():
        await _set(
            ctx,
            _date(m["date"], today, USAGE),
            m["state"] in _WORK_WORDS,
            m["note"].strip(" ,，、;；:："),
        )
        return
    if not text:
        await _show_month(ctx, Period.containing("monthly", today))
        return
    if (single := parse_date(text, today)) is not None:
        await _show_day(ctx, single)
        return
    month = parse_period(text, today)
    if month is None or month.cadence != "monthly":
        raise UserError(
            "errors/usage.md.j2",
            problem=f"看不懂“{text}”：请写日期和上班或休息，或者写一个月份。",
            usage=USAGE,
            example=f"{EXAMPLE}；工作日 2027年2月；工作日 查询 10月10日",
        )
    await _show_month(ctx, month)


def _date(text: str, today: date, usage: str) -> date:
    day = parse_date(text.strip(), today)
    if day is None:
        raise UserError(
            "errors/usage.md.j2",
            problem=f"看不懂日期“{text.strip()}”。" if text.strip() else "请写上日期。",
            usage=usage,
            example=EXAMPLE,
        )
    return day


async def _calendar(ctx: Ctx) -> WorkCalendar:
    scheduling = optional_scheduling(ctx)
    return await load_calendar(ctx.session, scheduling.calendar.base if scheduling else None)


async def _set(ctx: Ctx, day: date, is_workday: bool, note: str) -> None:
    calendar = await _calendar(ctx)
    before = calendar.status(day)
    scheduling = optional_scheduling(ctx)
    after = await set_day(
        ctx.session,
        day,
        is_workday,
        actor_of(ctx.msg, ctx.who),
        ctx.now,
        note=note,
        base=scheduling.calendar.base if scheduling else None,
    )
    if scheduling is not None:
        await scheduling.reload_calendar(ctx.session)
    await ctx.reply(
        "replies/workdays_set.md.j2",
        before=before,
        after=after,
        published=calendar.known(day.year),
        live=scheduling is not None,
    )


async def _show_day(ctx: Ctx, day: date) -> None:
    calendar = await _calendar(ctx)
    await ctx.reply("replies/workdays_day.md.j2", status=calendar.status(day))


async def _show_month(ctx: Ctx, month: Period) -> None:
    calendar = await _calendar(ctx)
    special = []
    day = month.first_day
    while day <= month.last_day:
        status = calendar.status(day)
        if status.source == "admin" or status.is_workday != weekday_is_workday(day):
            special.append(status)
        day += timedelta(days=1)
    await ctx.reply(
        "replies/workdays_month.md.j2",
        month=month,
        special=special,
        workdays=len(calendar.workdays_of_month(month.year, month.index)),
        published=calendar.known(month.year),
    )
