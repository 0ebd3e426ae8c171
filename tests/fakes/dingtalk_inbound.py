"""The DingTalk side of the bot's HTTP-mode inbound endpoint (PLATFORMS.md §4): signed robot
callbacks whose ``sessionWebhook`` points back at the fake. Mixed into ``FakeDingTalk``; the
same message JSON is what ``stream_push_bot_message`` carries in Stream mode.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any


def webhook_sign(timestamp_ms: str | int, secret: str) -> str:
    """base64(HMAC-SHA256(secret, f"{timestamp}\\n{secret}")), computed independently of the
    bot's ``dingtalk_sign`` so that a shared mistake cannot pass unnoticed."""
    message = f"{timestamp_ms}\n{secret}".encode()
    digest = hmac.new(secret.encode(), message, hashlib.sha256).digest()
    return base64.b64encode(digest).decode("ascii")


class DingTalkInbound:
    app_secret: str
    corp_id: str
    chatbot_user_id: str
    robot_code: str

    def now_ms(self) -> int:
        raise NotImplementedError

    def add_group(self, open_conversation_id: str) -> None:
        raise NotImplementedError

    def session_webhook(self, conversation_id: str, ttl: float | None = None) -> tuple[str, int]:
        raise NotImplementedError

    def bot_message(
        self,
        text: str,
        sender_staff_id: str,
        conversation_id: str,
        msg_id: str,
        conversation_type: str = "2",
        at_bot: bool = True,
        *,
        sender_nick: str | None = None,
        conversation_title: str = "测试群",
        session_ttl: float | None = None,
    ) -> dict[str, Any]:
        """The §4 message JSON, as delivered over HTTP or in a Stream CALLBACK's data.

        A group message registers the group (the robot must be in it to receive it). When
        the robot is @-mentioned DingTalk strips the mention and leaves a leading space.
        """
        group = conversation_type == "2"
        if group:
            self.add_group(conversation_id)
        session_url, session_expiry = self.session_webhook(conversation_id, session_ttl)
        message: dict[str, Any] = {
            "msgtype": "text",
            "text": {"content": (" " + text) if at_bot and group else text},
            "msgId": msg_id,
            "createAt": self.now_ms(),
            "conversationType": conversation_type,
            "conversationId": conversation_id,
            "senderId": f"$:LWCP_v1:${sender_staff_id}",
            "senderNick": sender_nick or sender_staff_id,
            "senderStaffId": sender_staff_id,
            "senderCorpId": self.corp_id,
            "chatbotCorpId": self.corp_id,
            "chatbotUserId": self.chatbot_user_id,
            "robotCode": self.robot_code,
            "isAdmin": False,
            "isInAtList": at_bot,
            "atUsers": [{"dingtalkId": self.chatbot_user_id}] if at_bot else [],
            "sessionWebhook": session_url,
            "sessionWebhookExpiredTime": session_expiry,
        }
        if group:
            message["conversationTitle"] = conversation_title
        return message

    def callback_headers(self, timestamp_ms: int | None = None) -> dict[str, str]:
        """``timestamp``/``sign`` headers, signed with the app secret (raw base64)."""
        timestamp = str(self.now_ms() if timestamp_ms is None else timestamp_ms)
        return {"timestamp": timestamp, "sign": webhook_sign(timestamp, self.app_secret)}

    def signed_callback(
        self,
        text: str,
        sender_staff_id: str,
        conversation_id: str,
        msg_id: str,
        conversation_type: str = "2",
        at_bot: bool = True,
        *,
        timestamp_ms: int | None = None,
        **fields: Any,
    ) -> tuple[dict[str, str], dict[str, Any]]:
        """``(headers, json_body)`` of an HTTP-mode robot callback; ``fields`` go to
        ``bot_message`` (sender_nick, conversation_title, session_ttl)."""
        body = self.bot_message(
            text, sender_staff_id, conversation_id, msg_id, conversation_type, at_bot, **fields
        )
        return self.callback_headers(timestamp_ms), body
