"""inbox: no index on every id's seen_at; the partial ones serve every read

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    # Every callback's id is written before it is answered, and each index is one more
    # b-tree to write and commit. The reads by seen_at are of messages unhandled or set aside,
    # whose partial indexes (0007, 0008) cover them; nothing reads the full one.
    op.drop_index("ix_inbound_seen_seen_at", table_name="inbound_seen")


def downgrade() -> None:
    op.create_index("ix_inbound_seen_seen_at", "inbound_seen", ["seen_at"], unique=False)
