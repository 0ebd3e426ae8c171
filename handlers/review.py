"""待审核, 审核通过, 审核退回: the working committee reviews the units' reports.

Also the pieces the other committee commands share: naming a unit, reading a leading number,
and telling a unit's community group (with its liaisons @-mentioned) what was decided.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, cast

from bot.ledger import reviews
from bot.ledger.people import UnitRef, find_unit
from bot.messages import Mention, Outbound, Platform
from bot.models import ChatGroup
from bot.outbox import Target, enqueue
from bot.routing import Ctx, Router, UserError, actor_of
from bot.text import SEPARATORS, parse_number, parse_numbers

router = Router()
PAGE = 20  # a phone screen or two; the oldest come first, so reviewing uncovers the rest
SNIPPET = 60
ACCEPT_USAGE, ACCEPT_EXAMPLE = "审核通过 审核编号…", "审核通过 12 13"
RETURN_USAGE, RETURN_EXAMPLE = "审核退回 审核编号 理由", "审核退回 12 缺少会议记录照片"


@router.command(
    "待审核",
    "审核列表",
    "reviews",
    summary="查看等待审核的报送，最早的在前",
    usage="待审核 [单位或共同体]",
    example="待审核 住建局",
    audience="admin",
)
async def queue(ctx: Ctx, args: str) -> None:
    scope, unit_ids = "", None
    if wanted := args.strip():
        units = await find_unit(ctx.session, wanted)
        if units:
            scope, unit_ids = wanted, [u.id for u in units]
        else:
            communities = await reviews.matching_communities(ctx.session, wanted)
            if not communities:
                raise UserError("errors/review_unit.md.j2", text=wanted, found=[])
            scope = "、".join(name for name, _ in communities)
            unit_ids = [u for _, ids in communities for u in ids]
    items, total = await reviews.queue(ctx.session, unit_ids, PAGE)
    snippets = {q.checkin.id: snippet(q.checkin.text) for q in items}
    await ctx.reply(
        "replies/review_queue.md.j2", items=items, total=total, scope=scope, snippets=snippets
    )


@router.command(
    "审核 通过",
    "accept",
    summary="审核通过报送（可一次多条）",
    usage=ACCEPT_USAGE,
    example=ACCEPT_EXAMPLE,
    audience="admin",
)
async def accept(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    numbers, note = parse_numbers(args)
    if not numbers:
        raise UserError(
            "errors/usage.md.j2",
            problem="请写上审核编号（发送 **待审核** 查看）。",
            usage=ACCEPT_USAGE,
            example=ACCEPT_EXAMPLE,
        )
    done: list[reviews.Reviewed] = []
    refused: list[reviews.Refused] = []
    for no in numbers:
        try:
            done.append(
                await reviews.decide(
                    ctx.session,
                    no,
                    decision="accept",
                    reason=note,
                    reviewer_id=who.person_id,
                    now=ctx.now,
                    actor=actor_of(ctx.msg, who),
                )
            )
        except reviews.Refused as e:
            refused.append(e)
    if not done:
        raise UserError("errors/review_refused.md.j2", refused=refused)
    told = await notify(
        ctx,
        [(r.unit.id, r) for r in done],
        "replies/review_notice_accepted.md.j2",
        kind="review",
        title="审核通过",
    )
    await ctx.reply("replies/review_done.md.j2", done=done, refused=refused, told=told)


@router.command(
    "审核 退回",
    "return",
    summary="退回报送并说明理由，单位整改后重新报送",
    usage=RETURN_USAGE,
    example=RETURN_EXAMPLE,
    audience="admin",
)
async def return_(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    no, reason = leading_number(args)
    if no is None or not reason:
        problem = "请写上审核编号。" if no is None else "请写明退回理由，单位才知道怎么改。"
        raise UserError(
            "errors/usage.md.j2", problem=problem, usage=RETURN_USAGE, example=RETURN_EXAMPLE
        )
    try:
        done = await reviews.decide(
            ctx.session,
            no,
            decision="return",
            reason=reason,
            reviewer_id=who.person_id,
            now=ctx.now,
            actor=actor_of(ctx.msg, who),
        )
    except reviews.Refused as e:
        raise UserError("errors/review_refused.md.j2", refused=[e]) from None
    told = await notify(
        ctx,
        [(done.unit.id, done)],
        "replies/review_notice_returned.md.j2",
        kind="review",
        title="报送被退回",
    )
    await ctx.reply("replies/review_done.md.j2", done=[done], refused=[], told=told)


# —— shared by the committee's commands ——


def snippet(text: str, size: int = SNIPPET) -> str:
    flat = " ".join(text.split())
    return flat if len(flat) <= size else flat[:size] + "…"


_LEADING = re.compile(r"(?:第|#|no\.?)?\s*(\d{1,18})\s*号?", re.IGNORECASE)


def leading_number(text: str) -> tuple[int | None, str]:
    """The number the text starts with and the free text after it, which may itself start
    with digits (12 3张照片不清楚): unlike parse_numbers, only one number is read."""
    text = text.strip()
    if m := _LEADING.match(text):
        return int(m[1]), text[m.end() :].lstrip(" \n" + SEPARATORS)
    token, _, rest = text.partition(" ")
    value = parse_number(token)
    return (value, rest.strip()) if value is not None else (None, text)


_UNIT_HEAD = re.compile(r"([^\s\d#]+)\s*(.*)", re.DOTALL)


def split_unit(text: str) -> tuple[str, str]:
    """A unit name and what follows; the name ends at a blank or a digit (免报住建局12 …)."""
    m = _UNIT_HEAD.match(text.strip())
    return (m[1], m[2].strip()) if m else ("", text.strip())


async def one_unit(ctx: Ctx, text: str) -> UnitRef:
    found = await find_unit(ctx.session, text)
    if len(found) != 1:
        raise UserError("errors/review_unit.md.j2", text=text, found=found[:10])
    return found[0]


@dataclass
class Told:
    """Where a notice went: the groups posted into, and units whose community has none."""

    groups: list[str] = field(default_factory=list)
    unreached: list[int] = field(default_factory=list)


async def notify(
    ctx: Ctx,
    items: Sequence[tuple[int, Any]],
    template: str,
    *,
    kind: str,
    title: str,
    secretary: bool = False,
    **variables: Any,
) -> Told:
    """Post `template` into the community group of each item's unit, one post per group with
    that group's `items`, @-mentioning the units' liaisons (and secretaries)."""
    told = Told()
    by_group: dict[str, tuple[ChatGroup, list[tuple[int, Any]]]] = {}
    for unit_id, item in items:
        group = await reviews.unit_group(ctx.session, unit_id)
        if group is None:
            told.unreached.append(unit_id)
            continue
        by_group.setdefault(group.key, (group, []))[1].append((unit_id, item))
    for key, (group, pairs) in by_group.items():
        mentions: dict[tuple[str, str | None], Mention] = {}
        for unit_id in dict.fromkeys(u for u, _ in pairs):
            for m in await reviews.unit_mentions(
                ctx.session, unit_id, group.platform, secretary=secretary
            ):
                mentions.setdefault((m.name, m.user_id), m)
        body = ctx.renderer.render(template, now=ctx.now, items=[i for _, i in pairs], **variables)
        await enqueue(
            ctx.session,
            Outbound(body, title=title, mentions=tuple(mentions.values())),
            to=Target(cast(Platform, group.platform), group.chat_id, group_key=key),
            kind=kind,
            dedupe_key=f"{kind}:{ctx.msg.platform}:{ctx.msg.event_id}:{key}"[:255],
            now=ctx.now,
            coalesce=True,
        )
        told.groups.append(group.name)
    return told
