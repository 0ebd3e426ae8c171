"""From a queued row to a destination with its secrets, at send time, and the rate key whose
window the send is charged to.

A configured group goes through its configured channel (secrets from the environment, via
the configuration). A reply route is used while it is valid; once it has expired (or expires
within a minute) the reply goes where it would have gone without a route: the configured
group, else the platform's own group send, else the one-to-one send. When that channel is not
configured in this process, the send fails as permanent and the message is dead.

The worker resolves every message it sends, so a ``Resolver`` finds groups through an index
and keeps each group's route (its secrets read once from the loaded configuration, which
does not change while it is in use).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.adapters.base import Destination
from bot.delivery.limits import DEFAULT_RATE
from bot.deployment import Loaded
from bot.deployment.schema import Group
from bot.destinations import group_destination
from bot.models import OutboxMessage
from bot.outbox import Target, groups_of, row_target

ROUTE_SAFETY = timedelta(seconds=60)  # a route this close to expiry is not worth the race
ROUTE_CHANNELS = frozenset({"dingtalk_session", "wecom_response_url"})


class Unroutable(Exception):
    """The row names nowhere this process can send to (e.g. a group gone from the config)."""


@dataclass(frozen=True, slots=True)
class Route:
    destination: Destination
    rate_key: str | None  # None: no window (the local console)
    rate_limit: int


class Resolver:
    def __init__(self, deployment: Loaded) -> None:
        self.deployment = deployment
        self._groups = groups_of(deployment)
        self._routes: dict[str, Route] = {}  # group key → its route

    def resolve(self, row: OutboxMessage, now: datetime) -> Route:
        if row.group_key is not None:  # the common case, without building a Target
            group = self._groups.by_key(row.group_key)
            if group is None:
                raise Unroutable(f"group {row.group_key} is not in the configuration")
            return self._group_route(group)
        target = row_target(row)
        if target.channel_type in ROUTE_CHANNELS:
            if target.url and (target.expires_at is None or target.expires_at - now > ROUTE_SAFETY):
                return _direct(target, target.url)
            return self.fallback(target)
        return _direct(target, "")

    def fallback(self, target: Target) -> Route:
        """Where a reply goes when its route can no longer be used."""
        group = self._groups.find(target.platform, target.chat_id)
        if group is not None:
            return self._group_route(group)
        if target.is_group:
            channel = "dingtalk_openapi" if target.platform == "dingtalk" else "wecom_aibot"
        else:  # only the AI bot hands out response_urls on WeCom: its 1:1 send answers there
            channel = "dingtalk_user" if target.platform == "dingtalk" else "wecom_aibot"
        rerouted = Target(
            target.platform, target.chat_id, channel_type=channel, is_group=target.is_group
        )
        return _direct(rerouted, "")

    def _group_route(self, group: Group) -> Route:
        route = self._routes.get(group.id)
        if route is None:
            limit = group.channel.rate_per_minute
            key = None if group.channel.type == "console" else f"group:{group.id}"
            route = Route(group_destination(group, self.deployment), key, limit)
            self._routes[group.id] = route
        return route


def resolve(row: OutboxMessage, deployment: Loaded, now: datetime) -> Route:
    return Resolver(deployment).resolve(row, now)


def fallback(target: Target, deployment: Loaded) -> Route:
    return Resolver(deployment).fallback(target)


def _direct(target: Target, url: str) -> Route:
    destination = Destination(
        target.platform, target.chat_id, target.channel_type, url=url, is_group=target.is_group
    )
    key = None if target.channel_type == "console" else f"chat:{target.platform}:{target.chat_id}"
    return Route(destination, key, DEFAULT_RATE)
