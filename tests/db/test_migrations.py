"""Alembic owns the schema: the migrations build exactly what tables.py declares."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy.ext.asyncio import create_async_engine

from service.store.migrate import alembic_config, upgrade
from service.store.tables import metadata


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


def table_names(url: str) -> set[str]:
    async def run() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(run())


def test_migrated_database_matches_the_models(database_url: str) -> None:
    assert schema_diff(database_url) == []


def test_migrations_create_every_declared_table(database_url: str) -> None:
    assert set(metadata.tables) <= table_names(database_url)


def test_downgrade_to_base_and_upgrade_again(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'throwaway.db'}"
    upgrade(url)
    assert set(metadata.tables) <= table_names(url)
    assert schema_diff(url) == []

    command.downgrade(alembic_config(url), "base")
    assert table_names(url) <= {"alembic_version"}

    upgrade(url)
    assert set(metadata.tables) <= table_names(url)
    assert schema_diff(url) == []


def test_upgrade_is_idempotent(tmp_path: Path) -> None:
    url = f"sqlite+aiosqlite:///{tmp_path / 'twice.db'}"
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
    if not database_url.startswith("postgresql"):
        pytest.skip("column compression is PostgreSQL's")
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
