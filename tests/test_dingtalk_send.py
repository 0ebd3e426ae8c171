"""DingTalk senders against FakeDingTalk over real HTTP: payloads, signing, tokens, failures."""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from bot.adapters.base import Destination
from bot.adapters.dingtalk_send import (
    DingTalkOpenApiSender,
    DingTalkSessionSender,
    DingTalkWebhookSender,
)
from bot.adapters.outbound import PartDeliveryError
from bot.clock import FixedClock
from bot.messages import Mention, Outbound
from tests.fakes import FakeDingTalk
from tests.fakes import dingtalk as dt
from tests.test_split import chinese_report

APP_SECRET = "ding-app-secret-Hq8Kd2Pw"
ROBOT_TOKEN = "b7c1e0d4a9f2robot-token-8e3f"
SIGN_SECRET = "SEC5f0c2a9e1d7b3c8e4f6a0b2d9c1e7f3a5b8d0c2e4f6a8b0"
MENTIONS = (Mention("张三", user_id="zhangsan"), Mention("李四", mobile="13800000000"))


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def dingtalk(aiohttp_server: Any, clock: FixedClock) -> FakeDingTalk:
    fake = FakeDingTalk(app_secret=APP_SECRET, clock=lambda: clock.now().timestamp())
    await fake.start(aiohttp_server)
    fake.add_group("cid-g1")
    fake.add_robot(ROBOT_TOKEN, secret=SIGN_SECRET)
    fake.add_robot("kw-token", keywords=("督办",))
    return fake


@pytest.fixture
def openapi(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk, clock: FixedClock
) -> DingTalkOpenApiSender:
    return DingTalkOpenApiSender(
        http,
        api_base=dingtalk.base_url,
        clock=clock,
        app_key=dingtalk.app_key,
        app_secret=APP_SECRET,
        robot_code=dingtalk.robot_code,
        timeout=0.2,
    )


@pytest.fixture
def custom(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk, clock: FixedClock
) -> DingTalkWebhookSender:
    return DingTalkWebhookSender(http, api_base=dingtalk.base_url, clock=clock, timeout=0.2)


@pytest.fixture
def session(http: aiohttp.ClientSession, clock: FixedClock) -> DingTalkSessionSender:
    return DingTalkSessionSender(http, clock=clock, timeout=0.2)


GROUP = Destination("dingtalk", "cid-g1", "dingtalk_openapi")


def robot(token: str = ROBOT_TOKEN, secret: str | None = SIGN_SECRET) -> Destination:
    secrets = {"access_token": token} | ({"secret": secret} if secret else {})
    return Destination("dingtalk", "g1", "dingtalk_webhook", secrets=secrets)


def token_calls(fake: FakeDingTalk) -> int:
    return sum(1 for c in fake.calls if c.path == "/v1.0/oauth2/accessToken")


# --- OpenAPI robot -------------------------------------------------------------------------


async def test_openapi_group_markdown_payload(
    openapi: DingTalkOpenApiSender, dingtalk: FakeDingTalk
) -> None:
    await openapi.send(GROUP, Outbound("## 本周安排\n- 学习", title="学习提醒"))
    [sent] = dingtalk.sent
    assert (sent.endpoint, sent.target, sent.msgtype) == (
        "groupMessages/send",
        "cid-g1",
        "sampleMarkdown",
    )
    assert sent.payload["robotCode"] == dingtalk.robot_code
    assert json.loads(sent.payload["msgParam"]) == {
        "title": "学习提醒",
        "text": "## 本周安排\n- 学习",
    }


async def test_openapi_text_to_one_user_with_plain_mentions(
    openapi: DingTalkOpenApiSender, dingtalk: FakeDingTalk
) -> None:
    user = Destination("dingtalk", "staff-1", "dingtalk_user", is_group=False)
    await openapi.send(user, Outbound("请确认", format="text", mentions=MENTIONS))
    [sent] = dingtalk.sent
    assert (sent.endpoint, sent.msgtype) == ("oToMessages/batchSend", "sampleText")
    assert sent.payload["userIds"] == ["staff-1"]
    assert json.loads(sent.payload["msgParam"]) == {"content": "请确认\n\n@张三 @李四"}


async def test_openapi_title_defaults_to_the_first_line(
    openapi: DingTalkOpenApiSender, dingtalk: FakeDingTalk
) -> None:
    await openapi.send(GROUP, Outbound("### **逾期**通报\n内容"))
    assert json.loads(dingtalk.sent[0].payload["msgParam"])["title"] == "逾期通报"


async def test_openapi_long_markdown_splits_within_msgparam_limit(
    openapi: DingTalkOpenApiSender, dingtalk: FakeDingTalk
) -> None:
    body = chinese_report(300)
    await openapi.send(GROUP, Outbound(body))
    params = [m.payload["msgParam"] for m in dingtalk.sent]
    assert len(params) >= 3
    assert all(len(p.encode()) <= dt.MSG_PARAM_MAX_BYTES for p in params)
    assert json.loads(params[-1])["text"].endswith(f"（{len(params)}/{len(params)}）")


