"""Check-ins in plain words: "住建局 10月主题党日已开展" with no command and no number.

Two fallbacks, tried in this order (the order of registration below):
1. `answer_choice`: a bare number ("2", "第2个") answers the question the bot asked this
   person in this chat within the last 10 minutes ("您指的是哪一项？").
2. `plain_words`: a sentence that reads like a report is matched (bot.ledger.matching) to the
   instances of the sender's units in the view of a month (its month, quarter and year): the
   month the sentence names, else this one. One match is recorded at once, several are asked
   about, none falls through to the dispatcher's unknown-command answer.

Titles are matched against every instance of the view, not only those still owed, so that a
sentence about a task already reported is not pinned on a weaker match: a report awaiting
review is updated (as 打卡 does), an accepted or excused one is refused. A lead unit that names
a member unit reports for it (on behalf); naming a unit out of reach is refused.
"""

from __future__ import annotations

import re
from typing import Any

from bot.duerules import Period
from bot.ledger import checkins, choices, matching
from bot.ledger.instances import Listed, view_periods
from bot.ledger.people import UnitRef, Who
from bot.ledger.progress import all_units, listed, units_in_reach, view_instances
from bot.messages import Media
from bot.routing import Ctx, Router, UserError, actor_of
from bot.text import parse_number
from bot.textdates import parse_period

router = Router()
KIND = "checkin"
_ANSWER = re.compile(r"(?P<number>.+?)\s*(?P<counter>[个项条])?")


@router.fallback
async def answer_choice(ctx: Ctx, text: str) -> bool:
    answer = _ANSWER.fullmatch(text)
    number = parse_number(answer["number"]) if answer else None
    if answer is None or number is None or ctx.who is None:
        return False
    msg = ctx.msg
    choice = await choices.waiting(
        ctx.session,
        platform=msg.platform,
        chat_id=msg.chat.chat_id,
        user_id=msg.sender_id,
        kind=KIND,
        now=ctx.now,
    )
    if choice is None:
        return False
    options = await listed(ctx.session, [int(i) for i in choice.payload["ids"]])
    reach = {u.id: u for u in await units_in_reach(ctx.session, ctx.who)}
    picked = _pick(options, number, ordinal=text.startswith("第") or bool(answer["counter"]))
    if picked is None:
        await ctx.reply("replies/natural_which.md.j2", options=options, units=reach, again=True)
        return True
    await choices.settle(ctx.session, choice)
    if picked.instance.unit_id not in reach or picked.instance.status in checkins.CLOSED:
        raise UserError(
            "errors/natural_gone.md.j2", no=picked.instance.no, task_title=picked.task.title
        )
    media = tuple(Media(kind, ref) for kind, ref in choice.payload.get("media", []))
    unit = reach[picked.instance.unit_id]
    await _record(ctx, ctx.who, picked, unit, choice.payload["text"], media)
    return True


@router.fallback
async def plain_words(ctx: Ctx, text: str) -> bool:
    who = ctx.who
    if who is None or not who.units or not matching.reads_like_report(text):
        return False
    month, rest = _month(text, ctx)
    reach = {u.id: u for u in await units_in_reach(ctx.session, who)}
    named, rest = matching.units_named(
        rest, await all_units(ctx.session), lambda u: (u.name, u.short)
    )
    outside = [u for u in named if u.id not in reach]
    if outside:
        raise UserError("errors/natural_not_yours.md.j2", units=outside)
    units = named or list(who.units)
    options = await view_instances(
        ctx.session, [u.id for u in units], view_periods(month), statuses=None
    )
    by_id = {o.instance.id: o for o in options}
    keys = matching.best_matches(rest, [(o.instance.id, o.task.title) for o in options])
    if not keys:
        return False
    takes = [by_id[k] for k in keys if by_id[k].instance.status not in checkins.CLOSED]
    if not takes:
        closed = [
            (by_id[k].instance.no, by_id[k].task.title, by_id[k].instance.status) for k in keys
        ]
        raise UserError("errors/natural_closed.md.j2", items=closed)
    if len(keys) == 1:
        found = takes[0]
        await _record(ctx, who, found, reach[found.instance.unit_id], text, ctx.msg.media)
        return True
    await _ask(ctx, takes, text, reach)
    return True


def _month(text: str, ctx: Ctx) -> tuple[Period, str]:
    """The month the sentence names (else this month), and the sentence without it."""
    words, rest = matching.month_named(text)
    named = parse_period(words, ctx.now.date()) if words else None
    if named is not None and named.cadence == "monthly":
        return named, rest
    return Period.containing("monthly", ctx.now.date()), rest


async def _ask(ctx: Ctx, options: list[Listed], text: str, reach: dict[int, UnitRef]) -> None:
    ids = [o.instance.id for o in options]
    payload: dict[str, Any] = {
        "ids": ids,
        "text": text,
        "media": [[m.kind, m.ref] for m in ctx.msg.media],
    }
    await choices.ask(
        ctx.session,
        platform=ctx.msg.platform,
        chat_id=ctx.msg.chat.chat_id,
        user_id=ctx.msg.sender_id,
        kind=KIND,
        payload=payload,
        now=ctx.now,
        actor=actor_of(ctx.msg, ctx.who),
    )
    await ctx.reply("replies/natural_which.md.j2", options=options, units=reach, again=False)


def _pick(options: list[Listed], number: int, *, ordinal: bool) -> Listed | None:
    """By instance number as listed, else by position (第2个); a number that two units'
    instances share is read as a position."""
    by_no = [o for o in options if o.instance.no == number]
    if len(by_no) == 1 and not ordinal:
        return by_no[0]
    return options[number - 1] if 1 <= number <= len(options) else None


async def _record(
    ctx: Ctx, who: Who, found: Listed, unit: UnitRef, text: str, media: tuple[Media, ...]
) -> None:
    own = unit.id in {u.id for u in who.units}
    done = await checkins.record(
        ctx.session,
        found.instance,
        reporter_id=who.person_id,
        for_unit_id=unit.id,
        on_behalf=not own,
        text=text,
        media=media,
        platform=ctx.msg.platform,
        msg_id=ctx.msg.event_id,
        now=ctx.now,
        actor=actor_of(ctx.msg, who),
    )
    await ctx.reply(
        "replies/natural_recorded.md.j2",
        r=done,
        task_title=found.task.title,
        unit=unit,
        own=own,
        heard=text,
        photos=len(media),
    )
