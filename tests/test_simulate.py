"""Whole months through the simulator: the real jobs and handlers on a virtual clock."""

from __future__ import annotations

import json
import subprocess
import sys
from collections import Counter
from datetime import date, datetime
from pathlib import Path

from bot.clock import SHANGHAI
from bot.deployment import load
from bot.simulate import Posted, Said, simulate
from tests.configs import SAMPLE_CONFIG, SAMPLE_SECRETS

SAMPLE = load(SAMPLE_CONFIG, env=SAMPLE_SECRETS)


def lines_about(posted: list[Posted], unit: str, task: str) -> list[tuple[str, str, str]]:
    """(time, kind, line) for each posted line naming the task and the unit, or naming the task
    in a list headed by the unit (a 督办 post lists a unit's cases under its name)."""
    found = []
    for p in posted:
        for block in p.text.split("\n\n"):  # merged posts are joined by blank lines
            head = block.split("\n", 1)[0]
            for line in block.splitlines():
                owner = head if line.startswith("- ") else line
                if task in line and unit in owner and p.kind != "breakdown":
                    found.append((f"{p.at:%m-%d %H:%M}", p.kind, line))
    return found


async def test_december_2026_reminds_warns_and_escalates_exactly() -> None:
    script = [
        Said(
            datetime(2026, 12, 21, 10, tzinfo=SHANGHAI),
            "p_jtj_ll1",
            "本月支部委员会会议已召开",
            "g_c5",
        )
    ]
    posted = await simulate(SAMPLE, date(2026, 12, 1), date(2026, 12, 31), script)
    # 自然资源规划局 never reports its branch committee meeting (due Friday the 25th):
    assert [
        (t, k) for t, k, _ in lines_about(posted, "自然资源规划局", "召开党支部委员会会议")
    ] == [
        ("12-22 09:00", "remind"),  # three working days ahead
        ("12-25 09:00", "remind"),  # on the day
        ("12-29 09:30", "supervise1"),  # overdue warning to the liaison
        ("12-30 09:30", "supervise2"),  # three working days late: secretary and lead unit
    ]
    # 交通运输局 reported it in plain words on the 21st: recorded, and never reminded.
    [reply] = [p for p in posted if p.kind == "reply"]
    assert reply.group == "g_c5" and "已记录" in reply.text and "召开党支部委员会会议" in reply.text
    assert lines_about(posted, "交通运输局", "召开党支部委员会会议") == []
    kinds = Counter(p.kind for p in posted)
    assert kinds["breakdown"] == 9  # eight communities and the admins, once
    days = {p.at.date() for p in posted if p.kind != "reply"}
    assert all(d.weekday() < 5 for d in days)  # December 2026 has no 调休 weekend
    roll_calls = sorted({p.at.day for p in posted if p.kind == "dispatch"})
    assert roll_calls == [7, 14, 15, 21, 28]  # Mondays and the 15th (a Tuesday)


async def test_national_day_week_is_skipped_and_the_make_up_saturday_works() -> None:
    posted = await simulate(SAMPLE, date(2026, 10, 1), date(2026, 10, 12))
    days = {p.at.date() for p in posted}
    assert not {date(2026, 10, d) for d in range(1, 8)} & days  # 国庆 1–7 October off
    first = min(p.at for p in posted if p.kind == "breakdown")
    assert first.date() == date(2026, 10, 8)  # the month's first working day
    assert date(2026, 10, 10) in {p.at.date() for p in posted if p.kind == "remind"}  # 调休


async def test_spring_festival_2026() -> None:
    posted = await simulate(SAMPLE, date(2026, 2, 1), date(2026, 2, 28))
    days = {p.at.date() for p in posted}
    assert not {date(2026, 2, d) for d in range(15, 24)} & days  # 春节 15–23 February off
    assert {date(2026, 2, 14), date(2026, 2, 28)} <= days  # both make-up Saturdays work
    due_saturday = [p for p in posted if p.kind == "remind" and p.at.date() == date(2026, 2, 14)]
    assert any("今天（2月14日）截止" in p.text for p in due_saturday)  # 15日 rolled back to it


