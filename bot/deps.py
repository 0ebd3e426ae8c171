"""What handlers, jobs and routes share; built once per process by the app's lifespan."""

from __future__ import annotations

from dataclasses import dataclass

import aiohttp
from apscheduler.schedulers.asyncio import AsyncIOScheduler

from bot.adapters.base import WebhookAdapter
from bot.adapters.dingtalk_stream import StreamClient
from bot.adapters.wecom_aibot_ws import AibotConnection
from bot.clock import Clock
from bot.db import Database
from bot.delivery import DeliveryWorker
from bot.deployment import Loaded
from bot.duties import Duties
from bot.inbound import Inbox
from bot.leader import Leadership
from bot.links import Links
from bot.scheduling import Scheduling
from bot.senders import Senders
from bot.settings import Settings


@dataclass
class Deps:
    settings: Settings
    clock: Clock
    deployment: Loaded
    db: Database
    http: aiohttp.ClientSession
    scheduler: AsyncIOScheduler
    inbox: Inbox
    adapters: dict[str, WebhookAdapter]
    senders: Senders
    outbox: DeliveryWorker
    stream: StreamClient | None = None  # DingTalk Stream mode, when configured
    aibot: AibotConnection | None = None  # WeCom 智能机器人 long connection, when configured
    scheduling: Scheduling | None = None  # the jobs' schedules, kept in step with the scheduler
    links: Links | None = None  # signed links to files and the dashboard
    leadership: Leadership | None = None  # whether this instance leads (bot.leader)
    duties: Duties | None = None  # what it runs while it does (bot.duties)
