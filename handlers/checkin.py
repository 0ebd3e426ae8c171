"""打卡 / 报送 and 撤回: a unit's liaison reports instances done, with text and photos."""

from __future__ import annotations

from bot.ledger import checkins
from bot.ledger.people import UnitRef, Who
from bot.routing import Ctx, Router, UserError, actor_of
from bot.text import parse_numbers

router = Router()
USAGE, EXAMPLE = "打卡 编号 说明", "打卡 12 已召开10月主题党日，照片随后发"


@router.command(
    "打卡",
    "报送",
    "checkin",
    summary="报送任务完成情况，可附照片",
    usage=USAGE,
    example=EXAMPLE,
    audience="worker",
    together=True,
)
async def checkin(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    numbers, text = parse_numbers(args)
    if not numbers:
        raise UserError(
            "errors/usage.md.j2", problem="请写上要报送的任务编号。", usage=USAGE, example=EXAMPLE
        )
    if not text and not ctx.msg.media:
        raise UserError(
            "errors/usage.md.j2",
            problem="请写一句完成情况，或附上照片。",
            usage=USAGE,
            example=EXAMPLE,
        )
    done, refused, titles = [], [], {}
    for no in numbers:
        own = await _own_instance(ctx, who, no)
        found = own.found
        titles[found.instance.id] = found.task.title
        try:
            done.append(
                await checkins.record(
                    ctx.session,
                    found.instance,
                    reporter_id=who.person_id,
                    for_unit_id=found.instance.unit_id,
                    on_behalf=False,
                    text=text,
                    media=ctx.msg.media,
                    platform=ctx.msg.platform,
                    msg_id=ctx.msg.event_id,
                    now=ctx.now,
                    actor=actor_of(ctx.msg, who),
                    current=own.current,
                )
            )
        except checkins.CheckInRefused as e:
            refused.append((found, e.reason))
    await ctx.reply(
        "replies/checkin_ok.md.j2",
        done=done,
        refused=refused,
        titles=titles,
        photos=len(ctx.msg.media),
    )


@router.command(
    "撤回",
    "withdraw",
    summary="撤回尚未审核的报送",
    usage="撤回 编号",
    example="撤回 12",
    audience="worker",
    together=True,
)
async def withdraw(ctx: Ctx, args: str) -> None:
    who = ctx.worker()
    numbers, _ = parse_numbers(args)
    if len(numbers) != 1:
        raise UserError(
            "errors/usage.md.j2",
            problem="请写一个要撤回的任务编号。",
            usage="撤回 编号",
            example="撤回 12",
        )
    own = await _own_instance(ctx, who, numbers[0])
    withdrawn = await checkins.withdraw(
        ctx.session,
        own.found.instance,
        now=ctx.now,
        actor=actor_of(ctx.msg, who),
        current=own.current,
    )
    if withdrawn is None:
        raise UserError("errors/nothing_to_withdraw.md.j2", no=numbers[0])
    await ctx.reply("replies/withdrawn.md.j2", it=own.found)


@router.fallback
async def photos_after_checkin(ctx: Ctx, text: str) -> bool:
    """Pictures with no command, shortly after a check-in, are its evidence."""
    if text or not ctx.msg.media or ctx.who is None:
        return False
    recent = await checkins.recent_by(ctx.session, ctx.who.person_id, ctx.now)
    if not recent:
        return False
    checkins.add_media(ctx.session, recent[0], ctx.msg.media, ctx.msg.platform, ctx.now)
    ctx.audit("checkin.attach", "checkin", str(recent[0].id), after={"photos": len(ctx.msg.media)})
    await ctx.reply("replies/photos_attached.md.j2", count=len(ctx.msg.media))
    return True


async def _own_instance(ctx: Ctx, who: Who, no: int) -> checkins.Numbered:
    found = await checkins.numbered(ctx.session, [u.id for u in _units(who)], no)
    if found is None:
        raise UserError("errors/no_such_instance.md.j2", no=no)
    return found


def _units(who: Who) -> tuple[UnitRef, ...]:
    return who.units
