"""What reports leave behind: approved rankings, files served by signed link, process keys."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, LargeBinary, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, intpk


class ReportPublication(Base):
    """An admin's approval (发布) of a report for one period: only then do rankings reach the
    community groups. ``kind`` is the report (``monthly``), ``period`` its key (``2026-11``)."""

    __tablename__ = "report_publications"
    __table_args__ = (UniqueConstraint("kind", "period"),)
    id: Mapped[intpk]
    kind: Mapped[str] = mapped_column(String(16))
    period: Mapped[str] = mapped_column(String(16))
    approved_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    approved_at: Mapped[datetime]


class StoredFile(Base):
    """A generated file (chart, workbook) served at a signed, expiring link by any instance.

    ``id`` is random and unguessable; the link's signature and ``expires_at`` both bound it.
    """

    __tablename__ = "stored_files"
    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    kind: Mapped[str] = mapped_column(String(16))
    filename: Mapped[str] = mapped_column(String(255))
    content_type: Mapped[str] = mapped_column(String(128))
    data: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime]
    expires_at: Mapped[datetime] = mapped_column(index=True)


class AppKey(Base):
    """Keys the process generates once and every instance shares (the link-signing key when
    DUBAN_LINK_SECRET is not set)."""

    __tablename__ = "app_keys"
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(String(255))
    created_at: Mapped[datetime]
