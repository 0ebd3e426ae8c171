"""Coalescing: pending messages of one kind to one chat go out as a single post.

Ten units' reminders would otherwise spend ten of the group's twenty posts a minute. The
bodies are joined with a blank line, mentions merged without repeats, as long as the joined
body fits the channel's one-request budget; whatever does not fit waits for the next post.
Only messages queued with ``coalesce=True`` join, only behind one another (never across a
message that must go out between them), and never one with an image.
"""

from __future__ import annotations

from collections.abc import Sequence

from bot.messages import Mention, Outbound
from bot.models import OutboxMessage
from bot.outbox import message_from_json

SEPARATOR = "\n\n"


def _size(text: str) -> int:
    return len(text.encode("utf-8"))


def readable(rows: Sequence[OutboxMessage]) -> list[tuple[OutboxMessage, Outbound]]:
    """Rows with their stored messages; stops at one that cannot be read (it goes alone)."""
    out = []
    for row in rows:
        try:
            out.append((row, message_from_json(row.body)))
        except ValueError:
            break
    return out


def joinable(head: Outbound, other: Outbound) -> bool:
    return other.format == head.format and head.image is None and other.image is None


def how_many_fit(head: Outbound, candidates: Sequence[Outbound], budget: int) -> int:
    """How many of ``candidates`` (in order) can join ``head`` within ``budget`` bytes."""
    size = _size(head.body) + _names(head.mentions)
    names = {_key(m) for m in head.mentions}
    count = 0
    for other in candidates:
        if not joinable(head, other):
            break
        extra = [m for m in other.mentions if _key(m) not in names]
        grown = size + _size(SEPARATOR) + _size(other.body) + _names(tuple(extra))
        if grown > budget:
            break
        size, count = grown, count + 1
        names.update(_key(m) for m in extra)
    return count


def merge(messages: Sequence[Outbound]) -> Outbound:
    """One post saying what ``messages`` say, in order; the first one's title and format."""
    head = messages[0]
    if len(messages) == 1:
        return head
    mentions: dict[str, Mention] = {}
    for message in messages:
        for mention in message.mentions:
            mentions.setdefault(_key(mention), mention)
    return Outbound(
        body=SEPARATOR.join(m.body for m in messages),
        format=head.format,
        title=head.title,
        mentions=tuple(mentions.values()),
    )


def _key(mention: Mention) -> str:
    """One person once: by user id, else by mobile, else by name."""
    if mention.user_id:
        return f"user:{mention.user_id}"
    return f"mobile:{mention.mobile}" if mention.mobile else f"name:{mention.name}"


def _names(mentions: tuple[Mention, ...]) -> int:
    # Senders that cannot notify write "@name" at the end: count it against the budget.
    return sum(_size(m.name) + 2 for m in mentions)
