"""From a queued row to a destination with its secrets, at send time, and the rate key whose
window the send is charged to.

A configured group goes through its configured channel (secrets from the environment, via
the configuration). A reply route is used while it is valid; once it has expired (or expires
within a minute) the reply goes where it would have gone without a route: the configured
group, else the platform's own group send, else the one-to-one send. When that channel is not
configured in this process, the send fails as permanent and the message is dead.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.adapters.base import Destination
from bot.delivery.limits import DEFAULT_RATE
from bot.deployment import Loaded
from bot.deployment.schema import Group
from bot.destinations import find_group, group_destination
from bot.models import OutboxMessage
from bot.outbox import Target, row_target

ROUTE_SAFETY = timedelta(seconds=60)  # a route this close to expiry is not worth the race
ROUTE_CHANNELS = frozenset({"dingtalk_session", "wecom_response_url"})


class Unroutable(Exception):
    """The row names nowhere this process can send to (e.g. a group gone from the config)."""


@dataclass(frozen=True, slots=True)
class Route:
    destination: Destination
    rate_key: str | None  # None: no window (the local console)
    rate_limit: int


def resolve(row: OutboxMessage, deployment: Loaded, now: datetime) -> Route:
    target = row_target(row)
    if target.group_key is not None:
        group = next((g for g in deployment.spec.groups if g.id == target.group_key), None)
        if group is None:
            raise Unroutable(f"group {target.group_key} is not in the configuration")
        return _group_route(group, deployment)
    if target.channel_type in ROUTE_CHANNELS:
        if target.url and (target.expires_at is None or target.expires_at - now > ROUTE_SAFETY):
            return _direct(target, target.url)
        return fallback(target, deployment)
    return _direct(target, "")


def fallback(target: Target, deployment: Loaded) -> Route:
    """Where a reply goes when its route can no longer be used."""
    group = find_group(deployment, target.platform, target.chat_id)
    if group is not None:
        return _group_route(group, deployment)
    if target.is_group:
        channel = "dingtalk_openapi" if target.platform == "dingtalk" else "wecom_aibot"
    else:  # only the AI bot hands out response_urls on WeCom: its 1:1 send answers there
        channel = "dingtalk_user" if target.platform == "dingtalk" else "wecom_aibot"
    rerouted = Target(
        target.platform, target.chat_id, channel_type=channel, is_group=target.is_group
    )
    return _direct(rerouted, "")


def _group_route(group: Group, deployment: Loaded) -> Route:
    limit = group.channel.rate_per_minute
    key = None if group.channel.type == "console" else f"group:{group.id}"
    return Route(group_destination(group, deployment), key, limit)


def _direct(target: Target, url: str) -> Route:
    destination = Destination(
        target.platform, target.chat_id, target.channel_type, url=url, is_group=target.is_group
    )
    key = None if target.channel_type == "console" else f"chat:{target.platform}:{target.chat_id}"
    return Route(destination, key, DEFAULT_RATE)
