"""indexes for a province: instances by period then unit, check-ins by status

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # The breakdown and materialise read a month's, quarter's and year's instances across all
    # units: with (unit_id, period) they scanned every instance ever created. Period first
    # serves them and a unit's own month alike, so the table keeps as many indexes as before
    # (each one is paid for by every instance a breakdown writes).
    with op.batch_alter_table("task_instances", schema=None) as batch_op:
        batch_op.create_index("ix_task_instances_period_unit", ["period", "unit_id"], unique=False)
        batch_op.drop_index("ix_task_instances_unit_period")
    # 督查 counts the reports awaiting review every working day.
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_checkins_status"), ["status"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("checkins", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_checkins_status"))
    with op.batch_alter_table("task_instances", schema=None) as batch_op:
        batch_op.create_index("ix_task_instances_unit_period", ["unit_id", "period"], unique=False)
        batch_op.drop_index("ix_task_instances_period_unit")
