"""A clinic's live directory services in name order (with the terms a search filters on),
and by latitude: a directory search's pages and counts read these instead of sorting and
scanning the table

Revision ID: 0015
Revises: 0014
Create Date: 2026-12-02 20:35:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index(
        "ix_directory_live_by_name",
        "directory_services",
        ["clinic_id", "name", "id"],
        postgresql_include=["category", "accepting", "conditions", "modalities", "languages"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )
    op.create_index(
        "ix_directory_live_located",
        "directory_services",
        ["clinic_id", "latitude"],
        postgresql_include=["longitude", "name", "id"],
        postgresql_where=sa.text("deleted_at IS NULL"),
    )


def downgrade() -> None:
    op.drop_index("ix_directory_live_located", table_name="directory_services")
    op.drop_index("ix_directory_live_by_name", table_name="directory_services")
