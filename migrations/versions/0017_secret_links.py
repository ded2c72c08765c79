"""Secret links that open a page without an account (a service's inbox, a referral's
handout, a patient's page), stored hashed, expiring and revocable

Revision ID: 0017
Revises: 0016
Create Date: 2026-12-03 08:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0017"
down_revision: str | None = "0016"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "secret_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("subject_id", sa.String(64), nullable=False),
        sa.Column("purpose", sa.String(32), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=True),
        sa.Column("revoked_at", Timestamp, nullable=True),
        sa.Column("used_at", Timestamp, nullable=True),
        sa.CheckConstraint("kind IN ('inbox', 'handout', 'patient')", name="kind"),
    )
    op.create_index("ix_secret_links_subject", "secret_links", ["clinic_id", "kind", "subject_id"])


def downgrade() -> None:
    op.drop_table("secret_links")
