"""代报: a lead unit reports for a member of its community, recorded as on behalf of it.

Also home of `resolve_unit`, the forgiving unit-name lookup 申请绑定 shares.
"""

from __future__ import annotations

import re

from bot.ledger import checkins
from bot.ledger.instances import instance_by_no
from bot.ledger.people import UnitRef, community_name, community_units, find_unit
from bot.ledger.progress import all_units
from bot.routing import Ctx, Router, UserError, actor_of
from bot.text import CHINESE_NUMERAL, closest, parse_numbers

router = Router()
USAGE, EXAMPLE = "代报 单位 编号 说明", "代报 交通运输局 12 已召开11月主题党日，照片随后发"
_UNIT_WORD = re.compile(r"[^\s0-9#,，、;；:：]+")
_MAX_LISTED = 8


@router.command(
    "代报",
    summary="牵头单位为本共同体成员单位代为报送",
    usage=USAGE,
    example=EXAMPLE,
    audience="worker",
)
async def proxy(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    if not who.is_admin and not who.lead_communities:
        raise UserError("errors/proxy_not_lead.md.j2", units=who.units)
    word = _UNIT_WORD.match(args)
    if word is None:
        raise _usage("请写上被代报的单位。")
    unit, rest = await _unit_and_rest(ctx, word[0], args[word.end() :])
    numbers, text = parse_numbers(rest)
    if not numbers:
        raise _usage("请写上要代报的任务编号。")
    if not text and not ctx.msg.media:
        raise _usage("请写一句完成情况，或附上照片。")
    own = unit.id in {u.id for u in who.units}
    if not (who.is_admin or own or unit.community_id in who.lead_communities):
        raise await _not_in_community(ctx, unit)
    done, refused = [], []
    for no in numbers:
        found = await instance_by_no(ctx.session, unit.id, no)
        if found is None:
            raise UserError("errors/proxy_no_such_instance.md.j2", unit=unit, no=no)
        try:
            done.append(
                (
                    found,
                    await checkins.record(
                        ctx.session,
                        found.instance,
                        reporter_id=who.person_id,
                        for_unit_id=unit.id,
                        on_behalf=not own,
                        text=text,
                        media=ctx.msg.media,
                        platform=ctx.msg.platform,
                        msg_id=ctx.msg.event_id,
                        now=ctx.now,
                        actor=actor_of(ctx.msg, who),
                    ),
                )
            )
        except checkins.CheckInRefused as e:
            refused.append((found, e.reason))
    await ctx.reply(
        "replies/proxy_ok.md.j2",
        unit=unit,
        done=done,
        refused=refused,
        own=own,
        photos=len(ctx.msg.media),
    )


async def _unit_and_rest(ctx: Ctx, word: str, rest: str) -> tuple[UnitRef, str]:
    """The unit the first word names; a Chinese number glued to it (交通运输局三) is the
    instance number, and a 第 before the number belongs to it."""
    if word.endswith("第") and len(word) > 1:
        word, rest = word[:-1], "第" + rest
    if not await find_unit(ctx.session, word):
        tail = re.search(f"(?:第)?{CHINESE_NUMERAL.pattern}$", word)
        if tail and tail.start() > 0:
            word, rest = word[: tail.start()], word[tail.start() :] + rest
    return await resolve_unit(ctx, word), rest


async def resolve_unit(ctx: Ctx, text: str) -> UnitRef:
    """The one active unit `text` names; otherwise a refusal listing the matches, or the
    closest names when nothing matches."""
    matches = await find_unit(ctx.session, text)
    if len(matches) == 1:
        return matches[0]
    if matches:
        raise UserError(
            "errors/proxy_ambiguous_unit.md.j2",
            text=text,
            units=matches[:_MAX_LISTED],
            more=max(0, len(matches) - _MAX_LISTED),
        )
    units = await all_units(ctx.session)
    by_name = {name: u for u in units for name in (u.short, u.name)}
    hints = list(dict.fromkeys(by_name[n].short for n in closest(text, by_name, n=5)))
    raise UserError("errors/proxy_unknown_unit.md.j2", text=text, hints=hints)


async def _not_in_community(ctx: Ctx, unit: UnitRef) -> UserError:
    if unit.community_id is None:
        return UserError("errors/proxy_not_in_community.md.j2", unit=unit, community="", lead=None)
    members = await community_units(ctx.session, unit.community_id)
    lead = next((u for u in members if u.is_lead), None)
    return UserError(
        "errors/proxy_not_in_community.md.j2",
        unit=unit,
        community=await community_name(ctx.session, unit.community_id),
        lead=lead,
    )


def _usage(problem: str) -> UserError:
    return UserError("errors/usage.md.j2", problem=problem, usage=USAGE, example=EXAMPLE)
