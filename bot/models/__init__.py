"""The ledger's tables. Import from here: `from bot.models import Unit, TaskInstance`."""

from bot.models.base import Base
from bot.models.chat import BindRequest, PendingChoice
from bot.models.ops import (
    AuditEntry,
    CalendarDay,
    InboundSeen,
    JobRun,
    OutboxMessage,
    Schedule,
)
from bot.models.org import ChatGroup, Community, CommunityMember, Identity, Person, Role, Unit
from bot.models.plan import (
    Area,
    Attachment,
    CheckIn,
    DutyHolder,
    Escalation,
    NegativeListing,
    PlanTask,
    PlanTaskUnit,
    Problem,
    Rectification,
    Responsibility,
    Review,
    TaskInstance,
)
from bot.models.reports import AppKey, ReportPublication, StoredFile

__all__ = [
    "AppKey",
    "Area",
    "Attachment",
    "AuditEntry",
    "Base",
    "BindRequest",
    "CalendarDay",
    "ChatGroup",
    "CheckIn",
    "Community",
    "CommunityMember",
    "DutyHolder",
    "Escalation",
    "Identity",
    "InboundSeen",
    "JobRun",
    "NegativeListing",
    "OutboxMessage",
    "PendingChoice",
    "Person",
    "PlanTask",
    "PlanTaskUnit",
    "Problem",
    "Rectification",
    "ReportPublication",
    "Responsibility",
    "Review",
    "Role",
    "Schedule",
    "StoredFile",
    "TaskInstance",
    "Unit",
]
