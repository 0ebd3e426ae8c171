"""The fake platforms themselves, over real HTTP and WebSocket (no bot involved)."""

from __future__ import annotations

import asyncio
import base64
import hashlib
import io
import json
import time
from collections.abc import AsyncIterator
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from bot.adapters.dingtalk_sign import signed_webhook_url, verify_callback
from bot.adapters.wecom_crypto import WeComCrypto, WeComSignatureError, encrypted_reply_xml
from tests.fakes import FakeDingTalk, FakeWeCom, ManualClock
from tests.fakes import dingtalk as dt
from tests.fakes import wecom_rules as wr


@pytest.fixture
def fake_clock() -> ManualClock:
    return ManualClock()


@pytest.fixture
async def http() -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as session:
        yield session


@pytest.fixture
async def wecom(aiohttp_server: Any, fake_clock: ManualClock) -> FakeWeCom:
    fake = FakeWeCom(clock=fake_clock)
    await fake.start(aiohttp_server)
    fake.add_robot("k1")
    return fake


@pytest.fixture
async def dingtalk(aiohttp_server: Any, fake_clock: ManualClock) -> FakeDingTalk:
    fake = FakeDingTalk(clock=fake_clock)
    await fake.start(aiohttp_server)
    fake.add_group("cid-g1")
    return fake


async def call(http: aiohttp.ClientSession, method: str, url: str, **kw: Any) -> Any:
    async with http.request(method, url, **kw) as resp:
        return await resp.json()


# --- WeCom -------------------------------------------------------------------------------


async def wecom_token(http: aiohttp.ClientSession, fake: FakeWeCom) -> str:
    params = {"corpid": fake.corpid, "corpsecret": fake.corpsecret}
    body = await call(http, "GET", fake.url("/cgi-bin/gettoken"), params=params)
    assert body["errcode"] == 0 and body["expires_in"] == 7200
    return str(body["access_token"])


async def app_send(http: aiohttp.ClientSession, fake: FakeWeCom, token: str, **body: Any) -> Any:
    url = fake.url(f"/cgi-bin/message/send?access_token={token}")
    msg = {"touser": "u1", "msgtype": "text", "agentid": fake.agentid, "text": {"content": "hi"}}
    return (await call(http, "POST", url, json={**msg, **body}))["errcode"]


async def test_wecom_token_flow_and_invalidation(
    http: aiohttp.ClientSession, wecom: FakeWeCom, fake_clock: ManualClock
) -> None:
    url = wecom.url("/cgi-bin/gettoken")
    bad_corp = {"corpid": "nope", "corpsecret": wecom.corpsecret}
    assert (await call(http, "GET", url, params=bad_corp))["errcode"] == 40013
    bad_secret = {"corpid": wecom.corpid, "corpsecret": "nope"}
    assert (await call(http, "GET", url, params=bad_secret))["errcode"] == 40001
    token = await wecom_token(http, wecom)
    assert await app_send(http, wecom, token) == 0
    assert await app_send(http, wecom, "") == 41001
    wecom.invalidate_tokens()
    assert await app_send(http, wecom, token) == 40014
    token = await wecom_token(http, wecom)
    wecom.expire_tokens()
    assert await app_send(http, wecom, token) == 42001
    token = await wecom_token(http, wecom)
    fake_clock.advance(7199)
    assert await app_send(http, wecom, token) == 0
    fake_clock.advance(1)
    assert await app_send(http, wecom, token) == 42001
    assert wecom.texts("u1") == ["hi", "hi"]


