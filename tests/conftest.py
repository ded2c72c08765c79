"""Shared fixtures: the app on its database, and a fresh clinic with a token per test.

The tests run on the PostgreSQL in ``BELONG_TEST_DATABASE_URL`` when it is set, else on an
embedded PostgreSQL under ./var/pgtest that the session starts (and stops at its end, if it
started it). Each test works in a clinic of its own, so tests need no clean-up and
cross-clinic checks come for free.

Under pytest-xdist (``make test`` runs ``-n``) the controller starts the embedded server
once and hands its URL to the workers, and each worker runs on a database of its own,
``<test database>_<worker>`` (e.g. ``belong_test_gw0``), created on that server for the
run and dropped at its end.
"""

from __future__ import annotations

import asyncio
import functools
import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from service.app import create_app
from service.cli import main as belong
from service.instruments.loader import load_catalog
from service.instruments.model import Instrument
from service.platform import embedded
from service.platform.clinics import DEFAULT_LANGUAGES, create_clinic
from service.platform.credentials import SCOPES
from service.platform.migrate import upgrade
from service.settings import PROJECT_ROOT, Settings
from service.systems.repository import create_client
from tests.helpers import BelongCli, CliRun, Storage

INSTRUMENTS_DIR = PROJECT_ROOT / "schemas" / "instruments"
EMBEDDED_DIR = PROJECT_ROOT / "var" / "pgtest"
SERVER_URL = "belong_server_url"
"""The key of the server's URL in an xdist worker's ``workerinput``."""

_started_embedded = False
_given_server_url: str | None = None
_workers: list[str] = []
_created_databases: list[str] = []


def pytest_configure(config: pytest.Config) -> None:
    global _given_server_url
    workerinput: dict[str, Any] = getattr(config, "workerinput", {})
    _given_server_url = workerinput.get(SERVER_URL)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """The browser tests last (in each xdist worker too, which takes the tests in this
    order): Playwright's sync API keeps an event loop running in the main thread from the
    first of them on, and the fixtures and commands that call ``asyncio.run`` then cannot."""
    items.sort(key=lambda item: "browser" in item.path.relative_to(PROJECT_ROOT).parts[:2])


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node: Any) -> None:
    """xdist, in the controller: start the server before the workers (once), pass it on."""
    node.workerinput[SERVER_URL] = server_url()
    _workers.append(node.gateway.id)


@functools.cache
def server_url() -> str:
    """``BELONG_TEST_DATABASE_URL``, else the embedded test server's (started if need be);
    in an xdist worker, the one the controller passed on."""
    global _started_embedded
    if _given_server_url:
        return _given_server_url
    configured = os.environ.get("BELONG_TEST_DATABASE_URL")
    if configured:
        return configured
    _started_embedded = not embedded.is_running(EMBEDDED_DIR)
    return embedded.start(EMBEDDED_DIR, "belong_test")


@functools.cache
def session_database_url() -> str:
    """The database this process tests on: the server's own, or in an xdist worker a new one
    of the worker's beside it."""
    worker = os.environ.get("PYTEST_XDIST_WORKER")
    if not worker:
        return server_url()
    return create_database(f"{sa.engine.make_url(server_url()).database}_{worker}")


def described(url: str) -> str:
    """Where the tests ran, without credentials."""
    if not os.environ.get("BELONG_TEST_DATABASE_URL"):
        where = f"embedded PostgreSQL at ./{EMBEDDED_DIR.relative_to(PROJECT_ROOT)}"
    else:
        given = sa.engine.make_url(url)
        where = sa.engine.URL.create(
            given.drivername, host=given.host, port=given.port, database=given.database
        ).render_as_string()
    if _workers:
        database = sa.engine.make_url(url).database
        where += ", a database per worker: " + ", ".join(f"{database}_{w}" for w in _workers)
    return where


def create_database(database: str) -> str:
    """A new, empty ``database`` on the test server (dropped first if a previous run left
    it, and at the end of this one); its URL."""
    base = sa.engine.make_url(server_url())

    async def create() -> None:
        engine = create_async_engine(base, isolation_level="AUTOCOMMIT")
        async with engine.connect() as conn:
            await conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)'))
            await conn.execute(sa.text(f'CREATE DATABASE "{database}"'))
        await engine.dispose()

    asyncio.run(create())
    _created_databases.append(database)
    return base.set(database=database).render_as_string(hide_password=False).replace("%2F", "/")


def scratch_database(name: str) -> str:
    """A new, empty database ``<test database>_<name>`` beside the test database, for a test
    that needs a database of its own."""
    return create_database(f"{sa.engine.make_url(session_database_url()).database}_{name}")


def pytest_report_header() -> str:
    configured = os.environ.get("BELONG_TEST_DATABASE_URL")
    return "database: " + (
        described(configured) if configured else "embedded PostgreSQL (started on first use)"
    )


def pytest_sessionfinish() -> None:
    """Drop the databases this process created (a worker's own among them): after the
    session's fixtures closed their connections, before xdist hears the worker is done."""
    if _created_databases:

        async def drop_all() -> None:
            engine = create_async_engine(server_url(), isolation_level="AUTOCOMMIT")
            async with engine.connect() as conn:
                for database in reversed(_created_databases):
                    await conn.execute(
                        sa.text(f'DROP DATABASE IF EXISTS "{database}" WITH (FORCE)')
                    )
            await engine.dispose()

        asyncio.run(drop_all())
        _created_databases.clear()


def pytest_unconfigure(config: pytest.Config) -> None:
    """Stop the embedded server if this run started it (the controller, under xdist, after
    its workers are gone), then name the database as the run's last line."""
    if _started_embedded:
        embedded.stop(EMBEDDED_DIR)
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    in_worker = "PYTEST_XDIST_WORKER" in os.environ
    if reporter is not None and not in_worker and server_url.cache_info().currsize:
        reporter.write_line(f"tests ran on {described(server_url())}")


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


@pytest.fixture(scope="session")
def database_url() -> str:
    url = session_database_url()
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


@pytest.fixture
def storage(session_client: TestClient[Litestar]) -> Storage:
    return Storage(session_client)


@pytest.fixture
def belong_cli(
    database_url: str, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> BelongCli:
    """``belong ARGS...`` on the test database, as an operator runs it beside the app: its
    own connections, nothing shared with the app's caches."""
    monkeypatch.setenv("BELONG_DATABASE_URL", database_url)

    def run(*args: str) -> CliRun:
        capsys.readouterr()
        try:
            code = belong(list(args))
        except SystemExit as exc:  # argparse refusing the arguments
            code = int(exc.code or 0)
        captured = capsys.readouterr()
        return CliRun(code, captured.out.splitlines(), captured.err)

    return run


__all__ = ["INSTRUMENTS_DIR", "Path"]
