"""PostgreSQL only: a directory entry's terms become text arrays, GIN-indexed

``conditions``, ``modalities`` and ``languages`` held space-delimited terms (" crps en ") so
that SQLite could filter them with LIKE; they become ``text[]`` in place.

Revision ID: 0011
Revises: 0010
Create Date: 2026-12-01 23:00:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TERMS = ("conditions", "modalities", "languages")
INDEXED = ("languages", "modalities")


def upgrade() -> None:
    for column in TERMS:
        op.execute(
            f"ALTER TABLE directory_services ALTER COLUMN {column} TYPE text[] "
            f"USING coalesce(string_to_array(btrim({column}), ' '), '{{}}')"
        )
    for column in INDEXED:
        op.create_index(
            f"ix_directory_{column}", "directory_services", [column], postgresql_using="gin"
        )


def downgrade() -> None:
    for column in INDEXED:
        op.drop_index(f"ix_directory_{column}", table_name="directory_services")
    widths = {"conditions": 200, "modalities": 64, "languages": 400}
    for column in TERMS:
        op.execute(
            f"ALTER TABLE directory_services ALTER COLUMN {column} TYPE varchar({widths[column]}) "
            f"USING ' ' || array_to_string({column}, ' ') || "
            f"CASE WHEN cardinality({column}) = 0 THEN '' ELSE ' ' END"
        )
