"""chat_reach: per account on a channel with a reply window, the last message, the replies
used against it and the pushes used this month; outgoing_chat.path (how each notice went out)
and outgoing_chat.mail (whether it was, may be or must never be mailed)

Notices queued before this revision have no path (历史: 待发送 until delivered) and count as
possibly mailed (``may``).

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-02
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "chat_reach",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("platform", sa.String(length=20), nullable=False),
        sa.Column("user_id", sa.String(length=64), nullable=False),
        sa.Column("last_message_at", sa.DateTime(timezone=True), nullable=True),
        sa.Column("last_ref", sa.String(length=128), nullable=True),
        sa.Column("replies_used", sa.Integer(), nullable=False),
        sa.Column("push_month", sa.String(length=7), nullable=False),
        sa.Column("pushes_used", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_chat_reach")),
        sa.UniqueConstraint("platform", "user_id", name=op.f("uq_chat_reach_platform")),
    )
    with op.batch_alter_table("outgoing_chat", schema=None) as batch_op:
        batch_op.add_column(sa.Column("path", sa.String(length=10), nullable=True))
        batch_op.add_column(sa.Column("mail", sa.String(length=10), nullable=False,
                                      server_default="may"))
    op.create_index("ix_outgoing_chat_held", "outgoing_chat", ["platform", "recipient"],
                    postgresql_where=sa.text("path IN ('held', 'summary')"),
                    sqlite_where=sa.text("path IN ('held', 'summary')"))


def downgrade() -> None:
    op.drop_index("ix_outgoing_chat_held", table_name="outgoing_chat")
    with op.batch_alter_table("outgoing_chat", schema=None) as batch_op:
        batch_op.drop_column("mail")
        batch_op.drop_column("path")
    op.drop_table("chat_reach")
