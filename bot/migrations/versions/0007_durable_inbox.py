"""durable inbox: an accepted message is kept until its handling commits

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("inbound_seen", schema=None) as batch_op:
        batch_op.add_column(sa.Column("body", sa.JSON(), nullable=True))
        batch_op.add_column(
            sa.Column("handled_at", bot.db.UTCDateTime(timezone=True), nullable=True)
        )
        batch_op.add_column(sa.Column("attempts", sa.Integer(), server_default="0", nullable=False))
    # Rows accepted before this revision were handled (or lost) by the old code: none waits.
    op.execute("UPDATE inbound_seen SET handled_at = seen_at")
    # Only the messages still waiting are indexed: the ones a restart has to pick up.
    op.create_index(
        "ix_inbound_seen_unhandled",
        "inbound_seen",
        ["seen_at"],
        unique=False,
        sqlite_where=sa.text("handled_at IS NULL"),
        postgresql_where=sa.text("handled_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index(
        "ix_inbound_seen_unhandled",
        table_name="inbound_seen",
        sqlite_where=sa.text("handled_at IS NULL"),
        postgresql_where=sa.text("handled_at IS NULL"),
    )
    with op.batch_alter_table("inbound_seen", schema=None) as batch_op:
        batch_op.drop_column("attempts")
        batch_op.drop_column("handled_at")
        batch_op.drop_column("body")
