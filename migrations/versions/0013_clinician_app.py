"""The clinician app: users, sessions, sign-in links, a clinic's OpenID provider and the
sign-ins in flight to it; audit and referral events name a user or a client

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-02 20:10:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Uuid, primary_key=True),
        sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("role", sa.String(16), nullable=False),
        sa.Column("issuer", sa.String(500), nullable=True),
        sa.Column("subject", sa.String(255), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("disabled_at", Timestamp, nullable=True),
        sa.UniqueConstraint("clinic_id", "name", name="uq_users_clinic_name"),
        sa.UniqueConstraint("clinic_id", "issuer", "subject", name="uq_users_clinic_identity"),
        sa.CheckConstraint("role IN ('clinician', 'coordinator', 'admin')", name="role"),
    )
    op.create_table(
        "sessions",
        sa.Column("id_hash", sa.String(64), primary_key=True),
        sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("csrf_token", sa.String(64), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("last_seen_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False, index=True),
        sa.Column("ended_at", Timestamp, nullable=True),
    )
    op.create_table(
        "sign_in_links",
        sa.Column("token_hash", sa.String(64), primary_key=True),
        sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("user_id", sa.Uuid, sa.ForeignKey("users.id"), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("used_at", Timestamp, nullable=True),
    )
    op.create_table(
        "identity_providers",
        sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), primary_key=True),
        sa.Column("issuer", sa.String(500), nullable=False),
        sa.Column("client_id", sa.String(255), nullable=False),
        sa.Column("secret_ref", sa.String(500), nullable=True),
        sa.Column("role_claim", sa.String(100), nullable=False),
        sa.Column("role_map", JSONB(), nullable=False),
        sa.Column("scopes", JSONB(), nullable=False),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("updated_at", Timestamp, nullable=False),
    )
    op.create_table(
        "sign_in_flows",
        sa.Column("state_hash", sa.String(64), primary_key=True),
        sa.Column("clinic_id", sa.Uuid, sa.ForeignKey("clinics.id"), nullable=False),
        sa.Column("nonce", sa.String(128), nullable=False),
        sa.Column("code_verifier", sa.String(128), nullable=False),
        sa.Column("return_to", sa.String(2000), nullable=True),
        sa.Column("created_at", Timestamp, nullable=False),
        sa.Column("expires_at", Timestamp, nullable=False),
        sa.Column("used_at", Timestamp, nullable=True),
    )
    op.create_index(op.f("ix_sign_in_flows_expires_at"), "sign_in_flows", ["expires_at"])
    for table in ("audit_events", "referral_events"):
        op.alter_column(table, "client_id", nullable=True)
        op.add_column(table, sa.Column("user_id", sa.Uuid, nullable=True))
        op.create_check_constraint(
            op.f(f"ck_{table}_one_actor"), table, "(client_id IS NULL) <> (user_id IS NULL)"
        )


def downgrade() -> None:
    for table in ("audit_events", "referral_events"):
        op.drop_constraint(op.f(f"ck_{table}_one_actor"), table, type_="check")
        op.execute(f"DELETE FROM {table} WHERE client_id IS NULL")
        op.drop_column(table, "user_id")
        op.alter_column(table, "client_id", nullable=False)
    for table in ("sign_in_flows", "sign_in_links", "sessions", "identity_providers", "users"):
        op.drop_table(table)
