"""统计: figures and rankings for a month, quarter or year; 发布 月报: an admin approves a month's
rankings, which then reach each community's group.

Who sees what: admins any scope (default: the whole committee); lead units their community and
its units (default: the community); other workers their own units. Rankings are the committee's
to publish: until a month is published (发布 月报), they show only to admins outside community
groups; quarters and years are not published, so only admins see their places.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date
from typing import Literal

from bot.clock import SHANGHAI
from bot.duerules import Period
from bot.ledger.groups import community_groups, group_post_target
from bot.ledger.people import UnitRef, Who, find_unit
from bot.ledger.progress import communities
from bot.ledger.publication import AlreadyPublished, find, publish
from bot.ledger.stats import (
    CommunityFigures,
    Figures,
    Report,
    UnitFigures,
    report,
    shortlist,
    trend,
)
from bot.messages import Outbound
from bot.outbox import enqueue
from bot.reports import pictures
from bot.routing import Ctx, Router, UserError
from bot.text import closest
from bot.textdates import parse_period, split_period
from handlers.progress import community_named

router = Router()
USAGE = "统计 [期间] [共同体或单位]"
EXAMPLE = "统计、统计 上月、统计 2026-Q4 第五共同体、统计 2026年 住建局"
PUBLISH_USAGE = "发布 月报 [月份]"
PUBLISH_EXAMPLE = "发布 月报、发布 月报 2026-11"
KIND = "monthly"
TREND = 12


@dataclass(frozen=True, slots=True)
class Scope:
    kind: Literal["committee", "community", "unit"]
    name: str
    community_id: int | None = None
    unit_id: int | None = None


@router.command(
    "统计",
    "统计数据",
    "stats",
    summary="查看按时率、迟报、逾期、整改销号等统计和排名",
    usage=USAGE,
    example=EXAMPLE,
    audience="worker",
)
async def stats(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    today = ctx.now.astimezone(SHANGHAI).date()
    period, words = _period_and_rest(args, today)
    scope = await _scope(ctx, who, words)
    r = await report(ctx.session, period or Period.containing("monthly", today), ctx.now)
    line = await trend(
        ctx.session,
        r.period,
        ctx.now,
        TREND,
        community_id=scope.community_id,
        unit_id=scope.unit_id,
    )
    published = (
        await find(ctx.session, KIND, r.period.key) if r.period.cadence == "monthly" else None
    )
    unit = next((u for u in r.ranking if u.unit_id == scope.unit_id), None)
    show_ranks = published is not None or (who.is_admin and not _in_community_group(ctx))
    # Reading only so far: drawing here holds no write lock.
    chart = pictures.trend(f"{scope.name} 近{len(line)}期按时率", line) if len(line) > 1 else None
    await ctx.reply(
        "replies/stats_report.md.j2",
        image=await pictures.render(chart, "trend") if chart else None,
        r=r,
        scope=scope,
        figures=_figures(r, scope),
        unit=unit,
        community=_community(r, scope, unit),
        ranked_units=sum(1 for u in r.ranking if u.rank is not None),
        ranked_communities=sum(1 for c in r.communities if c.rank is not None),
        trend=_trimmed(line),
        listed=shortlist(r.communities, worst=show_ranks),
        show_ranks=show_ranks,
        published=published,
    )


@router.command(
    "发布 月报",
    "publish",
    summary="审核通过月度统计排名，发布到各共同体工作群",
    usage=PUBLISH_USAGE,
    example=PUBLISH_EXAMPLE,
    audience="admin",
)
async def publish_monthly(ctx: Ctx, args: str) -> None:
    who = ctx.admin("发布 月报")
    today = ctx.now.astimezone(SHANGHAI).date()
    this_month = Period.containing("monthly", today)
    month = this_month.previous()
    text = args.strip()
    if text:
        wanted = parse_period(text, today)
        if wanted is None or wanted.cadence != "monthly":
            raise UserError(
                "errors/usage.md.j2",
                problem=f"看不懂月份“{text}”：月报按月发布。",
                usage=PUBLISH_USAGE,
                example=PUBLISH_EXAMPLE,
            )
        month = wanted
    if month >= this_month:
        raise UserError("errors/stats_not_ended.md.j2", month=month)
    try:
        await publish(
            ctx.session, KIND, month.key, approved_by=who.person_id, now=ctx.now, actor=who.key
        )
    except AlreadyPublished as e:
        raise UserError("errors/stats_already_published.md.j2", p=e.publication, month=month) from e
    r = await report(ctx.session, month, ctx.now)
    if not r.committee.owed:  # rolled back with the refusal: nothing is recorded
        raise UserError("errors/stats_nothing_to_publish.md.j2", month=month)
    by_id = {c.community_id: c for c in r.communities}
    ranked = sum(1 for c in r.communities if c.rank is not None)
    posted, missing = [], []
    for cg in await community_groups(ctx.session):
        c = by_id.get(cg.community_id)
        if c is None:
            continue
        if cg.group is None:
            missing.append(cg.community)
            continue
        body = ctx.renderer.render(
            "posts/publish_community.md.j2", c=c, month=month, ranked=ranked, approver=who.name
        )
        await enqueue(
            ctx.session,
            Outbound(body, title=f"{month.label}督办通报"),
            to=group_post_target(cg.group, ctx.deployment),
            kind="publish",
            dedupe_key=f"publish:{KIND}:{month.key}:{cg.community_key}",
            now=ctx.now,
        )
        posted.append(cg.community)
    await ctx.reply("replies/stats_published.md.j2", month=month, posted=posted, missing=missing)


def _period_and_rest(args: str, today: date) -> tuple[Period | None, str]:
    period: Period | None = None
    rest: list[str] = []
    for word in args.split():
        found, tail = split_period(word, today)
        if found is not None and period is not None:
            raise UserError(
                "errors/usage.md.j2",
                problem="一次只能查看一个期间。",
                usage=USAGE,
                example=EXAMPLE,
            )
        period = found or period
        if tail:
            rest.append(tail)
    return period, "".join(rest)


async def _scope(ctx: Ctx, who: Who, text: str) -> Scope:
    leads = who.lead_communities
    known = await communities(ctx.session)
    if not text:
        if who.is_admin:
            return Scope("committee", "全委")
        if leads:
            c = next(c for c in known if c.id == leads[0])
            return Scope("community", c.name, community_id=c.id)
        return _unit_scope(who.units[0])
    named = community_named(text, known)
    if named is not None:
        if not who.is_admin and named.id not in leads:
            raise UserError("errors/stats_not_yours.md.j2", name=named.name)
        return Scope("community", named.name, community_id=named.id)
    units = await find_unit(ctx.session, text)
    if len(units) > 1:
        raise UserError("errors/stats_ambiguous.md.j2", word=text, units=units[:8])
    if not units:
        names = [c.name for c in known] + [u.short for u in who.units]
        raise UserError(
            "errors/stats_unknown.md.j2", word=text, hints=closest(text, names), usage=USAGE
        )
    unit = units[0]
    mine = {u.id for u in who.units}
    if not (who.is_admin or unit.id in mine or unit.community_id in leads):
        raise UserError("errors/stats_not_yours.md.j2", name=unit.short)
    return _unit_scope(unit)


def _unit_scope(unit: UnitRef) -> Scope:
    return Scope("unit", unit.short, community_id=None, unit_id=unit.id)


def _figures(r: Report, scope: Scope) -> Figures:
    if scope.kind == "committee":
        return r.committee
    if scope.kind == "community":
        return next(c.figures for c in r.communities if c.community_id == scope.community_id)
    return next(u.figures for u in r.ranking if u.unit_id == scope.unit_id)


def _community(r: Report, scope: Scope, unit: UnitFigures | None) -> CommunityFigures | None:
    """The community asked about, or the unit's own (id 0: units in no community)."""
    wanted = (unit.community_id or 0) if unit is not None else scope.community_id
    return next((c for c in r.communities if c.community_id == wanted), None)


def _trimmed(line: list[tuple[Period, Figures]]) -> list[tuple[Period, Figures]]:
    """From the first period in which anything was owed."""
    start = next((i for i, (_, f) in enumerate(line) if f.owed), len(line))
    return line[start:]


def _in_community_group(ctx: Ctx) -> bool:
    """A group chat other than the admins' own: rankings there wait for publication."""
    if not ctx.msg.chat.is_group:
        return False
    admin = ctx.deployment.spec.committee.admin_group
    group = next((g for g in ctx.deployment.spec.groups if g.chat_id == ctx.msg.chat.chat_id), None)
    return group is None or group.id != admin
