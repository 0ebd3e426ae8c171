"""任务新增, 任务修改, 任务取消, 任务列表: the working committee changes the plan during the year.

Tasks of the configuration (plan.yaml) may be changed here too, because the committee works
in chat and cannot wait for a redeployment; but the configuration stays the source of truth
for them, so the reply warns that re-applying it (every start, `duban config apply`) puts the
configured version back unless plan.yaml is changed as well.

A new task belongs to the area named with `领域:组织建设` (or 方面:), else to the first area of
the responsibility list; the reply says which, and `任务修改 C001 领域 …` moves it.
"""

from __future__ import annotations

import re

from bot.duerules import DueRule, DueRuleError, parse_due_rule
from bot.ledger import plan_changes
from bot.ledger.people import UnitRef
from bot.models import Area, PlanTask
from bot.routing import Ctx, Router, UserError, actor_of
from bot.workdays import load_calendar
from handlers.review import one_unit

router = Router()
ADD_USAGE = "任务新增 标题 频次 截止规则 [单位…|全部|牵头单位] [领域:名称]"
ADD_EXAMPLE = "任务新增 报送防汛值班党员名单 一次性 2026年12月10日前 住建局、水利局"
EDIT_USAGE = "任务修改 任务编号 截止|标题|领域 新内容"
EDIT_EXAMPLE = "任务修改 C001 截止 每月20日前"
CANCEL_USAGE, CANCEL_EXAMPLE = "任务取消 任务编号 [理由]", "任务取消 C001 已并入年度述职"
CADENCES = {
    **dict.fromkeys(("每月", "月度", "按月", "monthly"), "monthly"),
    **dict.fromkeys(("每季度", "每季", "季度", "按季度", "quarterly"), "quarterly"),
    **dict.fromkeys(("每年", "年度", "按年", "yearly"), "yearly"),
    **dict.fromkeys(("一次性", "单次", "一次", "once"), "once"),
}
CADENCE_NAMES = {"monthly": "每月", "quarterly": "每季度", "yearly": "每年", "once": "一次性"}
OWNER_WORDS = {
    **dict.fromkeys(("全部", "全部单位", "所有单位", "各单位", "all"), "all"),
    **dict.fromkeys(("牵头单位", "各牵头单位", "共同体牵头单位", "leads"), "leads"),
}
FIELDS = {
    **dict.fromkeys(("截止", "截止规则", "期限", "截止时间"), "due"),
    **dict.fromkeys(("标题", "名称", "任务名称"), "title"),
    **dict.fromkeys(("领域", "方面"), "area"),
}
_AREA_OPTION = re.compile(r"^(?:领域|方面)[:：](.+)$")
_LIST_SPLIT = re.compile(r"[\s,，、;；]+")
MAX_TITLE = 100


