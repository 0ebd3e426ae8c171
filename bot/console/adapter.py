"""The console as a platform: what the page posts to /hooks/console becomes an Inbound.

On the console a person's platform identity is their configuration person id: `sender_id` is
`p_czj_ll1`, where WeCom would say a userid and DingTalk a staffId. A group chat's id is the
group's configuration id; a one-to-one chat's id is the person's id, as on the platforms.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Sequence
from datetime import datetime

from bot.adapters.base import HttpReply, HttpRequest, Parsed, Rejected
from bot.console.feed import ConsoleFeed
from bot.console.roster import Roster
from bot.deployment import Loaded
from bot.inbound import Dispatch, DispatchMany
from bot.messages import ChatRef, Inbound, Platform

MAX_TEXT = 4000


class ConsoleWebhook:
    path: str = "console"
    platform: Platform = "console"

    def __init__(self, deployment: Loaded, roster: Roster) -> None:
        self._groups = {g.id: g for g in deployment.spec.groups}
        self._roster = roster

    def handle(self, request: HttpRequest, now: datetime) -> Parsed:
        if request.method != "POST":
            raise Rejected(405, "only POST is accepted")
        content_type = request.headers.get("Content-Type", "").split(";")[0].strip().lower()
        if content_type != "application/json":
            raise Rejected(415, "content type is not application/json")
        try:
            data = json.loads(request.body)
        except (UnicodeDecodeError, json.JSONDecodeError):
            raise Rejected(400, "body is not JSON") from None
        if not isinstance(data, dict):
            raise Rejected(400, "body is not a JSON object")
        person_id, group_id, text = data.get("person"), data.get("group"), data.get("text")
        names = self._roster.names
        if not isinstance(person_id, str) or person_id not in names:
            raise Rejected(400, f"unknown person {_shown(person_id)}")
        if group_id is not None and (not isinstance(group_id, str) or group_id not in self._groups):
            raise Rejected(400, f"unknown group {_shown(group_id)}")
        if not isinstance(text, str) or not text.strip():
            raise Rejected(400, "empty text")
        text = text.strip()
        if len(text) > MAX_TEXT:
            raise Rejected(400, f"text of {len(text)} characters, over {MAX_TEXT}")
        if group_id is None:
            chat = ChatRef("console", person_id, is_group=False)
        else:
            chat = ChatRef("console", group_id, is_group=True, title=self._groups[group_id].name)
        event_id = uuid.uuid4().hex  # the page never retries, so any fresh id will do
        msg = Inbound(
            platform="console",
            event_id=event_id,
            chat=chat,
            sender_id=person_id,
            sender_name=names[person_id],
            text=text,
            received_at=now,
            source="console",
            mentions=self._roster.mentioned(text, person_id),
        )
        reply = HttpReply(
            body=json.dumps({"ok": True, "event_id": event_id}).encode(),
            content_type="application/json",
        )
        return Parsed(messages=(msg,), reply=reply)


def showing_inbound(feed: ConsoleFeed, dispatch: Dispatch) -> Dispatch:
    """Wrap the inbox's dispatch so that console messages appear on the feed.

    The echo happens here, after the inbox accepted the message and before the handler can
    answer it, so the page shows exactly what the bot took in, always ahead of the reply.
    """

    async def show_then_dispatch(msg: Inbound) -> None:
        if msg.platform == "console":
            feed.show_inbound(msg)
        await dispatch(msg)

    return show_then_dispatch


def showing_inbound_many(feed: ConsoleFeed, dispatch_many: DispatchMany) -> DispatchMany:
    """`showing_inbound` for the messages the inbox hands over together."""

    async def show_then_dispatch(msgs: Sequence[Inbound]) -> None:
        for msg in msgs:
            if msg.platform == "console":
                feed.show_inbound(msg)
        await dispatch_many(msgs)

    return show_then_dispatch


def _shown(value: object) -> str:
    # Whatever the page sent, logged short and quoted so it cannot forge log lines.
    return repr(value)[:66]
