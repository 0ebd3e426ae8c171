"""outbox delivery: lanes, reply routes, coalescing, claims and resumable parts

Revision ID: 0003
Revises: 0002
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_STATES = "status IN ('pending', 'sending', 'sent', 'dead')"
NEW_STATES = "status IN ('pending', 'sending', 'merged', 'sent', 'dead')"


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        # Defaults only to fill rows that exist already; the models set every value.
        batch.add_column(
            sa.Column("channel", sa.String(length=64), nullable=False, server_default="")
        )
        batch.add_column(sa.Column("group_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("route", sa.JSON(), nullable=True))
        batch.add_column(
            sa.Column("mergeable", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch.add_column(sa.Column("sent_parts", sa.Integer(), nullable=False, server_default="0"))
        batch.add_column(sa.Column("claimed_at", bot.db.UTCDateTime(timezone=True), nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(length=128), nullable=True))
        batch.add_column(sa.Column("merged_into", sa.Integer(), nullable=True))
        batch.drop_column("group_id")
        batch.drop_constraint(op.f("ck_outbox_status"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_status"), NEW_STATES)
        batch.create_index("ix_outbox_lane", ["status", "platform", "chat_id", "id"], unique=False)
        batch.create_index(batch.f("ix_outbox_merged_into"), ["merged_into"], unique=False)
    op.execute("UPDATE outbox SET channel = chat_id WHERE channel = ''")
    with op.batch_alter_table("outbox") as batch:
        batch.alter_column("channel", server_default=None)
        batch.alter_column("mergeable", server_default=None)
        batch.alter_column("sent_parts", server_default=None)


def downgrade() -> None:
    # Coalesced rows become ordinary pending ones: the old worker sends each on its own.
    op.execute("UPDATE outbox SET status = 'pending' WHERE status = 'merged'")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_index(batch.f("ix_outbox_merged_into"))
        batch.drop_index("ix_outbox_lane")
        batch.drop_constraint(op.f("ck_outbox_status"), type_="check")
        batch.create_check_constraint(op.f("ck_outbox_status"), OLD_STATES)
        batch.add_column(sa.Column("group_id", sa.Integer(), nullable=True))
        batch.drop_column("merged_into")
        batch.drop_column("claimed_by")
        batch.drop_column("claimed_at")
        batch.drop_column("sent_parts")
        batch.drop_column("mergeable")
        batch.drop_column("route")
        batch.drop_column("group_key")
        batch.drop_column("channel")
