"""投递状态 and 投递重试: the outbox as admins see it — queues per channel, dead messages, and
sending a dead message again."""

from __future__ import annotations

from bot.delivery import queue_status, retry_dead
from bot.routing import Ctx, Router, UserError
from bot.text import parse_numbers

router = Router()
RETRY_USAGE, RETRY_EXAMPLE = "投递重试 编号", "投递重试 12"
ROUTES = {
    "dingtalk_session": "钉钉会话回复",
    "dingtalk_openapi": "钉钉群（应用机器人）",
    "dingtalk_user": "钉钉单聊",
    "wecom_response_url": "企业微信会话回复",
    "wecom_aibot": "企业微信智能机器人",
    "wecom_app_user": "企业微信应用消息",
    "console": "本地控制台",
}
KINDS = {"reply": "回复", "announce": "公告", "alert": "告警"}
_ERROR_SHOWN = 120


@router.command(
    "投递 状态",
    "投递",
    "delivery status",
    summary="查看消息投递队列和发送失败的消息",
    usage="投递状态",
    example="投递状态",
    audience="admin",
)
async def status(ctx: Ctx, args: str) -> None:
    found = await queue_status(ctx.session)
    names = {g.id: g.name for g in ctx.deployment.spec.groups} | ROUTES
    errors = {d.id: _short(d.last_error) for d in found.dead}
    await ctx.reply(
        "replies/delivery_status.md.j2", status=found, names=names, kinds=KINDS, errors=errors
    )


@router.command(
    "投递 重试",
    "delivery retry",
    summary="重新发送投递失败的消息",
    usage=RETRY_USAGE,
    example=RETRY_EXAMPLE,
    audience="admin",
)
async def retry(ctx: Ctx, args: str) -> None:
    numbers, rest = parse_numbers(args)
    if not numbers or rest:
        raise UserError(
            "errors/usage.md.j2",
            problem="请写上要重发的消息编号（见 投递状态）。",
            usage=RETRY_USAGE,
            example=RETRY_EXAMPLE,
        )
    revived, missing = [], []
    for no in numbers:
        count = await retry_dead(ctx.session, no, ctx.now)
        if count:
            revived.append((no, count))
            ctx.audit("outbox.retry", "outbox", str(no), {"status": "dead"}, {"status": "pending"})
        else:
            missing.append(no)
    if not revived:
        raise UserError("errors/delivery_not_dead.md.j2", numbers=missing)
    await ctx.reply("replies/delivery_retried.md.j2", revived=revived, missing=missing)


def _short(error: str) -> str:
    error = " ".join(error.split())
    return error if len(error) <= _ERROR_SHOWN else error[:_ERROR_SHOWN] + "…"
