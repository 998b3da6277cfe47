"""review queue index: 待审核 reads the waiting orders alone, already in queue order

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.create_index(
            "ix_orders_in_review",
            ["submitted_at", "id"],
            unique=False,
            postgresql_where=sa.text("status IN ('submitted', 'resubmitted')"),
            sqlite_where=sa.text("status IN ('submitted', 'resubmitted')"),
        )


def downgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_orders_in_review",
            postgresql_where=sa.text("status IN ('submitted', 'resubmitted')"),
            sqlite_where=sa.text("status IN ('submitted', 'resubmitted')"),
        )
