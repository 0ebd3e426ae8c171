"""WeCom senders against FakeWeCom over real HTTP: payloads, splitting, tokens, failures."""

from __future__ import annotations

import logging
import re
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import aiohttp
import pytest

from bot.adapters.base import Destination
from bot.adapters.outbound import PartDeliveryError
from bot.adapters.wecom_send import (
    HttpBotTransport,
    WeComAppSender,
    WeComBotSender,
    WeComWebhookSender,
)
from bot.clock import FixedClock
from bot.messages import Mention, Outbound, OutboundFile
from tests.fakes import FakeWeCom
from tests.fakes import wecom_rules as wr
from tests.test_split import chinese_report

KEY = "5b0e8e2a-0c1d-4f7e-9a3b-robotkey7f3a"
CORP_SECRET = "corp-secret-Xy9Qw2Lm8Rt4"
BOT_SECRET = "aibot-secret-Pq7Zn3Vb5"
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 40
XLSX = OutboundFile("台账-2026-11.xlsx", b"PK\x03\x04" + bytes(range(256)) * 8)
MENTIONS = (
    Mention("张三", user_id="zhangsan"),
    Mention("李四", mobile="13800000000"),
    Mention("王五"),
)


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def wecom(aiohttp_server: Any, clock: FixedClock) -> FakeWeCom:
    fake = FakeWeCom(
        corpsecret=CORP_SECRET, aibot_secret=BOT_SECRET, clock=lambda: clock.now().timestamp()
    )
    await fake.start(aiohttp_server)
    fake.add_robot(KEY)
    fake.add_appchat("chat-g1")
    return fake


@pytest.fixture
def robot(http: aiohttp.ClientSession, wecom: FakeWeCom, clock: FixedClock) -> WeComWebhookSender:
    return WeComWebhookSender(http, api_base=wecom.base_url, clock=clock, timeout=0.2)


@pytest.fixture
def app(http: aiohttp.ClientSession, wecom: FakeWeCom, clock: FixedClock) -> WeComAppSender:
    return WeComAppSender(
        http,
        api_base=wecom.base_url,
        clock=clock,
        corp_id=wecom.corpid,
        secret=CORP_SECRET,
        agent_id=wecom.agentid,
        timeout=0.2,
    )


@pytest.fixture
def aibot(http: aiohttp.ClientSession, wecom: FakeWeCom, clock: FixedClock) -> WeComBotSender:
    transport = HttpBotTransport(
        http, api_base=wecom.base_url, bot_id=wecom.aibot_id, secret=BOT_SECRET
    )
    return WeComBotSender(http, transport=transport, clock=clock, markdown_limit=4096)


def webhook(key: str = KEY) -> Destination:
    return Destination("wecom", "g1", "wecom_webhook", secrets={"key": key})


def token_calls(fake: FakeWeCom) -> int:
    return sum(1 for c in fake.calls if c.path == "/cgi-bin/gettoken")


# --- group robot webhook -------------------------------------------------------------------


async def test_webhook_markdown_payload(robot: WeComWebhookSender, wecom: FakeWeCom) -> None:
    await robot.send(webhook(), Outbound("## 通知\n请**今日**完成填报"))
    [sent] = wecom.sent
    assert (sent.endpoint, sent.target, sent.msgtype) == ("webhook/send", KEY, "markdown")
    assert sent.payload == {
        "msgtype": "markdown",
        "markdown": {"content": "## 通知\n请**今日**完成填报"},
    }


