"""Each patient's latest screening, of any instrument, indexed for the worklist

The worklist reads every patient's latest screening (entered-in-error ones aside) to find
the positive ones. ix_screenings_history orders by instrument first, so that read sorted
the clinic's whole history; this partial index holds each patient's screenings newest
first with what the worklist filters on, so it is read in order, from the index alone.

Revision ID: 0014
Revises: 0013
Create Date: 2026-12-02 20:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_screenings_latest"


def upgrade() -> None:
    op.create_index(
        INDEX,
        "screenings",
        ["clinic_id", "patient_id", sa.text("completed_at DESC"), sa.text("id DESC")],
        unique=False,
        postgresql_include=["instrument", "positive"],
        postgresql_where=sa.text("status <> 'entered-in-error'"),
    )


def downgrade() -> None:
    op.drop_index(INDEX, table_name="screenings")
