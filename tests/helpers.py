"""Helpers for tests in any folder: request bodies, problem checks, and a direct look at
storage. The fixtures built on them (``storage``, ``belong_cli``) are in tests/conftest.py.

The direct look goes through the app's own ``Database`` (``app.state.db``) on the app's
event loop, so the tests can check what is stored (or that nothing was) without relying
only on the API that wrote it.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import AsyncEngine, create_async_engine

from service.platform.tables import (
    api_clients,
    observations,
    patients,
    questionnaire_responses,
    screenings,
)

T = TypeVar("T")

PROBLEM_JSON = "application/problem+json"
PAST = "2024-03-01T09:30:00Z"
UCLA3_ANSWERS = {"1": 2, "2": 3, "3": 3}


def new_patient_id() -> str:
    return f"pat-{uuid.uuid4()}"


def ucla3(patient_id: str, **overrides: Any) -> dict[str, Any]:
    """A valid UCLA-3 submission (total 8, band "lonely") with any field replaced."""
    body: dict[str, Any] = {
        "patient_id": patient_id,
        "instrument": "ucla-3",
        "completed_at": PAST,
        "answers": dict(UCLA3_ANSWERS),
    }
    body.update(overrides)
    return body


def questionnaire_response(patient: str, **extra: Any) -> dict[str, Any]:
    """A completed AHC isolation QuestionnaireResponse (FHIR JSON) with any field added."""
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "https://belong.example/fhir/Questionnaire/ahc-isolation",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2025-04-01T12:00:00Z",
        "item": [
            {
                "linkId": "1",
                "answer": [{"valueCoding": {"system": "http://loinc.org", "code": "LA10044-8"}}],
            }
        ],
        **extra,
    }


def assert_problem(response: Any, status: int, field: str | None = None) -> dict[str, Any]:
    """An RFC 9457 problem with ``status``; with ``field``, one error names that field."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    body = response.json()
    assert body["status"] == status
    assert body["title"]
    if field is not None:
        named = [e["field"] for e in body["errors"]]
        assert field in named, body
    return body


@dataclass(frozen=True)
class Stored:
    """What the database holds for one patient of one clinic."""

    profile: dict[str, Any] | None
    """None when the patient does not exist."""
    updated_at: Any
    screenings: int
    questionnaire_responses: int
    observations: int


@dataclass
class Storage:
    session_client: TestClient[Litestar]

    def run(self, work: Callable[[Any], Awaitable[T]]) -> T:
        """Run ``work(conn)`` in one transaction on the app's loop and database."""

        async def call() -> T:
            async with self.session_client.app.state.db.begin() as conn:
                return await work(conn)

        return self.session_client.blocking_portal.call(call)

    def patient(self, clinic_id: uuid.UUID, patient_id: str) -> Stored:
        async def look(conn: Any) -> Stored:
            row = (
                await conn.execute(
                    sa.select(patients.c.profile, patients.c.updated_at).where(
                        patients.c.clinic_id == clinic_id, patients.c.id == patient_id
                    )
                )
            ).first()
            counts = []
            for table in (screenings, questionnaire_responses, observations):
                counts.append(
                    (
                        await conn.execute(
                            sa.select(sa.func.count()).where(
                                table.c.clinic_id == clinic_id, table.c.patient_id == patient_id
                            )
                        )
                    ).scalar_one()
                )
            return Stored(
                profile=row.profile if row is not None else None,
                updated_at=row.updated_at if row is not None else None,
                screenings=counts[0],
                questionnaire_responses=counts[1],
                observations=counts[2],
            )

        return self.run(look)

    def client_ids(self, clinic_id: uuid.UUID) -> list[uuid.UUID]:
        async def look(conn: Any) -> list[uuid.UUID]:
            query = sa.select(api_clients.c.id).where(api_clients.c.clinic_id == clinic_id)
            return list((await conn.execute(query)).scalars())

        return self.run(look)


async def count_stored(engine: AsyncEngine, patient: str) -> tuple[int, int, int]:
    """The questionnaire responses, screenings and observations stored for ``patient`` (in
    any clinic), read on ``engine`` without the app."""
    async with engine.connect() as conn:
        row = (
            await conn.execute(
                sa.select(
                    *(
                        sa.select(sa.func.count())
                        .where(table.c.patient_id == patient)
                        .scalar_subquery()
                        for table in (questionnaire_responses, screenings, observations)
                    )
                )
            )
        ).one()
    return (row[0], row[1], row[2])


def stored_rows(url: str, patient: str) -> tuple[int, int, int]:
    """``count_stored`` on an engine of its own, from synchronous code."""

    async def count() -> tuple[int, int, int]:
        engine = create_async_engine(url)
        try:
            return await count_stored(engine, patient)
        finally:
            await engine.dispose()

    return asyncio.run(count())


def table_names(url: str) -> set[str]:
    """The tables of the database at ``url``."""

    async def run() -> set[str]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                return set(await conn.run_sync(lambda c: sa.inspect(c).get_table_names()))
        finally:
            await engine.dispose()

    return asyncio.run(run())