async def test_wecom_app_and_appchat_bodies_are_checked(
    http: aiohttp.ClientSession, wecom: FakeWeCom
) -> None:
    token = await wecom_token(http, wecom)
    assert await app_send(http, wecom, token, agentid=str(wecom.agentid)) == 40056
    assert await app_send(http, wecom, token, msgtype="voicemail") == 40008
    assert await app_send(http, wecom, token, text={"content": ""}) == 44004
    assert await app_send(http, wecom, token, text={"content": "长" * 683}) == 45002
    wecom.add_users("u1")
    assert await app_send(http, wecom, token, touser="ghost") == 81013
    url = wecom.url(f"/cgi-bin/message/send?access_token={token}")
    msg = {"touser": "u1|ghost", "msgtype": "markdown", "agentid": wecom.agentid}
    body = await call(http, "POST", url, json={**msg, "markdown": {"content": "**x**"}})
    assert body["errcode"] == 0 and body["invaliduser"] == "ghost"
    chat_url = wecom.url(f"/cgi-bin/appchat/send?access_token={token}")
    chat_msg = {"chatid": "c1", "msgtype": "text", "text": {"content": "群里好"}}
    assert (await call(http, "POST", chat_url, json=chat_msg))["errcode"] == wr.CHAT_NOT_FOUND
    wecom.add_appchat("c1")
    assert (await call(http, "POST", chat_url, json=chat_msg))["errcode"] == 0
    assert [m.endpoint for m in wecom.sent] == ["message/send", "appchat/send"]
    assert wecom.texts("c1") == ["群里好"]


async def robot_send(
    http: aiohttp.ClientSession, fake: FakeWeCom, body: Any, key: str = "k1"
) -> int:
    # A stream, not bytes: aiohttp warns about multi-megabyte bodies (the 2 MB image case).
    data = io.BytesIO(json.dumps(body).encode())
    headers = {"Content-Type": "application/json"}
    return int(
        (await call(http, "POST", fake.webhook_url(key), data=data, headers=headers))["errcode"]
    )


def text(content: str) -> dict[str, Any]:
    return {"msgtype": "text", "text": {"content": content}}


async def test_wecom_robot_rate_limit_counts_failures_and_slides(
    http: aiohttp.ClientSession, wecom: FakeWeCom, fake_clock: ManualClock
) -> None:
    assert await robot_send(http, wecom, text("x"), key="unknown") == 93000
    assert await robot_send(http, wecom, {"msgtype": "bogus"}) == 40008  # counted too
    for i in range(19):
        assert await robot_send(http, wecom, text(f"m{i}")) == 0
    assert await robot_send(http, wecom, text("21st")) == 45009
    fake_clock.advance(59.9)
    assert await robot_send(http, wecom, text("still")) == 45009
    fake_clock.advance(0.1)
    assert await robot_send(http, wecom, text("again")) == 0
    assert wecom.texts("k1")[-1] == "again" and len(wecom.texts("k1")) == 20


def image(raw: bytes, md5: str | None = None) -> dict[str, Any]:
    md5 = md5 or hashlib.md5(raw).hexdigest()
    return {"msgtype": "image", "image": {"base64": base64.b64encode(raw).decode(), "md5": md5}}


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        (text("中" * 682 + "ab"), 0),  # exactly 2048 bytes
        (text("中" * 682 + "abc"), 45002),
        ({"msgtype": "markdown", "markdown": {"content": "#" * 4096}}, 0),
        ({"msgtype": "markdown", "markdown": {"content": "#" * 4097}}, 45002),
        ({"msgtype": "text", "text": {"content": "@", "mentioned_list": "u1"}}, 40035),
        ({"msgtype": "text", "text": {}}, 44004),
        ({}, 44004),
        ({"msgtype": "file", "file": {"media_id": "never-uploaded"}}, 40007),
        (image(b"\x89PNG fake"), 0),
        (image(b"\x89PNG fake", md5=hashlib.md5(b"other").hexdigest()), wr.MD5_MISMATCH),
        (image(b"x" * (2 << 20) + b"x"), 45002),
    ],
)
async def test_wecom_robot_payload_rules(
    http: aiohttp.ClientSession, wecom: FakeWeCom, body: Any, errcode: int
) -> None:
    assert await robot_send(http, wecom, body) == errcode
    assert len(wecom.sent) == (errcode == 0)


