"""任务新增, 任务修改, 任务取消, 任务列表: the plan changed during the year by chat."""

from __future__ import annotations

from datetime import datetime, timedelta

from sqlalchemy import func, select

from bot.clock import SHANGHAI
from bot.models import Area, PlanTask, PlanTaskUnit, TaskInstance, Unit
from bot.sync import sync
from tests.chat import Chat
from tests.test_commands_admin import admin, audits, checked_in, instance_no


async def _task(chat: Chat, key: str) -> PlanTask:
    async with chat.ledger() as s:
        task = await s.scalar(select(PlanTask).where(PlanTask.key == key))
    assert task is not None
    return task


async def _instances(chat: Chat, key: str, period: str = "2026-11") -> list[TaskInstance]:
    async with chat.ledger() as s:
        return list(
            (
                await s.scalars(
                    select(TaskInstance)
                    .join(PlanTask, PlanTask.id == TaskInstance.task_id)
                    .where(PlanTask.key == key, TaskInstance.period == period)
                    .order_by(TaskInstance.unit_id)
                )
            ).all()
        )


async def test_add_a_monthly_task_for_everyone(chat: Chat) -> None:
    said = await admin(chat, "任务 新增 学习贯彻全会精神 每月 每月25日前 领域:思想建设")
    assert "已新增任务 **C001**：学习贯彻全会精神" in said.reply
    assert "频次：每月；截止：每月25日前（遇非工作日提前）" in said.reply
    assert "责任单位：全部单位" in said.reply and "领域：思想建设" in said.reply
    assert "已为本期生成 58 项待办" in said.reply
    task = await _task(chat, "C001")
    assert (task.source, task.cadence, task.owners, task.due_rule, task.active) == (
        "chat",
        "monthly",
        "all",
        "每月25日前",
        True,
    )
    async with chat.ledger() as s:
        area = await s.scalar(select(Area.key).where(Area.id == task.area_id))
    assert area == "ideological"
    owed = await _instances(chat, "C001")
    assert len(owed) == 58 and {i.status for i in owed} == {"pending"}
    assert {i.due_at for i in owed} == {datetime(2026, 11, 25, 23, 59, 59, tzinfo=SHANGHAI)}
    [entry] = await audits(chat, "task.create")
    assert entry.entity_key == "C001" and entry.after is not None
    assert entry.after["instances"] == 58
    # Liaisons see it at once.
    assert "学习贯彻全会精神" in await chat.one("p_zrj_ll1", "本月任务")


async def test_add_a_one_off_task_for_named_units(chat: Chat) -> None:
    said = await admin(chat, "任务新增 报送防汛值班党员名单 一次性 2026年12月10日前 住建局、水利局")
    assert "**C001**" in said.reply and "责任单位：住建局、水利局" in said.reply
    assert "本期没有要报送的" in said.reply  # due in December: generated then
    assert "领域：政治建设" in said.reply  # without 领域: the list's first area
    task = await _task(chat, "C001")
    assert (task.cadence, task.owners) == ("once", "named")
    async with chat.ledger() as s:
        units = (
            await s.scalars(
                select(Unit.key)
                .join(PlanTaskUnit, PlanTaskUnit.unit_id == Unit.id)
                .where(PlanTaskUnit.task_id == task.id)
                .order_by(Unit.key)
            )
        ).all()
    assert list(units) == ["slj", "zjj"]
    # Without a cadence word the rule tells it; a second task gets the next key.
    said = await admin(chat, "任务新增 牵头单位季度联席会 每季度末月20日前 牵头单位")
    assert "**C002**" in said.reply and "各共同体牵头单位" in said.reply
    assert len(await _instances(chat, "C002", "2026-Q4")) == 8


async def test_a_deadline_already_past_starts_next_period(chat: Chat) -> None:
    chat.clock.at += timedelta(days=18)  # 11月20日
    said = await admin(chat, "任务新增 报送党费台账 每月 每月15日 前 住建局")  # rule typed apart
    assert "已为本期生成 1 项待办，其中 1 项本期截止日期已过，记为免报" in said.reply
    [owed] = await _instances(chat, "C001")
    assert (owed.status, owed.excused_reason) == ("excused", "任务新增时本期截止日期已过")


async def test_add_refusals(chat: Chat) -> None:
    mismatch = (await admin(chat, "任务新增 学习 每季度 每月25日前")).reply
    assert "频次“每季度”与截止规则“每月25日前”（每月）不一致" in mismatch
    bad = (await admin(chat, "任务新增 学习 每月 每月32日前")).reply
    assert "日期不存在" in bad and "(" not in bad  # the Chinese half only
    assert "请依次写上任务标题、频次和截止规则" in (await admin(chat, "任务新增 学习")).reply
    assert "请在频次后写上截止规则" in (await admin(chat, "任务新增 学习 每月")).reply
    area = (await admin(chat, "任务新增 学习 每月25日前 领域:体育建设")).reply
    assert "没有“体育建设”这个领域" in area and "组织建设" in area
    assert "没有找到“火星局”" in (await admin(chat, "任务新增 学习 每月25日前 火星局")).reply
    assert "不要再写具体单位" in (await admin(chat, "任务新增 学习 每月25日前 全部 住建局")).reply
    async with chat.ledger() as s:
        assert await s.scalar(select(func.count()).where(PlanTask.source == "chat")) == 0


