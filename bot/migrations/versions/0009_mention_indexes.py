"""indexes for 督办's @-mentions: a unit's people by role, a person's account by platform

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # 督办 and 提示 read the liaisons (or secretaries) of thousands of units at once, with each
    # one's account on the group's platform: some 92,000 rows on a heavy day. With (unit_id)
    # and (person_id) alone every row cost a look into roles and into identities besides the
    # index; these carry what the read needs, and replace the narrower ones (which they
    # serve as well), so the tables keep as many indexes as before.
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.create_index(
            "ix_roles_unit_role_person", ["unit_id", "role", "person_id"], unique=False
        )
        batch_op.drop_index("ix_roles_unit_id")
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index(
            "ix_identities_person_platform", ["person_id", "platform", "user_id"], unique=False
        )
        batch_op.drop_index("ix_identities_person_id")


def downgrade() -> None:
    with op.batch_alter_table("identities", schema=None) as batch_op:
        batch_op.create_index("ix_identities_person_id", ["person_id"], unique=False)
        batch_op.drop_index("ix_identities_person_platform")
    with op.batch_alter_table("roles", schema=None) as batch_op:
        batch_op.create_index("ix_roles_unit_id", ["unit_id"], unique=False)
        batch_op.drop_index("ix_roles_unit_role_person")