async def test_wecom_upload_media_is_per_key_and_expires(
    http: aiohttp.ClientSession, wecom: FakeWeCom, fake_clock: ManualClock
) -> None:
    wecom.add_robot("k2")

    async def upload(data: bytes) -> Any:
        form = aiohttp.FormData()
        form.add_field("media", data, filename="周报.xlsx")
        url = wecom.url("/cgi-bin/webhook/upload_media?key=k1&type=file")
        return await call(http, "POST", url, data=form)

    assert (await upload(b"tiny"))["errcode"] == 40006
    media_id = (await upload(b"spreadsheet bytes"))["media_id"]
    file_msg = {"msgtype": "file", "file": {"media_id": media_id}}
    assert await robot_send(http, wecom, file_msg) == 0
    assert await robot_send(http, wecom, file_msg, key="k2") == 40007
    fake_clock.advance(3 * 86400)
    assert await robot_send(http, wecom, file_msg) == 40007
    assert wecom.media[media_id].filename == "周报.xlsx"


async def test_wecom_aibot_send_and_single_use_response_url(
    http: aiohttp.ClientSession, wecom: FakeWeCom
) -> None:
    md = {"msgtype": "markdown", "markdown": {"content": "**督办**"}}
    url = wecom.url(f"/aibot/send?bot_id={wecom.aibot_id}&secret=wrong")
    assert (await call(http, "POST", url, json={"chatid": "g", **md}))["errcode"] == 40001
    url = wecom.url(f"/aibot/send?bot_id={wecom.aibot_id}&secret={wecom.aibot_secret}")
    assert (await call(http, "POST", url, json={"chatid": "g", **md}))["errcode"] == 0
    response_url = wecom.response_url("g")
    assert (await call(http, "POST", response_url, json=md))["errcode"] == 0
    assert (await call(http, "POST", response_url, json=md))["errcode"] == wr.RESPONSE_URL_INVALID
    assert [(m.endpoint, m.target) for m in wecom.sent] == [
        ("aibot/send", "g"),
        ("aibot/response", "g"),
    ]


async def test_fault_injection(http: aiohttp.ClientSession, wecom: FakeWeCom) -> None:
    send = "/cgi-bin/webhook/send"
    wecom.fail_next(1, status=502, path=send)
    await wecom_token(http, wecom)  # other paths are unaffected
    async with http.post(wecom.webhook_url("k1"), json=text("a")) as resp:
        assert resp.status == 502
    wecom.fail_next(1, errcode=45009)
    assert await robot_send(http, wecom, text("b")) == 45009
    wecom.delay_next(1, 0.1)
    started = time.monotonic()
    assert await robot_send(http, wecom, text("c")) == 0
    assert time.monotonic() - started >= 0.1
    wecom.drop_next(1)
    with pytest.raises((aiohttp.ServerDisconnectedError, aiohttp.ClientOSError)):
        await robot_send(http, wecom, text("d"))
    assert await robot_send(http, wecom, text("e")) == 0
    assert wecom.texts("k1") == ["c", "e"]
    faults = [(c.fault, c.status) for c in wecom.calls if c.path == send]
    assert faults == [("fail", 502), ("fail", 200), ("delay", 200), ("drop", None), (None, 200)]