async def test_change_a_due_rule_redates_open_instances(chat: Chat) -> None:
    a = await checked_in(chat, "p_zrj_ll1", "zrj", "党费", "已收缴")
    await admin(chat, f"审核通过 {a}")
    said = await admin(chat, "任务修改 t04 截止 每月20日前")  # keys in any case
    assert "已修改任务 **T04** 的截止规则：每月20日前（遇非工作日提前）" in said.reply
    assert "本期及以后未完成的 57 项待办" in said.reply
    assert "来自配置文件（plan.yaml）" in said.reply and "duban config apply" in said.reply
    owed = await _instances(chat, "T04")
    new_due = datetime(2026, 11, 20, 23, 59, 59, tzinfo=SHANGHAI)
    accepted = [i for i in owed if i.status == "accepted"]
    assert len(accepted) == 1 and accepted[0].due_at != new_due  # a done one keeps its date
    assert {i.due_at for i in owed if i.status != "accepted"} == {new_due}
    assert (await _task(chat, "T04")).due_rule == "每月20日前"
    [entry] = await audits(chat, "task.update")
    assert entry.before == {"due_rule": "每月15日前"}
    refused = (await admin(chat, "任务修改 T04 截止 每年12月底")).reply
    assert "频次不能修改" in refused


async def test_change_title_and_area_of_a_chat_task(chat: Chat) -> None:
    await admin(chat, "任务新增 学习 每月 每月25日前")
    said = await admin(chat, "任务修改 C001 标题 学习贯彻全会精神")
    assert "标题：学习贯彻全会精神" in said.reply and "plan.yaml" not in said.reply
    said = await admin(chat, "任务修改 C001 领域 组织")
    assert "领域：组织建设" in said.reply
    task = await _task(chat, "C001")
    assert task.title == "学习贯彻全会精神"
    assert "请写上任务编号、要改的内容" in (await admin(chat, "任务修改 C001 频次 每年")).reply
    assert "没有编号为 **C099** 的任务" in (await admin(chat, "任务修改 C099 标题 新")).reply


async def test_cancel_releases_what_is_still_owed(chat: Chat) -> None:
    done = await checked_in(chat, "p_zrj_ll1", "zrj", "中心组学习", "已学习")
    await admin(chat, f"审核通过 {done}")
    await checked_in(chat, "p_jtj_ll1", "jtj", "中心组学习", "已学习")  # awaiting review
    said = await admin(chat, "任务取消 T05 已并入市委理论学习中心组")
    assert "已取消任务 **T05** 党组（党委）理论学习中心组学习（已并入市委理论学习中心组）" in (
        said.reply
    )
    assert "尚未完成的 56 项待办已免报" in said.reply and "plan.yaml" in said.reply
    owed = await _instances(chat, "T05")
    statuses = sorted(i.status for i in owed)
    assert statuses.count("excused") == 56 and "accepted" in statuses and "submitted" in statuses
    assert {i.excused_reason for i in owed if i.status == "excused"} == {"任务已取消"}
    task = await _task(chat, "T05")
    assert task.active is False and task.cancelled_at == chat.clock.now()
    [entry] = await audits(chat, "task.cancel")
    assert entry.after == {"active": False, "instances_excused": 56}
    again = (await admin(chat, "任务取消 T05")).reply
    assert "已于 11月2日 09:00 取消，不能再修改或取消" in again
    assert "没有编号为 **X1** 的任务" in (await admin(chat, "任务取消 X1")).reply
    assert "请写上要取消的任务编号" in (await admin(chat, "任务取消")).reply
    no = await instance_no(chat, "zjj", "中心组学习")
    line = next(
        x for x in (await chat.one("p_zjj_ll1", "本月任务")).splitlines() if f"**{no}**" in x
    )
    assert "免报" in line


async def test_the_configuration_restores_its_tasks_and_leaves_chat_ones(chat: Chat) -> None:
    await admin(chat, "任务新增 学习 每月 每月25日前")
    await admin(chat, "任务修改 T04 标题 党费收缴")
    await admin(chat, "任务取消 T05")
    async with chat.ledger() as s:
        await sync(s, chat.deployment.spec, chat.clock.now())
    assert (await _task(chat, "T04")).title == "按时足额收缴党费"
    assert (await _task(chat, "T05")).active is True
    chat_task = await _task(chat, "C001")
    assert chat_task.active is True and chat_task.title == "学习"
    # The releases stay: a restart does not put the units back on the hook.
    assert {i.status for i in await _instances(chat, "T05")} == {"excused"}


async def test_the_plan_list(chat: Chat) -> None:
    await admin(chat, "任务新增 报送防汛值班名单 一次性 2026年12月10日前 住建局")
    await admin(chat, "任务取消 T02")
    reply = (await admin(chat, "任务列表")).reply
    assert "- **T01** 召开党支部委员会会议 · 每月 · 每月25日前 · 全部单位" in reply
    assert "- **C001** 报送防汛值班名单 · 一次性 · 2026年12月10日前 · 住建局 · 聊天新增" in reply
    assert "已取消：T02 召开党小组会" in reply
    only = (await admin(chat, "计划 党费")).reply
    assert "（含“党费”）：1 项" in only and "T04" in only and "T01" not in only
