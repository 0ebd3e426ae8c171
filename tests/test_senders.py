"""Posting into configured groups through the senders the settings call for, over real HTTP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import aiohttp
import pytest
from pydantic import SecretStr

from bot.adapters.base import DeliveryError, Destination
from bot.clock import FixedClock
from bot.deployment import load
from bot.destinations import group_destination
from bot.messages import Mention, Outbound
from bot.senders import build_senders
from bot.settings import Settings
from tests.configs import ENV, mini, write
from tests.fakes import FakeDingTalk, FakeWeCom


async def test_each_group_is_posted_into_through_its_channel(
    aiohttp_server: Any, tmp_path: Path, clock: FixedClock
) -> None:
    epoch = lambda: clock.now().timestamp()  # noqa: E731
    wecom, dingtalk = FakeWeCom(clock=epoch), FakeDingTalk(clock=epoch)
    await wecom.start(aiohttp_server)
    await dingtalk.start(aiohttp_server)
    wecom.add_robot("test-webhook-key")
    dingtalk.add_group("cidC1==")
    deployment = load(write(tmp_path, mini()), env=ENV)
    settings = Settings(
        wecom_api_base=wecom.base_url,
        dingtalk_api_base=dingtalk.base_url,
        dingtalk_app_key=dingtalk.app_key,
        dingtalk_app_secret=SecretStr(dingtalk.app_secret),
    )
    admins, community = deployment.spec.groups
    message = Outbound(
        "## 本月任务\n- 甲局：主题党日，11月25日前",
        title="本月任务",
        mentions=(Mention("王工委", user_id="wanggw"),),
    )
    async with aiohttp.ClientSession() as http:
        senders = build_senders(settings, http, clock)
        await senders.send(group_destination(admins, deployment), message)
        await senders.send(group_destination(community, deployment), message)
        with pytest.raises(DeliveryError) as refused:
            await senders.send(Destination("wecom", "x", "wecom_appchat"), message)
    assert not refused.value.retryable  # no app secret here: not configured, not retried
    [markdown, mention] = wecom.sent_to("test-webhook-key")
    assert markdown.msgtype == "markdown" and "主题党日" in (markdown.text or "")
    assert mention.payload["text"]["mentioned_list"] == ["wanggw"]
    [group_post] = dingtalk.sent_to("cidC1==")
    assert group_post.msgtype == "sampleMarkdown" and "主题党日" in (group_post.text or "")
