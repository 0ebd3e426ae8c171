"""日程 and 工作日 through the DingTalk endpoint: replies, the stored rows, the audit log, and
the live scheduler of the running app (not started in tests: its jobs wait as APScheduler's
pending jobs, with their triggers).

The 日程 commands reach the schedules service through the dispatcher's services (Ctx.services);
工作日 works without it, and also puts a change into the live calendar when it is there."""

from __future__ import annotations

from datetime import date

from sqlalchemy import select

from bot.models import AuditEntry, CalendarDay, JobRun, Schedule
from jobs.registry import BY_NAME
from tests.chat import Chat


async def audit(chat: Chat, prefix: str) -> list[AuditEntry]:
    async with chat.ledger() as s:
        rows = await s.scalars(
            select(AuditEntry)
            .where(AuditEntry.action.like(f"{prefix}%"), AuditEntry.actor != "config")
            .order_by(AuditEntry.id)
        )
        return list(rows.all())


def trigger_of(chat: Chat, job: str) -> str:
    return str(chat.deps.scheduler.get_job(job).trigger)


# -- 日程 --------------------------------------------------------------------------------------


async def test_the_list_shows_every_job_with_its_next_time(chat: Chat) -> None:
    reply = await chat.one("p_admin_li", "日程")
    assert reply.startswith("### 定时任务")  # 11月2日 is November's first working day
    for line in (
        "- **月度分解**（breakdown）：每月第一个工作日 9:00 · 配置默认 · 下次 12月1日 09:00",
        "- **提示**（remind）：每个工作日 9:00 · 配置默认 · 下次 11月3日 09:00",
        "- **调度**（dispatch）：每周一及每月15日 9:00 · 配置默认 · 下次 11月9日 09:00",
        "- **督查**（inspect）：每个工作日 17:30 · 配置默认 · 下次 11月2日 17:30",
        "- **督办**（supervise）：每个工作日 9:30 · 配置默认 · 下次 11月2日 09:30",
        "- **回头看**（recheck）：每个工作日 10:00 · 配置默认 · 下次 11月2日 10:00",
        "- **月报**（monthly_report）：每月第一个工作日 10:00 · 配置默认 · 下次 11月2日 10:00",
    ):
        assert line in reply
    assert await chat.one("p_admin_li", "日程 列表") == reply
    assert await chat.one("p_admin_li", "schedules") == reply


async def test_one_job_shows_the_next_five(chat: Chat) -> None:
    reply = await chat.one("p_admin_li", "日程 提示")
    assert reply.startswith("### 提示（remind）")
    assert "时间：**每个工作日 9:00**（配置默认）" in reply
    assert "接下来五次：\n- 11月3日 09:00（周二）\n- 11月4日 09:00（周三）" in reply
    assert "- 11月9日 09:00（周一）" in reply  # the weekend skipped
    assert await chat.one("p_admin_li", "日程 REMIND") == reply


async def test_set_in_chinese_answers_with_the_next_five_and_applies_at_once(chat: Chat) -> None:
    reply = await chat.one("p_admin_li", "日程设置 提示 工作日 8:30")
    assert "已将 **提示** 的时间改为：**每个工作日 8:30**，即时生效" in reply
    assert "- 11月3日 08:30（周二）" in reply and "- 11月9日 08:30（周一）" in reply
    assert trigger_of(chat, "remind") == "每个工作日 8:30"
    async with chat.ledger() as s:
        row = await s.get(Schedule, "remind")
    assert (row.expression, row.paused, row.updated_by) == ("每个工作日 8:30", False, "p_admin_li")
    [entry] = await audit(chat, "schedule.")
    assert entry.action == "schedule.set" and entry.entity_key == "remind"
    assert entry.before == {"expression": "每个工作日 9:00", "source": "config", "paused": False}
    assert entry.after == {"expression": "每个工作日 8:30", "source": "admin", "paused": False}
    assert "· 管理员设置 · 下次 11月3日 08:30" in await chat.one("p_admin_li", "日程")


async def test_set_forms_english_names_cron_full_width_and_numerals(chat: Chat) -> None:
    cron = await chat.one("p_admin_li", "日程　设置　remind　30 8 * * 1-5")  # full-width spaces
    assert "改为：**cron 30 8 ＊ ＊ 1-5**" in cron  # markup escaped; NFKC reads it back
    assert "- 11月3日 08:30（周二）" in cron
    assert trigger_of(chat, "remind") == "cron 30 8 * * 1-5"
    numerals = await chat.one("p_admin_li", "日程设置 调度 每周一 八点半")
    assert "改为：**每周一 8:30**" in numerals and "- 11月9日 08:30（周一）" in numerals
    monthly = await chat.one("p_admin_li", "schedule set monthly_report 每月最后一个工作日 17:00")
    assert "改为：**每月最后一个工作日 17:00**" in monthly
    assert "- 11月30日 17:00（周一）" in monthly
    assert trigger_of(chat, "monthly_report") == "每月最后一个工作日 17:00"


