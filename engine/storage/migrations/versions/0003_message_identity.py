"""Messages: the public id their tokens carry, the links in them, a sender-day index.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.storage.types import json_type

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("public_id", sa.String(length=64), nullable=True))
        batch_op.add_column(sa.Column("links", json_type(), nullable=True))
        batch_op.create_index(batch_op.f("ix_messages_public_id"), ["public_id"], unique=True)
        batch_op.create_index(
            batch_op.f("ix_messages_from_email_sent_at"), ["from_email", "sent_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_messages_from_email_sent_at"))
        batch_op.drop_index(batch_op.f("ix_messages_public_id"))
        batch_op.drop_column("links")
        batch_op.drop_column("public_id")
