"""The database going away: 503 with Retry-After, not ready, no partial write, recovery.

A TCP proxy on loopback that the test controls stands between the app and PostgreSQL:
``cut`` closes every connection and refuses new ones, ``stall`` stops forwarding bytes
(a request hangs mid-transaction), ``restore`` brings the database back. Nothing is mocked:
the app talks to the real server through real sockets.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from typing import Any

import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from service.app import create_app
from service.platform.credentials import SCOPES
from service.settings import Settings
from service.systems.repository import create_client
from tests.helpers import stored_rows
from tests.live import free_port


class Proxy:
    """A loopback TCP proxy with a switch, running its own event loop in a thread. A target
    host that is a folder is a Unix socket's (the embedded server's)."""

    def __init__(self, target_host: str, target_port: int) -> None:
        self.target = (target_host, target_port)
        self.port = free_port()
        self.loop = asyncio.new_event_loop()
        self.server: asyncio.base_events.Server | None = None
        self.writers: set[asyncio.StreamWriter] = set()
        self.forwarding = threading.Event()
        self.forwarding.set()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self._call(self._listen())

    def _call(self, coro) -> None:  # type: ignore[no-untyped-def]
        asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout=10)

    async def _listen(self) -> None:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", self.port)

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            host, port = self.target
            if host.startswith("/"):
                up_reader, up_writer = await asyncio.open_unix_connection(f"{host}/.s.PGSQL.{port}")
            else:
                up_reader, up_writer = await asyncio.open_connection(host, port)
        except OSError:
            writer.close()
            return
        self.writers |= {writer, up_writer}

        async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
            with suppress(OSError, ConnectionError):
                while data := await src.read(65536):
                    while not self.forwarding.is_set():  # noqa: ASYNC110 - a thread flips it
                        await asyncio.sleep(0.01)
                    dst.write(data)
                    await dst.drain()
            dst.close()

        await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))

    async def _cut(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()
            self.server = None
        for writer in list(self.writers):
            writer.transport.abort()
        self.writers.clear()

    def cut(self) -> None:
        self.forwarding.set()
        self._call(self._cut())

    def stall(self) -> None:
        self.forwarding.clear()

    def restore(self) -> None:
        self.forwarding.set()
        if self.server is None:
            self._call(self._listen())

    def close(self) -> None:
        self._call(self._cut())
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=5)


@pytest.fixture
def postgres_url(database_url: str) -> str:
    return database_url


@pytest.fixture
def proxy(postgres_url: str) -> Iterator[Proxy]:
    url = make_url(postgres_url)
    socket_dir = url.query.get("host")
    running = Proxy(str(socket_dir or url.host or "127.0.0.1"), url.port or 5432)
    yield running
    running.close()


@contextmanager
def proxied_app(
    postgres_url: str, proxy: Proxy, **settings: Any
) -> Iterator[tuple[TestClient, dict[str, str]]]:
    """The app with its database behind ``proxy``, and a token's headers."""
    proxied = (
        make_url(postgres_url)
        .set(host="127.0.0.1", port=proxy.port)
        .difference_update_query(["host"])
    )
    app = create_app(
        Settings(database_url=proxied.render_as_string(hide_password=False), **settings)
    )
    with TestClient(app, raise_server_exceptions=False) as client:

        async def token() -> str:
            async with app.state.db.begin() as conn:
                name = f"faults-{uuid.uuid4()}"
                return (await create_client(conn, name, list(SCOPES), create_clinic=True))[1]

        yield client, {"Authorization": f"Bearer {client.blocking_portal.call(token)}"}


@pytest.fixture
def faulty(postgres_url: str, proxy: Proxy) -> Iterator[tuple[TestClient, dict[str, str]]]:
    with proxied_app(postgres_url, proxy, db_pool_timeout=2.0, request_timeout_s=20.0) as made:
        yield made


def screening(patient: str) -> dict[str, object]:
    return {
        "patient_id": patient,
        "instrument": "ucla-3",
        "completed_at": "2026-01-05T09:00:00Z",
        "answers": {"1": 3, "2": 3, "3": 2},
    }


def assert_unavailable(response, fhir: bool = False) -> None:  # type: ignore[no-untyped-def]
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    expected = "application/fhir+json" if fhir else "application/problem+json"
    assert response.headers["content-type"].startswith(expected)
    body = response.json()
    assert body.get("resourceType") == "OperationOutcome" if fhir else body["status"] == 503


def test_database_down_answers_503_and_recovers(faulty, proxy, postgres_url) -> None:
    client, headers = faulty
    assert client.get("/health/ready").status_code == 200
    assert (
        client.post("/v1/screenings", json=screening("warm-up"), headers=headers).status_code == 201
    )

    proxy.cut()
    patient = f"down-{uuid.uuid4().hex[:8]}"
    assert_unavailable(client.get("/health/ready"))
    assert_unavailable(client.post("/v1/screenings", json=screening(patient), headers=headers))
    assert_unavailable(client.get(f"/v1/patients/{patient}", headers=headers))
    assert_unavailable(
        client.get("/fhir/Observation", params={"patient": patient}, headers=headers), fhir=True
    )
    assert client.get("/health/live").status_code == 200
    assert stored_rows(postgres_url, patient) == (0, 0, 0)

    proxy.restore()
    assert client.get("/health/ready").status_code == 200
    created = client.post("/v1/screenings", json=screening(patient), headers=headers)
    assert created.status_code == 201, created.text
    assert stored_rows(postgres_url, patient) == (1, 1, 5)