@router.command(
    "任务 新增",
    summary="在年度计划中新增任务，并生成本期待办",
    usage=ADD_USAGE,
    example=ADD_EXAMPLE,
    audience="admin",
)
async def add(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    tokens, area_text = _area_option(args.split())
    title, cadence, rule, owner_tokens = _split_add(tokens)
    if cadence and cadence != rule.cadence:
        raise UserError(
            "errors/plan_refused.md.j2",
            reason="cadence_mismatch",
            cadence=CADENCE_NAMES[cadence],
            rule=rule.text,
            rule_cadence=CADENCE_NAMES[rule.cadence],
        )
    owners, units = await _owners(ctx, owner_tokens)
    area = await _area(ctx, area_text)
    added = await plan_changes.add(
        ctx.session,
        title=title,
        rule=rule,
        area_id=area.id,
        owners=owners,
        unit_ids=[u.id for u in units],
        now=ctx.now,
        actor=actor_of(ctx.msg, who),
        is_workday=(await load_calendar(ctx.session)).is_workday,
    )
    await ctx.reply(
        "replies/plan_added.md.j2",
        added=added,
        rule=rule,
        area=area.name,
        owners=owners,
        units=units,
        cadence=CADENCE_NAMES[rule.cadence],
    )


@router.command(
    "任务 修改",
    summary="修改任务的截止规则、标题或领域",
    usage=EDIT_USAGE,
    example=EDIT_EXAMPLE,
    audience="admin",
)
async def edit(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    key, field_word, value = [*args.split(maxsplit=2), "", "", ""][:3]
    field = FIELDS.get(field_word)
    if not key or field is None or not value.strip():
        raise UserError(
            "errors/usage.md.j2",
            problem="请写上任务编号、要改的内容（截止、标题或领域）和新内容。",
            usage=EDIT_USAGE,
            example=EDIT_EXAMPLE,
        )
    task = await _active_task(ctx, key)
    actor = actor_of(ctx.msg, who)
    redated = 0
    if field == "due":
        rule = _rule(value)
        if rule.cadence != task.cadence:
            raise UserError(
                "errors/plan_refused.md.j2",
                reason="cadence_change",
                key=task.key,
                cadence=CADENCE_NAMES[task.cadence],
                rule=rule.text,
            )
        redated = await plan_changes.change_due(
            ctx.session,
            task,
            rule,
            now=ctx.now,
            actor=actor,
            is_workday=(await load_calendar(ctx.session)).is_workday,
        )
        shown = rule.describe()
    elif field == "title":
        title = _title(value)
        await plan_changes.set_fields(ctx.session, task, {"title": title}, now=ctx.now, actor=actor)
        shown = title
    else:
        area = await _area(ctx, value.strip())
        await plan_changes.set_fields(
            ctx.session, task, {"area_id": area.id}, now=ctx.now, actor=actor
        )
        shown = area.name
    await ctx.reply(
        "replies/plan_changed.md.j2", task=task, field=field, shown=shown, redated=redated
    )


@router.command(
    "任务 取消",
    summary="取消任务：本期及以后未完成的不再报送",
    usage=CANCEL_USAGE,
    example=CANCEL_EXAMPLE,
    audience="admin",
)
async def cancel(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    key, _, reason = args.strip().partition(" ")
    if not key:
        raise UserError(
            "errors/usage.md.j2",
            problem="请写上要取消的任务编号（发送 **任务列表** 查看）。",
            usage=CANCEL_USAGE,
            example=CANCEL_EXAMPLE,
        )
    task = await _active_task(ctx, key)
    excused = await plan_changes.cancel(
        ctx.session, task, reason=reason.strip(), now=ctx.now, actor=actor_of(ctx.msg, who)
    )
    await ctx.reply(
        "replies/plan_cancelled.md.j2", task=task, excused=excused, reason=reason.strip()
    )


@router.command(
    "任务 列表",
    "计划",
    "plan",
    summary="查看年度计划的全部任务：编号、频次、截止规则、责任单位",
    usage="任务列表 [关键词]",
    example="任务列表 党费",
    audience="admin",
)
async def listing(ctx: Ctx, args: str) -> None:
    wanted = args.strip()
    rows = [p for p in await plan_changes.plan(ctx.session) if not wanted or wanted in p.task.title]
    await ctx.reply(
        "replies/plan_list.md.j2",
        active=[p for p in rows if p.task.active],
        cancelled=[p for p in rows if not p.task.active],
        wanted=wanted,
        cadences=CADENCE_NAMES,
    )


def _area_option(tokens: list[str]) -> tuple[list[str], str]:
    rest, area = [], ""
    for token in tokens:
        if m := _AREA_OPTION.match(token):
            area = m[1]
        else:
            rest.append(token)
    return rest, area


def _split_add(tokens: list[str]) -> tuple[str, str, DueRule, list[str]]:
    """Title, the cadence word's cadence (or ""), the due rule and the owner tokens.

    The title runs up to a cadence word or to where a due rule starts; the rule is the longest
    run of tokens that parses (it may have been typed with blanks)."""
    first_error = ""
    for i in range(1, len(tokens)):
        cadence = CADENCES.get(tokens[i].lower(), "")
        start = i + 1 if cadence else i
        found = _longest_rule(tokens[start:], tokens[i] if cadence else "")
        if found is not None:
            rule, used = found
            return _title(" ".join(tokens[:i])), cadence, rule, tokens[start + used :]
        if cadence and not first_error:
            # A cadence word may belong to the title (年度 述职): keep looking, remember why.
            after = "".join(tokens[start : start + 1])
            first_error = _rule_message(after, tokens[i]) if after else "请在频次后写上截止规则。"
    if first_error:
        raise UserError("errors/plan_refused.md.j2", reason="rule", message=first_error)
    raise UserError(
        "errors/usage.md.j2",
        problem="请依次写上任务标题、频次和截止规则。",
        usage=ADD_USAGE,
        example=ADD_EXAMPLE,
    )


def _longest_rule(tokens: list[str], cadence_word: str) -> tuple[DueRule, int] | None:
    for size in range(len(tokens), 0, -1):
        text = "".join(tokens[:size])
        for candidate in (text, cadence_word + text) if cadence_word else (text,):
            try:
                return parse_due_rule(candidate), size
            except DueRuleError:
                continue
    return None


def _rule(text: str) -> DueRule:
    try:
        return parse_due_rule(text)
    except DueRuleError:
        raise UserError(
            "errors/plan_refused.md.j2", reason="rule", message=_rule_message(text)
        ) from None


def _rule_message(text: str, cadence_word: str = "") -> str:
    """Why the rule does not parse, in parse_due_rule's Chinese half. With a cadence word
    before it (每月 32日前) the more telling of the two readings wins."""
    messages = []
    for candidate in (text, cadence_word + text) if cadence_word else (text,):
        try:
            parse_due_rule(candidate)
        except DueRuleError as e:
            messages.append(re.sub(r"\s*\([^()]*\)$", "", str(e)))
    specific = [m for m in messages if not m.startswith("无法识别")]
    return (specific or messages or [""])[0]


def _title(text: str) -> str:
    title = " ".join(text.split())
    if not title or len(title) > MAX_TITLE:
        raise UserError(
            "errors/usage.md.j2",
            problem=f"任务标题应为1到{MAX_TITLE}个字。",
            usage=ADD_USAGE,
            example=ADD_EXAMPLE,
        )
    return title


async def _owners(ctx: Ctx, tokens: list[str]) -> tuple[str, list[UnitRef]]:
    words = [w for w in _LIST_SPLIT.split(" ".join(tokens)) if w]
    if not words:
        return "all", []
    kinds = {OWNER_WORDS.get(w.lower()) for w in words}
    if kinds & {"all", "leads"}:
        if len(words) > 1:
            raise UserError("errors/plan_refused.md.j2", reason="owners", words="、".join(words))
        return str(OWNER_WORDS[words[0].lower()]), []
    units: list[UnitRef] = []
    for word in words:
        unit = await one_unit(ctx, word)
        if unit not in units:
            units.append(unit)
    return "named", units


async def _area(ctx: Ctx, text: str) -> Area:
    areas = await plan_changes.areas(ctx.session)
    if not areas:
        raise UserError("errors/plan_refused.md.j2", reason="no_areas")
    if not text:
        return areas[0]
    for area in areas:
        if text in (area.name, area.key) or text in area.name:
            return area
    raise UserError(
        "errors/plan_refused.md.j2", reason="area", text=text, areas=[a.name for a in areas]
    )


async def _active_task(ctx: Ctx, key: str) -> PlanTask:
    task = await plan_changes.find_task(ctx.session, key)
    if task is None:
        raise UserError("errors/plan_refused.md.j2", reason="unknown", key=key)
    if not task.active:
        # Refusals render after the rollback: plain values only, no ORM rows.
        raise UserError(
            "errors/plan_refused.md.j2",
            reason="cancelled",
            key=task.key,
            task_title=task.title,
            at=task.cancelled_at,
        )
    return task
