"""Idempotency keys are stored complete: drop claims left pending by earlier versions

Earlier versions claimed a key ("pending") before the write and completed it after; a
request that died in between left a pending row, taken over by a retry after two minutes.
Keys are now written only with their response, so a pending row would answer 409 forever.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 20:45:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.execute("DELETE FROM idempotency_keys WHERE state <> 'done'")


def downgrade() -> None:
    """Nothing to restore: the deleted claims belonged to requests that never finished."""
