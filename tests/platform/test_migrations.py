"""Alembic owns the schema: the migrations build exactly what tables.py declares."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from service.platform.migrate import alembic_config, upgrade
from service.platform.tables import metadata
from tests.conftest import scratch_database
from tests.helpers import table_names


def schema_diff(url: str) -> list[Any]:
    """What autogenerate would add to a new migration for this database."""

    def compare(sync_conn: sa.Connection) -> list[Any]:
        context = MigrationContext.configure(sync_conn, opts={"compare_type": True})
        return compare_metadata(context, metadata)

    async def run() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return await conn.run_sync(compare)
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_migrated_database_matches_the_models(database_url: str) -> None:
    assert schema_diff(database_url) == []


def test_migrations_create_every_declared_table(database_url: str) -> None:
    assert set(metadata.tables) <= table_names(database_url)


def test_downgrade_to_base_and_upgrade_again() -> None:
    url = scratch_database("throwaway")
    upgrade(url)
    assert set(metadata.tables) <= table_names(url)
    assert schema_diff(url) == []

    command.downgrade(alembic_config(url), "base")
    assert table_names(url) <= {"alembic_version"}

    upgrade(url)
    assert set(metadata.tables) <= table_names(url)
    assert schema_diff(url) == []


def test_upgrade_is_idempotent() -> None:
    url = scratch_database("twice")
    upgrade(url)
    upgrade(url)
    assert schema_diff(url) == []


def scalar(url: str, sql: str) -> Any:
    async def run() -> Any:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return (await conn.execute(sa.text(sql))).scalar_one()
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_stored_responses_are_compressed_with_lz4_on_postgresql(database_url: str) -> None:
    has_lz4 = scalar(
        database_url,
        "SELECT 'lz4' = ANY(enumvals) FROM pg_settings WHERE name = 'default_toast_compression'",
    )
    method = scalar(
        database_url,
        "SELECT attcompression::text FROM pg_attribute"
        " WHERE attrelid = 'idempotency_keys'::regclass AND attname = 'response'",
    )
    assert method == ("l" if has_lz4 else "")


PREVIOUS_HEAD = "0010"
"""The last revision written while SQLite was still supported."""

CLINIC = "0190d3a0-0000-7000-8000-000000000001"
ROWS_AT_PREVIOUS_HEAD = [
    f"INSERT INTO clinics (id, name, created_at, languages) VALUES "
    f"('{CLINIC}', 'Old Clinic', '2026-01-02T03:04:05+00', '[\"en\", \"fr\"]')",
    # As ClinicStore wrote directory entries then: terms space-delimited, " " for none.
    "INSERT INTO directory_services (id, clinic_id, source_system, source_id, name, category,"
    " accepting, conditions, modalities, languages, details, created_at, updated_at) VALUES"
    f" ('svc-a', '{CLINIC}', 'hsds', 'a', 'Walking group', 'peer-support', true,"
    "  ' crps fibromyalgia ', ' in-person online ', ' en fr ', '{}',"
    "  '2026-01-02T03:04:05+00', '2026-01-02T03:04:05+00'),"
    f" ('svc-b', '{CLINIC}', 'hsds', 'b', 'Phone line', 'befriending', true,"
    "  ' ', ' phone ', ' en ', '{}', '2026-01-02T03:04:05+00', '2026-01-02T03:04:05+00')",
    "INSERT INTO patients (clinic_id, id, profile, created_at, updated_at) VALUES"
    f" ('{CLINIC}', 'pat-old', '{{\"languages\": [\"fr\"]}}',"
    "  '2026-01-02T03:04:05+00', '2026-01-02T03:04:05+00')",
]


def test_data_written_before_postgresql_only_reads_back_after_the_upgrade() -> None:
    """A database at the previous head, holding rows as today's main writes them, upgrades
    in place: a directory entry's terms become arrays that the searches find."""
    from service.directory.repository import DirectoryStore, ServiceQuery
    from service.patients.repository import PatientStore
    from service.platform.database import Database

    url = scratch_database("old_data")
    upgrade(url, PREVIOUS_HEAD)

    async def write_old_rows() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            for statement in ROWS_AT_PREVIOUS_HEAD:
                await conn.execute(sa.text(statement))
        await engine.dispose()

    asyncio.run(write_old_rows())
    upgrade(url)
    assert schema_diff(url) == []

    async def read_back() -> dict[str, Any]:
        db = Database(url)
        try:
            async with db.begin() as conn:
                terms = {
                    row.id: (row.conditions, row.modalities, row.languages)
                    for row in await conn.execute(
                        sa.text(
                            "SELECT id, conditions, modalities, languages"
                            " FROM directory_services ORDER BY id"
                        )
                    )
                }
                store = PatientStore(conn, uuid.UUID(CLINIC))
                directory = DirectoryStore(conn, uuid.UUID(CLINIC))

                async def ids(**query: Any) -> list[str]:
                    rows = await directory.search_services(ServiceQuery(**query))
                    return sorted(row.id for row in rows)

                patient = await store.get_patient("pat-old")
                return {
                    "terms": terms,
                    "french": await ids(language="fr"),
                    "phone": await ids(modality="phone"),
                    "crps": await ids(condition="crps"),
                    "asthma": await ids(condition="asthma"),
                    "profile": patient.profile if patient else None,
                    "updated_at": patient.updated_at if patient else None,
                }
        finally:
            await db.dispose()

    found = asyncio.run(read_back())
    assert found["terms"] == {
        "svc-a": (["crps", "fibromyalgia"], ["in-person", "online"], ["en", "fr"]),
        "svc-b": ([], ["phone"], ["en"]),
    }
    assert found["french"] == ["svc-a"]
    assert found["phone"] == ["svc-b"]
    # A service naming no condition serves every condition.
    assert found["crps"] == ["svc-a", "svc-b"]
    assert found["asthma"] == ["svc-b"]
    assert found["profile"] == {"languages": ["fr"]}
    assert found["updated_at"] == datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
