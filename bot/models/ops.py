"""How the bot runs: schedules, job runs, outbox, inbound dedupe, calendar, audit log."""

from __future__ import annotations

from datetime import date, datetime

from sqlalchemy import (
    Boolean,
    CheckConstraint,
    Date,
    Index,
    String,
    Text,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, Json, intpk

OUTBOX_STATES = ("pending", "sending", "merged", "sent", "dead")


class Schedule(Base):
    """An admin's schedule for a job; absent rows fall back to the configuration's defaults."""

    __tablename__ = "schedules"
    job: Mapped[str] = mapped_column(String(32), primary_key=True)
    expression: Mapped[str] = mapped_column(String(128))
    paused: Mapped[bool] = mapped_column(Boolean, default=False)
    updated_by: Mapped[str | None] = mapped_column(String(64))
    updated_at: Mapped[datetime]


class JobRun(Base):
    """One occurrence of one job; the unique key is what makes a job run exactly once."""

    __tablename__ = "job_runs"
    __table_args__ = (UniqueConstraint("job", "occurrence"),)
    id: Mapped[intpk]
    job: Mapped[str] = mapped_column(String(32))
    occurrence: Mapped[datetime]
    started_at: Mapped[datetime]
    finished_at: Mapped[datetime | None]
    status: Mapped[str] = mapped_column(String(16), default="running")
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    detail: Mapped[str] = mapped_column(Text, default="")


class OutboxMessage(Base):
    """A message the bot has decided to send, written in the transaction that decided it.

    The lane (platform, chat_id) orders delivery; ``group_key`` names a configured group whose
    channel and secrets are looked up at send time, else ``route`` holds a reply route (no
    secrets either way). ``body`` is the message as JSON (bot.outbox). Rows coalesced into one
    post point at the row that carries the post with ``merged_into`` and share its fate.
    """

    __tablename__ = "outbox"
    __table_args__ = (
        CheckConstraint(f"status IN {OUTBOX_STATES}", name="status"),
        Index("ix_outbox_status_next", "status", "next_attempt_at"),
        Index("ix_outbox_lane", "status", "platform", "chat_id", "id"),
    )
    id: Mapped[intpk]
    dedupe_key: Mapped[str] = mapped_column(String(255), unique=True)
    kind: Mapped[str] = mapped_column(String(32))
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(128))
    channel: Mapped[str] = mapped_column(String(64))  # group key or route type: labels, alerts
    group_key: Mapped[str | None] = mapped_column(String(64))
    route: Mapped[Json | None]
    body: Mapped[Json]
    mergeable: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="pending")
    attempts: Mapped[int] = mapped_column(default=0)
    sent_parts: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime]
    claimed_at: Mapped[datetime | None]
    claimed_by: Mapped[str | None] = mapped_column(String(128))
    merged_into: Mapped[int | None] = mapped_column(index=True)
    created_at: Mapped[datetime]
    sent_at: Mapped[datetime | None]
    last_error: Mapped[str | None] = mapped_column(Text)


class InboundSeen(Base):
    """Every message accepted, by platform id: a retried callback is dropped across restarts,
    and one accepted but not yet handled when the process died is handled after it.

    `body` holds the message until its handling commits (the same transaction sets
    `handled_at` and clears it), so the table keeps only ids once the work is done.
    """

    __tablename__ = "inbound_seen"
    __table_args__ = (
        Index(
            "ix_inbound_seen_unhandled",
            "seen_at",
            sqlite_where=text("handled_at IS NULL"),
            postgresql_where=text("handled_at IS NULL"),
        ),
        # Set aside after failed handlings: handled, body kept (bot.inbox_admin).
        Index(
            "ix_inbound_seen_set_aside",
            "seen_at",
            sqlite_where=text("handled_at IS NOT NULL AND body IS NOT NULL"),
            postgresql_where=text("handled_at IS NOT NULL AND body IS NOT NULL"),
        ),
    )
    platform: Mapped[str] = mapped_column(String(16), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(191), primary_key=True)
    seen_at: Mapped[datetime]  # read only through the partial indexes above
    body: Mapped[Json | None] = mapped_column(default=None)
    handled_at: Mapped[datetime | None] = mapped_column(default=None)
    attempts: Mapped[int] = mapped_column(default=0, server_default="0")


class CalendarDay(Base):
    """A day whose working status differs from Monday–Friday (holidays, 调休), or set by admins."""

    __tablename__ = "calendar_days"
    day: Mapped[date] = mapped_column(Date, primary_key=True)
    is_workday: Mapped[bool] = mapped_column(Boolean)
    source: Mapped[str] = mapped_column(String(16))
    note: Mapped[str] = mapped_column(String(64), default="")
    updated_at: Mapped[datetime]


class AuditEntry(Base):
    """Who did what, when, with the state before and after; written in the change's transaction."""

    __tablename__ = "audit_log"
    __table_args__ = (Index("ix_audit_log_entity", "entity", "entity_key"),)
    id: Mapped[intpk]
    at: Mapped[datetime] = mapped_column(index=True)
    actor: Mapped[str] = mapped_column(String(64))
    action: Mapped[str] = mapped_column(String(64))
    entity: Mapped[str] = mapped_column(String(32))
    entity_key: Mapped[str] = mapped_column(String(128))
    before: Mapped[Json | None]
    after: Mapped[Json | None]
    detail: Mapped[str] = mapped_column(Text, default="")
