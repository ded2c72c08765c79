"""The database going away under concurrent load: every answer a success or a 503.

Ten kinds of request run side by side on the app's own event loop (screenings, reads,
searches, FHIR QuestionnaireResponse posts, referral PATCHes, directory imports, SMART
token requests, CDS Hooks calls, a fresh token's first request, and requests whose cached
token has expired) while PostgreSQL stops accepting connections to the database and its
backends are terminated (``ALLOW_CONNECTIONS false`` and ``pg_terminate_backend``), for a
few seconds. No answer may be a 500; every failure is a 503 with Retry-After; a write that
answered 503 left nothing behind; and once the database is back, every kind succeeds again
without a restart. PostgreSQL only.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from litestar.testing import TestClient
from sqlalchemy import event
from sqlalchemy.engine import make_url
from sqlalchemy.ext.asyncio import create_async_engine

from service.app import create_app
from service.platform.auth import TokenCache
from service.platform.credentials import SCOPES
from service.settings import Settings
from service.systems.controllers.cds import SERVICE_ID
from service.systems.controllers.smart import ASSERTION_TYPE
from service.systems.repository import create_client, create_system_client
from tests.helpers import count_stored, questionnaire_response
from tests.jwt_keys import claims, ec_key, public_jwks, sign

BASE = "http://testserver.local"
SEED = Path(__file__).resolve().parents[2] / "deploy" / "seed" / "directory.hsds.json"
FHIR_JSON = "application/fhir+json"
OUTAGE_SECONDS = 3.0
WARM_SECONDS = 1.0
RECOVERY_SECONDS = 20.0
PAUSE = 0.02
COLD_TOKENS = 150

Send = Callable[[httpx.AsyncClient], Awaitable[tuple[httpx.Response, str | None]]]


@dataclass(frozen=True)
class Answer:
    started: float
    status: int
    retry_after: str | None
    patient: str | None
    """The patient a write was for, so that a refused write can be looked for."""


@dataclass
class Kind:
    name: str
    send: Send
    ok: frozenset[int]
    answers: list[Answer] = field(default_factory=list)
    escaped: list[str] = field(default_factory=list)
    """Errors that escaped the app instead of answering."""


@pytest.fixture
def postgres_url(database_url: str) -> str:
    return database_url


class Outage:
    """Closes the database to new sessions and terminates the app's backends (only the app's:
    the session's other apps keep theirs), and reopens the database."""

    def __init__(self, postgres_url: str, app: Any) -> None:
        self.admin = create_async_engine(
            make_url(postgres_url).set(database="postgres"), isolation_level="AUTOCOMMIT"
        )
        self.database = make_url(postgres_url).database
        self.backends: set[int] = set()
        event.listen(app.state.db.engine.sync_engine, "connect", self._connected)

    def _connected(self, dbapi_connection: Any, _record: Any) -> None:
        self.backends.add(dbapi_connection.driver_connection.get_server_pid())

    async def _run(self, statement: str, **values: Any) -> None:
        async with self.admin.connect() as conn:
            await conn.execute(sa.text(statement), values)

    async def begin(self) -> None:
        await self._run(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS false')
        await self.terminate()

    async def terminate(self) -> None:
        await self._run(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = :db AND pid = ANY(:pids)",
            db=self.database,
            pids=sorted(self.backends),
        )

    async def end(self) -> None:
        await self._run(f'ALTER DATABASE "{self.database}" ALLOW_CONNECTIONS true')

    async def dispose(self) -> None:
        await self.admin.dispose()


def screening(patient: str) -> dict[str, Any]:
    return {
        "patient_id": patient,
        "instrument": "ucla-3",
        "completed_at": "2026-01-05T09:00:00Z",
        "answers": {"1": 3, "2": 3, "3": 2},
    }


def test_an_outage_under_load_answers_503_writes_nothing_partial_and_recovers(
    postgres_url: str, caplog: pytest.LogCaptureFixture
) -> None:
    app = create_app(
        Settings(
            database_url=postgres_url,
            rate_limit_per_minute=0,
            db_pool_timeout=2.0,
            request_timeout_s=10.0,
        )
    )
    outage = Outage(postgres_url, app)
    with TestClient(app, raise_server_exceptions=False) as client:
        # Cached tokens expire within the outage, so lookups run while the database is away.
        app.state.token_cache = TokenCache(ttl=0.5)
        with caplog.at_level(logging.WARNING):
            kinds, refused_writes = client.blocking_portal.call(run_load, app, outage, postgres_url)
    unhandled = [r.getMessage() for r in caplog.records if r.getMessage().startswith("unhandled")]

    for kind in kinds:
        assert kind.escaped == [], (kind.name, kind.escaped[:3])
        statuses = sorted({a.status for a in kind.answers})
        assert set(statuses) <= kind.ok | {503}, (kind.name, statuses)
        for answer in kind.answers:
            if answer.status == 503:
                assert answer.retry_after and int(answer.retry_after) > 0, kind.name
        assert any(a.status == 503 for a in kind.answers), f"{kind.name} never met the outage"
    assert unhandled == []
    assert refused_writes, "no write was refused during the outage"
    assert all(rows == (0, 0, 0) for rows in refused_writes.values()), refused_writes


async def run_load(
    app: Any, outage: Outage, postgres_url: str
) -> tuple[list[Kind], dict[str, tuple[int, ...]]]:
    transport = httpx.ASGITransport(app=app)
    async with httpx.AsyncClient(transport=transport, base_url=BASE, timeout=30) as http:
        kinds = await prepare(app, http)
        phase = {"running": True}

        async def worker(kind: Kind) -> None:
            while phase["running"]:
                started = time.monotonic()
                try:
                    response, patient = await kind.send(http)
                except Exception as error:  # escaped the app: a server would answer 500
                    kind.escaped.append(repr(error))
                    response, patient = httpx.Response(500), None
                kind.answers.append(
                    Answer(
                        started,
                        response.status_code,
                        response.headers.get("retry-after"),
                        patient,
                    )
                )
                await asyncio.sleep(PAUSE)

        workers = [asyncio.create_task(worker(kind)) for kind in kinds]
        try:
            await asyncio.sleep(WARM_SECONDS)
            await outage.begin()
            try:
                await asyncio.sleep(OUTAGE_SECONDS / 2)
                await outage.terminate()
                await asyncio.sleep(OUTAGE_SECONDS / 2)
            finally:
                await outage.end()
            restored = time.monotonic()
            deadline = restored + RECOVERY_SECONDS
            while not all(recovered(kind, restored) for kind in kinds):
                assert time.monotonic() < deadline, {
                    k.name: [a.status for a in k.answers if a.started > restored][-20:]
                    for k in kinds
                    if not recovered(k, restored)
                }
                await asyncio.sleep(0.2)
        finally:
            phase["running"] = False
            await asyncio.gather(*workers, return_exceptions=True)
            await outage.dispose()

        engine = create_async_engine(postgres_url)
        refused: dict[str, tuple[int, ...]] = {}
        for kind in kinds:
            for answer in kind.answers:
                if answer.status == 503 and answer.patient is not None:
                    refused[answer.patient] = await count_stored(engine, answer.patient)
        await engine.dispose()
    return kinds, refused


def recovered(kind: Kind, restored: float) -> bool:
    return any(a.started > restored and a.status in kind.ok for a in kind.answers)


async def prepare(app: Any, http: httpx.AsyncClient) -> list[Kind]:
    """A clinic with a screening, a referral in progress, a system client and spare tokens."""
    clinic_name = f"outage-{uuid.uuid4()}"
    async with app.state.db.begin() as conn:
        _, token = await create_client(conn, clinic_name, list(SCOPES), create_clinic=True)
        system = await create_system_client(
            conn,
            clinic_name,
            list(SCOPES),
            "system",
            issuer=f"https://ehr.example.org/{uuid.uuid4()}",
            jwks=public_jwks(ec_key()),
        )
        cold = [
            (await create_client(conn, clinic_name, list(SCOPES)))[1] for _ in range(COLD_TOKENS)
        ]
    headers = {"Authorization": f"Bearer {token}"}

    async def ok(response: httpx.Response, status: int) -> dict[str, Any]:
        assert response.status_code == status, response.text
        return response.json()

    reader = f"reader-{uuid.uuid4().hex[:8]}"
    await ok(
        await http.put(f"/v1/patients/{reader}", json={"languages": ["en"]}, headers=headers), 201
    )
    screened = await ok(
        await http.post("/v1/screenings", json=screening(reader), headers=headers), 201
    )
    service = await ok(
        await http.post(
            "/v1/directory/services",
            json={
                "name": "Circle",
                "organization": "Org",
                "category": "support-group",
                "modalities": ["online"],
            },
            headers=headers,
        ),
        201,
    )
    referral = await ok(
        await http.post(
            "/v1/referrals",
            json={
                "patient_id": reader,
                "service_id": service["id"],
                "consent": {"given": True, "method": "verbal"},
            },
            headers=headers,
        ),
        201,
    )
    referral_url = f"/v1/referrals/{referral['id']}"
    for status in ("accepted", "in-progress"):
        await ok(await http.patch(referral_url, json={"status": status}, headers=headers), 200)
    seed = SEED.read_bytes()

    async def post_screening(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        patient = f"load-{uuid.uuid4().hex[:12]}"
        return await http.post("/v1/screenings", json=screening(patient), headers=headers), patient

    async def read(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        return await http.get(f"/v1/screenings/{screened['id']}", headers=headers), None

    async def search(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        params = {"patient": reader}
        return await http.get("/fhir/Observation", params=params, headers=headers), None

    async def post_fhir(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        patient = f"fhir-{uuid.uuid4().hex[:12]}"
        response = await http.post(
            "/fhir/QuestionnaireResponse",
            json=questionnaire_response(patient),
            headers={**headers, "Content-Type": FHIR_JSON},
        )
        return response, patient

    held = {"status": "in-progress", "unsure": False}

    async def move(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        to = "on-hold" if held["status"] == "in-progress" else "in-progress"
        body = {"status": to, "reason": "paused"} if to == "on-hold" else {"status": to}
        response = await http.patch(referral_url, json=body, headers=headers)
        if response.status_code == 200:
            held.update(status=to, unsure=False)
        elif response.status_code == 409 and held["unsure"]:
            # A step answered 503 after its commit: the referral is there already.
            held.update(status=to, unsure=False)
            response = httpx.Response(200)
        elif response.status_code == 503:
            held["unsure"] = True
        return response, None

    async def import_seed(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        response = await http.post(
            "/v1/directory/import",
            content=seed,
            headers={**headers, "Content-Type": "application/json"},
        )
        return response, None

    async def smart_token(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        assertion = sign(
            claims(system.issuer, f"{BASE}/auth/token", sub=system.issuer), ec_key(), "ES384"
        )
        form = {
            "grant_type": "client_credentials",
            "scope": "system/Observation.rs",
            "client_assertion_type": ASSERTION_TYPE,
            "client_assertion": assertion,
        }
        return await http.post("/auth/token", data=form), None

    async def cds_call(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        url = f"/cds-services/{SERVICE_ID}"
        jwt = sign(claims(system.issuer, BASE + url), ec_key(), "ES384")
        body = {
            "hook": "patient-view",
            "hookInstance": str(uuid.uuid4()),
            "context": {"userId": "Practitioner/dr-1", "patientId": reader},
            "prefetch": {"patient": {"resourceType": "Patient", "id": reader}},
        }
        return await http.post(url, json=body, headers={"Authorization": f"Bearer {jwt}"}), None

    async def cold_first(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        fresh = cold.pop() if len(cold) > 1 else cold[0]
        return await http.get("/v1/referrals", headers={"Authorization": f"Bearer {fresh}"}), None

    async def expired_cache(http: httpx.AsyncClient) -> tuple[httpx.Response, str | None]:
        return await http.get(f"/v1/patients/{reader}", headers=headers), None

    return [
        Kind("screening", post_screening, frozenset({201})),
        Kind("read", read, frozenset({200})),
        Kind("search", search, frozenset({200})),
        Kind("fhir-post", post_fhir, frozenset({201})),
        Kind("patch", move, frozenset({200})),
        Kind("import", import_seed, frozenset({200})),
        Kind("smart-token", smart_token, frozenset({200})),
        Kind("cds-call", cds_call, frozenset({200})),
        Kind("cold-first", cold_first, frozenset({200})),
        Kind("cached-token", expired_cache, frozenset({200})),
    ]
