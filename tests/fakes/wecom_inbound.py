"""The WeCom side of the bot's inbound endpoints: signed, encrypted callbacks as WeCom sends
them (PLATFORMS.md §1 self-built app, §3 智能机器人 JSON callback), and checks of the bot's
encrypted passive replies. Mixed into ``FakeWeCom``; it uses the bot's own ``WeComCrypto``,
which the published vectors in test_platform_crypto.py pin down.
"""

from __future__ import annotations

import json
import secrets
from typing import Any

from bot.adapters.wecom_crypto import WeComCrypto, parse_xml
from tests.fakes.server import Clock

Query = dict[str, str]


def _cdata(value: str) -> str:
    return "<![CDATA[" + value.replace("]]>", "]]]]><![CDATA[>") + "]]>"


def plain_xml(fields: dict[str, str | int]) -> str:
    """Flat WeCom XML: strings in CDATA, numbers bare, as in the official samples."""
    inner = "".join(
        f"<{tag}>{_cdata(value) if isinstance(value, str) else value}</{tag}>"
        for tag, value in fields.items()
    )
    return f"<xml>{inner}</xml>"


class WeComInbound:
    clock: Clock
    aibot_id: str

    def __init__(self, corpid: str, agentid: int, token: str, encoding_aes_key: str) -> None:
        self.corpid, self.agentid = corpid, agentid
        self.token, self.encoding_aes_key = token, encoding_aes_key
        self.app_crypto = WeComCrypto(token, encoding_aes_key, corpid)
        # An enterprise-internal AI bot's receiveid is the empty string (§3).
        self.aibot_crypto = WeComCrypto(token, encoding_aes_key, "")

    def response_url(self, chatid: str, ttl: float = 3600.0) -> str:
        raise NotImplementedError

    def _stamp(self, timestamp: str | None, nonce: str | None) -> tuple[str, str]:
        return timestamp or str(int(self.clock())), nonce or str(secrets.randbelow(10**10))

    def url_verification(
        self,
        echo: str | None = None,
        *,
        aibot: bool = False,
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> tuple[Query, str]:
        """The GET handshake: ``(query, expected_body)``; the bot must answer the plaintext."""
        echo = echo or str(secrets.randbelow(10**19))
        ts, nonce = self._stamp(timestamp, nonce)
        crypto = self.aibot_crypto if aibot else self.app_crypto
        echostr, signature = crypto.encrypt(echo, nonce, ts)
        return {
            "msg_signature": signature,
            "timestamp": ts,
            "nonce": nonce,
            "echostr": echostr,
        }, echo

    def encrypt_app_xml(
        self, plaintext_xml: str, *, timestamp: str | None = None, nonce: str | None = None
    ) -> tuple[Query, str]:
        """Wrap any plaintext message/event XML as the encrypted POST WeCom sends."""
        ts, nonce = self._stamp(timestamp, nonce)
        encrypted, signature = self.app_crypto.encrypt(plaintext_xml, nonce, ts)
        body = plain_xml(
            {"ToUserName": self.corpid, "Encrypt": encrypted, "AgentID": str(self.agentid)}
        )
        return {"msg_signature": signature, "timestamp": ts, "nonce": nonce}, body

    def signed_app_callback(
        self,
        text: str,
        sender: str,
        msg_id: int,
        *,
        create_time: int | None = None,
        timestamp: str | None = None,
        nonce: str | None = None,
    ) -> tuple[Query, str]:
        """A 1:1 text message to the self-built app: ``(query_params, xml_body)``."""
        plaintext = plain_xml(
            {
                "ToUserName": self.corpid,
                "FromUserName": sender,
                "CreateTime": create_time if create_time is not None else int(self.clock()),
                "MsgType": "text",
                "Content": text,
                "MsgId": msg_id,
                "AgentID": self.agentid,
            }
        )
        return self.encrypt_app_xml(plaintext, timestamp=timestamp, nonce=nonce)

    def signed_app_event(
        self,
        event: str,
        sender: str,
        *,
        event_key: str | None = None,
        create_time: int | None = None,
    ) -> tuple[Query, str]:
        """An app event (subscribe, click, ...); events carry no MsgId (§1)."""
        fields: dict[str, str | int] = {
            "ToUserName": self.corpid,
            "FromUserName": sender,
            "CreateTime": create_time if create_time is not None else int(self.clock()),
            "MsgType": "event",
            "Event": event,
            "AgentID": self.agentid,
        }
        if event_key is not None:
            fields["EventKey"] = event_key
        return self.encrypt_app_xml(plain_xml(fields))

    def decrypt_app_reply(self, body: str | bytes) -> str:
        """Verify and decrypt the bot's passive encrypted XML reply; returns plaintext XML."""
        raw = body.encode() if isinstance(body, str) else body
        fields = parse_xml(raw)
        self.app_crypto.verify_signature(
            fields["MsgSignature"], fields["TimeStamp"], fields["Nonce"], fields["Encrypt"]
        )
        return self.app_crypto.decrypt(fields["Encrypt"])

    def encrypt_aibot_json(
        self, payload: dict[str, Any], *, timestamp: str | None = None, nonce: str | None = None
    ) -> tuple[Query, dict[str, str]]:
        ts, nonce = self._stamp(timestamp, nonce)
        encrypted, signature = self.aibot_crypto.encrypt(
            json.dumps(payload, ensure_ascii=False), nonce, ts
        )
        return {"msg_signature": signature, "timestamp": ts, "nonce": nonce}, {"encrypt": encrypted}

    def signed_aibot_callback(
        self,
        text: str,
        sender: str,
        chatid: str | None,
        msgid: str,
        response_url: str | None = None,
        msgtype: str = "text",
        *,
        image_url: str = "https://fake.invalid/image",
        create_time: int | None = None,
    ) -> tuple[Query, dict[str, str]]:
        """A 智能机器人 message callback: ``(query_params, json_body)``.

        ``chatid=None`` is a 1:1 chat. ``response_url`` defaults to a fresh single-use one on
        this fake. In groups real content starts with "@BotName "; pass it in ``text``.
        ``msgtype`` is "text", "image" (``image_url``) or "mixed" (text then image).
        """
        payload: dict[str, Any] = {
            "msgid": msgid,
            "aibotid": self.aibot_id,
            "chattype": "group" if chatid else "single",
            "from": {"userid": sender},
            "create_time": create_time if create_time is not None else int(self.clock()),
            "response_url": response_url or self.response_url(chatid or sender),
            "msgtype": msgtype,
        }
        if chatid:
            payload["chatid"] = chatid
        text_item = {"msgtype": "text", "text": {"content": text}}
        image_item = {"msgtype": "image", "image": {"url": image_url}}
        if msgtype == "text":
            payload["text"] = text_item["text"]
        elif msgtype == "image":
            payload["image"] = image_item["image"]
        elif msgtype == "mixed":
            payload["mixed"] = {"msg_item": [text_item, image_item]}
        else:
            raise ValueError(f"unsupported msgtype {msgtype!r}")
        return self.encrypt_aibot_json(payload)

    def decrypt_aibot_reply(self, body: dict[str, Any] | str | bytes) -> dict[str, Any]:
        """Verify and decrypt the bot's encrypted JSON reply ``{encrypt, msgsignature, ...}``."""
        outer = body if isinstance(body, dict) else json.loads(body)
        self.aibot_crypto.verify_signature(
            outer["msgsignature"], str(outer["timestamp"]), outer["nonce"], outer["encrypt"]
        )
        inner: dict[str, Any] = json.loads(self.aibot_crypto.decrypt(outer["encrypt"]))
        return inner
