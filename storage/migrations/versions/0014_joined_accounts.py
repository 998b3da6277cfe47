"""joined_accounts: one person on several channels (another chat account acting as a handler);
join_codes: the one-time codes that join them (hashed, short-lived, used once)

Nothing is joined before this revision: every account is its own handler, as before.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "joined_accounts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("handler_id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("joined_from", sa.String(length=100), nullable=False),
        sa.Column("joined_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["handler_id"], ["handlers.id"],
                                name=op.f("fk_joined_accounts_handler_id_handlers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_joined_accounts")),
        sa.UniqueConstraint("platform", "user_id", name=op.f("uq_joined_accounts_platform")),
    )
    op.create_index(op.f("ix_joined_accounts_handler_id"), "joined_accounts", ["handler_id"])
    op.create_table(
        "join_codes",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("code_hash", sa.String(length=64), nullable=False),
        sa.Column("handler_id", sa.Integer(), nullable=False),
        sa.Column("requested_by", sa.String(length=100), nullable=False),
        sa.Column("expires_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("used_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("used_by", sa.String(length=100), nullable=True),
        sa.ForeignKeyConstraint(["handler_id"], ["handlers.id"],
                                name=op.f("fk_join_codes_handler_id_handlers")),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_join_codes")),
        sa.UniqueConstraint("code_hash", name=op.f("uq_join_codes_code_hash")),
    )
    op.create_index(op.f("ix_join_codes_handler_id"), "join_codes", ["handler_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_join_codes_handler_id"), table_name="join_codes")
    op.drop_table("join_codes")
    op.drop_index(op.f("ix_joined_accounts_handler_id"), table_name="joined_accounts")
    op.drop_table("joined_accounts")
