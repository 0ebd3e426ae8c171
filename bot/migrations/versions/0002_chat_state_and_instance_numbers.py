"""chat state (bind requests, pending choices) and per-unit instance numbers

Revision ID: 0002
Revises: 0001
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "bind_requests",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("name", sa.String(length=64), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("requested_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("decided_by", sa.Integer(), nullable=True),
        sa.Column("decided_at", bot.db.UTCDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'approved', 'rejected')", name=op.f("ck_bind_requests_status")
        ),
        sa.ForeignKeyConstraint(
            ["decided_by"], ["people.id"], name=op.f("fk_bind_requests_decided_by_people")
        ),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_bind_requests_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bind_requests")),
    )
    op.create_index(
        "ix_bind_requests_identity", "bind_requests", ["platform", "user_id"], unique=False
    )
    op.create_table(
        "pending_choices",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=16), nullable=False),
        sa.Column("chat_id", sa.String(length=128), nullable=False),
        sa.Column("user_id", sa.String(length=128), nullable=False),
        sa.Column("kind", sa.String(length=32), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("expires_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_pending_choices")),
        sa.UniqueConstraint(
            "platform",
            "chat_id",
            "user_id",
            name=op.f("uq_pending_choices_platform_chat_id_user_id"),
        ),
    )
    with op.batch_alter_table("task_instances") as batch:
        batch.add_column(sa.Column("no", sa.Integer(), nullable=False, server_default="0"))
    # Number the instances that exist already, per unit in creation order.
    op.execute(
        "UPDATE task_instances SET no = (SELECT COUNT(*) FROM task_instances t2 "
        "WHERE t2.unit_id = task_instances.unit_id AND t2.id <= task_instances.id)"
    )
    with op.batch_alter_table("task_instances") as batch:
        batch.alter_column("no", server_default=None)
        batch.create_unique_constraint(op.f("uq_task_instances_unit_id_no"), ["unit_id", "no"])


def downgrade() -> None:
    with op.batch_alter_table("task_instances") as batch:
        batch.drop_constraint(op.f("uq_task_instances_unit_id_no"), type_="unique")
        batch.drop_column("no")
    op.drop_table("pending_choices")
    op.drop_index("ix_bind_requests_identity", table_name="bind_requests")
    op.drop_table("bind_requests")
