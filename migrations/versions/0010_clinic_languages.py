"""Clinics carry their languages: matching's languages for a patient whose profile has none

Existing clinics get English, the default for a new clinic.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-29 10:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("clinics") as batch_op:
        batch_op.add_column(
            sa.Column(
                "languages",
                sa.JSON().with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql"),
                nullable=False,
                server_default=sa.text("'[\"en\"]'"),
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("clinics") as batch_op:
        batch_op.drop_column("languages")
