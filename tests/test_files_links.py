"""Signed, expiring links: files served by any instance, and charts reaching DingTalk by URL."""

from __future__ import annotations

import json
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from pydantic import SecretStr
from sqlalchemy import func, select

from bot.app import DEPS, create_app
from bot.clock import SHANGHAI, FixedClock
from bot.deployment import load
from bot.files import file_path, store_file
from bot.links import Links, link_secret
from bot.messages import Outbound
from bot.models import AppKey, StoredFile
from bot.outbox import enqueue, group_target
from bot.settings import Settings
from tests.configs import ENV, mini, write
from tests.fakes import FakeDingTalk, ManualClock
from tests.waiting import until

NOW = datetime(2026, 11, 2, 9, 0, tzinfo=SHANGHAI)
PNG = b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4


def test_signature_covers_path_and_expiry() -> None:
    links = Links("https://duban.example.cn/", b"k" * 32)
    url = links.url("/files/abc", NOW + timedelta(hours=1), period="2026-11")
    assert url is not None and url.startswith("https://duban.example.cn/files/abc?period=2026-11&")
    query = dict(p.split("=") for p in urlsplit(url).query.split("&"))
    assert links.verify("/files/abc", query, NOW)
    assert not links.verify("/files/abd", query, NOW)  # another file
    assert not links.verify("/files/abc", query, NOW + timedelta(hours=2))  # expired
    assert not links.verify("/files/abc", {**query, "exp": str(int(query["exp"]) + 60)}, NOW)
    assert not Links("https://x", b"other" * 8).verify("/files/abc", query, NOW)
    assert not links.verify("/files/abc", {"exp": "soon", "sig": query["sig"]}, NOW)
    assert Links("", b"k").url("/files/abc", NOW) is None  # no public URL: no links
    assert "k" * 32 not in repr(links)


async def test_generated_key_is_kept_and_shared(db: Any) -> None:
    async with db.begin() as s:
        first = await link_secret(s, "", NOW)
    async with db.begin() as s:
        again = await link_secret(s, "", NOW + timedelta(days=1))
        assert await s.scalar(select(func.count()).select_from(AppKey)) == 1
    assert first == again and len(first) == 64
    async with db.begin() as s:
        assert await link_secret(s, "from-env", NOW) == b"from-env"


async def test_file_route_serves_signed_and_refuses_the_rest(
    aiohttp_client: Any, database_url: str, tmp_path: Path, caplog: Any
) -> None:
    clock = FixedClock(NOW)
    settings = Settings(
        database_url=database_url,
        config=tmp_path,
        scheduler_enabled=False,
        public_url="https://duban.example.cn",
        link_secret=SecretStr("s" * 40),
    )
    deployment = load(write(tmp_path, mini()), env=ENV)
    client = await aiohttp_client(create_app(settings, clock, deployment))
    deps = client.app[DEPS]
    assert deps.links is not None
    async with deps.db.begin() as s:
        file_id = await store_file(
            s,
            b"PK-workbook",
            filename="台账-2026-11.xlsx",
            content_type="application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
            kind="export",
            now=NOW,
            ttl=timedelta(hours=24),
        )
    url = deps.links.url(file_path(file_id), NOW + timedelta(hours=24))
    assert url is not None
    local = url.removeprefix("https://duban.example.cn")
    ok = await client.get(local)
    assert ok.status == 200
    assert await ok.read() == b"PK-workbook"
    assert "attachment" in ok.headers["Content-Disposition"]
    assert "filename*=UTF-8''%E5%8F%B0%E8%B4%A6-2026-11.xlsx" in ok.headers["Content-Disposition"]

    forged = local.replace(file_id, file_id[:-1] + ("A" if file_id[-1] != "A" else "B"))
    caplog.clear()
    bad = await client.get(forged)
    assert bad.status == 403
    assert "链接无效或已过期" in await bad.text()
    assert [r.levelname for r in caplog.records if r.name == "bot.files"] == ["WARNING"]
    assert (await client.get(file_path(file_id))).status == 403  # unsigned

    # The link outlives the file: 410 Gone, and the row goes with the next stored file.
    late = deps.links.url(file_path(file_id), NOW + timedelta(days=30))
    assert late is not None
    clock.at = NOW + timedelta(days=2)
    assert (await client.get(late.removeprefix("https://duban.example.cn"))).status == 410
    async with deps.db.begin() as s:
        await store_file(
            s,
            b"x",
            filename="x.png",
            content_type="image/png",
            kind="image",
            now=clock.at,
            ttl=timedelta(hours=1),
        )
        assert await s.scalar(select(func.count()).select_from(StoredFile)) == 1


async def test_dingtalk_chart_goes_out_as_a_signed_link_to_the_image(
    aiohttp_server: Any, aiohttp_client: Any, database_url: str, tmp_path: Path
) -> None:
    clock = FixedClock(NOW)
    fake = FakeDingTalk(clock=ManualClock(NOW.timestamp()))
    fake.add_group("cidC1==")
    await fake.start(aiohttp_server)
    settings = Settings(
        database_url=database_url,
        config=tmp_path,
        scheduler_enabled=False,
        dingtalk_app_key=fake.app_key,
        dingtalk_app_secret=SecretStr(fake.app_secret),
        dingtalk_api_base=fake.base_url,
        public_url="https://duban.example.cn",
    )
    deployment = load(write(tmp_path, mini()), env=ENV)
    client = await aiohttp_client(create_app(settings, clock, deployment))
    deps = client.app[DEPS]
    group = next(g for g in deployment.spec.groups if g.id == "g_c1")
    async with deps.db.begin() as s:
        await enqueue(
            s,
            Outbound("### 11月完成情况", title="完成情况", image=PNG),
            to=group_target(group),
            kind="test",
            dedupe_key="chart:1",
            now=NOW,
        )
    deps.outbox.nudge()
    await until(lambda: len(fake.sent_to("cidC1==")) == 2, 10)
    text, image = fake.sent_to("cidC1==")
    assert text.msgtype == "sampleMarkdown"
    assert image.msgtype == "sampleImageMsg"
    photo = json.loads(image.payload["msgParam"])["photoURL"]
    assert photo.startswith("https://duban.example.cn/files/")
    served = await client.get(photo.removeprefix("https://duban.example.cn"))
    assert served.status == 200
    assert served.content_type == "image/png"
    assert await served.read() == PNG
    assert "inline" in served.headers["Content-Disposition"]
