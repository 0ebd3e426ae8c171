"""JSON columns go through orjson (bot.db.json_text), with json's refusals kept."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import pytest
from sqlalchemy import select, text

from bot.clock import SHANGHAI
from bot.db import Database, json_text
from bot.models import InboundSeen


@dataclass
class _Point:
    x: int


def test_json_text_is_compact_utf8_with_string_keys() -> None:
    assert (
        json_text({"text": "打卡 3 已完成", 1: [True, None]})
        == '{"text":"打卡 3 已完成","1":[true,null]}'
    )


@pytest.mark.parametrize("value", [datetime(2026, 11, 2, tzinfo=SHANGHAI), _Point(1)])
def test_json_text_refuses_what_json_refuses(value: object) -> None:
    with pytest.raises(TypeError):
        json_text({"v": value})


async def test_a_json_column_stores_json_text_and_reads_it_back(db: Database) -> None:
    body = {"text": "打卡 3 已完成", "chat": ["dingtalk", "cid", True, None]}
    seen_at = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
    async with db.begin() as session:
        session.add(InboundSeen(platform="dingtalk", event_id="m1", seen_at=seen_at, body=body))
    async with db.begin() as session:
        assert await session.scalar(select(InboundSeen.body)) == body
        stored = await session.scalar(text("SELECT CAST(body AS TEXT) FROM inbound_seen"))
    # PostgreSQL's json type keeps the text as written, as SQLite does.
    assert stored == json_text(body)
