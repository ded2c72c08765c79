"""Screenings carry a status: corrected by an amended QuestionnaireResponse, or entered in error

Existing screenings are final. The stored QuestionnaireResponse and Observation JSON carry
their version (meta.versionId) themselves.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-02 16:30:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column(
        "screenings",
        sa.Column("status", sa.String(16), nullable=False, server_default="final"),
    )
    op.create_check_constraint(
        op.f("ck_screenings_status"),
        "screenings",
        "status IN ('final', 'corrected', 'entered-in-error')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_screenings_status"), "screenings", type_="check")
    op.drop_column("screenings", "status")
