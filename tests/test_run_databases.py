"""The run's databases: under pytest-xdist each worker tests on a database of its own (the
outage and fault tests close theirs to new sessions), made beside the given one."""

from __future__ import annotations

import asyncio
import os

import sqlalchemy as sa
from sqlalchemy.ext.asyncio import create_async_engine

from tests.conftest import scratch_database, server_url


def current_database(url: str) -> str:
    async def ask() -> str:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return str((await conn.execute(sa.text("SELECT current_database()"))).scalar())
        finally:
            await engine.dispose()

    return asyncio.run(ask())


def test_the_tests_run_on_the_given_database_or_on_their_workers_own(database_url: str) -> None:
    given = sa.engine.make_url(server_url()).database
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    assert current_database(database_url) == (f"{given}_{worker}" if worker else given)


def test_a_scratch_database_is_made_beside_the_test_database(database_url: str) -> None:
    url = scratch_database("beside")
    assert current_database(url) == f"{sa.engine.make_url(database_url).database}_beside"
