"""Columns the reports read instead of pairing and joining millions of rows each time.

``stage_history``: the owner when the stage was entered, and when and for which stage the
contact left it. ``messages``: the outcome bits and the latest reply's intent. ``events``:
the contact's stage at an exit event. Existing rows are filled from what is stored.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28 15:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from engine.stages.history import rebuild_stage_intervals
from engine.storage.types import UTCDateTime
from engine.tracking.outcomes import fill_exit_stages, refresh_outcomes

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("stage_history", schema=None) as batch_op:
        batch_op.add_column(sa.Column("owner_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("left_at", UTCDateTime(), nullable=True))
        batch_op.add_column(sa.Column("next_stage", sa.String(length=64), nullable=True))
        batch_op.create_foreign_key(
            batch_op.f("fk_stage_history_owner_id_owners"),
            "owners",
            ["owner_id"],
            ["id"],
            ondelete="SET NULL",
        )
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(
            sa.Column("outcomes", sa.Integer(), server_default=sa.text("0"), nullable=False)
        )
        batch_op.add_column(sa.Column("reply_intent", sa.String(length=32), nullable=True))
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("contact_stage", sa.String(length=64), nullable=True))
    # derived by the functions the engine keeps them with, over every stored row
    connection = op.get_bind()
    rebuild_stage_intervals(connection)
    refresh_outcomes(connection)
    fill_exit_stages(connection)


def downgrade() -> None:
    with op.batch_alter_table("events", schema=None) as batch_op:
        batch_op.drop_column("contact_stage")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("reply_intent")
        batch_op.drop_column("outcomes")
    with op.batch_alter_table("stage_history", schema=None) as batch_op:
        batch_op.drop_constraint(batch_op.f("fk_stage_history_owner_id_owners"), type_="foreignkey")
        batch_op.drop_column("next_stage")
        batch_op.drop_column("left_at")
        batch_op.drop_column("owner_id")
