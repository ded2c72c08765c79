"""SMART App Launch of the clinician app: a clinic's registered EHRs, the launches in flight
to them, refusals no clinic owns; sessions name the EHR that launched them, and audit events
may name an EHR as the actor (with the reason of a refusal)

Revision ID: 0016
Revises: 0015
Create Date: 2026-12-03 08:00:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0016"
down_revision: str | None = "0015"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "ehrs",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("iss", sa.String(500), nullable=False, unique=True),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("secret_ref", sa.String(500), nullable=True),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("patient_identifier_system", sa.String(500), nullable=True),
        sa.Column("frame_origins", JSONB, nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
        sa.CheckConstraint("role IN ('clinician', 'coordinator', 'admin')", name="role"),
    )
    op.create_table(
        "launch_flows",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column(
            "ehr_id", sa.Uuid, sa.ForeignKey("ehrs.id", ondelete="CASCADE"), nullable=False
        ),
        sa.Column("standalone", sa.Boolean, nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False, index=True),
        sa.Column("used_at", Timestamp, nullable=True),
    )
    op.create_table(
        "launch_refusals",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("iss", sa.String(500), nullable=True),
        sa.Column("reason", sa.String(200), nullable=False),
        sa.Column("recorded_at", Timestamp, nullable=False, index=True),
    )
    op.add_column(
        "sessions",
        sa.Column("ehr_id", sa.Uuid, sa.ForeignKey("ehrs.id", ondelete="SET NULL")),
    )
    op.add_column(
        "sessions",
        sa.Column("patient_banner", sa.Boolean, nullable=False, server_default=sa.true()),
    )
    op.add_column("audit_events", sa.Column("ehr_id", sa.Uuid, nullable=True))
    op.add_column("audit_events", sa.Column("detail", sa.String(200), nullable=True))
    op.drop_constraint(op.f("ck_audit_events_one_actor"), "audit_events", type_="check")
    op.create_check_constraint(
        op.f("ck_audit_events_one_actor"),
        "audit_events",
        "num_nonnulls(client_id, user_id, ehr_id) = 1",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_audit_events_one_actor"), "audit_events", type_="check")
    op.execute("DELETE FROM audit_events WHERE ehr_id IS NOT NULL")
    op.drop_column("audit_events", "detail")
    op.drop_column("audit_events", "ehr_id")
    op.create_check_constraint(
        op.f("ck_audit_events_one_actor"),
        "audit_events",
        "(client_id IS NULL) <> (user_id IS NULL)",
    )
    op.drop_column("sessions", "patient_banner")
    op.drop_column("sessions", "ehr_id")
    op.drop_table("launch_refusals")
    op.drop_table("launch_flows")
    op.drop_table("ehrs")