async def test_set_mistakes_change_nothing(chat: Chat) -> None:
    bad = await chat.one("p_admin_li", "日程设置 提示 每天 25点")
    assert "**提示** 的时间没有修改" in bad and "没有25点" in bad
    unknown = await chat.one("p_admin_li", "日程设置 提醒 工作日 9:00")
    assert "没有叫“提醒”的定时任务" in unknown and "提示（remind）" in unknown
    assert "请写上“提示”的新时间" in await chat.one("p_admin_li", "日程设置 提示")
    assert "请写上任务名" in await chat.one("p_admin_li", "日程设置")
    async with chat.ledger() as s:
        assert (await s.scalars(select(Schedule))).all() == []
    assert trigger_of(chat, "remind") == "每个工作日 9:00"
    assert await audit(chat, "schedule.") == []


async def test_pause_resume_and_reset(chat: Chat) -> None:
    assert "已暂停 **督办**" in await chat.one("p_admin_li", "日程暂停 督办")
    assert chat.deps.scheduler.get_job("supervise").next_run_time is None
    assert "· 配置默认 · **已暂停**" in await chat.one("p_admin_li", "日程")
    assert "本来就是暂停状态" in await chat.one("p_admin_li", "日程 暂停 supervise")
    assert "已恢复 **督办**：每个工作日 9:30" in await chat.one("p_admin_li", "日程恢复 督办")
    assert chat.deps.scheduler.get_job("supervise").next_run_time is not None
    assert "没有暂停，照常执行" in await chat.one("p_admin_li", "日程恢复 督办")
    await chat.one("p_admin_li", "日程设置 提示 每天 7:00")
    reset = await chat.one("p_admin_li", "日程重置 提示")
    assert "已将 **提示** 恢复为配置默认：**每个工作日 9:00**" in reset
    assert trigger_of(chat, "remind") == "每个工作日 9:00"
    async with chat.ledger() as s:
        assert (await s.scalars(select(Schedule))).all() == []
    assert [e.action for e in await audit(chat, "schedule.")] == [
        "schedule.pause",
        "schedule.pause",
        "schedule.resume",
        "schedule.resume",
        "schedule.set",
        "schedule.reset",
    ]


async def test_run_now_is_honest_about_jobs_not_there_yet(chat: Chat) -> None:
    reply = await chat.one("p_admin_li", "日程立即执行 督查")
    if BY_NAME["inspect"].run is None:  # until the cycle supplies the body
        assert "**督查** 的任务内容随督办周期功能上线，目前还不能执行，这次什么也没有做" in reply
        assert [e.action for e in await audit(chat, "refused:")] == ["refused:日程 立即执行"]
    else:
        assert "已开始执行 **督查**" in reply
        assert [e.action for e in await audit(chat, "schedule.run_now")] == ["schedule.run_now"]
        await chat.deps.scheduling.drain()  # type: ignore[attr-defined]  # until wired
        async with chat.ledger() as s:
            runs = (await s.execute(select(JobRun.job, JobRun.occurrence))).all()
        assert runs == [("inspect", chat.clock.now())]  # its own occurrence, at once


async def test_only_admins_see_or_change_schedules(chat: Chat) -> None:
    assert "“日程”只有机关工委管理员可以使用" in await chat.one("p_zjj_ll1", "日程")
    refused = await chat.one("p_zrj_ll1", "日程设置 提示 工作日 8:30")
    assert "“日程 设置”只有机关工委管理员可以使用" in refused
    assert "申请绑定" in await chat.one("stranger", "日程暂停 提示")
    assert "日程" not in await chat.one("p_zrj_ll1", "帮助")
    assert "**日程 设置**" in await chat.one("p_admin_li", "帮助")
    async with chat.ledger() as s:
        assert (await s.scalars(select(Schedule))).all() == []
    assert [e.action for e in await audit(chat, "refused:")] == [
        "refused:日程",
        "refused:日程 设置",
        "refused:日程 暂停",
    ]


# -- 工作日 ------------------------------------------------------------------------------------


