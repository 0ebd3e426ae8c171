"""Fake WeCom and DingTalk servers: the only platform stand-ins the tests may use.

Start one with pytest-aiohttp's ``aiohttp_server`` fixture::

    fake = FakeWeCom(clock=ManualClock())
    await fake.start(aiohttp_server)  # sets fake.base_url
"""

from tests.fakes.dingtalk import FakeDingTalk
from tests.fakes.server import ManualClock, RecordedCall, RollingWindow, SentMessage
from tests.fakes.wecom import FakeWeCom

__all__ = [
    "FakeDingTalk",
    "FakeWeCom",
    "ManualClock",
    "RecordedCall",
    "RollingWindow",
    "SentMessage",
]
