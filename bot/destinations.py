"""Where a message goes: a configured group's channel, or the way back to whoever wrote.

Scheduled posts always use the group's configured channel. A reply prefers the route the
platform handed out with the message (DingTalk's sessionWebhook, WeCom's response_url) while it
is still valid, because it costs nothing from the robot's 20-a-minute budget; after that it
falls back to the group's channel, or to the app's one-to-one send.
"""

from __future__ import annotations

from datetime import datetime

from bot.adapters.base import Destination
from bot.deployment import Loaded
from bot.deployment.schema import Group
from bot.messages import Inbound

# A reply route that expires within this margin is not worth the race.
_SAFETY_SECONDS = 60


def group_destination(group: Group, deployment: Loaded) -> Destination:
    channel = group.channel
    secrets = {
        name: value
        for name in ("key", "access_token", "secret")
        if (value := deployment.secret(getattr(channel, name))) is not None
    }
    return Destination(group.platform, group.chat_id, channel.type, secrets)


def find_group(deployment: Loaded, platform: str, chat_id: str) -> Group | None:
    for group in deployment.spec.groups:
        if group.platform == platform and group.chat_id == chat_id:
            return group
    # The console speaks for configured groups by their configuration id.
    if platform == "console":
        return next((g for g in deployment.spec.groups if g.id == chat_id), None)
    return None


def reply_destination(msg: Inbound, deployment: Loaded, now: datetime) -> Destination:
    route = msg.reply_route
    if route and (
        route.expires_at is None or (route.expires_at - now).total_seconds() > _SAFETY_SECONDS
    ):
        channel = "dingtalk_session" if route.kind == "dingtalk_session" else "wecom_response_url"
        return Destination(
            msg.platform, msg.chat.chat_id, channel, url=route.url, is_group=msg.chat.is_group
        )
    if msg.platform == "console":
        return Destination("console", msg.chat.chat_id, "console", is_group=msg.chat.is_group)
    if msg.chat.is_group:
        group = find_group(deployment, msg.platform, msg.chat.chat_id)
        if group is not None:
            return group_destination(group, deployment)
        # An unconfigured group the robot was added to: answer with the platform's own API.
        channel = "dingtalk_openapi" if msg.platform == "dingtalk" else "wecom_aibot"
        return Destination(msg.platform, msg.chat.chat_id, channel)
    channel = "dingtalk_user" if msg.platform == "dingtalk" else "wecom_app_user"
    if msg.source == "wecom_aibot":
        channel = "wecom_aibot"
    return Destination(msg.platform, msg.sender_id, channel, is_group=False)
