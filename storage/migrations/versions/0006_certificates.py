"""certificates

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "crls",
        sa.Column("number", sa.Integer(), nullable=False),
        sa.Column("issued_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("next_update", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("number", name=op.f("pk_crls")),
    )
    op.create_table(
        "certificates",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("serial", sa.String(length=40), nullable=False),
        sa.Column("company_id", sa.Integer(), nullable=False),
        sa.Column("order_id", sa.Integer(), nullable=True),
        sa.Column("token_serial", sa.String(length=64), nullable=False),
        sa.Column("subject_name", sa.String(length=200), nullable=False),
        sa.Column("uscc", sa.String(length=18), nullable=False),
        sa.Column("not_before", sa.DateTime(timezone=True), nullable=False),
        sa.Column("not_after", sa.DateTime(timezone=True), nullable=False),
        sa.Column("der", sa.LargeBinary(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("status_changed_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("revocation_reason", sa.String(length=40), nullable=True),
        sa.Column("replaces_id", sa.Integer(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["company_id"], ["companies.id"], name=op.f("fk_certificates_company_id_companies")
        ),
        sa.ForeignKeyConstraint(
            ["order_id"], ["orders.id"], name=op.f("fk_certificates_order_id_orders")
        ),
        sa.ForeignKeyConstraint(
            ["replaces_id"],
            ["certificates.id"],
            name=op.f("fk_certificates_replaces_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificates")),
        sa.UniqueConstraint("serial", name=op.f("uq_certificates_serial")),
    )
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_certificates_company_id"), ["company_id"], unique=False
        )
        batch_op.create_index(
            "ix_certificates_status_not_after", ["status", "not_after"], unique=False
        )
        batch_op.create_index(
            batch_op.f("ix_certificates_token_serial"), ["token_serial"], unique=False
        )

    op.create_table(
        "certificate_reminders",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("certificate_id", sa.Integer(), nullable=False),
        sa.Column("days_before", sa.Integer(), nullable=False),
        sa.Column("sent_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["certificate_id"],
            ["certificates.id"],
            name=op.f("fk_certificate_reminders_certificate_id_certificates"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_certificate_reminders")),
        sa.UniqueConstraint(
            "certificate_id", "days_before", name=op.f("uq_certificate_reminders_certificate_id")
        ),
    )
    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hall", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.alter_column("company_id", existing_type=sa.INTEGER(), nullable=True)

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("token_serial", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("certificate_serial", sa.String(length=40), nullable=True))

    with op.batch_alter_table("pairing_codes", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hall", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.alter_column("company_id", existing_type=sa.INTEGER(), nullable=True)

    with op.batch_alter_table("token_jobs", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("hall", sa.Boolean(), server_default=sa.false(), nullable=False)
        )
        batch_op.add_column(sa.Column("data", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("token_jobs", schema=None) as batch_op:
        batch_op.drop_column("data")
        batch_op.drop_column("hall")

    with op.batch_alter_table("pairing_codes", schema=None) as batch_op:
        batch_op.alter_column("company_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("hall")

    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("certificate_serial")
        batch_op.drop_column("token_serial")

    with op.batch_alter_table("agents", schema=None) as batch_op:
        batch_op.alter_column("company_id", existing_type=sa.INTEGER(), nullable=False)
        batch_op.drop_column("hall")

    op.drop_table("certificate_reminders")
    with op.batch_alter_table("certificates", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_certificates_token_serial"))
        batch_op.drop_index("ix_certificates_status_not_after")
        batch_op.drop_index(batch_op.f("ix_certificates_company_id"))

    op.drop_table("certificates")
    op.drop_table("crls")
