"""An Observation's clinic and patient are its screening's: one composite foreign key

Observations referred to their screening by id and to their patient separately, so nothing
held the two to the same patient. One key to screenings (id, clinic_id, patient_id) does,
and replaces both: each Observation row is one foreign-key check instead of two.

Revision ID: 0007
Revises: 0006
Create Date: 2026-11-25 23:40:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SCREENING_KEY = "uq_screenings_id_clinic_patient"
TO_SCREENING = "fk_observations_screening_id_screenings"
TO_PATIENT = "fk_observations_clinic_id_patients"


def upgrade() -> None:
    with op.batch_alter_table("screenings") as batch_op:
        batch_op.create_unique_constraint(SCREENING_KEY, ["id", "clinic_id", "patient_id"])
    with op.batch_alter_table("observations") as batch_op:
        batch_op.drop_constraint(TO_SCREENING, type_="foreignkey")
        batch_op.drop_constraint(TO_PATIENT, type_="foreignkey")
        batch_op.create_foreign_key(
            TO_SCREENING,
            "screenings",
            ["screening_id", "clinic_id", "patient_id"],
            ["id", "clinic_id", "patient_id"],
        )


def downgrade() -> None:
    with op.batch_alter_table("observations") as batch_op:
        batch_op.drop_constraint(TO_SCREENING, type_="foreignkey")
        batch_op.create_foreign_key(TO_SCREENING, "screenings", ["screening_id"], ["id"])
        batch_op.create_foreign_key(
            TO_PATIENT, "patients", ["clinic_id", "patient_id"], ["clinic_id", "id"]
        )
    with op.batch_alter_table("screenings") as batch_op:
        batch_op.drop_constraint(SCREENING_KEY, type_="unique")
