"""orders.invoice: what the company asked to be invoiced and the invoice issued;
outgoing_mail.attachments: files a mail carries (the invoice PDF), kept in the scan store

Orders before this revision have no invoice request (NULL); their 发票信息 stays in
invoice_info. Mails before it carry nothing.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.add_column(sa.Column("invoice", sa.JSON(), nullable=True))
    with op.batch_alter_table("outgoing_mail", schema=None) as batch_op:
        batch_op.add_column(sa.Column("attachments", sa.JSON(), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("outgoing_mail", schema=None) as batch_op:
        batch_op.drop_column("attachments")
    with op.batch_alter_table("orders", schema=None) as batch_op:
        batch_op.drop_column("invoice")
