"""Which platform adapters this process runs, chosen from the settings.

An adapter whose settings are absent is simply not mounted, so a deployment on one platform
needs nothing of the other.
"""

from __future__ import annotations

from bot.adapters.base import WebhookAdapter
from bot.settings import Settings


def webhook_adapters(settings: Settings) -> dict[str, WebhookAdapter]:
    window = settings.callback_window_seconds
    adapters: dict[str, WebhookAdapter] = {}
    if settings.dingtalk_app_secret.get_secret_value() and settings.dingtalk_mode != "stream":
        from bot.adapters.dingtalk_inbound import DingTalkWebhook

        adapters["dingtalk"] = DingTalkWebhook(
            app_secret=settings.dingtalk_app_secret.get_secret_value(),
            window_seconds=window,
            robot_names=robot_names(settings),
        )
    if settings.wecom_token.get_secret_value() and settings.wecom_aes_key.get_secret_value():
        from bot.adapters.wecom_inbound import WeComAppWebhook

        adapters["wecom"] = WeComAppWebhook(
            token=settings.wecom_token.get_secret_value(),
            aes_key=settings.wecom_aes_key.get_secret_value(),
            corp_id=settings.wecom_corp_id,
            window_seconds=window,
        )
    if (
        settings.wecom_bot_mode != "ws"
        and settings.wecom_bot_token.get_secret_value()
        and settings.wecom_bot_aes_key.get_secret_value()
    ):
        from bot.adapters.wecom_bot_inbound import WeComBotWebhook

        adapters["wecom-bot"] = WeComBotWebhook(
            token=settings.wecom_bot_token.get_secret_value(),
            aes_key=settings.wecom_bot_aes_key.get_secret_value(),
            window_seconds=window,
        )
    return adapters


def robot_names(settings: Settings) -> tuple[str, ...]:
    return tuple(n.strip() for n in settings.dingtalk_robot_name.split(",") if n.strip())