async def test_openapi_token_cached_refreshed_and_replaced_when_revoked(
    openapi: DingTalkOpenApiSender, dingtalk: FakeDingTalk, clock: FixedClock
) -> None:
    for i in range(3):
        await openapi.send(GROUP, Outbound(f"第{i}条"))
    assert token_calls(dingtalk) == 1
    clock.at += timedelta(seconds=7201)
    await openapi.send(GROUP, Outbound("过期之后"))
    assert token_calls(dingtalk) == 2
    dingtalk.invalidate_tokens()
    await openapi.send(GROUP, Outbound("吊销之后"))
    assert token_calls(dingtalk) == 3
    statuses = [c.status for c in dingtalk.calls if c.path.endswith("groupMessages/send")]
    assert statuses == [200, 200, 200, 200, 401, 200]
    assert dingtalk.texts() == ["第0条", "第1条", "第2条", "过期之后", "吊销之后"]


async def test_openapi_wrong_credentials_unknown_group_and_user_are_permanent(
    http: aiohttp.ClientSession,
    openapi: DingTalkOpenApiSender,
    dingtalk: FakeDingTalk,
    clock: FixedClock,
) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await openapi.send(Destination("dingtalk", "cid-x", "dingtalk_openapi"), Outbound("x"))
    assert not err.value.retryable and err.value.code == dt.GROUP_NOT_FOUND
    dingtalk.add_users("staff-1")
    with pytest.raises(PartDeliveryError) as err:
        await openapi.send(Destination("dingtalk", "staff-9", "dingtalk_user"), Outbound("x"))
    assert not err.value.retryable and err.value.code == "invalidStaffId"
    wrong = DingTalkOpenApiSender(
        http,
        api_base=dingtalk.base_url,
        clock=clock,
        app_key=dingtalk.app_key,
        app_secret="wrong",
        robot_code=dingtalk.robot_code,
    )
    with pytest.raises(PartDeliveryError) as err:
        await wrong.send(GROUP, Outbound("x"))
    assert not err.value.retryable


@pytest.mark.parametrize(
    ("fault", "code"),
    [("fail", "http500"), ("delay", "timeout"), ("drop", "connection")],
)
async def test_openapi_transport_failures_are_retryable(
    openapi: DingTalkOpenApiSender, dingtalk: FakeDingTalk, fault: str, code: str
) -> None:
    await openapi.send(GROUP, Outbound("先取令牌"))
    path = "/v1.0/robot/groupMessages/send"
    if fault == "fail":
        dingtalk.fail_next(1, path=path)
    elif fault == "delay":
        dingtalk.delay_next(1, 0.6, path=path)
    else:
        dingtalk.drop_next(1, path=path)
    with pytest.raises(PartDeliveryError) as err:
        await openapi.send(GROUP, Outbound("你好"))
    assert err.value.retryable and err.value.code == code


async def test_openapi_throttling_is_retryable(
    openapi: DingTalkOpenApiSender, dingtalk: FakeDingTalk
) -> None:
    await openapi.send(GROUP, Outbound("先取令牌"))
    dingtalk.fail_next(1, 403, errcode="Forbidden.AccessDenied.QpsLimitForApi", path="/v1.0/robot")
    with pytest.raises(PartDeliveryError) as err:
        await openapi.send(GROUP, Outbound("你好"))
    assert err.value.retryable


