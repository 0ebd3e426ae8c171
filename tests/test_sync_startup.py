"""A start with the configuration last applied skips what only the configuration writes, and
never serves a stale one: any change to the files, or a sync of other files, is applied."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any

from sqlalchemy import event, select, update

from bot.clock import FixedClock
from bot.db import Database
from bot.deployment import Loaded, load
from bot.ledger import plan_changes
from bot.models import AuditEntry, PlanTask, Unit
from bot.startup import apply_config, prepare_database
from bot.sync import sync
from tests.configs import ENV, mini, write


@contextmanager
def statements(db: Database) -> Iterator[list[str]]:
    """The SQL this engine runs meanwhile (observed, not altered)."""
    seen: list[str] = []

    def note(_conn: Any, _cursor: Any, statement: str, *_rest: Any) -> None:
        seen.append(statement)

    event.listen(db.engine.sync_engine, "before_cursor_execute", note)
    try:
        yield seen
    finally:
        event.remove(db.engine.sync_engine, "before_cursor_execute", note)


def reads_people(seen: list[str]) -> bool:
    return any("FROM people" in s or "FROM identities" in s for s in seen)


def loaded(path: Path, data: dict[str, Any]) -> Loaded:
    return load(write(path, data), env=ENV)


async def test_an_unchanged_start_skips_the_people_and_a_change_is_applied(
    db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    await prepare_database(db, auto_migrate=True)
    conf = tmp_path / "conf"
    first = await apply_config(db, loaded(conf, mini()), clock)
    assert first.created["person"] == 4

    with statements(db) as seen:
        again = await apply_config(db, loaded(conf, mini()), clock)
    assert not again.changed and not reads_people(seen)

    # One field of one person: the next start applies it, in full.
    data = mini()
    data["people"][1]["name"] = "甲书记（新任）"
    clock.at += timedelta(hours=1)
    with statements(db) as seen:
        changed = await apply_config(db, loaded(conf, data), clock)
    assert changed.updated == {"person": 1} and reads_people(seen)
    async with db.begin() as s:
        entry = await s.scalar(select(AuditEntry).where(AuditEntry.action == "person.update"))
    assert entry.entity_key == "p_a_sec" and entry.after == {"name": "甲书记（新任）"}

    # And going back to the first files is a change too.
    with statements(db) as seen:
        back = await apply_config(db, loaded(conf, mini()), clock)
    assert back.updated == {"person": 1} and reads_people(seen)


async def test_a_sync_of_other_files_means_a_full_apply_at_the_next_start(
    db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    await prepare_database(db, auto_migrate=True)
    await apply_config(db, loaded(tmp_path / "a", mini()), clock)
    other = mini()
    other["units"][1]["name"] = "乙局党委（别的文件）"
    async with db.begin() as s:  # as `duban simulate` or a test would, straight through sync
        await sync(s, loaded(tmp_path / "b", other).spec, clock.now())
    report = await apply_config(db, loaded(tmp_path / "a", mini()), clock)
    assert report.updated == {"unit": 1}
    async with db.begin() as s:
        assert await s.scalar(select(Unit.name).where(Unit.key == "ub")) == "乙局机关党委"


async def test_an_unchanged_start_still_brings_back_the_configured_plan(
    db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    await prepare_database(db, auto_migrate=True)
    conf = tmp_path / "conf"
    await apply_config(db, loaded(conf, mini()), clock)
    async with db.begin() as s:  # 任务取消 T01 and 任务修改 T02 by chat
        t01 = await s.scalar(select(PlanTask).where(PlanTask.key == "T01"))
        await plan_changes.cancel(s, t01, reason="试", now=clock.now(), actor="p_admin")
        t02 = await s.scalar(select(PlanTask).where(PlanTask.key == "T02"))
        await plan_changes.set_fields(
            s, t02, {"title": "改过的标题"}, now=clock.now(), actor="p_admin"
        )
    report = await apply_config(db, loaded(conf, mini()), clock)
    assert report.updated == {"task": 2}
    async with db.begin() as s:
        tasks = dict((await s.execute(select(PlanTask.key, PlanTask.active))).all())
        title = await s.scalar(select(PlanTask.title).where(PlanTask.key == "T02"))
    assert tasks["T01"] is True and title == "联席会议"


async def test_config_apply_compares_everything_even_when_unchanged(
    db: Database, tmp_path: Path, clock: FixedClock
) -> None:
    await prepare_database(db, auto_migrate=True)
    conf = tmp_path / "conf"
    await apply_config(db, loaded(conf, mini()), clock)
    async with db.begin() as s:  # a hand-made edit the configuration knows nothing of
        await s.execute(update(Unit).where(Unit.key == "ua").values(name="手改的名称"))
    start = await apply_config(db, loaded(conf, mini()), clock)
    assert not start.changed  # a start trusts the mark: only the configuration writes units
    full = await apply_config(db, loaded(conf, mini()), clock, full=True)
    assert full.updated == {"unit": 1}
    async with db.begin() as s:
        assert await s.scalar(select(Unit.name).where(Unit.key == "ua")) == "甲局机关党委"
