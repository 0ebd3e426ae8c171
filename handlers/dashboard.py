"""看板: a signed link to the web dashboard — the whole committee's for admins, a community's for
the people of its lead unit.

The link is a credential for seven days, so it is never posted where others read it: it is
answered in a one-to-one chat or in the admins' group; asked anywhere else, it goes to the
asker privately (the way the bot answers a one-to-one chat on that platform) and the group
hears only that it was sent.
"""

from __future__ import annotations

import dataclasses
from datetime import timedelta

from bot.dashboard import committee_path, community_path
from bot.destinations import find_group
from bot.duerules import Period
from bot.ledger.progress import CommunityRef, communities
from bot.links import LINKS, Links
from bot.messages import ChatRef, Outbound
from bot.outbox import enqueue, reply_target
from bot.routing import Ctx, Router, UserError
from bot.textdates import parse_period
from handlers.progress import community_named

router = Router()
USAGE, EXAMPLE = "看板 [共同体] [月份]", "看板、看板 十月、看板 c5（管理员）"
VALID = timedelta(days=7)
LINK = "replies/dashboard_link.md.j2"


@router.command(
    "看板",
    "数据看板",
    "dashboard",
    summary="获取数据看板链接：进度矩阵、走势、逾期和问题清单（管理员、牵头单位）",
    usage=USAGE,
    example=EXAMPLE,
    audience="worker",
)
async def dashboard(ctx: Ctx, args: str) -> None:
    who = ctx.known()
    known = await communities(ctx.session)
    named, period = _parse(args, known, ctx)
    leads = [c for c in known if c.id in who.lead_communities]
    if named is not None and not who.is_admin and named not in leads:
        raise UserError("errors/dashboard_refused.md.j2", community=named, leads=leads)
    if named is not None:
        scopes = [(named.name, community_path(named.key))]
    elif who.is_admin:
        scopes = [("全部共同体", committee_path())]
    elif leads:
        scopes = [(c.name, community_path(c.key)) for c in leads]
    else:
        raise UserError("errors/dashboard_refused.md.j2", community=None, leads=[])
    links = ctx.services.get(LINKS)
    if not isinstance(links, Links) or not links.enabled:
        raise UserError("errors/dashboard_no_public_url.md.j2")
    expires = ctx.now + VALID
    query = {"period": period.key} if period else {}
    urls = [(name, links.url(path, expires, **query)) for name, path in scopes]
    for _, path in scopes:
        ctx.audit("dashboard.link", "dashboard", path, after={"expires_at": expires.isoformat()})
    if not ctx.msg.chat.is_group or (who.is_admin and _in_admins_group(ctx)):
        in_group = ctx.msg.chat.is_group
        await ctx.reply(
            LINK, title="数据看板", urls=urls, expires=expires, period=period, in_group=in_group
        )
        return
    body = ctx.renderer.render(
        LINK, who=who, now=ctx.now, urls=urls, expires=expires, period=period, in_group=False
    )
    alone = dataclasses.replace(
        ctx.msg,
        chat=ChatRef(ctx.msg.platform, ctx.msg.sender_id, is_group=False),
        reply_route=None,
    )
    await enqueue(
        ctx.session,
        Outbound(body, title="数据看板"),
        to=reply_target(alone, ctx.deployment),
        kind="dashboard",
        dedupe_key=f"dashboard:{ctx.msg.platform}:{ctx.msg.event_id}"[:255],
        now=ctx.now,
    )
    await ctx.reply("replies/dashboard_sent_privately.md.j2")


def _in_admins_group(ctx: Ctx) -> bool:
    group = find_group(ctx.deployment, ctx.msg.platform, ctx.msg.chat.chat_id)
    return group is not None and group.id == ctx.deployment.spec.committee.admin_group


def _parse(
    args: str, known: list[CommunityRef], ctx: Ctx
) -> tuple[CommunityRef | None, Period | None]:
    """The community and the period the words name; None for what is not named (the page
    then opens on the current month)."""
    named: CommunityRef | None = None
    period: Period | None = None
    for word in args.split():
        community = community_named(word, known) if named is None else None
        found = None if community else parse_period(word, ctx.now.date())
        if community is not None:
            named = community
        elif found is not None and period is None:
            period = found
        else:
            raise UserError(
                "errors/usage.md.j2",
                problem=f"看不懂“{word}”：请写共同体（如 c5、第五共同体）或月份（如 十月）。",
                usage=USAGE,
                example=EXAMPLE,
            )
    return named, period
