"""A patient's screenings per instrument indexed newest first, with the id as tie-break

The newest screening per instrument (read before every screening is recorded) and the
history listing both order by completed_at and id descending within an instrument. The
index had neither the direction nor the id, so each read sorted the patient's whole history;
now it reads the entries in order.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-26 01:45:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

INDEX = "ix_screenings_history"


def upgrade() -> None:
    with op.batch_alter_table("screenings") as batch_op:
        batch_op.drop_index(INDEX)
        batch_op.create_index(
            INDEX,
            [
                "clinic_id",
                "patient_id",
                "instrument",
                sa.text("completed_at DESC"),
                sa.text("id DESC"),
            ],
            unique=False,
        )


def downgrade() -> None:
    with op.batch_alter_table("screenings") as batch_op:
        batch_op.drop_index(INDEX)
        batch_op.create_index(INDEX, ["clinic_id", "patient_id", "instrument", "completed_at"])
