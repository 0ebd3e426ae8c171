"""What the console shows: a bounded log of what was said where, fanned out live.

Everything typed on the console and everything the bot delivers to it lands here. The log keeps
the last few hundred events so that a page opened (or reconnected) later can catch up; each open
page holds a Subscription whose queue the feed fills without ever waiting, so a stalled browser
can only lose its own connection, never slow the bot down.
"""

from __future__ import annotations

import asyncio
import base64
import uuid
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Literal

from bot.clock import Clock
from bot.messages import ChatRef, Inbound, Outbound

BOT_ID = "bot"
BOT_NAME = "督办机器人"


@dataclass(frozen=True, slots=True)
class ConsoleEvent:
    seq: int
    kind: Literal["inbound", "outbound"]
    at: datetime
    chat: ChatRef  # chat_id: a group id, or the person id of a one-to-one chat
    sender_id: str  # a person id, or BOT_ID
    sender_name: str
    body: str
    format: Literal["markdown", "text"] = "text"
    title: str = ""
    mentions: tuple[str, ...] = ()  # names, as the page shows them
    has_image: bool = False
    image: str = ""  # a data: URL, so the quick start shows the charts it posts

    def as_json(self) -> dict[str, object]:
        return {
            "seq": self.seq,
            "kind": self.kind,
            "at": self.at.isoformat(),
            "chat": {
                "id": self.chat.chat_id,
                "title": self.chat.title,
                "is_group": self.chat.is_group,
            },
            "sender": {"id": self.sender_id, "name": self.sender_name},
            "body": self.body,
            "format": self.format,
            "title": self.title,
            "mentions": list(self.mentions),
            "has_image": self.has_image,
            "image": self.image,
        }


class Subscription:
    """One reader of the live feed; `get()` returns None once it has ended."""

    def __init__(self, backlog: list[ConsoleEvent], limit: int) -> None:
        self.backlog = backlog
        self._limit = limit
        self._queue: asyncio.Queue[ConsoleEvent | None] = asyncio.Queue()
        self.ended = False

    async def get(self) -> ConsoleEvent | None:
        return await self._queue.get()

    def offer(self, event: ConsoleEvent) -> None:
        if self.ended:
            return
        if self._queue.qsize() >= self._limit:
            # A reader this far behind is cut off; its browser reconnects with Last-Event-ID
            # and catches up from the log instead.
            self.end()
            return
        self._queue.put_nowait(event)

    def end(self) -> None:
        if not self.ended:
            self.ended = True
            self._queue.put_nowait(None)


class ConsoleFeed:
    def __init__(self, clock: Clock, limit: int = 500, queue_limit: int = 1000) -> None:
        self.clock = clock
        # Sequence numbers restart with the process; the epoch tells a reconnecting page
        # whether its Last-Event-ID still means anything.
        self.epoch = uuid.uuid4().hex[:8]
        self._log: deque[ConsoleEvent] = deque(maxlen=limit)
        self._queue_limit = queue_limit
        self._subscribers: set[Subscription] = set()
        self._seq = 0
        self.closed = False

    def show_inbound(self, msg: Inbound) -> ConsoleEvent:
        return self._publish(
            ConsoleEvent(
                0, "inbound", msg.received_at, msg.chat, msg.sender_id, msg.sender_name, msg.text
            )
        )

    def show_outbound(self, chat: ChatRef, msg: Outbound) -> ConsoleEvent:
        return self._publish(
            ConsoleEvent(
                0,
                "outbound",
                self.clock.now(),
                chat,
                BOT_ID,
                BOT_NAME,
                msg.body,
                format=msg.format,
                title=msg.title,
                mentions=tuple(m.name for m in msg.mentions),
                has_image=msg.image is not None,
                image=_data_url(msg.image),
            )
        )

    def recent(self, after: str | None = None) -> list[ConsoleEvent]:
        """The log, or only what follows the event id `after` when it is from this process."""
        epoch, _, seq = (after or "").partition(":")
        if epoch != self.epoch or not seq.isdigit():
            return list(self._log)
        return [e for e in self._log if e.seq > int(seq)]

    def event_id(self, event: ConsoleEvent) -> str:
        return f"{self.epoch}:{event.seq}"

    @contextmanager
    def subscribe(self, after: str | None = None) -> Iterator[Subscription]:
        # Snapshot and registration happen in one step of the event loop: nothing appended in
        # between can be missed or seen twice.
        sub = Subscription(self.recent(after), self._queue_limit)
        if self.closed:
            sub.end()
        self._subscribers.add(sub)
        try:
            yield sub
        finally:
            self._subscribers.discard(sub)

    def close(self) -> None:
        """End every live stream (on shutdown) so that no request holds the server open."""
        self.closed = True
        for sub in list(self._subscribers):
            sub.end()

    def _publish(self, draft: ConsoleEvent) -> ConsoleEvent:
        self._seq += 1
        event = replace(draft, seq=self._seq)
        self._log.append(event)
        for sub in list(self._subscribers):
            sub.offer(event)
        return event


def _data_url(image: bytes | None) -> str:
    if image is None:
        return ""
    kind = "png" if image.startswith(b"\x89PNG") else "jpeg"
    return f"data:image/{kind};base64,{base64.b64encode(image).decode('ascii')}"
