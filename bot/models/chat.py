"""State that chat conversations need between messages."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, Json, intpk


class BindRequest(Base):
    """Someone the bot does not know asks to be bound to a unit (申请绑定); an admin decides."""

    __tablename__ = "bind_requests"
    __table_args__ = (
        CheckConstraint("status IN ('pending', 'approved', 'rejected')", name="status"),
        Index("ix_bind_requests_identity", "platform", "user_id"),
    )
    id: Mapped[intpk]
    platform: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))
    name: Mapped[str] = mapped_column(String(64))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    status: Mapped[str] = mapped_column(String(16), default="pending")
    requested_at: Mapped[datetime]
    decided_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    decided_at: Mapped[datetime | None]


class PendingChoice(Base):
    """A question the bot asked and waits for a numbered answer to, one per person and chat."""

    __tablename__ = "pending_choices"
    __table_args__ = (UniqueConstraint("platform", "chat_id", "user_id"),)
    id: Mapped[intpk]
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(128))
    user_id: Mapped[str] = mapped_column(String(128))
    kind: Mapped[str] = mapped_column(String(32))
    payload: Mapped[Json]
    expires_at: Mapped[datetime]
