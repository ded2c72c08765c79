"""Bad input that reaches the JSON parser, the database or the HTTP framing answers 400.

JSON nested thousands deep (and, on the CDS Hooks routes, deep enough in a field Belong
ignores), NUL characters in CDS Hooks fields and in ``If-None-Exist``, FHIR identifiers
longer than their columns, deeply nested JWTs, and a request carrying both
``Transfer-Encoding`` and ``Content-Length``: each is refused with a 4xx naming the field,
never a 500, and nothing is stored.
"""

from __future__ import annotations

import base64
import json
import socket
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.platform.tables import cds_feedback, questionnaire_responses
from service.systems.controllers.cds import SERVICE_ID
from service.systems.controllers.smart import ASSERTION_TYPE
from service.systems.repository import create_system_client
from tests.conftest import Clinic, scratch_database
from tests.helpers import Storage, questionnaire_response
from tests.jwt_keys import claims, ec_key, public_jwks, sign
from tests.live import live_server

BASE = "http://testserver.local"
SERVICE_PATH = f"/cds-services/{SERVICE_ID}"
FEEDBACK_PATH = f"{SERVICE_PATH}/feedback"
FHIR_JSON = "application/fhir+json"
JSON = {"Content-Type": "application/json"}
DEEP = 10_000


DEEP_MARK = "<deep>"


def deep_array(depth: int) -> bytes:
    return b"[" * depth + b"]" * depth


def with_deep_array(value: Any, depth: int) -> bytes:
    """``value`` as JSON with its ``DEEP_MARK`` string replaced by an array ``depth`` deep."""
    return json.dumps(value).encode().replace(json.dumps(DEEP_MARK).encode(), deep_array(depth))


@pytest.fixture
def ehr(session_client: TestClient[Litestar], clinic: Clinic) -> str:
    """A CDS client of ``clinic``; its issuer."""
    issuer = f"https://ehr.example.org/{uuid.uuid4()}"

    async def register() -> None:
        async with session_client.app.state.db.begin() as conn:
            await create_system_client(
                conn,
                clinic.name,
                ["referrals:read"],
                "ehr",
                issuer=issuer,
                jwks=public_jwks(ec_key()),
            )

    session_client.blocking_portal.call(register)
    return issuer


def cds_headers(issuer: str, path: str) -> dict[str, str]:
    token = sign(claims(issuer, BASE + path), ec_key(), "ES384")
    return {"Authorization": f"Bearer {token}", **JSON}


def hook_call(patient: str, **context: Any) -> dict[str, Any]:
    return {
        "hook": "patient-view",
        "hookInstance": str(uuid.uuid4()),
        "context": {"userId": "Practitioner/dr-1", "patientId": patient, **context},
        "prefetch": {"patient": {"resourceType": "Patient", "id": patient}},
    }


def feedback(**changes: Any) -> dict[str, Any]:
    """One overridden card's feedback, with ``changes`` (None removes a field)."""
    entry = {
        "card": str(uuid.uuid4()),
        "outcome": "overridden",
        "outcomeTimestamp": "2026-11-25T10:00:00Z",
        "overrideReason": {
            "reason": {"code": "not-now", "system": "https://belong.example", "display": "x"},
            "userComment": "Maybe next time",
        },
        **changes,
    }
    return {"feedback": [{k: v for k, v in entry.items() if v is not None}]}


def assert_refused(response: Any, field: str, status: int = 400) -> None:
    """``status`` as problem+json (/v1, CDS) or an OperationOutcome (/fhir) naming ``field``."""
    assert response.status_code == status, response.text
    body = response.json()
    if body.get("resourceType") == "OperationOutcome":
        named = [e for issue in body["issue"] for e in issue.get("expression", [])]
    else:
        named = [e["field"] for e in body["errors"]]
    assert field in named, body


def stored_responses(storage: Storage, clinic: Clinic) -> int:
    async def count(conn: Any) -> int:
        query = sa.select(sa.func.count()).where(
            questionnaire_responses.c.clinic_id == clinic.clinic_id
        )
        return int((await conn.execute(query)).scalar_one())

    return storage.run(count)


