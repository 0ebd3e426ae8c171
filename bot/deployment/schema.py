"""The shape of a deployment's configuration (documented in README, section 配置)."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.dataclasses import dataclass

Id = Annotated[str, StringConstraints(pattern=r"^[A-Za-z0-9_.-]{1,64}$")]
Text = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=255)]
Platform = Literal["wecom", "dingtalk", "console"]
ChannelType = Literal[
    "wecom_webhook",
    "wecom_appchat",
    "wecom_aibot",
    "dingtalk_openapi",
    "dingtalk_webhook",
    "console",
]
JobName = Literal[
    "breakdown", "remind", "dispatch", "inspect", "supervise", "recheck", "monthly_report"
]

# Which platform each channel posts to, and which of its fields hold secrets.
CHANNEL_PLATFORM: dict[str, str] = {
    "wecom_webhook": "wecom",
    "wecom_appchat": "wecom",
    "wecom_aibot": "wecom",
    "dingtalk_openapi": "dingtalk",
    "dingtalk_webhook": "dingtalk",
    "console": "console",
}
CHANNEL_SECRETS: dict[str, tuple[tuple[str, bool], ...]] = {  # (field, required)
    "wecom_webhook": (("key", True),),
    "dingtalk_webhook": (("access_token", True), ("secret", False)),
}


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


# A province lists 200,000 people and 20,000 units, and every process holds them: slotted
# dataclasses take a fifth of a model's memory (no instance dict, no set of fields given) and
# validate twice as fast. Same checks, same error locations.
_ROW = ConfigDict(extra="forbid")


class EnvRef(Strict):
    env: Annotated[str, StringConstraints(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$")]


Secret = EnvRef | Annotated[str, StringConstraints(min_length=1)]


class Channel(Strict):
    type: ChannelType
    key: Secret | None = None
    access_token: Secret | None = None
    secret: Secret | None = None
    rate_per_minute: int = Field(20, ge=1, le=600)


class Group(Strict):
    id: Id
    name: Text
    platform: Platform
    chat_id: Annotated[str, StringConstraints(min_length=1, max_length=128)]
    channel: Channel


class Committee(Strict):
    name: Text
    short: Text | None = None
    admins: list[Id] = []
    admin_group: Id | None = None


@dataclass(frozen=True, slots=True, config=_ROW)
class Person:
    id: Id
    name: Text
    wecom: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    dingtalk: Annotated[str, StringConstraints(min_length=1, max_length=128)] | None = None
    mobile: Annotated[str, StringConstraints(pattern=r"^\+?[0-9-]{5,20}$")] | None = None


@dataclass(frozen=True, slots=True, config=_ROW)
class Unit:
    id: Id
    name: Text
    short: Text
    parent: Id | None = None
    secretary: Id | None = None
    liaisons: list[Id] = field(default_factory=list)


@dataclass(frozen=True, slots=True, config=_ROW)
class Community:
    id: Id
    name: Text
    lead: Id
    members: list[Id]
    group: Id | None = None


class Holder(Strict):
    id: Id
    name: Text
    duty: Text


class Area(Strict):
    id: Id
    name: Text
    duties: dict[str, list[Text]] = {}


class Responsibilities(Strict):
    holders: list[Holder] = []
    areas: list[Area] = []


class Task(Strict):
    id: Id
    title: Text
    area: Id
    holder: Id | None = None
    cadence: Literal["once", "monthly", "quarterly", "yearly"]
    due: Text
    owners: Literal["all", "leads"] | list[Id] = "all"
    evidence: str = ""
    note: str = ""


class Cycle(Strict):
    """The cycle's thresholds; the defaults follow the working committee's usual practice."""

    remind_ahead_workdays: int = Field(default=3, ge=0, le=20)
    escalate_to_secretary_workdays: int = Field(default=3, ge=1, le=60)
    escalate_to_admins_workdays: int = Field(default=7, ge=1, le=120)
    recheck_after_days: int = Field(default=30, ge=1, le=365)
    catch_up_grace_hours: int = Field(default=24, ge=0, le=24 * 14)


class Deployment(Strict):
    committee: Committee
    groups: list[Group] = []
    people: list[Person] = []
    units: list[Unit]
    communities: list[Community] = []
    responsibilities: Responsibilities = Responsibilities()
    tasks: list[Task] = []
    schedules: dict[JobName, Text] = {}
    cycle: Cycle = Cycle()
