"""Process settings, read from DUBAN_* environment variables (documented in README)."""

from __future__ import annotations

from datetime import datetime
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

# Templates and the sample configuration live beside the packages in a checkout, and in the
# working directory of an installed deployment (the Docker image's /app).
_CHECKOUT = Path(__file__).resolve().parent.parent
PROJECT_ROOT = _CHECKOUT if (_CHECKOUT / "templates").is_dir() else Path.cwd()


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="DUBAN_", extra="ignore")

    database_url: str = Field(
        default_factory=lambda: f"sqlite+aiosqlite:///{PROJECT_ROOT / 'data' / 'duban.db'}"
    )
    config: Path = PROJECT_ROOT / "config" / "sample"
    host: str = "127.0.0.1"
    port: int = 8080
    log_level: str = "INFO"
    # aiohttp's line per HTTP request. Off by default: the reverse proxy keeps one, refused
    # callbacks and every handled message are logged anyway, and under a burst of callbacks
    # it costs a tenth of the server's CPU (bench/inbound.py).
    access_log: bool = False
    # "console" keeps every outgoing message on the local console instead of the platforms:
    # the quick start, and a dry run of a real configuration before going live.
    delivery: Literal["platform", "console"] = "platform"
    # Upgrade the schema on start; when off, `duban serve` refuses an outdated schema.
    auto_migrate: bool = True
    scheduler_enabled: bool = True

    # DingTalk enterprise-internal robot (HTTP callbacks and/or Stream mode) and OpenAPI sends.
    dingtalk_app_key: str = ""
    dingtalk_app_secret: SecretStr = SecretStr("")
    dingtalk_robot_code: str = ""  # defaults to the app key, as DingTalk issues them
    dingtalk_mode: Literal["http", "stream", "both"] = "http"
    # The robot's display names, comma-separated: stripped from "@name" in message texts.
    dingtalk_robot_name: str = ""
    dingtalk_api_base: str = "https://api.dingtalk.com"
    dingtalk_oapi_base: str = "https://oapi.dingtalk.com"

    # WeCom self-built app (callbacks, app and appchat sends) and 智能机器人 (AI bot).
    wecom_corp_id: str = ""
    wecom_token: SecretStr = SecretStr("")
    wecom_aes_key: SecretStr = SecretStr("")
    wecom_agent_id: int = 0
    wecom_secret: SecretStr = SecretStr("")
    wecom_bot_token: SecretStr = SecretStr("")
    wecom_bot_aes_key: SecretStr = SecretStr("")
    wecom_bot_id: str = ""
    wecom_bot_secret: SecretStr = SecretStr("")
    wecom_api_base: str = "https://qyapi.weixin.qq.com"
    # 智能机器人: "http" = callbacks to /hooks/wecom-bot; "ws" = the long connection (no public
    # address needed, and the only transport for proactive group posts); or both.
    wecom_bot_mode: Literal["http", "ws", "both"] = "http"
    wecom_bot_ws_url: str = "wss://openws.work.weixin.qq.com"

    # Callbacks whose timestamp is further than this from now are refused (replays).
    callback_window_seconds: int = 3600
    # The local console (/console): a platform for trying the bot without any account.
    console: bool = False

    # Where the platforms and people's phones reach this bot (https://duban.example.gov.cn):
    # signed links to charts for DingTalk, ledger downloads and the dashboard. Empty: no links.
    public_url: str = ""
    # The key that signs those links. Unset: one is generated and kept in the database, shared
    # by every instance; set it to rotate (all earlier links stop working).
    link_secret: SecretStr = SecretStr("")
    # How long a chart posted into DingTalk stays viewable (DingTalk fetches it when shown).
    image_link_days: int = 90

    # Drills and tests only (bot/drill.py): the process clock starts at this instant, e.g.
    # 2026-11-16T08:59:30+08:00, and runs at real speed from there; jobs fire by it too.
    clock_start: datetime | None = None
