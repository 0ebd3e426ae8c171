"""The WeCom AI bot with callbacks over HTTP only (no long connection): replies go to the
response_url each callback carries, the one way to answer there."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select

from bot.clock import FixedClock
from bot.models import OutboxMessage
from tests.chat import Chat, make_chat


async def ask(chat: Chat, text: str, msgid: str) -> None:
    query, body = chat.wecom.signed_aibot_callback(text, "lihuimin", None, msgid)
    resp = await chat.client.post("/hooks/wecom-bot", params=query, json=body)
    assert resp.status == 200
    await chat.deps.inbox.drain()
    await chat.delivered()


async def test_a_private_question_is_answered_at_its_response_url(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, clock: FixedClock
) -> None:
    chat = await make_chat(aiohttp_server, aiohttp_client, database_url, clock, wecom_aibot=True)
    assert chat.deps.aibot is None  # HTTP callbacks only
    await ask(chat, "帮助", "aibot-http-1")
    (answer,) = chat.wecom.sent
    assert answer.endpoint == "aibot/response" and answer.target == "lihuimin"
    assert "帮助" in (answer.text or "") or "指令" in (answer.text or "")
    async with chat.ledger() as s:
        statuses = (await s.scalars(select(OutboxMessage.status))).all()
    assert statuses == ["sent"]
