"""Shared fixtures: the app on each database, and a fresh clinic with a token per test.

The database tests run on SQLite always and on PostgreSQL when
``BELONG_TEST_DATABASE_URL`` is set. Each test works in a clinic of its own, so tests
need no clean-up and cross-clinic checks come for free.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from service.app import create_app
from service.domain.instruments import Instrument, load_catalog
from service.settings import PROJECT_ROOT, Settings
from service.store.clients import SCOPES, create_client
from service.store.clinics import DEFAULT_LANGUAGES, create_clinic
from service.store.migrate import upgrade

INSTRUMENTS_DIR = PROJECT_ROOT / "schemas" / "instruments"
POSTGRES_URL = os.environ.get("BELONG_TEST_DATABASE_URL")

DATABASES = [pytest.param("sqlite", id="sqlite")]
if POSTGRES_URL:
    DATABASES.append(pytest.param("postgresql", id="postgresql"))


def pytest_report_header() -> str:
    if POSTGRES_URL:
        return "database legs: sqlite, postgresql"
    return "database legs: sqlite only (set BELONG_TEST_DATABASE_URL for the PostgreSQL leg)"


@pytest.fixture(scope="session")
def catalog() -> dict[str, Instrument]:
    return load_catalog(INSTRUMENTS_DIR)


def reset_postgres(url: str) -> None:
    async def reset() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(sa.text("DROP SCHEMA public CASCADE"))
            await conn.execute(sa.text("CREATE SCHEMA public"))
        await engine.dispose()

    asyncio.run(reset())


@pytest.fixture(scope="session", params=DATABASES)
def database_url(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> str:
    if request.param == "sqlite":
        url = f"sqlite+aiosqlite:///{tmp_path_factory.mktemp('db') / 'belong.db'}"
    else:
        assert POSTGRES_URL is not None
        url = POSTGRES_URL
        reset_postgres(url)
    upgrade(url)
    return url


@pytest.fixture(scope="session")
def app(database_url: str) -> Litestar:
    return create_app(Settings(database_url=database_url))


@pytest.fixture(scope="session")
def session_client(app: Litestar) -> Iterator[TestClient[Litestar]]:
    with TestClient(app) as test_client:
        yield test_client


@dataclass(frozen=True)
class Clinic:
    name: str
    token: str
    clinic_id: uuid.UUID

    @property
    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.token}"}


MakeClinic = Callable[..., Clinic]


@pytest.fixture
def make_clinic(session_client: TestClient[Litestar]) -> MakeClinic:
    """A new clinic (speaking ``languages``) and a client of it with the given scopes (all
    by default)."""

    def make(
        scopes: tuple[str, ...] = SCOPES,
        name: str | None = None,
        languages: tuple[str, ...] = DEFAULT_LANGUAGES,
    ) -> Clinic:
        clinic_name = name or f"clinic-{uuid.uuid4()}"

        async def create() -> Clinic:
            async with session_client.app.state.db.begin() as conn:
                await create_clinic(conn, clinic_name, languages)
                principal, token = await create_client(conn, clinic_name, list(scopes))
            return Clinic(clinic_name, token, principal.clinic_id)

        return session_client.blocking_portal.call(create)

    return make


@pytest.fixture
def clinic(make_clinic: MakeClinic) -> Clinic:
    return make_clinic()


@pytest.fixture
def client(session_client: TestClient[Litestar], clinic: Clinic) -> TestClient[Litestar]:
    """The test client, authenticated as ``clinic`` with every scope."""
    session_client.headers.update(clinic.headers)
    yield session_client
    session_client.headers.pop("Authorization", None)


@pytest.fixture(scope="session")
def licensed_app(database_url: str) -> Litestar:
    return create_app(
        Settings(database_url=database_url, licensed_instruments=frozenset({"promis"}))
    )


@pytest.fixture
def licensed_client(
    licensed_app: Litestar, client: TestClient[Litestar]
) -> Iterator[TestClient[Litestar]]:
    with TestClient(licensed_app) as test_client:
        test_client.headers.update(client.headers)
        yield test_client


__all__ = ["INSTRUMENTS_DIR", "Path"]
