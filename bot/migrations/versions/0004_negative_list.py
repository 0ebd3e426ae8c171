"""negative list (负面清单) per unit and period

Revision ID: 0004
Revises: 0003
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import bot.db

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "negative_list",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("period", sa.String(length=16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("added_at", bot.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["units.id"], name=op.f("fk_negative_list_unit_id_units")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_negative_list")),
        sa.UniqueConstraint("unit_id", "period", name=op.f("uq_negative_list_unit_id_period")),
    )


def downgrade() -> None:
    op.drop_table("negative_list")
