"""Replies use the platform's short-lived route while valid; posts use the group's channel."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from bot.clock import FixedClock
from bot.delivery.resolve import fallback
from bot.deployment import Loaded, load
from bot.destinations import find_group, group_destination
from bot.messages import ChatRef, Inbound, ReplyRoute
from bot.outbox import reply_target
from tests.configs import ENV, mini, write


@pytest.fixture
def deployment(tmp_path: Path) -> Loaded:
    return load(write(tmp_path, mini()), env=ENV)


def message(clock: FixedClock, **kw: object) -> Inbound:
    fields: dict[str, object] = {
        "platform": "dingtalk",
        "event_id": "m1",
        "chat": ChatRef("dingtalk", "cidC1==", True),
        "sender_id": "staff_a_ll",
        "sender_name": "甲联络员",
        "text": "进度",
        "received_at": clock.now(),
        "source": "dingtalk_http",
    }
    fields.update(kw)
    return Inbound(**fields)  # type: ignore[arg-type]


def test_group_destination_resolves_secrets_without_showing_them(deployment: Loaded) -> None:
    dest = group_destination(deployment.spec.groups[0], deployment)
    assert (dest.channel_type, dest.chat_id) == ("wecom_webhook", "wrkADMINS")
    assert dest.secrets == {"key": "test-webhook-key"}
    assert "test-webhook-key" not in repr(dest)


def test_a_reply_keeps_the_session_route_and_falls_back_to_the_group(deployment, clock) -> None:
    route = ReplyRoute("dingtalk_session", "https://x/session", clock.now() + timedelta(hours=1))
    target = reply_target(message(clock, reply_route=route), deployment)
    assert (target.channel_type, target.url) == ("dingtalk_session", "https://x/session")
    assert "https://x/session" not in repr(target)
    later = fallback(target, deployment).destination  # once the route has expired
    assert (later.channel_type, later.chat_id) == ("dingtalk_openapi", "cidC1==")


def test_one_to_one_replies_go_to_the_sender(deployment: Loaded, clock: FixedClock) -> None:
    dm = message(clock, chat=ChatRef("dingtalk", "staff_a_ll", False))
    assert reply_target(dm, deployment).channel_type == "dingtalk_user"
    wecom = message(
        clock,
        platform="wecom",
        chat=ChatRef("wecom", "wanggw", False),
        sender_id="wanggw",
        source="wecom_app",
    )
    target = reply_target(wecom, deployment)
    assert (target.channel_type, target.chat_id, target.is_group) == (
        "wecom_app_user",
        "wanggw",
        False,
    )


def test_console_replies_stay_on_the_console(deployment: Loaded, clock: FixedClock) -> None:
    msg = message(
        clock,
        platform="console",
        chat=ChatRef("console", "g_c1", True),
        sender_id="p_a_ll",
        source="console",
    )
    assert reply_target(msg, deployment).channel_type == "console"


def test_a_chat_finds_its_configured_group(deployment: Loaded) -> None:
    groups = deployment.spec.groups
    assert groups
    for group in groups:
        first = next(
            g for g in groups if (g.platform, g.chat_id) == (group.platform, group.chat_id)
        )
        assert find_group(deployment, group.platform, group.chat_id) is first
        assert find_group(deployment, "console", group.id) is group  # the console names them
    other = "wecom" if groups[0].platform == "dingtalk" else "dingtalk"
    assert find_group(deployment, other, groups[0].chat_id) is None  # the platform counts too
    assert find_group(deployment, groups[0].platform, "no-such-chat") is None
    assert find_group(deployment, "console", "g_nowhere") is None
