"""Small pieces of shaping a neutral message that more than one platform needs."""

from __future__ import annotations

import re

from bot.messages import Mention

__all__ = ["MENTION_NOTE", "append_line", "plain_mentions", "title_of"]

MENTION_NOTE = "请以上同志关注"
DEFAULT_TITLE = "督办通知"
TITLE_CHARS = 32

_LINK = re.compile(r"!?\[([^\]\n]*)\]\([^)\n]*\)")
_TAG = re.compile(r"</?font\b[^>\n]*>|<@[^>\s]+>")
_MARKS = re.compile(r"^[#>\-*+\s]+|[*`~]")


def title_of(body: str, title: str = "") -> str:
    """The title DingTalk shows in the chat list: the given one, else the first line of text
    with its Markdown taken off."""
    if title.strip():
        return title.strip()[:TITLE_CHARS]
    for line in body.splitlines():
        text = _MARKS.sub("", _TAG.sub("", _LINK.sub(r"\1", line))).strip()
        if text:
            return text[:TITLE_CHARS]
    return DEFAULT_TITLE


def plain_mentions(mentions: tuple[Mention, ...]) -> str:
    """``@张三 @李四``: names only, for channels that cannot notify anyone."""
    return " ".join(f"@{m.name}" for m in mentions if m.name)


def append_line(body: str, line: str) -> str:
    """``line`` as a paragraph of its own after ``body`` (either may be empty)."""
    return f"{body}\n\n{line}" if body and line else body or line