async def test_webhook_markdown_mentions_follow_as_one_text(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    await robot.send(webhook(), Outbound("**逾期提醒**", mentions=MENTIONS))
    markdown, text = wecom.sent
    assert markdown.payload["markdown"] == {"content": "**逾期提醒**"}
    assert text.payload == {
        "msgtype": "text",
        "text": {
            "content": "请以上同志关注 @王五",
            "mentioned_list": ["zhangsan"],
            "mentioned_mobile_list": ["13800000000"],
        },
    }


async def test_webhook_names_without_ids_stay_in_the_markdown(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    await robot.send(webhook(), Outbound("**逾期提醒**", mentions=MENTIONS[2:]))
    assert wecom.texts() == ["**逾期提醒**\n\n@王五"]


async def test_webhook_text_carries_its_own_mentions(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    await robot.send(webhook(), Outbound("请按时填报", format="text", mentions=MENTIONS))
    [sent] = wecom.sent
    assert sent.payload["text"] == {
        "content": "请按时填报\n\n@王五",  # WeCom itself shows the notified ones
        "mentioned_list": ["zhangsan"],
        "mentioned_mobile_list": ["13800000000"],
    }


async def test_webhook_long_chinese_markdown_goes_out_in_ordered_parts(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    body = chinese_report(120)
    assert len(body.encode()) > 10_000
    await robot.send(webhook(), Outbound(body))
    texts = wecom.texts(KEY)
    assert len(texts) >= 3
    assert all(len(t.encode()) <= wr.ROBOT_LIMITS["markdown"] for t in texts)
    assert [re.search(r"（(\d+)/\d+）$", t)[1] for t in texts] == [  # type: ignore[index]
        str(i) for i in range(1, len(texts) + 1)
    ]
    joined = "".join(re.sub(r"\n（\d+/\d+）$", "", t) for t in texts)
    assert joined.replace("\n", "") == body.replace("\n", "")


async def test_webhook_image_follows_the_text_and_its_md5_checks_out(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    await robot.send(webhook(), Outbound("本周打卡截图", image=PNG))
    assert [m.msgtype for m in wecom.sent] == ["markdown", "image"]  # fake verified the md5


async def test_webhook_image_over_2mb_is_refused_before_anything_is_sent(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await robot.send(webhook(), Outbound("截图", image=b"x" * (2 * 1024 * 1024 + 1)))
    assert not err.value.retryable and err.value.sent_parts == 0
    assert wecom.calls == []


async def test_webhook_rate_limit_is_retryable_and_resumes_without_doubling(
    robot: WeComWebhookSender, wecom: FakeWeCom, clock: FixedClock
) -> None:
    for i in range(18):
        await robot.send(webhook(), Outbound(f"消息{i}"))
    message = Outbound(chinese_report(120))
    with pytest.raises(PartDeliveryError) as err:
        await robot.send(webhook(), message)
    assert err.value.retryable and err.value.code == "45009"
    assert err.value.sent_parts == 2 and err.value.total_parts >= 3
    clock.at += timedelta(seconds=61)
    await robot.send(webhook(), message, skip_parts=err.value.sent_parts)
    parts = wecom.texts(KEY)[18:]
    assert len(parts) == err.value.total_parts
    assert [p.rsplit("（", 1)[1] for p in parts] == [
        f"{i}/{len(parts)}）" for i in range(1, len(parts) + 1)
    ]


async def test_webhook_file_is_uploaded_then_posted_after_the_text(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    await robot.send(webhook(), Outbound("**台账** 2026年11月", file=XLSX))
    markdown, file_msg = wecom.sent
    assert markdown.payload["markdown"] == {"content": "**台账** 2026年11月"}
    assert file_msg.msgtype == "file"
    media = wecom.media[file_msg.payload["file"]["media_id"]]  # the fake checked key and type
    assert (media.key, media.type, media.filename, media.data) == (
        KEY,
        "file",
        "台账-2026-11.xlsx",
        XLSX.data,
    )
    upload = next(c for c in wecom.calls if c.path == "/cgi-bin/webhook/upload_media")
    assert upload.query == {"key": KEY, "type": "file"}


async def test_webhook_file_resumes_after_the_text_without_doubling_it(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    message = Outbound("台账已生成", file=XLSX)
    wecom.fail_next(1, errcode=45009, path="/cgi-bin/webhook/upload_media")
    with pytest.raises(PartDeliveryError) as err:
        await robot.send(webhook(), message)
    assert err.value.retryable and (err.value.sent_parts, err.value.total_parts) == (1, 2)
    await robot.send(webhook(), message, skip_parts=err.value.sent_parts)
    assert [m.msgtype for m in wecom.sent] == ["markdown", "file"]


@pytest.mark.parametrize("size", [5, 20 * 1024 * 1024 + 1])
async def test_webhook_file_outside_the_size_rules_is_refused_before_anything_is_sent(
    robot: WeComWebhookSender, wecom: FakeWeCom, size: int
) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await robot.send(webhook(), Outbound("台账", file=OutboundFile("a.xlsx", b"x" * size)))
    assert not err.value.retryable and err.value.code == "40006"
    assert wecom.calls == []


async def test_webhook_upload_refused_by_the_platform_is_permanent(
    robot: WeComWebhookSender, wecom: FakeWeCom
) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await robot.send(webhook("no-such-key-0000"), Outbound("", file=XLSX))
    assert not err.value.retryable and err.value.code == "93000"


async def test_app_and_aibot_leave_files_out_with_a_log_line(
    app: WeComAppSender,
    aibot: WeComBotSender,
    wecom: FakeWeCom,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO)
    await app.send(Destination("wecom", "chat-g1", "wecom_appchat"), Outbound("台账", file=XLSX))
    await aibot.send(Destination("wecom", "wrk-1", "wecom_aibot"), Outbound("台账", file=XLSX))
    assert [m.msgtype for m in wecom.sent] == ["markdown", "markdown"]
    assert not any(c.path.endswith("upload_media") for c in wecom.calls)
    left = [r.getMessage() for r in caplog.records if "file left out" in r.getMessage()]
    assert left == ["wecom_appchat chat-g1: file left out", "wecom_aibot wrk-1: file left out"]


async def test_webhook_unknown_key_is_permanent(robot: WeComWebhookSender) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await robot.send(webhook("no-such-key-0000"), Outbound("你好"))
    assert not err.value.retryable and err.value.code == "93000"


async def test_webhook_missing_key_is_permanent(robot: WeComWebhookSender) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await robot.send(Destination("wecom", "g1", "wecom_webhook"), Outbound("你好"))
    assert not err.value.retryable and err.value.code == "config"


@pytest.mark.parametrize(
    ("fault", "code"),
    [("fail", "http500"), ("delay", "timeout"), ("drop", "connection")],
)
async def test_webhook_transport_failures_are_retryable(
    robot: WeComWebhookSender, wecom: FakeWeCom, fault: str, code: str
) -> None:
    {
        "fail": lambda: wecom.fail_next(1),
        "delay": lambda: wecom.delay_next(1, 0.6),
        "drop": lambda: wecom.drop_next(1),
    }[fault]()
    with pytest.raises(PartDeliveryError) as err:
        await robot.send(webhook(), Outbound("你好"))
    assert err.value.retryable and err.value.code == code and err.value.sent_parts == 0


async def test_no_secret_reaches_logs_or_errors(
    robot: WeComWebhookSender,
    app: WeComAppSender,
    wecom: FakeWeCom,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    await robot.send(webhook(), Outbound("你好", image=PNG))
    await app.send(Destination("wecom", "chat-g1", "wecom_appchat"), Outbound("你好"))
    token = wecom.calls[-1].query["access_token"]
    errors: list[str] = []
    wecom.drop_next(1)
    for dest in (webhook(), Destination("wecom", "nope", "wecom_appchat")):
        with pytest.raises(PartDeliveryError) as err:
            await (robot if dest.channel_type == "wecom_webhook" else app).send(dest, Outbound("x"))
        errors += [str(err.value), repr(err.value)]
    ours = [r.getMessage() for r in caplog.records if r.name.startswith("bot.")]
    assert any(KEY[-4:] in line for line in ours)  # the key's tail identifies the robot
    for secret in (KEY, CORP_SECRET, token):
        assert not any(secret in line for line in ours + errors)
    assert CORP_SECRET not in repr(app)


# --- self-built app ------------------------------------------------------------------------


async def test_appchat_and_user_payloads_share_one_token(
    app: WeComAppSender, wecom: FakeWeCom
) -> None:
    for i in range(3):
        await app.send(Destination("wecom", "chat-g1", "wecom_appchat"), Outbound(f"**第{i}条**"))
    await app.send(
        Destination("wecom", "zhangsan", "wecom_app_user", is_group=False),
        Outbound("已收到", format="text"),
    )
    assert token_calls(wecom) == 1
    chat, user = wecom.sent[0], wecom.sent[-1]
    assert chat.endpoint == "appchat/send"
    assert chat.payload == {
        "chatid": "chat-g1",
        "msgtype": "markdown",
        "markdown": {"content": "**第0条**"},
    }
    assert user.endpoint == "message/send"
    assert user.payload == {
        "touser": "zhangsan",
        "agentid": wecom.agentid,
        "msgtype": "text",
        "text": {"content": "已收到"},
    }


async def test_app_mentions_are_plain_names(app: WeComAppSender, wecom: FakeWeCom) -> None:
    await app.send(
        Destination("wecom", "chat-g1", "wecom_appchat"), Outbound("请关注", mentions=MENTIONS)
    )
    assert wecom.texts() == ["请关注\n\n@张三 @李四 @王五"]


async def test_app_long_markdown_splits_at_the_app_limit(
    app: WeComAppSender, wecom: FakeWeCom
) -> None:
    await app.send(Destination("wecom", "chat-g1", "wecom_appchat"), Outbound(chinese_report(60)))
    texts = wecom.texts("chat-g1")
    assert len(texts) >= 3
    assert all(len(t.encode()) <= wr.APP_LIMITS["markdown"] for t in texts)


async def test_app_token_is_refreshed_before_it_expires(
    app: WeComAppSender, wecom: FakeWeCom, clock: FixedClock
) -> None:
    dest = Destination("wecom", "chat-g1", "wecom_appchat")
    await app.send(dest, Outbound("一"))
    clock.at += timedelta(seconds=7201)
    await app.send(dest, Outbound("二"))
    assert token_calls(wecom) == 2
    assert all(c.response.get("errcode") == 0 for c in wecom.calls)  # no 42001 on the way


async def test_app_revoked_token_is_replaced_and_the_send_retried_once(
    app: WeComAppSender, wecom: FakeWeCom
) -> None:
    dest = Destination("wecom", "chat-g1", "wecom_appchat")
    await app.send(dest, Outbound("一"))
    wecom.invalidate_tokens()
    await app.send(dest, Outbound("二"))
    assert token_calls(wecom) == 2
    sends = [c.response["errcode"] for c in wecom.calls if c.path == "/cgi-bin/appchat/send"]
    assert sends == [0, 40014, 0]
    assert wecom.texts() == ["一", "二"]


async def test_app_wrong_secret_and_unknown_chat_are_permanent(
    http: aiohttp.ClientSession, app: WeComAppSender, wecom: FakeWeCom, clock: FixedClock
) -> None:
    with pytest.raises(PartDeliveryError) as err:
        await app.send(Destination("wecom", "nope", "wecom_appchat"), Outbound("x"))
    assert not err.value.retryable and err.value.code == str(wr.CHAT_NOT_FOUND)
    wrong = WeComAppSender(
        http, api_base=wecom.base_url, clock=clock, corp_id=wecom.corpid, secret="wrong", agent_id=1
    )
    with pytest.raises(PartDeliveryError) as err:
        await wrong.send(Destination("wecom", "chat-g1", "wecom_appchat"), Outbound("x"))
    assert not err.value.retryable and err.value.code == "40001"


async def test_app_rate_limit_answer_is_retryable(app: WeComAppSender, wecom: FakeWeCom) -> None:
    await app.send(Destination("wecom", "chat-g1", "wecom_appchat"), Outbound("一"))
    wecom.fail_next(1, errcode=45009, path="/cgi-bin/appchat/send")
    with pytest.raises(PartDeliveryError) as err:
        await app.send(Destination("wecom", "chat-g1", "wecom_appchat"), Outbound("二"))
    assert err.value.retryable and err.value.code == "45009"


# --- AI bot --------------------------------------------------------------------------------


async def test_aibot_proactive_markdown(aibot: WeComBotSender, wecom: FakeWeCom) -> None:
    await aibot.send(
        Destination("wecom", "wrk-chat-1", "wecom_aibot"),
        Outbound("**提醒**", mentions=MENTIONS[:1]),
    )
    [sent] = wecom.sent
    assert (sent.endpoint, sent.target) == ("aibot/send", "wrk-chat-1")
    assert sent.payload == {
        "chatid": "wrk-chat-1",
        "msgtype": "markdown",
        "markdown": {"content": "**提醒**\n\n@张三"},
    }


async def test_response_url_takes_the_first_part_and_the_rest_go_proactively(
    aibot: WeComBotSender, wecom: FakeWeCom
) -> None:
    url = wecom.response_url("wrk-chat-1")
    dest = Destination("wecom", "wrk-chat-1", "wecom_response_url", url=url)
    await aibot.send(dest, Outbound(chinese_report(60)))
    endpoints = [m.endpoint for m in wecom.sent]
    assert endpoints[0] == "aibot/response" and len(endpoints) >= 3
    assert set(endpoints[1:]) == {"aibot/send"}
    assert all(m.target == "wrk-chat-1" for m in wecom.sent)
    with pytest.raises(PartDeliveryError) as err:  # a response_url is single-use
        await aibot.send(dest, Outbound("再答"))
    assert not err.value.retryable


async def test_aibot_wrong_secret_is_permanent(
    http: aiohttp.ClientSession, wecom: FakeWeCom, clock: FixedClock
) -> None:
    transport = HttpBotTransport(http, api_base=wecom.base_url, bot_id=wecom.aibot_id, secret="x")
    sender = WeComBotSender(http, transport=transport, clock=clock)
    with pytest.raises(PartDeliveryError) as err:
        await sender.send(Destination("wecom", "c", "wecom_aibot"), Outbound("你好"))
    assert not err.value.retryable and err.value.code == "40001"