def test_cli_writes_json_lines(tmp_path: Path) -> None:
    script = tmp_path / "script.yaml"
    script.write_text(
        '- {time: "2026-12-02 10:00", sender: p_zrj_ll1, group: g_c5, text: "本月任务"}\n',
        encoding="utf-8",
    )
    out = tmp_path / "out.jsonl"
    done = subprocess.run(
        [
            sys.executable,
            "-m",
            "bot",
            "simulate",
            "--from",
            "2026-12-01",
            "--to",
            "2026-12-02",
            "--config",
            str(SAMPLE_CONFIG),
            "--script",
            str(script),
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    rows = [json.loads(line) for line in out.read_text(encoding="utf-8").splitlines()]
    assert {"time", "platform", "group", "kind", "text", "mentions"} <= set(rows[0])
    reply = [r for r in rows if r["kind"] == "reply"]
    assert reply and reply[0]["text"].startswith("### 2026年12月任务")
    bad = subprocess.run(
        [sys.executable, "-m", "bot", "simulate", "--from", "2026-12-02", "--to", "2026-12-01"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert bad.returncode == 2 and "结束日期早于开始日期" in bad.stderr


def at(month: int, day: int, hour: int = 10, minute: int = 0) -> datetime:
    return datetime(2026, month, day, hour, minute, tzinfo=SHANGHAI)


TASK = "召开党支部委员会会议"  # monthly, due on the 25th (or the working day before)


async def number_of(unit: str, title: str, period: str, months: tuple[str, ...]) -> int:
    """The number a unit's instance gets when the simulator materialises `months` in order:
    numbers are per unit and deterministic, so a script can name them."""
    from sqlalchemy import select

    from bot import schema
    from bot.db import Database
    from bot.duerules import Period
    from bot.ledger.instances import materialise
    from bot.models import PlanTask, TaskInstance, Unit
    from bot.sync import sync
    from bot.workdays import WorkCalendar

    db = Database("sqlite+aiosqlite://")
    try:
        await schema.upgrade(db.engine)
        now = datetime(2026, 10, 1, tzinfo=SHANGHAI)
        async with db.begin() as s:
            await sync(s, SAMPLE.spec, now)
            for month in months:
                await materialise(
                    s, Period.parse(month), now=now, is_workday=WorkCalendar.official().is_workday
                )
            no = await s.scalar(
                select(TaskInstance.no)
                .join(Unit, Unit.id == TaskInstance.unit_id)
                .join(PlanTask, PlanTask.id == TaskInstance.task_id)
                .where(Unit.key == unit, PlanTask.title == title, TaskInstance.period == period)
            )
        assert no is not None
        return int(no)
    finally:
        await db.dispose()


async def test_a_quarter_with_on_time_late_returned_excused_and_missing_reports() -> None:
    # The numbers people type are deterministic; a script can name them.
    december_no = await number_of("zrj", TASK, "2026-12", ("2026-10", "2026-11", "2026-12"))
    script = [
        Said(at(10, 19), "p_jtj_ll1", "本月支部委员会会议已召开", "g_c5"),  # on time (check-in 1)
        Said(at(10, 27), "p_zrj_ll1", "本月支部委员会会议已召开", "g_c5"),  # late (2)
        Said(at(11, 19), "p_jtj_ll1", "本月支部委员会会议已召开", "g_c5"),  # (3) …
        Said(at(11, 23), "p_admin_li", "审核退回 3 会议记录未上传", "g_c5"),  # … returned
        Said(at(11, 25, 11), "p_jtj_ll1", "本月支部委员会会议已召开，补充会议记录", "g_c5"),
        Said(
            at(12, 1, 11),
            "p_admin_li",
            f"免报 自然资源规划局 {december_no} 与党员大会合并开展",
            "g_c5",
        ),  # excused; 交通运输局 misses December altogether
    ]
    posted = await simulate(SAMPLE, date(2026, 10, 1), date(2026, 12, 31), script)
    replies = [p.text for p in posted if p.kind == "reply"]
    assert "已记录" in replies[0] and "迟报" in replies[1], replies
    assert "已退回" in replies[3] and "已更新" in replies[4], replies
    assert f"已免报：自然资源规划局 **{december_no}** {TASK}" in replies[5], replies

    def steps(unit: str) -> list[tuple[str, str]]:
        return [(t, k) for t, k, _ in lines_about(posted, unit, TASK)]

    # 自然资源规划局: October reported late after the first warning; November forgotten until the
    # deadline passed; December excused, so never reminded.
    assert steps("自然资源规划局") == [
        ("10-20 09:00", "remind"),  # 23 October (a Friday): three working days ahead
        ("10-23 09:00", "remind"),  # on the day
        ("10-27 09:30", "supervise1"),  # overdue since Monday's 督查; reported at 10:00
        ("11-20 09:00", "remind"),
        ("11-25 09:00", "remind"),
        ("11-27 09:30", "supervise1"),
        ("11-30 09:30", "supervise2"),  # three working days late: the secretary and lead unit
        ("12-01 11:00", "excuse"),  # December's is excused: the group is told …
        ("12-01 11:00", "reply"),  # … and so is the admin who did it
        ("12-04 09:30", "supervise3"),  # November's: the admins' group and the negative list
    ]
    # 交通运输局: October on time; November returned, so reminded on the day and re-reported in
    # time; December missed, so the ladder.
    jtj = [(t, k, line) for t, k, line in lines_about(posted, "交通运输局", TASK)]
    assert [(t, k) for t, k, _ in jtj] == [
        ("11-23 10:00", "review"),  # the return is posted in the group …
        ("11-23 10:00", "reply"),  # … and confirmed to the admin
        ("11-24 09:00", "remind"),  # returned: its "ahead" reminder is now owed …
        ("11-25 09:00", "remind"),  # … and the one on the day; re-reported at 11:00
        ("12-22 09:00", "remind"),
        ("12-25 09:00", "remind"),
        ("12-29 09:30", "supervise1"),
        ("12-30 09:30", "supervise2"),
    ]
    assert "报送已被退回" in jtj[2][2] and "报送已被退回" in jtj[3][2]
