"""A secret link as the actor of a change (a service by its inbox link, a patient by their
own link), and the capacity a service states through its inbox

Revision ID: 0018
Revises: 0017
Create Date: 2026-12-03 12:40:00
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0018"
down_revision: str | None = "0017"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

Timestamp = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.add_column("audit_events", sa.Column("link_hash", sa.String(64), nullable=True))
    op.drop_constraint(op.f("ck_audit_events_one_actor"), "audit_events", type_="check")
    op.create_check_constraint(
        op.f("ck_audit_events_one_actor"),
        "audit_events",
        "num_nonnulls(client_id, user_id, ehr_id, link_hash) = 1",
    )
    op.add_column(
        "referral_events",
        sa.Column(
            "link_hash",
            sa.String(64),
            sa.ForeignKey("secret_links.token_hash", name=op.f("fk_referral_events_link_hash_secret_links")),
            nullable=True,
        ),
    )
    op.drop_constraint(op.f("ck_referral_events_one_actor"), "referral_events", type_="check")
    op.create_check_constraint(
        op.f("ck_referral_events_one_actor"),
        "referral_events",
        "num_nonnulls(client_id, user_id, link_hash) = 1",
    )
    op.add_column("directory_services", sa.Column("capacity", sa.String(16), nullable=True))
    op.add_column("directory_services", sa.Column("capacity_at", Timestamp, nullable=True))
    op.create_check_constraint(
        op.f("ck_directory_services_capacity"),
        "directory_services",
        "capacity IN ('accepting', 'waitlist', 'not-accepting')",
    )


def downgrade() -> None:
    op.drop_constraint(op.f("ck_directory_services_capacity"), "directory_services", type_="check")
    op.drop_column("directory_services", "capacity_at")
    op.drop_column("directory_services", "capacity")
    op.drop_constraint(op.f("ck_referral_events_one_actor"), "referral_events", type_="check")
    op.execute("DELETE FROM referral_events WHERE link_hash IS NOT NULL")
    op.drop_column("referral_events", "link_hash")
    op.create_check_constraint(
        op.f("ck_referral_events_one_actor"),
        "referral_events",
        "(client_id IS NULL) <> (user_id IS NULL)",
    )
    op.drop_constraint(op.f("ck_audit_events_one_actor"), "audit_events", type_="check")
    op.execute("DELETE FROM audit_events WHERE link_hash IS NOT NULL")
    op.drop_column("audit_events", "link_hash")
    op.create_check_constraint(
        op.f("ck_audit_events_one_actor"),
        "audit_events",
        "num_nonnulls(client_id, user_id, ehr_id) = 1",
    )
