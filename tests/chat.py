"""Talking to the whole bot as people do: signed DingTalk callbacks over real HTTP into the
app, replies delivered by the real outbox worker to the fake DingTalk, read back from it.

Uses the sample configuration (江城市, 58 units): community c5 (第五党建共同体) is on DingTalk,
with lead unit 住建局 (zjj) and members such as 自然资源规划局 (zrj).
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterable
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from multidict import CIMultiDict
from pydantic import SecretStr
from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from bot.adapters.base import HttpRequest, Parsed
from bot.app import DEPS, create_app
from bot.clock import FixedClock
from bot.deployment import Loaded, load
from bot.deps import Deps
from bot.models import OutboxMessage
from bot.settings import Settings
from tests.configs import SAMPLE_CONFIG, SAMPLE_SECRETS
from tests.fakes import FakeDingTalk, FakeWeCom

C5 = "cidfjfNTHmPzzZTsv7jSPOwAs=="  # 第五党建共同体工作群
STAFF = {  # person id → DingTalk staffId, from config/sample/units.yaml
    "p_zjj_ll1": "0571616757416616",  # 住建局 liaison (lead unit of c5)
    "p_zjj_sec": "0406086517397963",  # 住建局 secretary
    "p_zrj_ll1": "0343958336287704",  # 自然资源规划局 liaison (member of c5)
    "p_jtj_ll1": "0369685408830479",  # 交通运输局 liaison (member of c5)
    "p_admin_li": "0691472329833164",  # working committee admin
    "stranger": "0999999999999999",  # nobody the bot knows
    "p_zrj_sec": "0093130020671826",  # 自然资源规划局 secretary (member of c5)
    "p_jyj_ll1": "0291902104895729",  # 教育局 liaison (lead unit of c6)
    "stranger2": "0999999999999998",  # nobody the bot knows either
}


class Chat:
    def __init__(
        self,
        client: Any,
        fake: FakeDingTalk,
        clock: FixedClock,
        wecom: FakeWeCom,
        deployment: Loaded,
    ) -> None:
        self.client, self.fake, self.clock = client, fake, clock
        self.wecom = wecom  # the admins' group (g_admins) is a WeCom robot in the sample
        # The configuration as loaded: the server keeps it without its people.
        self.deployment = deployment
        self._ids = itertools.count(1)

    @property
    def deps(self) -> Deps:
        return self.client.app[DEPS]

    async def say(
        self, who: str, text: str, *, group: str | None = C5, picture: str | None = None
    ) -> list[str]:
        """Send `text` (or a picture's download code) as `who`, a key of STAFF; return the
        replies the platform showed."""
        staff = STAFF[who]
        before = len(self.fake.sent)
        body = self.fake.bot_message(
            text,
            staff,
            group or staff,
            f"msg{next(self._ids)}",
            conversation_type="2" if group else "1",
        )
        if picture is not None:
            del body["text"]
            body["msgtype"], body["content"] = "picture", {"downloadCode": picture}
        headers = self.fake.callback_headers()
        resp = await self.client.post("/hooks/dingtalk", json=body, headers=headers)
        assert resp.status == 200, await resp.text()
        await self.deps.inbox.drain()
        await self.delivered()
        return [m.text or "" for m in self.fake.sent[before:]]

    async def say_together(self, said: Iterable[tuple[str, str]]) -> list[str]:
        """Several messages (``(who, text)``) arriving at once in the c5 group: each callback
        read by the app's own DingTalk adapter, all accepted by the inbox in one go, as a
        burst queues them; the replies the platform showed, in order."""
        adapter = self.deps.adapters["dingtalk"]
        msgs = []
        for who, text in said:
            staff = STAFF[who]
            body = self.fake.bot_message(text, staff, C5, f"msg{next(self._ids)}")
            request = HttpRequest(
                "POST",
                {},
                CIMultiDict(self.fake.callback_headers()),
                json.dumps(body).encode(),
            )
            parsed = adapter.handle(request, self.clock.now())
            assert isinstance(parsed, Parsed), parsed
            msgs.extend(parsed.messages)
        before = len(self.fake.sent)
        await self.deps.inbox.accept(msgs)
        await self.deps.inbox.drain()
        await self.delivered()
        return [m.text or "" for m in self.fake.sent[before:]]

    async def delivered(self) -> None:
        """Until nothing sendable is left. The app's own worker may be mid-claim or mid-send
        beside us; a message held back by a rate limit stays pending, so pending rows are
        waited for only a few rounds."""
        patience = 30
        async with asyncio.timeout(10):
            while True:
                if await self.deps.outbox.flush():
                    continue
                async with self.ledger() as s:
                    states = dict(
                        (
                            await s.execute(
                                select(OutboxMessage.status, func.count())
                                .where(OutboxMessage.status.in_(("sending", "pending")))
                                .group_by(OutboxMessage.status)
                            )
                        ).all()
                    )
                if not states.get("sending") and (not states.get("pending") or patience <= 0):
                    return
                patience -= 1
                await asyncio.sleep(0.01)

    async def one(self, who: str, text: str, **kw: Any) -> str:
        replies = await self.say(who, text, **kw)
        assert len(replies) == 1, replies
        return replies[0]

    @asynccontextmanager
    async def ledger(self) -> AsyncIterator[AsyncSession]:
        async with self.deps.db.begin() as session:
            yield session


async def make_chat(
    aiohttp_server: Any,
    aiohttp_client: Any,
    database_url: str,
    clock: FixedClock,
    *,
    config: Path = SAMPLE_CONFIG,
    dingtalk_groups: Iterable[str] = (),
    wecom_aibot: bool = False,
    **settings: Any,
) -> Chat:
    """The whole bot on ``config`` (the sample's by default, read with SAMPLE_SECRETS), talking
    to a fake DingTalk and a fake WeCom (whose robot is the sample's admins' group).

    ``dingtalk_groups``: the conversations the fake DingTalk's robot is in (sends to any other
    are refused); ``wecom_aibot``: the WeCom AI bot's callbacks mounted, with the fake's
    credentials; ``settings``: further Settings fields (``public_url=…``, ``link_secret=…``).
    """
    fake = FakeDingTalk(clock=lambda: clock.now().timestamp())
    await fake.start(aiohttp_server)
    for group in dingtalk_groups:
        fake.add_group(group)
    wecom = FakeWeCom(clock=lambda: clock.now().timestamp())
    await wecom.start(aiohttp_server)
    wecom.add_robot(SAMPLE_SECRETS["DUBAN_SECRET_WEBHOOK_ADMINS"])
    if wecom_aibot:
        settings.update(
            wecom_bot_token=SecretStr(wecom.token),
            wecom_bot_aes_key=SecretStr(wecom.encoding_aes_key),
        )
    app_settings = Settings(
        database_url=database_url,
        config=config,
        scheduler_enabled=False,
        dingtalk_app_key=fake.app_key,
        dingtalk_app_secret=SecretStr(fake.app_secret),
        dingtalk_api_base=fake.base_url,
        dingtalk_oapi_base=fake.base_url,
        wecom_api_base=wecom.base_url,
        **settings,
    )
    deployment = load(config, env=SAMPLE_SECRETS)
    client = await aiohttp_client(create_app(app_settings, clock, deployment))
    return Chat(client, fake, clock, wecom, deployment)


@pytest.fixture
async def chat(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, clock: FixedClock
) -> Chat:
    return await make_chat(aiohttp_server, aiohttp_client, database_url, clock)
