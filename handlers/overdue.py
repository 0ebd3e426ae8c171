"""逾期: what is overdue — for my unit; a lead unit, its whole community; admins, everywhere."""

from __future__ import annotations

from dataclasses import dataclass

from bot.ledger.people import community_units
from bot.ledger.progress import OverdueItem, communities, overdue, units_in_reach
from bot.routing import Ctx, Router, UserError
from handlers.progress import community_named

router = Router()
USAGE, EXAMPLE = "逾期 [共同体（仅管理员）]", "逾期"
PER_UNIT = 10  # items shown for one's own unit; the rest are counted
PER_MEMBER = 3  # items shown per unit when a whole community is listed
PER_COMMUNITY = 5  # items shown per community in the committee's overall view
NO_COMMUNITY = "未加入共同体的单位"


@dataclass(frozen=True, slots=True)
class Group:
    title: str
    count: int
    items: list[OverdueItem]


@router.command(
    "逾期",
    "overdue",
    summary="查看逾期未报的任务（牵头单位看全共同体）",
    usage=USAGE,
    example=EXAMPLE,
    audience="worker",
)
async def overdue_(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    known = await communities(ctx.session)
    wanted = args.strip()
    named = community_named(wanted, known) if wanted else None
    if wanted and (named is None or not who.is_admin):
        problem = (
            f"看不懂“{wanted}”：请写共同体，如 第五共同体、c5。"
            if who.is_admin
            else "“逾期”不需要参数：它列出您能报送的各单位的逾期任务。"
        )
        example = "逾期 c5、逾期 第五共同体" if who.is_admin else EXAMPLE
        raise UserError("errors/usage.md.j2", problem=problem, usage=USAGE, example=example)
    today = ctx.now.date()
    if who.is_admin and named is None:
        found = await overdue(
            ctx.session, now=ctx.now, unit_ids=None, per="community", cap=PER_COMMUNITY
        )
        names = {c.id: c.name for c in known}
        groups = [
            Group(
                names.get(cid, NO_COMMUNITY) if cid is not None else NO_COMMUNITY,
                found.counts[cid],
                [i for i in found.items if i.unit.community_id == cid],
            )
            for cid in dict.fromkeys(i.unit.community_id for i in found.items)
        ]
        await ctx.reply(
            "replies/overdue_list.md.j2",
            groups=groups,
            total=found.total,
            by_unit=False,
            today=today,
            scope="all",
        )
        return
    if named is not None:
        units = await community_units(ctx.session, named.id)
        scope = named.name
    else:
        units = await units_in_reach(ctx.session, who)
        scope = "community" if who.lead_communities else "own"
    cap = PER_UNIT if scope == "own" else PER_MEMBER
    found = await overdue(
        ctx.session, now=ctx.now, unit_ids=[u.id for u in units], per="unit", cap=cap
    )
    by_unit: dict[int, list[OverdueItem]] = {}
    for item in found.items:
        by_unit.setdefault(item.unit.id, []).append(item)
    groups = [
        Group(items[0].unit.short, found.counts[uid], items) for uid, items in by_unit.items()
    ]
    await ctx.reply(
        "replies/overdue_list.md.j2",
        groups=groups,
        total=found.total,
        by_unit=True,
        today=today,
        scope=scope,
    )
