"""The handout link messages sent to patients by SMS or email, with their outcome (and
never the patient's phone number or address)

Revision ID: 0019
Revises: 0018
Create Date: 2026-12-03 13:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0019"
down_revision: str | None = "0018"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "messages",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("clinic_id", sa.Uuid, nullable=False),
        sa.Column("referral_id", sa.String(64), sa.ForeignKey("referrals.id"), nullable=False),
        sa.Column("channel", sa.String(8), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("segments", sa.SmallInteger, nullable=True),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("sent_at", Timestamp, nullable=True),
        sa.CheckConstraint("channel IN ('sms', 'email')", name="channel"),
        sa.CheckConstraint("status IN ('sent', 'failed', 'suppressed')", name="status"),
    )
    op.create_index(
        "ix_messages_referral", "messages", ["clinic_id", "referral_id", "created_at"]
    )


def downgrade() -> None:
    op.drop_table("messages")
