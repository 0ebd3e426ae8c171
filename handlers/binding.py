"""申请绑定: someone the bot does not know asks to act for a unit; the committee decides.

The request goes to the admins' group at once, with the commands that decide it.
"""

from __future__ import annotations

from bot.ledger.binding import pending_request_for, request_binding
from bot.messages import Outbound
from bot.outbox import enqueue, group_target
from bot.routing import Ctx, Router, UserError, actor_of
from handlers.proxy import resolve_unit

router = Router()
USAGE, EXAMPLE = "申请绑定 单位", "申请绑定 交通运输局"
PLATFORM_NAMES = {"dingtalk": "钉钉", "wecom": "企业微信", "console": "控制台"}


@router.command(
    "申请绑定",
    summary="申请成为某单位的联络员，由机关工委批准",
    usage=USAGE,
    example=EXAMPLE,
)
async def request_bind(ctx: Ctx, args: str) -> None:
    if ctx.who is not None:
        raise UserError("errors/binding_already_known.md.j2", person=ctx.who)
    wanted = args.strip()
    if not wanted:
        raise UserError(
            "errors/usage.md.j2", problem="请写上您所在的单位。", usage=USAGE, example=EXAMPLE
        )
    msg = ctx.msg
    earlier = await pending_request_for(ctx.session, msg.platform, msg.sender_id)
    if earlier is not None:
        raise UserError("errors/binding_pending.md.j2", number=earlier.id)
    unit = await resolve_unit(ctx, wanted)
    name = msg.sender_name.strip() or msg.sender_id
    request = await request_binding(
        ctx.session,
        platform=msg.platform,
        user_id=msg.sender_id,
        name=name,
        unit_id=unit.id,
        now=ctx.now,
        actor=actor_of(msg, None),
    )
    notified = await _tell_admins(ctx, request.id, name, unit.name)
    await ctx.reply(
        "replies/binding_requested.md.j2", request=request, unit=unit, notified=notified
    )


async def _tell_admins(ctx: Ctx, number: int, name: str, unit_name: str) -> bool:
    spec = ctx.deployment.spec
    group = next((g for g in spec.groups if g.id == spec.committee.admin_group), None)
    if group is None:
        return False
    body = ctx.renderer.render(
        "replies/binding_admin_notice.md.j2",
        number=number,
        person=name,
        user_id=ctx.msg.sender_id,
        platform=PLATFORM_NAMES.get(ctx.msg.platform, ctx.msg.platform),
        unit_name=unit_name,
        now=ctx.now,
    )
    await enqueue(
        ctx.session,
        Outbound(body, title=f"绑定申请 {number}"),
        to=group_target(group),
        kind="bind_request",
        dedupe_key=f"bind:{ctx.msg.platform}:{ctx.msg.event_id}"[:255],
        now=ctx.now,
    )
    return True
