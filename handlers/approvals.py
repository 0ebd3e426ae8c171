"""申请列表, 批准, 拒绝: admins decide bind requests (申请绑定) and the requester is told."""

from __future__ import annotations

from typing import cast

from bot.ledger import approvals
from bot.messages import Outbound, Platform
from bot.outbox import Target, enqueue
from bot.routing import Ctx, Router, UserError, actor_of
from handlers.review import leading_number

router = Router()
APPROVE_USAGE, APPROVE_EXAMPLE = "批准 申请编号", "批准 3"
REJECT_USAGE, REJECT_EXAMPLE = "拒绝 申请编号 [理由]", "拒绝 3 不是本单位党务工作人员"
# How a one-to-one message reaches a person on each platform.
DIRECT = {"dingtalk": "dingtalk_user", "wecom": "wecom_app_user", "console": "console"}


@router.command(
    "申请列表",
    "requests",
    summary="查看等待批准的绑定申请",
    usage="申请列表",
    example="申请列表",
    audience="admin",
)
async def pending(ctx: Ctx, args: str) -> None:
    await ctx.reply("replies/approvals_list.md.j2", items=await approvals.pending(ctx.session))


@router.command(
    "批准",
    "approve",
    summary="批准绑定申请，申请人成为该单位联络员",
    usage=APPROVE_USAGE,
    example=APPROVE_EXAMPLE,
    audience="admin",
)
async def approve(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    found = await _request(ctx, args, APPROVE_USAGE, APPROVE_EXAMPLE)
    done = await approvals.approve(
        ctx.session, found, admin_id=who.person_id, now=ctx.now, actor=actor_of(ctx.msg, who)
    )
    await _tell_requester(ctx, found, "replies/approvals_notice_approved.md.j2", reason="")
    await ctx.reply("replies/approvals_done.md.j2", found=found, approved=done, reason="")


@router.command(
    "拒绝",
    "deny",
    summary="拒绝绑定申请，可写理由",
    usage=REJECT_USAGE,
    example=REJECT_EXAMPLE,
    audience="admin",
)
async def reject(ctx: Ctx, args: str) -> None:
    who = ctx.admin()
    found = await _request(ctx, args, REJECT_USAGE, REJECT_EXAMPLE)
    _, reason = leading_number(args)
    await approvals.reject(
        ctx.session,
        found,
        admin_id=who.person_id,
        reason=reason,
        now=ctx.now,
        actor=actor_of(ctx.msg, who),
    )
    await _tell_requester(ctx, found, "replies/approvals_notice_rejected.md.j2", reason=reason)
    await ctx.reply("replies/approvals_done.md.j2", found=found, approved=None, reason=reason)


async def _request(ctx: Ctx, args: str, usage: str, example: str) -> approvals.Request:
    no, _ = leading_number(args)
    if no is None:
        raise UserError(
            "errors/usage.md.j2",
            problem="请写上申请编号（发送 **申请列表** 查看）。",
            usage=usage,
            example=example,
        )
    try:
        return await approvals.open_request(ctx.session, no)
    except approvals.Refused as e:
        raise UserError("errors/approvals_refused.md.j2", refusal=e) from None


async def _tell_requester(
    ctx: Ctx, found: approvals.Request, template: str, *, reason: str
) -> None:
    request = found.request
    body = ctx.renderer.render(template, now=ctx.now, unit=found.unit, reason=reason)
    await enqueue(
        ctx.session,
        Outbound(body, title="绑定申请结果"),
        to=Target(
            cast(Platform, request.platform),
            request.user_id,
            channel_type=DIRECT.get(request.platform, ""),
            is_group=False,
        ),
        kind="bind",
        dedupe_key=f"bind:{request.id}:{request.status}",
        now=ctx.now,
    )