async def test_wecom_inbound_helpers_decrypt_with_the_bot_crypto(
    aiohttp_client: Any, wecom: FakeWeCom
) -> None:
    crypto = WeComCrypto(wecom.token, wecom.encoding_aes_key, wecom.corpid)

    async def handshake(request: web.Request) -> web.Response:  # a minimal bot stand-in
        q = request.query
        plain = crypto.verify_url(q["msg_signature"], q["timestamp"], q["nonce"], q["echostr"])
        return web.Response(text=plain)

    app = web.Application()
    app.router.add_get("/hook", handshake)
    client = await aiohttp_client(app)
    query, expected = wecom.url_verification()
    async with client.get("/hook", params=query) as resp:  # '+' and '/' survive encoding
        assert await resp.text() == expected

    query, body = wecom.signed_app_callback("打卡 已完成", "zhangsan", 4561255354251345929)
    plain = crypto.decrypt_xml_body(body.encode(), **query)
    assert "<Content><![CDATA[打卡 已完成]]></Content>" in plain
    assert "<MsgId>4561255354251345929</MsgId>" in plain

    reply_enc, reply_sig = crypto.encrypt("<xml>reply</xml>", "n1", "1700000000")
    reply = encrypted_reply_xml(reply_enc, reply_sig, "1700000000", "n1")
    assert wecom.decrypt_app_reply(reply) == "<xml>reply</xml>"
    with pytest.raises(WeComSignatureError):
        wecom.decrypt_app_reply(reply.replace("n1", "n2"))

    aibot = WeComCrypto(wecom.token, wecom.encoding_aes_key, "")
    query, json_body = wecom.signed_aibot_callback(
        "@督办 进度", "lisi", "g1", "m1", msgtype="mixed"
    )
    inner = aibot.decrypt_json_body(json.dumps(json_body).encode(), **query)
    assert inner["chattype"] == "group" and inner["from"] == {"userid": "lisi"}
    assert inner["mixed"]["msg_item"][0]["text"]["content"] == "@督办 进度"
    assert inner["response_url"].startswith(wecom.base_url)
    query, expected = wecom.url_verification("echo-1", aibot=True)
    assert aibot.verify_url(**query) == expected == "echo-1"
    query, body = wecom.signed_app_event("click", "zhangsan", event_key="checkin")
    plain = crypto.decrypt_xml_body(body.encode(), **query)
    assert "<Event><![CDATA[click]]></Event>" in plain and "MsgId" not in plain


# --- DingTalk ----------------------------------------------------------------------------


async def ding_token(http: aiohttp.ClientSession, fake: FakeDingTalk) -> str:
    creds = {"appKey": fake.app_key, "appSecret": fake.app_secret}
    body = await call(http, "POST", fake.url("/v1.0/oauth2/accessToken"), json=creds)
    assert body["expireIn"] == 7200
    return str(body["accessToken"])


