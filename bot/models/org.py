"""Who is involved: units, communities, people and their roles, chat groups."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import Boolean, CheckConstraint, ForeignKey, Index, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from bot.models.base import Base, Json, intpk, key

PLATFORMS = ("wecom", "dingtalk", "console")
ROLES = ("admin", "secretary", "liaison")


class Unit(Base):
    """An agency's party organisation (机关党组织). Never deleted: a removed unit keeps its past."""

    __tablename__ = "units"
    id: Mapped[intpk]
    key: Mapped[key]
    name: Mapped[str]
    short_name: Mapped[str] = mapped_column(String(64))
    parent_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class Community(Base):
    """A 党建共同体: one lead unit and its members, sharing a chat group."""

    __tablename__ = "communities"
    id: Mapped[intpk]
    key: Mapped[key]
    name: Mapped[str]
    group_id: Mapped[int | None] = mapped_column(ForeignKey("chat_groups.id"))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
    removed_at: Mapped[datetime | None]


class CommunityMember(Base):
    """A unit belongs to at most one community; the lead is a member flagged as such."""

    __tablename__ = "community_members"
    unit_id: Mapped[int] = mapped_column(ForeignKey("units.id"), primary_key=True)
    community_id: Mapped[int] = mapped_column(ForeignKey("communities.id"), index=True)
    is_lead: Mapped[bool] = mapped_column(Boolean, default=False)


class Person(Base):
    __tablename__ = "people"
    id: Mapped[intpk]
    key: Mapped[key]
    name: Mapped[str] = mapped_column(String(64))
    mobile: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]


class Identity(Base):
    """A person's user id on one platform (WeCom userid, DingTalk staffId)."""

    __tablename__ = "identities"
    __table_args__ = (
        UniqueConstraint("platform", "user_id"),
        CheckConstraint(f"platform IN {PLATFORMS}", name="platform"),
        # A person's account on a platform, from the index alone (督办's @-mentions).
        Index("ix_identities_person_platform", "person_id", "platform", "user_id"),
    )
    id: Mapped[intpk]
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"))
    platform: Mapped[str] = mapped_column(String(16))
    user_id: Mapped[str] = mapped_column(String(128))


class Role(Base):
    """admin (working committee), secretary or liaison of a unit.

    `source` separates roles the configuration owns from roles granted by chat (a bind request
    approved by an admin), so that re-applying the configuration never revokes the latter.
    """

    __tablename__ = "roles"
    __table_args__ = (
        UniqueConstraint("person_id", "role", "unit_id"),
        CheckConstraint(f"role IN {ROLES}", name="role"),
        CheckConstraint("(role = 'admin') = (unit_id IS NULL)", name="unit_for_unit_roles"),
        # A unit's people in a role, from the index alone (督办's and 提示's @-mentions).
        Index("ix_roles_unit_role_person", "unit_id", "role", "person_id"),
    )
    id: Mapped[intpk]
    person_id: Mapped[int] = mapped_column(ForeignKey("people.id"), index=True)
    role: Mapped[str] = mapped_column(String(16))
    unit_id: Mapped[int | None] = mapped_column(ForeignKey("units.id"))
    source: Mapped[str] = mapped_column(String(16), default="config")
    created_at: Mapped[datetime]


class ChatGroup(Base):
    """A group chat on a platform and the channel the bot posts into it with.

    `channel` holds the channel's settings; secrets appear only as the names of the
    environment variables that hold them.
    """

    __tablename__ = "chat_groups"
    __table_args__ = (
        UniqueConstraint("platform", "chat_id"),
        CheckConstraint(f"platform IN {PLATFORMS}", name="platform"),
    )
    id: Mapped[intpk]
    key: Mapped[key]
    name: Mapped[str]
    platform: Mapped[str] = mapped_column(String(16))
    chat_id: Mapped[str] = mapped_column(String(128))
    channel_type: Mapped[str] = mapped_column(String(32))
    channel: Mapped[Json]
    rate_per_minute: Mapped[int] = mapped_column(default=20)
    is_admin_group: Mapped[bool] = mapped_column(Boolean, default=False)
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    created_at: Mapped[datetime]
    updated_at: Mapped[datetime]
