"""FHIR resources as json: stored as written, served without conversion

Observations and QuestionnaireResponses are returned as stored. jsonb re-serialised each
resource on every read (about half of an Observation search's database time) and parsed it
on every write; json keeps the text. No query looks inside these columns.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-25 22:30:00
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

TABLES = ("observations", "questionnaire_responses")


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return  # SQLite has one JSON type
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN resource TYPE json USING resource::json")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in TABLES:
        op.execute(f"ALTER TABLE {table} ALTER COLUMN resource TYPE jsonb USING resource::jsonb")