async def test_set_days_in_every_spelling(chat: Chat) -> None:
    reply = await chat.one("p_admin_li", "工作日 2031-02-08 上班 春节调休")
    assert "已设置：**2031-02-08 星期六 上班（春节调休，管理员设置）**" in reply
    assert "原来：2031-02-08 星期六 休息（当年安排未公布，按周一至周五）" in reply
    assert "2031年的节假日安排尚未公布" in reply
    spelled = await chat.one("p_admin_li", "工作日 二〇三一年二月三日 休息")
    assert "已设置：**2031-02-03 星期一 休息（管理员设置）**" in spelled
    wide = await chat.one("p_admin_li", "工作日　２０３１－０２－０４　放假，春节")
    assert "已设置：**2031-02-04 星期二 休息（春节，管理员设置）**" in wide
    again = await chat.one("p_admin_li", "工作日 2031年2月4日 休息 春节")
    assert "（原来也是休息：2031-02-04 星期二 休息（春节，管理员设置））" in again
    async with chat.ledger() as s:
        rows = (await s.scalars(select(CalendarDay).order_by(CalendarDay.day))).all()
    admin_days = [(r.day, r.is_workday, r.note) for r in rows if r.source == "admin"]
    assert admin_days == [
        (date(2031, 2, 3), False, ""),
        (date(2031, 2, 4), False, "春节"),
        (date(2031, 2, 8), True, "春节调休"),
    ]
    entries = await audit(chat, "calendar.set_day")
    keys = [e.entity_key for e in entries]
    assert keys == ["2031-02-08", "2031-02-03", "2031-02-04", "2031-02-04"]
    assert entries[0].before == {"is_workday": False, "source": "weekday", "note": ""}
    assert entries[0].actor == "p_admin_li"


async def test_a_month_and_a_day(chat: Chat) -> None:
    await chat.one("p_admin_li", "工作日 2031-02-08 上班 春节调休")
    month = await chat.one("p_admin_li", "工作日 2031年2月")
    assert month.startswith("### 2031年2月工作日安排")
    assert "**注意：2031年的节假日安排尚未公布**" in month
    assert "- 2031-02-08 星期六 上班（春节调休，管理员设置）" in month
    assert "本月共 21 个工作日" in month
    october = await chat.one("p_admin_li", "工作日 十月")  # 2026-10 on 2026-11-02
    assert october.startswith("### 2026年10月工作日安排") and "尚未公布" not in october
    assert "- 2026-10-01 星期四 休息（国庆节）" in october
    assert "- 2026-10-10 星期六 上班（国庆节调休）" in october
    assert await chat.one("p_admin_li", "工作日 2026-10") == october
    day = await chat.one("p_admin_li", "工作日 查询 2026年10月10日")
    assert day == "2026-10-10 星期六 上班（国庆节调休）\n依据：国务院办公厅公布的2026年节假日安排。"
    assert await chat.one("p_admin_li", "工作日 2026.10.10") == day
    assert "2026-11-04 星期三 上班\n依据：国务院" in await chat.one(
        "p_admin_li", "工作日 查 11月4日"
    )
    admin = await chat.one("p_admin_li", "工作日 查询 2031-02-08")
    assert admin.startswith("2031-02-08 星期六 上班（春节调休，管理员设置）\n依据：管理员设置")
    guess = await chat.one("p_admin_li", "工作日 查询 2031-02-09")
    assert "依据：2031年的节假日安排尚未公布，暂按周一至周五计算" in guess
    november = await chat.one("p_admin_li", "工作日")
    assert november.startswith("### 2026年11月工作日安排")
    assert "本月没有节假日或调休" in november


async def test_a_day_off_moves_the_schedules(chat: Chat) -> None:
    reply = await chat.one("p_admin_li", "工作日 2026-11-03 休息 临时安排")
    assert "定时任务已按新的工作日历重新计算" in reply
    shown = await chat.one("p_admin_li", "日程 提示")
    assert "接下来五次：\n- 11月4日 09:00（周三）" in shown
    assert "11月3日" not in shown


async def test_workday_mistakes_and_refusals(chat: Chat) -> None:
    assert "看不懂日期“2031-02-30”" in await chat.one("p_admin_li", "工作日 2031-02-30 上班")
    assert "看不懂“下下下月”" in await chat.one("p_admin_li", "工作日 下下下月")
    assert "请写上日期" in await chat.one("p_admin_li", "工作日 查询")
    refused = await chat.one("p_zjj_sec", "工作日 2031-02-08 上班")
    assert "“工作日”只有机关工委管理员可以使用" in refused
    async with chat.ledger() as s:
        assert await s.scalar(select(CalendarDay).where(CalendarDay.source == "admin")) is None
