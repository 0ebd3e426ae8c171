"""导出: the 台账 workbook of a month, quarter or year — admins for every unit (or one
community), a lead unit for its community, everyone else for their own units.

The workbook is built and kept (24 hours, ``bot.files``) in the message's transaction. In a
WeCom group posted into by a group robot it arrives as a file message; everywhere else the
reply carries a signed download link. Without a public address neither works: the reply says
what the operator must set, and that ``duban export`` works on the server.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from bot.deployment.schema import Group
from bot.destinations import find_group
from bot.duerules import Period
from bot.files import file_path, store_file
from bot.ledger.people import Who, community_units
from bot.ledger.progress import CommunityRef, communities
from bot.links import LINKS, Links
from bot.messages import Outbound, OutboundFile
from bot.outbox import enqueue, group_target
from bot.routing import Ctx, Router, UserError
from bot.textdates import parse_period
from handlers.progress import community_named

router = Router()
USAGE = "导出 [月份、季度或年度] [共同体]"
EXAMPLE = "导出、导出 2026-11、导出 第四季度、导出 2026年 第五共同体"
TTL = timedelta(hours=24)
ROBOT_FILE_MAX = 20 << 20  # what a WeCom group robot takes (PLATFORMS.md §3)


@router.command(
    "导出",
    "导出台账",
    "export",
    summary="导出台账 Excel：任务、报送记录、问题整改和统计",
    usage=USAGE,
    example=EXAMPLE,
    audience="worker",
)
async def export(ctx: Ctx, args: str) -> None:
    # Here, not at the top: openpyxl brings PIL and numpy, some 16 MB a serving process would
    # otherwise hold from its start whether or not anyone ever exports.
    from bot.reports.workbook import CONTENT_TYPE, ledger_filename, write_ledger

    who = ctx.worker()
    known = await communities(ctx.session)
    period, named = _arguments(ctx, args, known)
    unit_ids, scope = await _scope(ctx, who, named, known)
    links = ctx.services.get(LINKS)
    links = links if isinstance(links, Links) and links.enabled else None
    robot = _robot_group(ctx)
    if robot is None and links is None:
        raise UserError("errors/export_no_link.md.j2", period=period, too_big=False)
    committee = ctx.deployment.spec.committee
    ledger = await write_ledger(
        ctx.session,
        period,
        ctx.now,
        links=links,
        unit_ids=unit_ids,
        committee=committee.short or committee.name,
    )
    filename = ledger_filename(period)
    file_id = await store_file(
        ctx.session,
        ledger.data,
        filename=filename,
        content_type=CONTENT_TYPE,
        kind="export",
        now=ctx.now,
        ttl=TTL,
    )
    ctx.audit(
        "export.create",
        "stored_file",
        file_id,
        after={"period": period.key, "scope": scope, "bytes": len(ledger.data), **ledger.rows},
    )
    expires = ctx.now + TTL
    url = links.url(file_path(file_id), expires) if links is not None else None
    shown: dict[str, Any] = {
        "period": period,
        "scope": scope,
        "rows": ledger.rows,
        "filename": filename,
        "url": url,
        "expires": expires,
    }
    if robot is not None and len(ledger.data) <= ROBOT_FILE_MAX:
        body = ctx.renderer.render("replies/export_file.md.j2", who=ctx.who, now=ctx.now, **shown)
        message = Outbound(body, title="台账", file=OutboundFile(filename, ledger.data))
        await enqueue(
            ctx.session,
            message,
            to=group_target(robot),
            kind="export",
            dedupe_key=f"export:{ctx.msg.platform}:{ctx.msg.event_id}"[:255],
            now=ctx.now,
        )
        return
    if url is None:
        raise UserError("errors/export_no_link.md.j2", period=period, too_big=True)
    await ctx.reply("replies/export_link.md.j2", title="台账", **shown)


def _arguments(
    ctx: Ctx, args: str, known: list[CommunityRef]
) -> tuple[Period, CommunityRef | None]:
    """The period (this month when none is named) and the community, in any order."""
    today = ctx.now.date()
    period, named = Period.containing("monthly", today), None
    for word in args.split():
        community = community_named(word, known)
        found = None if community else parse_period(word, today)
        if community is not None and named is None:
            named = community
        elif found is not None:
            period = found
        else:
            raise UserError(
                "errors/usage.md.j2",
                problem=f"看不懂“{word}”：请写月份、季度或年度（如 2026-11、第四季度、2026年），"
                "或共同体（如 第五共同体）。",
                usage=USAGE,
                example=EXAMPLE,
            )
    return period, named


async def _scope(
    ctx: Ctx, who: Who, named: CommunityRef | None, known: list[CommunityRef]
) -> tuple[list[int] | None, str]:
    """The units the person may export, and how the reply names them."""
    if named is not None:
        if not (who.is_admin or named.id in who.lead_communities):
            raise UserError(
                "errors/export_refused.md.j2", community=named, leads=bool(who.lead_communities)
            )
        return [u.id for u in await community_units(ctx.session, named.id)], named.name
    if who.is_admin:
        return None, "全部单位"
    ids = dict.fromkeys(u.id for u in who.units)
    led = [c for c in known if c.id in who.lead_communities]
    for community in led:
        ids.update(dict.fromkeys(u.id for u in await community_units(ctx.session, community.id)))
    own = [u.short for u in who.units if u.community_id not in who.lead_communities]
    return list(ids), "、".join([c.name for c in led] + own)


def _robot_group(ctx: Ctx) -> Group | None:
    """The configured WeCom group this came from, when a group robot posts into it."""
    chat = ctx.msg.chat
    if ctx.msg.platform != "wecom" or not chat.is_group:
        return None
    group = find_group(ctx.deployment, "wecom", chat.chat_id)
    return group if group is not None and group.channel.type == "wecom_webhook" else None
