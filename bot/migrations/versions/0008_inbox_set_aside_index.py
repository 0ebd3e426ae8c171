"""inbox: the messages set aside are found without reading every id ever seen

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Handled messages lose their body; set-aside ones keep it. inbound_seen keeps every id for
# good, so the metrics' count at each scrape would otherwise scan all of them.
_WHERE = sa.text("handled_at IS NOT NULL AND body IS NOT NULL")


def upgrade() -> None:
    op.create_index(
        "ix_inbound_seen_set_aside",
        "inbound_seen",
        ["seen_at"],
        unique=False,
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )


def downgrade() -> None:
    op.drop_index(
        "ix_inbound_seen_set_aside",
        table_name="inbound_seen",
        sqlite_where=_WHERE,
        postgresql_where=_WHERE,
    )
