"""What gets tracked: the responsibility list, the plan, task instances and their check-ins."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, intpk, key

CADENCES = ("once", "monthly", "quarterly", "yearly")
OWNERS = ("all", "leads", "named")
INSTANCE_STATES = ("pending", "submitted", "accepted", "returned", "overdue", "excused")
CHECKIN_STATES = ("submitted", "withdrawn", "accepted", "returned")


class Area(Base):
    """One of the six areas of the responsibility list (政治建设 …)."""

    __tablename__ = "areas"
    id: Mapped[intpk]
    key: Mapped[key]
    name: Mapped[str] = mapped_column(String(64))
    position: Mapped[int]


class DutyHolder(Base):
    """One of the four duty holders (书记 第一责任人 …)."""

    __tablename__ = "duty_holders"
    id: Mapped[intpk]
    key: Mapped[key]
    name: Mapped[str] = mapped_column(String(64))
    duty: Mapped[str] = mapped_column(String(64))
    position: Mapped[int]


class Responsibility(Base):
    __tablename__ = "responsibilities"
    id: Mapped[intpk]
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"), index=True)
    holder_id: Mapped[int] = mapped_column(ForeignKey("duty_holders.id"))
    position: Mapped[int]
    text: Mapped[str] = mapped_column(Text)


class PlanTask(Base):
    """A task of the annual plan; instances are materialised from it per unit and period."""

    __tablename__ = "plan_tasks"
    __table_args__ = (
        CheckConstraint(f"cadence IN {CADENCES}", name="cadence"),
        CheckConstraint(f"owners IN {OWNERS}", name="owners"),
    )
    id: Mapped[intpk]
    key: Mapped[key]
    title: Mapped[str]
    area_id: Mapped[int] = mapped_column(ForeignKey("areas.id"))
    holder_id: Mapped[int | None] = mapped_column(ForeignKey("duty_holders.id"))
    cadence: Mapped[str] = mapped_column(String(16))
    due_rule: Mapped[str] = mapped_column(String(128))
    owners: Mapped[str] = mapped_column(String(16))
    evidence: Mapped[str] = mapped_column(Text, default="")
    note: Mapped[str] = mapped_column(Text, default="")
    source: Mapped[str] = mapped_column(String(16), default="config")
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    cancelled_at: Mapped[datetime | None]


class PlanTaskUnit(Base):
    """The named units owing a task whose owners are 'named'."""

    __tablename__ = "plan_task_units"
    task_id: Mapped[int] = mapped_column(ForeignKey("plan_tasks.id"), primary_key=True)
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)


class TaskInstance(Base):
    """What one unit owes for one task in one period ('2026-11', '2026-Q4', '2026')."""

    __tablename__ = "task_instances"
    __table_args__ = (
        UniqueConstraint("task_id", "unit_id", "period"),
        UniqueConstraint("unit_id", "no"),
        CheckConstraint(f"status IN {INSTANCE_STATES}", name="status"),
        # Period first: a unit's month (period IN (month, quarter, year) AND unit) and a
        # month across all units (the breakdown) both use it; unit_id alone uses (unit_id, no).
        Index("ix_task_instances_period_unit", "period", "unit_id"),
        Index("ix_task_instances_status_due", "status", "due_at"),
    )
    id: Mapped[intpk]
    task_id: Mapped[int] = mapped_column(ForeignKey("plan_tasks.id"))
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    period: Mapped[str] = mapped_column(String(16))
    # The number people type (打卡 12): per unit, never reused, so an old list stays right.
    no: Mapped[int]
    due_at: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="pending")
    excused_reason: Mapped[str | None] = mapped_column(Text)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class CheckIn(Base):
    """A report that an instance was done. A lead unit may report for a member (on_behalf)."""

    __tablename__ = "checkins"
    __table_args__ = (
        UniqueConstraint("platform", "platform_msg_id"),
        CheckConstraint(f"status IN {CHECKIN_STATES}", name="status"),
    )
    id: Mapped[intpk]
    instance_id: Mapped[int] = mapped_column(ForeignKey("task_instances.id"), index=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    for_unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    on_behalf: Mapped[bool] = mapped_column(Boolean, default=False)
    text: Mapped[str] = mapped_column(Text)
    late: Mapped[bool] = mapped_column(Boolean, default=False)
    status: Mapped[str] = mapped_column(String(16), default="submitted", index=True)
    platform: Mapped[str] = mapped_column(String(16))
    platform_msg_id: Mapped[str] = mapped_column(String(128))
    submitted_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Attachment(Base):
    """Evidence: a platform media id or URL, attached to a check-in or a rectification."""

    __tablename__ = "attachments"
    __table_args__ = (
        CheckConstraint("(checkin_id IS NULL) <> (rectification_id IS NULL)", name="one_owner"),
    )
    id: Mapped[intpk]
    checkin_id: Mapped[int | None] = mapped_column(ForeignKey("checkins.id"), index=True)
    rectification_id: Mapped[int | None] = mapped_column(
        ForeignKey("rectifications.id"), index=True
    )
    kind: Mapped[str] = mapped_column(String(16))
    ref: Mapped[str] = mapped_column(Text)
    platform: Mapped[str] = mapped_column(String(16))
    received_at: Mapped[datetime]


class Review(Base):
    __tablename__ = "reviews"
    __table_args__ = (CheckConstraint("decision IN ('accept', 'return')", name="decision"),)
    id: Mapped[intpk]
    checkin_id: Mapped[int] = mapped_column(ForeignKey("checkins.id"), index=True)
    reviewer_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    decision: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text, default="")
    at: Mapped[datetime]


class Problem(Base):
    """An inspection finding (问题) with a rectification deadline, chased until closed."""

    __tablename__ = "problems"
    __table_args__ = (
        CheckConstraint("status IN ('open', 'closed')", name="status"),
        Index("ix_problems_status_deadline", "status", "deadline"),
    )
    id: Mapped[intpk]
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), index=True)
    instance_id: Mapped[int | None] = mapped_column(ForeignKey("task_instances.id"))
    description: Mapped[str] = mapped_column(Text)
    deadline: Mapped[datetime]
    status: Mapped[str] = mapped_column(String(16), default="open")
    created_by: Mapped[int | None] = mapped_column(ForeignKey("people.id"))
    found_at: Mapped[datetime]
    closed_at: Mapped[datetime | None]
    recheck_at: Mapped[datetime | None]


class Rectification(Base):
    """A progress report on a problem's rectification (整改)."""

    __tablename__ = "rectifications"
    id: Mapped[intpk]
    problem_id: Mapped[int] = mapped_column(ForeignKey("problems.id"), index=True)
    reporter_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    text: Mapped[str] = mapped_column(Text)
    at: Mapped[datetime]


class Escalation(Base):
    """A step of the 督办 ladder taken for an overdue instance or problem; each step once."""

    __tablename__ = "escalations"
    __table_args__ = (
        UniqueConstraint("subject", "subject_id", "step"),
        CheckConstraint("subject IN ('instance', 'problem')", name="subject"),
    )
    id: Mapped[intpk]
    subject: Mapped[str] = mapped_column(String(16))
    subject_id: Mapped[int]
    step: Mapped[int]
    taken_at: Mapped[datetime]


class NegativeListing(Base):
    """A unit on a period's negative list (负面清单), with why and when."""

    __tablename__ = "negative_list"
    __table_args__ = (UniqueConstraint("unit_id", "period"),)
    id: Mapped[intpk]
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"))
    period: Mapped[str] = mapped_column(String(16))
    reason: Mapped[str] = mapped_column(Text)
    added_at: Mapped[datetime]