# -- JSON nested too deep ---------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [deep_array(DEEP), b'{"contents": ' + deep_array(DEEP) + b"}"],
    ids=["array", "in-an-object"],
)
@pytest.mark.parametrize(
    ("path", "content_type"),
    [
        ("/v1/directory/import", "application/json"),
        ("/fhir/QuestionnaireResponse", FHIR_JSON),
    ],
)
def test_json_nested_ten_thousand_deep_is_400(
    client: TestClient[Litestar], path: str, content_type: str, body: bytes
) -> None:
    response = client.post(path, content=body, headers={"Content-Type": content_type})
    assert_refused(response, "body")


@pytest.mark.parametrize("depth", [995, DEEP])
@pytest.mark.parametrize("path", [SERVICE_PATH, FEEDBACK_PATH])
def test_a_deep_array_in_an_unknown_field_is_400_on_cds_hooks(
    session_client: TestClient[Litestar], ehr: str, path: str, depth: int
) -> None:
    """Unknown fields are skipped, but skipping still descends into them."""
    body = hook_call(f"pat-{uuid.uuid4()}") if path == SERVICE_PATH else feedback()
    raw = with_deep_array({**body, "extra": DEEP_MARK}, depth)
    response = session_client.post(path, content=raw, headers=cds_headers(ehr, path))
    assert_refused(response, "body")


def test_a_deep_but_decodable_extension_is_refused_and_nothing_stored(
    client: TestClient[Litestar], clinic: Clinic, storage: Storage
) -> None:
    resource = questionnaire_response(
        f"pat-{uuid.uuid4()}", extension=[{"url": "https://x.example", "valueDeep": DEEP_MARK}]
    )
    response = client.post(
        "/fhir/QuestionnaireResponse",
        content=with_deep_array(resource, 960),
        headers={"Content-Type": FHIR_JSON},
    )
    assert_refused(response, "body")
    assert stored_responses(storage, clinic) == 0


def test_a_deep_but_decodable_import_is_400(client: TestClient[Litestar]) -> None:
    response = client.post(
        "/v1/directory/import",
        content=with_deep_array([{"id": "a", "name": "n", "extra": DEEP_MARK}], 960),
        headers=JSON,
    )
    assert_refused(response, "body")


def deep_jwt() -> str:
    """A JWT whose claims are an array nested 3,000 deep (within the 8,192-character limit)."""
    parts = (b'{"alg": "ES384"}', deep_array(3000), b"sig")
    return ".".join(base64.urlsafe_b64encode(p).rstrip(b"=").decode() for p in parts)


def test_a_deeply_nested_jwt_is_refused_at_the_token_endpoint(
    session_client: TestClient[Litestar],
) -> None:
    form = {
        "grant_type": "client_credentials",
        "scope": "system/Observation.rs",
        "client_assertion_type": ASSERTION_TYPE,
        "client_assertion": deep_jwt(),
    }
    response = session_client.post(
        "/auth/token", data=form, headers={"Content-Type": "application/x-www-form-urlencoded"}
    )
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "invalid_client"


def test_a_deeply_nested_jwt_is_refused_on_cds_hooks(session_client: TestClient[Litestar]) -> None:
    response = session_client.post(
        SERVICE_PATH,
        json=hook_call("pat-1"),
        headers={"Authorization": f"Bearer {deep_jwt()}"},
    )
    assert response.status_code == 401, response.text


# -- NUL characters ---------------------------------------------------------------------


FEEDBACK_NUL = {
    "feedback[0].card": {"card": "card\x001"},
    "feedback[0].acceptedSuggestions[0].id": {
        "outcome": "accepted",
        "overrideReason": None,
        "acceptedSuggestions": [{"id": "s\x001"}],
    },
    "feedback[0].overrideReason.reason.code": {
        "overrideReason": {"reason": {"code": "not\x00now"}}
    },
    "feedback[0].overrideReason.reason.system": {
        "overrideReason": {"reason": {"code": "not-now", "system": "https://x\x00"}}
    },
    "feedback[0].overrideReason.reason.display": {
        "overrideReason": {"reason": {"code": "not-now", "display": "Not\x00now"}}
    },
    "feedback[0].overrideReason.userComment": {"overrideReason": {"userComment": "later\x00"}},
}


