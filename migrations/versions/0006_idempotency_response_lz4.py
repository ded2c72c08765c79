"""Stored idempotent responses compressed with lz4 where the server has it

A screening's stored response (7-30 KB with its Observations and recommendations) is
compressed on every write. pglz cost about a tenth of the write's database CPU; lz4 does
the same job for a fraction of it. Applies to rows written from now on; a server built
without lz4 keeps pglz.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-25 22:45:00
"""

from collections.abc import Sequence

from alembic import op
from sqlalchemy import text

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

HAS_LZ4 = text(
    "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'"
)


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql" and bind.execute(HAS_LZ4).scalar():
        op.execute("ALTER TABLE idempotency_keys ALTER COLUMN response SET COMPRESSION lz4")


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("ALTER TABLE idempotency_keys ALTER COLUMN response SET COMPRESSION pglz")