async def group_send(
    http: aiohttp.ClientSession, fake: FakeDingTalk, token: str, **body: Any
) -> tuple[int, Any]:
    msg = {
        "robotCode": fake.robot_code,
        "openConversationId": "cid-g1",
        "msgKey": "sampleText",
        "msgParam": json.dumps({"content": "早上好"}),
    }
    headers = {"x-acs-dingtalk-access-token": token}
    url = fake.url("/v1.0/robot/groupMessages/send")
    async with http.post(url, json={**msg, **body}, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_dingtalk_openapi_token_and_group_send(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    url = dingtalk.url("/v1.0/oauth2/accessToken")
    async with http.post(url, json={"appKey": dingtalk.app_key, "appSecret": "x"}) as resp:
        assert resp.status == 400
    token = await ding_token(http, dingtalk)
    status, body = await group_send(http, dingtalk, token)
    assert status == 200 and body["processQueryKey"]
    assert dingtalk.texts("cid-g1") == ["早上好"]
    bad = [
        ({"openConversationId": "cid-other"}, dt.GROUP_NOT_FOUND),
        ({"robotCode": "other"}, "invalidParameter.robotCode.auth"),
        ({"msgKey": "sampleNope"}, "invalidParameter.msgKey"),
        ({"msgParam": json.dumps({"content": "x" * 15001})}, "invalidParameter.msgParam"),
        ({"msgKey": "sampleMarkdown"}, "invalidParameter.msgParam"),  # lacks title/text
    ]
    for override, code in bad:
        status, body = await group_send(http, dingtalk, token, **override)
        assert (status, body["code"]) == (400, code)
    dingtalk.invalidate_tokens()
    status, body = await group_send(http, dingtalk, token)
    assert (status, body["code"]) == (401, "InvalidAuthentication")
    assert len(dingtalk.sent) == 1


async def test_dingtalk_oto_batch_send(http: aiohttp.ClientSession, dingtalk: FakeDingTalk) -> None:
    dingtalk.add_users("u1", "u2")
    token = await ding_token(http, dingtalk)
    url = dingtalk.url("/v1.0/robot/oToMessages/batchSend")
    headers = {"x-acs-dingtalk-access-token": token}
    msg = {"robotCode": dingtalk.robot_code, "msgKey": "sampleMarkdown"}
    msg["msgParam"] = json.dumps({"title": "提醒", "text": "请打卡"})
    body = await call(http, "POST", url, json={**msg, "userIds": ["u1", "x"]}, headers=headers)
    assert body["invalidStaffIdList"] == ["x"] and body["processQueryKey"]
    async with http.post(url, json={**msg, "userIds": ["u1"] * 21}, headers=headers) as resp:
        assert resp.status == 400
    assert dingtalk.texts("u1") == ["请打卡"] and dingtalk.texts("x") == []


def md(text: str) -> dict[str, Any]:
    return {"msgtype": "markdown", "markdown": {"title": "t", "text": text}}


async def test_dingtalk_custom_robot_sign_keywords_and_token(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    dingtalk.add_robot("tok", secret="SECabc")
    now = dingtalk.now_ms()
    good = signed_webhook_url(dingtalk.base_url, "tok", "SECabc", now)  # the bot's own signer
    assert (await call(http, "POST", good, json=md("hi")))["errcode"] == 0
    cases = [
        (signed_webhook_url(dingtalk.base_url, "tok", "SECwrong", now), "sign not match"),
        (
            signed_webhook_url(dingtalk.base_url, "tok", "SECabc", now - 3_600_001),
            "invalid timestamp",
        ),
        (dingtalk.webhook_url("tok"), "invalid timestamp"),
    ]
    for url, errmsg in cases:
        body = await call(http, "POST", url, json=md("hi"))
        assert (body["errcode"], body["errmsg"]) == (dt.SIGN_FAILED, errmsg)
    body = await call(http, "POST", dingtalk.webhook_url("nope"), json=md("hi"))
    assert (body["errcode"], body["errmsg"]) == (dt.TOKEN_NOT_EXIST, "token is not exist")
    dingtalk.add_robot("kw", keywords=("督办",))
    body = await call(http, "POST", dingtalk.webhook_url("kw"), json=md("hello"))
    assert body["errmsg"] == "keywords not in content"
    at = {"atUserIds": ["u1"], "isAtAll": False}
    body = {**text("督办 @u1"), "at": at}
    assert (await call(http, "POST", dingtalk.webhook_url("kw"), json=body))["errcode"] == 0
    assert dingtalk.texts() == ["hi", "督办 @u1"]


@pytest.mark.parametrize(
    ("body", "errcode"),
    [
        ({"msgtype": "actionCard", "actionCard": {"title": "t", "text": "x"}}, dt.BAD_BODY),
        ({"msgtype": "link", "link": {"title": "t", "text": "x"}}, dt.BAD_BODY),
        ({**text("x"), "at": {"isAtAll": "yes"}}, dt.BAD_BODY),
        (text("x" * 20001), dt.MESSAGE_TOO_LONG),
    ],
)
async def test_dingtalk_webhook_bodies(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk, body: Any, errcode: int
) -> None:
    dingtalk.add_robot("tok")
    assert (await call(http, "POST", dingtalk.webhook_url("tok"), json=body))["errcode"] == errcode


@pytest.mark.parametrize("block", [0.0, 600.0])
async def test_dingtalk_robot_rate_limit(
    aiohttp_server: Any, http: aiohttp.ClientSession, fake_clock: ManualClock, block: float
) -> None:
    fake = FakeDingTalk(clock=fake_clock, rate_block=block)
    await fake.start(aiohttp_server)
    fake.add_robot("tok")

    async def send() -> int:
        return int((await call(http, "POST", fake.webhook_url("tok"), json=text("x")))["errcode"])

    assert [await send() for _ in range(21)] == [0] * 20 + [dt.SEND_TOO_FAST]
    fake_clock.advance(60)
    assert await send() == (dt.SEND_TOO_FAST if block else 0)
    fake_clock.advance(block)
    assert await send() == 0


async def test_dingtalk_signed_callback_and_session_webhook(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk, fake_clock: ManualClock
) -> None:
    headers, body = dingtalk.signed_callback("打卡", "staff1", "cid-g2", "msg1")
    verify_callback(headers["timestamp"], headers["sign"], dingtalk.app_secret, dingtalk.now_ms())
    assert body["text"]["content"] == " 打卡" and body["isInAtList"] is True
    assert body["senderStaffId"] == "staff1" and body["conversationType"] == "2"
    assert "cid-g2" in dingtalk.groups
    reply = {**text("已记录"), "at": {"atUserIds": ["staff1"]}}
    assert (await call(http, "POST", body["sessionWebhook"], json=reply))["errcode"] == 0
    assert dingtalk.texts("cid-g2") == ["已记录"]
    fake_clock.advance(body["sessionWebhookExpiredTime"] / 1000 - fake_clock.now)
    answer = await call(http, "POST", body["sessionWebhook"], json=reply)
    assert (answer["errcode"], answer["errmsg"]) == (dt.SESSION_EXPIRED, "session expired")


async def test_dingtalk_fault_injection_uses_openapi_error_shape(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    token = await ding_token(http, dingtalk)
    dingtalk.fail_next(1, errcode="Throttling.Api", errmsg="too many")
    status, body = await group_send(http, dingtalk, token)
    assert (status, body["code"], body["message"]) == (400, "Throttling.Api", "too many")
    dingtalk.add_robot("tok")
    dingtalk.fail_next(1, errcode=dt.SEND_TOO_FAST, path="/robot/send")
    body = await call(http, "POST", dingtalk.webhook_url("tok"), json=text("x"))
    assert body == {"errcode": dt.SEND_TOO_FAST, "errmsg": "injected fault"}
    assert dingtalk.sent == []  # injected failures deliver nothing
    assert [c.fault for c in dingtalk.calls] == [None, "fail", "fail"]


# --- DingTalk Stream ---------------------------------------------------------------------

SUBSCRIPTIONS = [
    {"type": "EVENT", "topic": "*"},
    {"type": "CALLBACK", "topic": "/v1.0/im/bot/messages/get"},
]


async def open_stream(
    http: aiohttp.ClientSession, fake: FakeDingTalk, subscriptions: Any = SUBSCRIPTIONS
) -> tuple[int, Any]:
    body = {
        "clientId": fake.app_key,
        "clientSecret": fake.app_secret,
        "subscriptions": subscriptions,
        "ua": "duban-test",
        "localIp": "127.0.0.1",
    }
    url = fake.url("/v1.0/gateway/connections/open")
    async with http.post(url, json=body) as resp:
        return resp.status, await resp.json()


async def connect(
    http: aiohttp.ClientSession, fake: FakeDingTalk
) -> aiohttp.ClientWebSocketResponse:
    status, opened = await open_stream(http, fake)
    assert status == 200 and opened["endpoint"].startswith("ws://")
    return await http.ws_connect(opened["endpoint"], params={"ticket": opened["ticket"]})


async def ack(ws: aiohttp.ClientWebSocketResponse, data: Any = None) -> dict[str, Any]:
    """Receive one frame and ACK it as the official SDK does."""
    frame: dict[str, Any] = await ws.receive_json()
    reply = json.loads(frame["data"]) if data is None else data
    await ws.send_json(
        {
            "code": 200,
            "headers": {
                "messageId": frame["headers"]["messageId"],
                "contentType": "application/json",
            },
            "message": "OK",
            "data": json.dumps(reply),
        }
    )
    return frame


async def test_stream_push_bot_message_is_acked(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    ws = await connect(http, dingtalk)
    assert dingtalk.stream_connections == 1
    payload = dingtalk.bot_message("进度", "staff1", "cid-g1", "msg-9")
    push = asyncio.create_task(dingtalk.stream_push_bot_message(payload))
    frame = await ack(ws, data={"response": None})
    acked = await push
    assert frame["type"] == "CALLBACK" and frame["headers"]["topic"] == "/v1.0/im/bot/messages/get"
    assert json.loads(frame["data"]) == payload
    assert acked["headers"]["messageId"] == frame["headers"]["messageId"]
    assert dingtalk.stream_acks == [acked]
    await ws.close()
    async with asyncio.timeout(2):
        await dingtalk.stream_wait_closed()
    assert dingtalk.stream_connections == 0


async def test_stream_ping_echo_and_disconnect(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    ws = await connect(http, dingtalk)
    ping = asyncio.create_task(dingtalk.stream_ping("op-1"))
    frame = await ack(ws)  # echoes the data
    assert (frame["type"], frame["headers"]["topic"]) == ("SYSTEM", "ping")
    assert json.loads((await ping)["data"]) == {"opaque": "op-1"}
    bad_ping = asyncio.create_task(dingtalk.stream_ping("op-2"))
    await ack(ws, data={"opaque": "other"})
    with pytest.raises(AssertionError, match="not echoed"):
        await bad_ping
    await dingtalk.stream_disconnect("upgrade")
    frame = await ws.receive_json()
    assert frame["headers"]["topic"] == "disconnect" and json.loads(frame["data"]) == {
        "reason": "upgrade"
    }
    assert (await ws.receive()).type == aiohttp.WSMsgType.CLOSE
    assert dingtalk.stream_connections == 0


async def test_stream_tickets_are_single_use_and_expire(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk, fake_clock: ManualClock
) -> None:
    status, _ = await open_stream(http, dingtalk, [{"type": "EVENT", "topic": "chat_update"}])
    assert status == 400
    _, opened = await open_stream(http, dingtalk)
    ws = await http.ws_connect(opened["endpoint"], params={"ticket": opened["ticket"]})
    with pytest.raises(aiohttp.WSServerHandshakeError) as reused:
        await http.ws_connect(opened["endpoint"], params={"ticket": opened["ticket"]})
    assert reused.value.status == 401
    _, late = await open_stream(http, dingtalk)
    fake_clock.advance(90)
    with pytest.raises(aiohttp.WSServerHandshakeError):
        await http.ws_connect(late["endpoint"], params={"ticket": late["ticket"]})
    assert dingtalk.stream_connections == 1
    await ws.close()


async def test_stream_ack_timeout_and_lost_connection(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    with pytest.raises(LookupError):
        await dingtalk.stream_ping()
    ws = await connect(http, dingtalk)
    with pytest.raises(TimeoutError):
        await dingtalk.stream_push_bot_message({"msgId": "m"}, ack_timeout=0.05)
    push = asyncio.create_task(dingtalk.stream_push_bot_message({"msgId": "m2"}))
    await ws.receive_json()
    await ws.close()  # without ACK
    with pytest.raises(ConnectionError):
        await push


async def test_stream_routes_to_newest_subscribed_connection(
    http: aiohttp.ClientSession, dingtalk: FakeDingTalk
) -> None:
    old = await connect(http, dingtalk)
    callbacks_only = SUBSCRIPTIONS[1:]
    _, opened = await open_stream(http, dingtalk, callbacks_only)
    new = await http.ws_connect(opened["endpoint"], params={"ticket": opened["ticket"]})
    push = asyncio.create_task(dingtalk.stream_push_bot_message({"msgId": "m"}))
    await ack(new)
    await push
    event = asyncio.create_task(dingtalk.stream_push_event("chat_update", {"chatId": "c"}))
    frame = await ack(old, data={"status": "SUCCESS", "message": "ok"})  # only old has EVENT
    assert frame["headers"]["eventType"] == "chat_update" and (await event)["code"] == 200
    await old.close()
    await new.close()