@pytest.mark.parametrize("field", list(FEEDBACK_NUL))
def test_nul_in_cds_feedback_is_400_and_nothing_stored(
    session_client: TestClient[Litestar],
    ehr: str,
    clinic: Clinic,
    storage: Storage,
    field: str,
) -> None:
    body = feedback(**FEEDBACK_NUL[field])
    response = session_client.post(
        FEEDBACK_PATH, content=json.dumps(body).encode(), headers=cds_headers(ehr, FEEDBACK_PATH)
    )
    assert_refused(response, field)

    async def count(conn: Any) -> int:
        query = sa.select(sa.func.count()).where(cds_feedback.c.clinic_id == clinic.clinic_id)
        return int((await conn.execute(query)).scalar_one())

    assert storage.run(count) == 0


@pytest.mark.parametrize("name", ["userId", "encounterId"])
def test_nul_in_cds_context_is_400(
    session_client: TestClient[Litestar], ehr: str, name: str
) -> None:
    body = hook_call(f"pat-{uuid.uuid4()}", **{name: "Practitioner/dr\x001"})
    response = session_client.post(
        SERVICE_PATH, content=json.dumps(body).encode(), headers=cds_headers(ehr, SERVICE_PATH)
    )
    assert_refused(response, f"context.{name}")


def test_nul_in_if_none_exist_is_400(
    client: TestClient[Litestar], clinic: Clinic, storage: Storage
) -> None:
    response = client.post(
        "/fhir/QuestionnaireResponse",
        content=json.dumps(questionnaire_response(f"pat-{uuid.uuid4()}")).encode(),
        headers={"Content-Type": FHIR_JSON, "If-None-Exist": "identifier=a%00b"},
    )
    assert_refused(response, "If-None-Exist")
    assert stored_responses(storage, clinic) == 0


# -- values longer than their columns ---------------------------------------------------


@pytest.mark.parametrize("part", ["value", "system"])
def test_an_identifier_longer_than_its_column_is_400(
    client: TestClient[Litestar], clinic: Clinic, storage: Storage, part: str
) -> None:
    def post(length: int) -> Any:
        identifier = {"system": "https://ehr.example", "value": f"v-{uuid.uuid4()}"}
        identifier[part] = identifier[part][:8] + "x" * (length - 8)
        resource = questionnaire_response(f"pat-{uuid.uuid4()}", identifier=identifier)
        return client.post(
            "/fhir/QuestionnaireResponse",
            content=json.dumps(resource).encode(),
            headers={"Content-Type": FHIR_JSON},
        )

    for length in (100_000, 256):
        assert_refused(post(length), f"QuestionnaireResponse.identifier.{part}")
    assert stored_responses(storage, clinic) == 0
    assert post(255).status_code == 201
    assert stored_responses(storage, clinic) == 1


# -- HTTP framing, on a live server -----------------------------------------------------


def exchange(origin: str, request: bytes) -> bytes:
    """Send ``request`` on a new connection; everything the server answers until it closes."""
    host, port = origin.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=10) as sock:
        sock.sendall(request)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return answer


def test_a_body_not_framed_as_its_headers_say_is_400(tmp_path: Path) -> None:
    """Both ``Transfer-Encoding: chunked`` and ``Content-Length`` with a plain body, and a
    chunked body that is not chunked: 400 from a real granian, not 500."""
    url = scratch_database("framing")
    body = json.dumps(
        {
            "patient_id": "pat-framing",
            "instrument": "ucla-3",
            "completed_at": "2024-03-01T09:30:00Z",
            "answers": {"1": 2, "2": 3, "3": 3},
        }
    ).encode()
    chunked = f"{len(body):x}\r\n".encode() + body + b"\r\n0\r\n\r\n"
    length = f"Content-Length: {len(body)}\r\n".encode()
    with live_server(url, tmp_path, ["screenings:write", "screenings:read"]) as live:
        head = (
            b"POST /v1/screenings HTTP/1.1\r\nHost: belong\r\nConnection: close\r\n"
            b"Content-Type: application/json\r\nAuthorization: Bearer "
            + live.token.encode()
            + b"\r\n"
        )
        chunked_head = head + b"Transfer-Encoding: chunked\r\n"
        for request in (chunked_head + length + b"\r\n" + body, chunked_head + b"\r\n" + body):
            answer = exchange(live.origin, request)
            assert answer.startswith(b"HTTP/1.1 400 "), answer[:300]
            assert b'"field":"body"' in answer, answer
        good = exchange(live.origin, chunked_head + b"\r\n" + chunked)
        assert good.startswith(b"HTTP/1.1 201 "), good[:300]
