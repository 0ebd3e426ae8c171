"""Delivery to the console: the message goes onto the feed, as the chat it was meant for."""

from __future__ import annotations

from bot.adapters.base import Destination
from bot.console.feed import ConsoleFeed
from bot.deployment import Loaded
from bot.messages import ChatRef, Outbound


class ConsoleSender:
    channel_types: tuple[str, ...] = ("console",)

    def __init__(self, feed: ConsoleFeed, deployment: Loaded) -> None:
        self.feed = feed
        spec = deployment.spec
        # A destination may name a chat by configuration id (a console reply) or by the
        # platform's own id (a WeCom/DingTalk group or user kept on the console by
        # DUBAN_DELIVERY=console); both land on the same chat of the page.
        self._groups: dict[str, ChatRef] = {}
        for g in spec.groups:
            chat = ChatRef("console", g.id, is_group=True, title=g.name)
            self._groups.setdefault(g.chat_id, chat)
            self._groups[g.id] = chat
        self._people: dict[str, ChatRef] = {}
        for p in spec.people:
            chat = ChatRef("console", p.id, is_group=False)
            for account in (p.wecom, p.dingtalk):
                if account:
                    self._people.setdefault(account, chat)
            self._people[p.id] = chat

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None:
        # One message is one feed event: there are no parts to resume.
        self.feed.show_outbound(self._chat(destination), message)

    def _chat(self, destination: Destination) -> ChatRef:
        known = self._groups if destination.is_group else self._people
        return known.get(destination.chat_id) or ChatRef(
            "console", destination.chat_id, destination.is_group, title=destination.chat_id
        )
