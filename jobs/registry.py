"""The scheduled jobs, in the order of the monthly cycle: what each is called, what it does,
and when it runs when neither the configuration nor an admin says otherwise.

`run` is the job's body (jobs/<name>.py `run(env, occurrence)`, True when the occurrence ran,
False when it had run already); None while it has none: the schedule, the 日程 command and the
scheduler treat such a job like any other, and 日程立即执行 says it is not there yet instead
of pretending it ran.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from bot.deployment.schema import JobName
from bot.text import fold_width
from jobs import breakdown, dispatch, inspect, monthly_report, recheck, remind, supervise
from jobs.env import JobEnv

JobBody = Callable[[JobEnv, datetime], Awaitable[bool]]


@dataclass(frozen=True, slots=True)
class Job:
    name: JobName  # the key in the configuration's `schedules:` and the APScheduler job id
    label: str  # what admins call it
    description: str
    default: str  # the built-in schedule, the same as config/sample's
    run: JobBody | None = None

    @property
    def names(self) -> tuple[str, ...]:
        return (self.label, self.name)


JOBS: tuple[Job, ...] = (
    Job(
        "breakdown",
        "月度分解",
        "生成本月（季度首月含本季度）任务，并把各单位的任务发到共同体群",
        "每月第一个工作日 9:00",
        breakdown.run,
    ),
    Job("remind", "提示", "截止前提醒未报送的单位，@联络员", "工作日 9:00", remind.run),
    Job(
        "dispatch",
        "调度",
        "进度点名：谁报了谁没报，请牵头单位汇总",
        "每周一及每月15日 9:00",
        dispatch.run,
    ),
    Job(
        "inspect",
        "督查",
        "到期未通过审核的任务转为逾期，待审核材料汇总给管理员",
        "工作日 17:30",
        inspect.run,
    ),
    Job(
        "supervise",
        "督办",
        "逾期预警，按天数逐级升级到书记、牵头单位、管理员群",
        "工作日 9:30",
        supervise.run,
    ),
    Job("recheck", "回头看", "问题销号后回访，请单位确认整改成效", "工作日 10:00", recheck.run),
    Job(
        "monthly_report",
        "月报",
        "上月完成率和排名发到管理员群",
        "每月第一个工作日 10:00",
        monthly_report.run,
    ),
)

BY_NAME: dict[str, Job] = {job.name: job for job in JOBS}


def find_job(text: str) -> Job | None:
    """A job by its Chinese label or English name (any case, - or space for _)."""
    wanted = fold_width(text).strip().lower().replace("-", "_").replace(" ", "_")
    return next((job for job in JOBS if wanted in (job.label, job.name)), None)
