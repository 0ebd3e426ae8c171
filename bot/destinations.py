"""A configured group's destination: its channel with the secrets resolved from the environment.

Replies are addressed by `bot.outbox.reply_target` and resolved at send time by
`bot.delivery.resolve` (the platform's reply route while valid, else the group or the sender).
"""

from __future__ import annotations

from bot.adapters.base import Destination
from bot.deployment import Loaded
from bot.deployment.schema import Group
from bot.outbox import groups_of


def group_destination(group: Group, deployment: Loaded) -> Destination:
    channel = group.channel
    secrets = {
        name: value
        for name in ("key", "access_token", "secret")
        if (value := deployment.secret(getattr(channel, name))) is not None
    }
    return Destination(group.platform, group.chat_id, channel.type, secrets)


def find_group(deployment: Loaded, platform: str, chat_id: str) -> Group | None:
    """The first group configured for the chat (the console names groups by their id)."""
    return groups_of(deployment).find(platform, chat_id)
