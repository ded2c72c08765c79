"""Bearer tokens, per-route scopes, public routes, and tokens stored only as hashes."""

from __future__ import annotations

import hashlib
import secrets
from typing import Any

import pytest
import sqlalchemy as sa

from service.store.tables import api_clients
from tests.conftest import MakeClinic
from tests.db.conftest import Storage, assert_problem, new_patient_id, ucla3

PROTECTED = [
    ("GET", "/v1/patients/pat-1"),
    ("PUT", "/v1/patients/pat-1"),
    ("GET", "/v1/patients/pat-1/screenings"),
    ("POST", "/v1/screenings"),
    ("GET", "/v1/screenings/01234567-89ab-cdef-0123-456789abcdef"),
    ("GET", "/v1/audit-events"),
    ("POST", "/v1/instruments/ucla-3/score"),
]


def call(session_client: Any, method: str, path: str, headers: dict[str, str]) -> Any:
    body = ucla3("pat-1") if path == "/v1/screenings" else {}
    if method in {"PUT", "POST"}:
        return session_client.request(method, path, json=body, headers=headers)
    return session_client.request(method, path, headers=headers)


def assert_unauthorized(response: Any) -> None:
    assert_problem(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")


@pytest.mark.parametrize(("method", "path"), PROTECTED)
def test_no_token_is_401_with_a_bearer_challenge(
    session_client: Any, method: str, path: str
) -> None:
    assert_unauthorized(call(session_client, method, path, {}))


@pytest.mark.parametrize(
    "authorization",
    [
        pytest.param(f"Bearer blg_{secrets.token_urlsafe(32)}", id="unknown-token"),
        pytest.param("Bearer ", id="empty-token"),
        pytest.param("Basic dXNlcjpwYXNz", id="basic-scheme"),
        pytest.param("blg_abc", id="no-scheme"),
        pytest.param("Bearer " + "a" * 300, id="oversized-token"),
    ],
)
def test_bad_token_is_401(session_client: Any, authorization: str) -> None:
    response = session_client.get("/v1/patients/pat-1", headers={"Authorization": authorization})
    assert_unauthorized(response)


def test_a_valid_token_with_the_wrong_case_scheme_still_works(
    session_client: Any, make_clinic: MakeClinic
) -> None:
    clinic = make_clinic()
    response = session_client.get(
        "/v1/audit-events", headers={"Authorization": f"bearer {clinic.token}"}
    )
    assert response.status_code == 200


def test_revoked_token_is_401(
    session_client: Any, make_clinic: MakeClinic, storage: Storage
) -> None:
    clinic = make_clinic()

    async def revoke(conn: Any) -> None:
        await conn.execute(
            sa.update(api_clients)
            .where(api_clients.c.clinic_id == clinic.clinic_id)
            .values(revoked_at=sa.func.now())
        )

    storage.run(revoke)
    assert_unauthorized(session_client.get("/v1/audit-events", headers=clinic.headers))


def test_read_only_client_cannot_post_a_screening(
    session_client: Any, make_clinic: MakeClinic, storage: Storage
) -> None:
    clinic = make_clinic(scopes=("screenings:read",))
    patient_id = new_patient_id()
    response = session_client.post("/v1/screenings", json=ucla3(patient_id), headers=clinic.headers)
    body = assert_problem(response, 403)
    assert "screenings:write" in body["detail"]
    assert storage.patient(clinic.clinic_id, patient_id).profile is None
    # The same client may read: the patient simply does not exist.
    read = session_client.get(f"/v1/patients/{patient_id}", headers=clinic.headers)
    assert_problem(read, 404, "patient_id")


def test_read_only_client_cannot_put_a_profile(
    session_client: Any, make_clinic: MakeClinic, storage: Storage
) -> None:
    clinic = make_clinic(scopes=("screenings:read",))
    patient_id = new_patient_id()
    response = session_client.put(
        f"/v1/patients/{patient_id}", json={"postcode": "SW1A 1AA"}, headers=clinic.headers
    )
    assert_problem(response, 403)
    assert storage.patient(clinic.clinic_id, patient_id).profile is None


@pytest.mark.parametrize(
    "path",
    [
        "/v1/patients/{patient_id}",
        "/v1/patients/{patient_id}/screenings",
        "/v1/screenings/{screening_id}",
    ],
)
def test_write_only_client_cannot_read(
    session_client: Any, make_clinic: MakeClinic, path: str
) -> None:
    clinic = make_clinic(scopes=("screenings:write",))
    patient_id = new_patient_id()
    posted = session_client.post("/v1/screenings", json=ucla3(patient_id), headers=clinic.headers)
    assert posted.status_code == 201, posted.text
    url = path.format(patient_id=patient_id, screening_id=posted.json()["id"])
    body = assert_problem(session_client.get(url, headers=clinic.headers), 403)
    assert "screenings:read" in body["detail"]


def test_listing_audit_events_needs_audit_read(
    session_client: Any, make_clinic: MakeClinic
) -> None:
    scopes = ("screenings:read", "screenings:write", "referrals:read", "referrals:write")
    clinic = make_clinic(scopes=scopes)
    body = assert_problem(session_client.get("/v1/audit-events", headers=clinic.headers), 403)
    assert "audit:read" in body["detail"]
    auditor = make_clinic(scopes=("audit:read",))
    assert session_client.get("/v1/audit-events", headers=auditor.headers).status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        "/health/live",
        "/v1/instruments",
        "/v1/instruments/ucla-3",
        "/fhir/Questionnaire",
        "/fhir/Questionnaire/ucla-3",
    ],
)
def test_public_routes_need_no_token(session_client: Any, path: str) -> None:
    response = session_client.get(path)
    assert response.status_code == 200, response.text


def test_token_is_stored_only_as_its_sha256(
    session_client: Any, make_clinic: MakeClinic, storage: Storage
) -> None:
    clinic = make_clinic()

    async def rows(conn: Any) -> list[Any]:
        query = sa.select(api_clients).where(api_clients.c.clinic_id == clinic.clinic_id)
        return list((await conn.execute(query)).all())

    (row,) = storage.run(rows)
    assert row.token_hash == hashlib.sha256(clinic.token.encode()).hexdigest()
    assert all(clinic.token not in str(value) for value in row)
    # ...and the token is not a short or guessable string.
    assert len(clinic.token) >= 40
    assert session_client.get("/v1/audit-events", headers=clinic.headers).status_code == 200
