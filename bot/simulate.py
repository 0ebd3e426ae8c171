"""`duban simulate`: the real jobs and command handlers against a virtual clock, on a fresh
temporary database, with scripted chat messages fed at their times; every message the bot
would post or reply is written out (JSON lines, or a readable transcript).

Admins preview next month with it; tests use it for whole-month scenarios.
"""

from __future__ import annotations

import json
import tempfile
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path
from typing import Any, TextIO

import yaml
from sqlalchemy import select

from bot import schema
from bot.clock import SHANGHAI, FixedClock
from bot.db import Database
from bot.deployment import Loaded
from bot.dispatch import Dispatcher, outbox_poster
from bot.messages import ChatRef, Inbound
from bot.models import OutboxMessage
from bot.render import Renderer
from bot.schedules import parse_schedule
from bot.sync import sync
from bot.workdays import load_calendar


@dataclass(frozen=True, slots=True)
class Said:
    """One scripted message: at `at`, `sender` (a person id) writes `text` in `group` (a group
    id of the configuration; empty for a one-to-one chat with the bot)."""

    at: datetime
    sender: str
    text: str
    group: str = ""


@dataclass(frozen=True, slots=True)
class Posted:
    at: datetime
    platform: str
    group: str
    kind: str
    text: str
    mentions: tuple[str, ...]

    def as_json(self) -> dict[str, Any]:
        return {
            "time": self.at.isoformat(),
            "platform": self.platform,
            "group": self.group,
            "kind": self.kind,
            "text": self.text,
            "mentions": list(self.mentions),
        }


def read_script(path: Path) -> list[Said]:
    """A YAML list (or JSON lines) of {time, sender, text, group?}; times in Beijing time."""
    raw = path.read_text(encoding="utf-8")
    if path.suffix == ".jsonl":
        items = [json.loads(line) for line in raw.splitlines() if line.strip()]
    else:
        items = yaml.safe_load(raw) or []
    out = []
    for i, item in enumerate(items, start=1):
        try:
            at = datetime.fromisoformat(str(item["time"]))
            at = at.replace(tzinfo=SHANGHAI) if at.tzinfo is None else at
            out.append(Said(at, str(item["sender"]), str(item["text"]), str(item.get("group", ""))))
        except (KeyError, TypeError, ValueError) as e:
            raise ValueError(
                f"脚本第 {i} 条格式不对：需要 time、sender、text (item {i}: {e})"
            ) from e
    return sorted(out, key=lambda s: s.at)


async def simulate(
    deployment: Loaded,
    first: date,
    last: date,
    script: Sequence[Said] = (),
    database_url: str | None = None,
) -> list[Posted]:
    from handlers import build_router
    from jobs.env import JobEnv
    from jobs.registry import JOBS

    start = datetime.combine(first, time.min, SHANGHAI)
    end = datetime.combine(last, time.max, SHANGHAI)
    with tempfile.TemporaryDirectory(prefix="duban-sim-") as tmp:
        db = Database(database_url or f"sqlite+aiosqlite:///{Path(tmp) / 'sim.db'}")
        try:
            await schema.upgrade(db.engine)
            clock = FixedClock(start)
            async with db.begin() as s:
                await sync(s, deployment.spec, clock.now())
                calendar = await load_calendar(s)
            renderer = Renderer.for_config(deployment.root)
            env = JobEnv(db, deployment, clock, renderer)
            dispatch = Dispatcher(
                build_router(), db, deployment, renderer, clock, outbox_poster(deployment, clock)
            )
            defaults = deployment.spec.schedules
            events: list[tuple[datetime, int, Any]] = []
            for order, job in enumerate(JOBS):
                if job.run is None:
                    continue
                spec = parse_schedule(defaults.get(job.name, job.default))
                at = start - timedelta(seconds=1)
                while True:
                    [at] = spec.next_fire_times(at, calendar, 1) or [end + timedelta(days=1)]
                    if at > end:
                        break
                    events.append((at, order, job))
            events.extend((said.at, -1, said) for said in script if start <= said.at <= end)
            events.sort(key=lambda e: (e[0], e[1]))
            posted: list[Posted] = []
            for n, (at, _, what) in enumerate(events):
                clock.at = at
                if isinstance(what, Said):
                    await dispatch(_inbound(deployment, what, n))
                else:
                    await what.run(env, at)
                posted.extend(await _drain(db, at))
            return posted
        finally:
            await db.dispose()


def _inbound(deployment: Loaded, said: Said, n: int) -> Inbound:
    """The message as the group's platform would deliver it, from the person's account there."""
    group = next((g for g in deployment.spec.groups if g.id == said.group), None)
    person = next((p for p in deployment.spec.people if p.id == said.sender), None)
    platform = group.platform if group else "console"
    account = getattr(person, platform, None) if person and platform != "console" else None
    if account is None:  # no account on that platform: speak through the console
        chat = ChatRef("console", group.id if group else said.sender, group is not None)
        return Inbound(
            "console", f"sim-{n}", chat, said.sender, said.sender, said.text, said.at, "simulate"
        )
    chat = ChatRef(platform, group.chat_id if group else account, group is not None)
    return Inbound(
        platform,
        f"sim-{n}",
        chat,
        account,
        person.name if person else "",
        said.text,
        said.at,
        "simulate",
    )


async def _drain(db: Database, at: datetime) -> list[Posted]:
    """What was queued, as the delivery worker would post it (mergeable runs joined)."""
    async with db.begin() as s:
        rows = (
            await s.scalars(
                select(OutboxMessage)
                .where(OutboxMessage.status == "pending")
                .order_by(OutboxMessage.id)
            )
        ).all()
        posted: list[Posted] = []
        merged: dict[tuple[str, str, str], int] = {}
        for row in rows:
            row.status, row.sent_at = "sent", at
            target = row.group_key or row.chat_id
            mentions = tuple(m["name"] for m in row.body.get("mentions", []))
            key = (row.platform, target, row.kind)
            if row.mergeable and key in merged:
                i = merged[key]
                old = posted[i]
                names = tuple(dict.fromkeys(old.mentions + mentions))
                posted[i] = Posted(
                    at,
                    old.platform,
                    old.group,
                    old.kind,
                    f"{old.text}\n\n{row.body['body']}",
                    names,
                )
                continue
            if row.mergeable:
                merged[key] = len(posted)
            posted.append(Posted(at, row.platform, target, row.kind, row.body["body"], mentions))
        return posted


def write_jsonl(posted: Iterable[Posted], out: TextIO) -> None:
    for p in posted:
        out.write(json.dumps(p.as_json(), ensure_ascii=False) + "\n")


def write_transcript(posted: Iterable[Posted], out: TextIO) -> None:
    for p in posted:
        who = f"@{'、'.join(p.mentions)}" if p.mentions else ""
        out.write(f"── {p.at:%Y-%m-%d %H:%M} {p.platform}/{p.group} [{p.kind}] {who}\n{p.text}\n\n")