async def test_openapi_image_is_left_out_without_a_publisher_and_sent_with_one(
    http: aiohttp.ClientSession,
    openapi: DingTalkOpenApiSender,
    dingtalk: FakeDingTalk,
    clock: FixedClock,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await openapi.send(GROUP, Outbound("截图如下", image=b"\x89PNG..."))
    assert [m.msgtype for m in dingtalk.sent] == ["sampleMarkdown"]
    assert any("image left out" in r.getMessage() for r in caplog.records)

    async def publish(image: bytes) -> str:
        return f"https://files.example.cn/{len(image)}.png"

    with_images = DingTalkOpenApiSender(
        http,
        api_base=dingtalk.base_url,
        clock=clock,
        app_key=dingtalk.app_key,
        app_secret=APP_SECRET,
        robot_code=dingtalk.robot_code,
        publish_image=publish,
    )
    await with_images.send(GROUP, Outbound("截图如下", image=b"\x89PNG..."))
    image = dingtalk.sent[-1]
    assert image.msgtype == "sampleImageMsg"
    assert json.loads(image.payload["msgParam"]) == {"photoURL": "https://files.example.cn/7.png"}


# --- custom robot webhook ------------------------------------------------------------------


async def test_webhook_signed_markdown_with_mentions(
    custom: DingTalkWebhookSender, dingtalk: FakeDingTalk
) -> None:
    await custom.send(robot(), Outbound("**督办**：请填报", title="督办提醒", mentions=MENTIONS))
    [sent] = dingtalk.sent  # the fake checked timestamp and sign
    assert sent.payload == {
        "msgtype": "markdown",
        "markdown": {"title": "督办提醒", "text": "**督办**：请填报\n\n@zhangsan @13800000000"},
        "at": {"atUserIds": ["zhangsan"], "atMobiles": ["13800000000"]},
    }
    assert "sign" in dingtalk.calls[0].query


async def test_webhook_text_format(custom: DingTalkWebhookSender, dingtalk: FakeDingTalk) -> None:
    await custom.send(robot(), Outbound("督办：明早九点开会", format="text"))
    assert dingtalk.sent[0].payload == {
        "msgtype": "text",
        "text": {"content": "督办：明早九点开会"},
    }


async def test_webhook_long_message_splits_and_only_the_last_part_mentions(
    custom: DingTalkWebhookSender, dingtalk: FakeDingTalk
) -> None:
    await custom.send(robot(), Outbound(chinese_report(300), mentions=MENTIONS[:1]))
    sent = dingtalk.sent
    assert len(sent) >= 2
    assert all(len(c.body) <= dt.WEBHOOK_MAX_BYTES for c in dingtalk.calls)
    assert [("at" in m.payload) for m in sent] == [False] * (len(sent) - 1) + [True]
    assert "@zhangsan" in sent[-1].payload["markdown"]["text"]


@pytest.mark.parametrize(
    ("destination", "code"),
    [
        (robot(secret="SECwrong"), "310000"),
        (robot(token="no-such-token"), "300001"),
        (robot(token="kw-token", secret=None), "310000"),  # keyword 督办 missing
    ],
)
async def test_webhook_refusals_are_permanent(
    custom: DingTalkWebhookSender, destination: Destination, code: str
) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await custom.send(destination, Outbound("你好"))
    assert not err.value.retryable and err.value.code == code


async def test_webhook_rate_limit_is_retryable(
    custom: DingTalkWebhookSender, dingtalk: FakeDingTalk, clock: FixedClock
) -> None:
    for i in range(20):
        await custom.send(robot(), Outbound(f"第{i}条"))
    with pytest.raises(PartDeliveryError) as err:
        await custom.send(robot(), Outbound("第21条"))
    assert err.value.retryable and err.value.code == str(dt.SEND_TOO_FAST)
    clock.at += timedelta(seconds=61)
    await custom.send(robot(), Outbound("第21条"))  # signed anew with the new time


async def test_no_secret_reaches_logs_or_errors(
    custom: DingTalkWebhookSender,
    openapi: DingTalkOpenApiSender,
    dingtalk: FakeDingTalk,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await custom.send(robot(), Outbound("督办"))
    await openapi.send(GROUP, Outbound("督办"))
    token = next(
        c.response["accessToken"] for c in dingtalk.calls if c.path.endswith("accessToken")
    )
    errors = []
    with pytest.raises(PartDeliveryError) as err:
        await custom.send(robot(secret="SECwrong"), Outbound("x"))
    errors += [str(err.value), repr(err.value)]
    dingtalk.drop_next(1)
    with pytest.raises(PartDeliveryError) as err:
        await openapi.send(GROUP, Outbound("x"))
    errors += [str(err.value), repr(err.value)]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]
    assert ours
    for secret in (ROBOT_TOKEN, SIGN_SECRET, APP_SECRET, token):
        assert not any(secret in line for line in ours + errors)
    assert APP_SECRET not in repr(openapi)


# --- sessionWebhook ------------------------------------------------------------------------


async def test_session_reply_with_at(
    session: DingTalkSessionSender, dingtalk: FakeDingTalk
) -> None:
    url, _ = dingtalk.session_webhook("cid-g1")
    dest = Destination("dingtalk", "cid-g1", "dingtalk_session", url=url)
    await session.send(dest, Outbound("已记录", mentions=MENTIONS[:1]))
    [sent] = dingtalk.sent
    assert (sent.endpoint, sent.target) == ("sendBySession", "cid-g1")
    assert sent.payload == {
        "msgtype": "markdown",
        "markdown": {"title": "已记录", "text": "已记录\n\n@zhangsan"},
        "at": {"atUserIds": ["zhangsan"]},
    }


async def test_session_without_url_or_expired_is_permanent(
    session: DingTalkSessionSender, dingtalk: FakeDingTalk, clock: FixedClock
) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await session.send(Destination("dingtalk", "cid-g1", "dingtalk_session"), Outbound("x"))
    assert not err.value.retryable and str(err.value) == "session webhook expired"
    assert dingtalk.calls == []
    url, _ = dingtalk.session_webhook("cid-g1", ttl=60)
    clock.at += timedelta(seconds=61)
    dest = Destination("dingtalk", "cid-g1", "dingtalk_session", url=url)
    with pytest.raises(PartDeliveryError) as err:
        await session.send(dest, Outbound("x"))
    assert not err.value.retryable and err.value.code == str(dt.SESSION_EXPIRED)
