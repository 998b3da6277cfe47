"""verified handlers, UKEYs on record, orders of a company not yet on record

An account bound before this revision is verified only where the company has an approved order
that this account filed; every other binding becomes pending until a technician or a verified
handler of the company approves it (docs/trust.md).

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("handlers", schema=None) as batch_op:
        batch_op.add_column(sa.Column("status", sa.String(length=20), nullable=False,
                                      server_default="pending"))
        batch_op.add_column(sa.Column("verified_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("verified_by", sa.String(length=100), nullable=True))
    op.execute(
        "UPDATE handlers SET status = 'verified', verified_at = CURRENT_TIMESTAMP, "
        "verified_by = 'migration 0008' WHERE EXISTS ("
        " SELECT 1 FROM orders JOIN order_events ON order_events.order_id = orders.id"
        " WHERE orders.handler_id = handlers.id AND orders.company_id = handlers.company_id"
        " AND order_events.event = 'approve')")
    # an unlock mail from a company not on record waits for review without a company row
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("company_id", existing_type=sa.Integer(), nullable=True)
    op.create_table(
        "ukeys",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("token_serial", sa.String(length=64), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("source", sa.String(length=20), nullable=False),
        sa.Column("recorded_by", sa.String(length=100), nullable=False),
        sa.Column("recorded_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_ukeys_company_id_companies")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_ukeys")),
        sa.UniqueConstraint("token_serial", name=op.f("uq_ukeys_token_serial")),
    )
    with op.batch_alter_table("ukeys", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_ukeys_company_id"), ["company_id"], unique=False)
    # UKEYs cadesk personalised are on record for the company whose order made them
    op.execute(
        "INSERT INTO ukeys (token_serial, company_id, source, recorded_by, recorded_at) "
        "SELECT c.token_serial, c.company_id, 'issued', 'migration 0008', CURRENT_TIMESTAMP"
        " FROM certificates c WHERE c.id = (SELECT max(id) FROM certificates n"
        " WHERE n.token_serial = c.token_serial)")


def downgrade() -> None:
    with op.batch_alter_table("ukeys", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_ukeys_company_id"))
    op.drop_table("ukeys")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.alter_column("company_id", existing_type=sa.Integer(), nullable=False)
    with op.batch_alter_table("handlers", schema=None) as batch_op:
        batch_op.drop_column("verified_by")
        batch_op.drop_column("verified_at")
        batch_op.drop_column("status")
