"""The senders this process can deliver with, one per channel type, chosen from the settings.

With DUBAN_DELIVERY=console every channel type is served by the console, so a real
configuration can be tried out without a single message reaching a platform.
"""

from __future__ import annotations

import logging

import aiohttp

from bot.adapters.base import DeliveryError, Destination, Sender
from bot.adapters.dingtalk_send import (
    DingTalkOpenApiSender,
    DingTalkSessionSender,
    DingTalkWebhookSender,
    ImagePublisher,
)
from bot.adapters.wecom_send import BotTransport, WeComAppSender, WeComBotSender, WeComWebhookSender
from bot.clock import Clock
from bot.messages import Outbound
from bot.settings import Settings

log = logging.getLogger(__name__)

CHANNEL_TYPES = (
    "wecom_webhook",
    "wecom_appchat",
    "wecom_app_user",
    "wecom_aibot",
    "wecom_response_url",
    "dingtalk_openapi",
    "dingtalk_user",
    "dingtalk_webhook",
    "dingtalk_session",
    "console",
)


class Senders:
    def __init__(self, by_channel: dict[str, Sender]) -> None:
        self.by_channel = by_channel

    async def send(
        self, destination: Destination, message: Outbound, *, skip_parts: int = 0
    ) -> None:
        sender = self.by_channel.get(destination.channel_type)
        if sender is None:
            raise DeliveryError(
                f"channel {destination.channel_type} is not configured in this process",
                retryable=False,
                code="config",
            )
        await sender.send(destination, message, skip_parts=skip_parts)


def build_senders(
    settings: Settings,
    http: aiohttp.ClientSession,
    clock: Clock,
    *,
    console: Sender | None = None,
    aibot_transport: BotTransport | None = None,
    publish_image: ImagePublisher | None = None,
) -> Senders:
    if settings.delivery == "console":
        if console is None:
            raise ValueError("DUBAN_DELIVERY=console needs the console")
        return Senders(dict.fromkeys(CHANNEL_TYPES, console))
    found: list[Sender] = [
        WeComWebhookSender(http, api_base=settings.wecom_api_base, clock=clock),
        DingTalkWebhookSender(
            http, api_base=settings.dingtalk_oapi_base, clock=clock, publish_image=publish_image
        ),
        DingTalkSessionSender(http, clock=clock),
    ]
    wecom_secret = settings.wecom_secret.get_secret_value()
    if settings.wecom_corp_id and wecom_secret:
        found.append(
            WeComAppSender(
                http,
                api_base=settings.wecom_api_base,
                clock=clock,
                corp_id=settings.wecom_corp_id,
                secret=wecom_secret,
                agent_id=settings.wecom_agent_id,
            )
        )
    # Replies to the AI bot's HTTP callbacks go to the response_url each one carries; only
    # posting unasked needs the long connection.
    found.append(WeComBotSender(http, transport=aibot_transport, clock=clock))
    dingtalk_secret = settings.dingtalk_app_secret.get_secret_value()
    if settings.dingtalk_app_key and dingtalk_secret:
        found.append(
            DingTalkOpenApiSender(
                http,
                api_base=settings.dingtalk_api_base,
                clock=clock,
                app_key=settings.dingtalk_app_key,
                app_secret=dingtalk_secret,
                robot_code=settings.dingtalk_robot_code or settings.dingtalk_app_key,
                publish_image=publish_image,
            )
        )
    if console is not None:
        found.append(console)
    return Senders({channel: s for s in found for channel in s.channel_types})