@contextmanager
def refusing_sessions(postgres_url: str, proxy: Proxy) -> Iterator[None]:
    """PostgreSQL up, but refusing every new session with an error of its own (as while it
    starts up, runs out of connections or is closed for maintenance): the app's open
    connections are cut, and the database stops accepting connections until the block ends."""
    admin = make_url(postgres_url).set(database="postgres")
    database = make_url(postgres_url).database

    def allow(value: bool) -> None:
        async def alter() -> None:
            engine = create_async_engine(admin, isolation_level="AUTOCOMMIT")
            async with engine.connect() as conn:
                await conn.execute(
                    sa.text(f'ALTER DATABASE "{database}" ALLOW_CONNECTIONS {str(value).lower()}')
                )
            await engine.dispose()

        asyncio.run(alter())

    allow(False)
    try:
        proxy.cut()
        proxy.restore()
        yield
    finally:
        allow(True)


def test_a_database_refusing_sessions_answers_503_on_every_route(
    faulty, proxy, postgres_url, caplog
) -> None:
    """Through the driver or through SQLAlchemy, audited or not: 503 with Retry-After, and
    never logged as an unhandled error (a 500)."""
    client, headers = faulty
    patient = f"refused-{uuid.uuid4().hex[:8]}"
    created = client.post("/v1/screenings", json=screening(patient), headers=headers)
    assert created.status_code == 201, created.text
    screening_id = created.json()["id"]

    with refusing_sessions(postgres_url, proxy), caplog.at_level(logging.WARNING):
        assert_unavailable(client.get("/health/ready"))
        assert_unavailable(client.post("/v1/screenings", json=screening(patient), headers=headers))
        assert_unavailable(client.get(f"/v1/patients/{patient}", headers=headers))
        assert_unavailable(client.get(f"/v1/screenings/{screening_id}", headers=headers))
        assert_unavailable(client.get("/v1/referrals", headers=headers))
        assert_unavailable(client.get("/v1/directory/services", headers=headers))
        assert_unavailable(
            client.get("/fhir/Observation", params={"patient": patient}, headers=headers),
            fhir=True,
        )
    unhandled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unhandled")]
    assert unhandled == []

    assert client.get("/health/ready").status_code == 200
    again = client.get(f"/v1/screenings/{screening_id}", headers=headers)
    assert again.status_code == 200, again.text
    assert stored_rows(postgres_url, patient) == (1, 1, 5)


def test_connection_killed_mid_request_leaves_no_partial_write(faulty, proxy, postgres_url) -> None:
    client, headers = faulty
    assert (
        client.get(f"/v1/patients/warm-{uuid.uuid4().hex[:6]}", headers=headers).status_code == 404
    )
    patient = f"cut-{uuid.uuid4().hex[:8]}"
    result: dict[str, object] = {}

    def post() -> None:
        result["response"] = client.post("/v1/screenings", json=screening(patient), headers=headers)

    proxy.stall()
    worker = threading.Thread(target=post)
    worker.start()
    worker.join(timeout=1.0)
    assert worker.is_alive(), "the request should be waiting on the stalled database"
    proxy.cut()
    worker.join(timeout=30)
    assert not worker.is_alive()
    assert_unavailable(result["response"])
    proxy.restore()
    assert stored_rows(postgres_url, patient) == (0, 0, 0)
    again = client.post("/v1/screenings", json=screening(patient), headers=headers)
    assert again.status_code == 201, again.text
    assert stored_rows(postgres_url, patient) == (1, 1, 5)


def test_a_request_cut_off_by_its_time_limit_leaves_a_usable_pool(
    postgres_url: str, proxy: Proxy
) -> None:
    """The time limit cancels a request mid-statement on the driver's connection (asyncpg
    cancels the query and keeps the connection usable): with a pool of one connection, the
    next requests must get it back, neither lost nor still busy."""
    with proxied_app(
        postgres_url, proxy, db_pool_size=1, db_pool_timeout=2.0, request_timeout_s=1.0
    ) as (client, headers):
        warm = client.post("/v1/screenings", json=screening("warm-up"), headers=headers)
        assert warm.status_code == 201, warm.text

        proxy.stall()
        patient = f"slow-{uuid.uuid4().hex[:8]}"
        assert_unavailable(client.post("/v1/screenings", json=screening(patient), headers=headers))
        proxy.restore()

        for _ in range(3):
            again = client.post("/v1/screenings", json=screening(patient), headers=headers)
            assert again.status_code == 201, again.text
        found = client.get("/fhir/Observation", params={"patient": patient}, headers=headers)
        assert found.status_code == 200, found.text