@dataclass(frozen=True)
class CliRun:
    code: int
    out: list[str]
    err: str


BelongCli = Callable[..., CliRun]


REFUSAL_SLACK_SECONDS = 0.3
"""What a refusal "within one second" may take beyond it here: a poll's interval and the
time one request takes on a busy test machine."""


def seconds_until_refused(
    session_client: TestClient[Litestar], headers: dict[str, str], since: float
) -> float:
    """Call with ``headers`` until the app answers 401; the seconds from ``since`` (a
    ``time.monotonic()`` taken after the call that cached the token) to that 401. Fails as
    soon as the token has been served for over a second past ``since``."""
    while True:
        status = session_client.get("/v1/audit-events", headers=headers).status_code
        elapsed = time.monotonic() - since
        if status == 401:
            return elapsed
        assert status == 200, status
        assert elapsed <= 1.0 + REFUSAL_SLACK_SECONDS, f"still served {elapsed:.2f} s later"
        time.sleep(0.05)


@dataclass(frozen=True)
class FhirSeed:
    """What :func:`seed_fhir` stored in a clinic: known resources for FHIR searches."""

    patient: str
    other_patient: str
    group: str
    """A support-group service (ServiceRequest.code SNOMED 711281004)."""
    counselling: str
    """A counselling service (SNOMED 306226009)."""
    active: str
    """The patient's referral to the group, requested: ServiceRequest active, Task requested."""
    completed: str
    """The patient's referral to counselling, completed."""
    revoked: str
    """The other patient's referral to the group, cancelled: ServiceRequest revoked."""
    questionnaire_response: str
    """The patient's QuestionnaireResponse, identifier urn:ehr:qr|<its identifier>, authored
    2025-04-01T12:00:00Z."""
    identifier: str
    other_questionnaire_response: str
    """The other patient's, with no identifier (a /v1 screening), completed 2024-03-01."""
    total: str
    """The id of the score Observation derived from ``questionnaire_response``."""
    observations: frozenset[str]
    """The ids of the Observations from ``questionnaire_response``."""
    other_observations: frozenset[str]
    """The ids of those from ``other_questionnaire_response``."""


def seed_fhir(client: TestClient[Litestar]) -> FhirSeed:
    """Two patients, two services, three referrals and two QuestionnaireResponses, stored
    through the API in ``client``'s clinic."""
    patient, other = new_patient_id(), new_patient_id()
    services = {}
    for name, category in (("group", "support-group"), ("counselling", "counselling")):
        made = client.post(
            "/v1/directory/services",
            json={"name": f"Seeded {name}", "organization": "Seed Org", "category": category,
                  "modalities": ["online"]},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        services[name] = made.json()["id"]
    identifier = f"qr-{uuid.uuid4()}"
    stored = client.post(
        "/fhir/QuestionnaireResponse",
        json=questionnaire_response(
            patient, identifier={"system": "urn:ehr:qr", "value": identifier}
        ),
        headers={"content-type": "application/fhir+json"},
    )
    assert stored.status_code == 201, stored.text
    qr_id = stored.json()["id"]
    screening = client.post("/v1/screenings", json=ucla3(other))
    assert screening.status_code == 201, screening.text
    other_qr = screening.json()["questionnaire_response"].removeprefix("QuestionnaireResponse/")
    found = client.get("/fhir/Observation", params={"_count": 100})
    assert found.status_code == 200, found.text
    by_patient: dict[str, set[str]] = {}
    for entry in found.json()["entry"]:
        subject = entry["resource"]["subject"]["reference"].removeprefix("Patient/")
        by_patient.setdefault(subject, set()).add(entry["resource"]["id"])
    (total,) = [i for i in by_patient[patient] if i.endswith("-total")]
    referrals = {}
    for name, person, service, steps in (
        ("active", patient, "group", []),
        ("completed", patient, "counselling", ["accepted", "in-progress", "completed"]),
        ("revoked", other, "group", ["cancelled"]),
    ):
        made = client.post(
            "/v1/referrals",
            json={"patient_id": person, "service_id": services[service], "need": "loneliness",
                  "consent": {"given": True, "method": "verbal"}},
        )  # fmt: skip
        assert made.status_code == 201, made.text
        for step in steps:
            moved = client.patch(
                f"/v1/referrals/{made.json()['id']}", json={"status": step, "reason": "seeded"}
            )
            assert moved.status_code == 200, moved.text
        referrals[name] = made.json()["id"]
    return FhirSeed(
        patient=patient,
        other_patient=other,
        group=services["group"],
        counselling=services["counselling"],
        active=referrals["active"],
        completed=referrals["completed"],
        revoked=referrals["revoked"],
        questionnaire_response=qr_id,
        identifier=identifier,
        other_questionnaire_response=other_qr,
        total=total,
        observations=frozenset(by_patient[patient]),
        other_observations=frozenset(by_patient[other]),
    )
