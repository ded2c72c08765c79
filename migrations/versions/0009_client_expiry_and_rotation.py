"""API clients may expire, and record when their token or keys were last replaced

``belong clients create --expires-in|--expires-at`` sets ``expires_at``; ``belong clients
rotate`` and ``belong systems rotate`` set ``rotated_at``. Both are null for existing clients
(no expiry, never rotated).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-26 09:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("api_clients") as batch_op:
        batch_op.add_column(sa.Column("expires_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("rotated_at", sa.DateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("api_clients") as batch_op:
        batch_op.drop_column("rotated_at")
        batch_op.drop_column("expires_at")
