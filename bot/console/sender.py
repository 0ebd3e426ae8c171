"""Delivery to the console: the message goes onto the feed, as the chat it was meant for."""

from __future__ import annotations

from bot.adapters.base import Destination
from bot.console.feed import ConsoleFeed
from bot.console.roster import Roster
from bot.deployment import Loaded
from bot.messages import ChatRef, Outbound


class ConsoleSender:
    channel_types: tuple[str, ...] = ("console",)

    def __init__(self, feed: ConsoleFeed, deployment: Loaded, roster: Roster) -> None:
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
        # A person's chat is made when a message goes to it: a province has 200,000 people.
        self._roster = roster

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None:
        # One message is one feed event: there are no parts to resume.
        self.feed.show_outbound(self._chat(destination), message)

    def _chat(self, destination: Destination) -> ChatRef:
        chat_id = destination.chat_id
        if destination.is_group:
            known = self._groups.get(chat_id)
            if known is not None:
                return known
        elif chat_id in self._roster.names:
            return ChatRef("console", chat_id, is_group=False)
        elif (person := self._roster.accounts.get(chat_id)) is not None:
            return ChatRef("console", person, is_group=False)
        return ChatRef("console", chat_id, destination.is_group, title=chat_id)
