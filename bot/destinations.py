"""A configured group's destination: its channel with the secrets resolved from the environment.

Replies are addressed by `bot.outbox.reply_target` and resolved at send time by
`bot.delivery.resolve` (the platform's reply route while valid, else the group or the sender).
"""

from __future__ import annotations

from bot.adapters.base import Destination
from bot.deployment import Loaded
from bot.deployment.schema import Group


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
