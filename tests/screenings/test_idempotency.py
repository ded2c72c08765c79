"""Idempotency-Key on POST /v1/screenings: replay, misuse, and a burst of concurrent retries."""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from typing import Any

import httpx
import pytest

from tests.conftest import Clinic
from tests.helpers import Storage, assert_problem, new_patient_id, ucla3


def new_key() -> str:
    return f"key-{uuid.uuid4()}"


def stored_count(client: Any, patient_id: str) -> int:
    response = client.get(f"/v1/patients/{patient_id}/screenings")
    assert response.status_code == 200, response.text
    return sum(len(h["screenings"]) for h in response.json()["instruments"])


def test_same_key_and_body_replays_the_first_response(
    client: Any, clinic: Clinic, storage: Storage
) -> None:
    patient_id = new_patient_id()
    body = ucla3(patient_id)
    headers = {"Idempotency-Key": new_key()}

    first = client.post("/v1/screenings", json=body, headers=headers)
    second = client.post("/v1/screenings", json=body, headers=headers)
    third = client.post("/v1/screenings", json=body, headers=headers)

    assert first.status_code == 201, first.text
    assert "idempotent-replayed" not in first.headers
    for replay in (second, third):
        assert replay.status_code == 201
        assert replay.headers["idempotent-replayed"] == "true"
        assert replay.headers["content-type"] == first.headers["content-type"]
        assert replay.content == first.content
    assert stored_count(client, patient_id) == 1
    stored = storage.patient(clinic.clinic_id, patient_id)
    assert (stored.screenings, stored.questionnaire_responses, stored.observations) == (1, 1, 5)


def test_replay_keeps_the_location_header(client: Any) -> None:
    body = ucla3(new_patient_id())
    headers = {"Idempotency-Key": new_key()}
    first = client.post("/v1/screenings", json=body, headers=headers)
    replay = client.post("/v1/screenings", json=body, headers=headers)
    assert first.status_code == replay.status_code == 201
    assert replay.headers.get("location") == first.headers["location"]


def test_a_replay_is_audited_against_the_screening_it_returned(client: Any) -> None:
    patient_id = new_patient_id()
    headers = {"Idempotency-Key": new_key()}
    first = client.post("/v1/screenings", json=ucla3(patient_id), headers=headers)
    replay = client.post("/v1/screenings", json=ucla3(patient_id), headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"

    events = client.get("/v1/audit-events", params={"patient_id": patient_id}).json()["items"]

    creates = [e for e in events if e["action"] == "create"]
    assert len(creates) == 2
    assert {e["resource_id"] for e in creates} == {first.json()["id"]}


def test_without_a_key_each_post_stores_a_screening(client: Any) -> None:
    patient_id = new_patient_id()
    body = ucla3(patient_id)
    ids = {client.post("/v1/screenings", json=body).json()["id"] for _ in range(2)}
    assert len(ids) == 2
    assert stored_count(client, patient_id) == 2


def test_same_key_with_another_body_is_422(client: Any) -> None:
    patient_id = new_patient_id()
    headers = {"Idempotency-Key": new_key()}
    first = client.post("/v1/screenings", json=ucla3(patient_id), headers=headers)
    assert first.status_code == 201

    other = ucla3(patient_id, answers={"1": 1, "2": 1, "3": 1})
    reused = client.post("/v1/screenings", json=other, headers=headers)

    problem = assert_problem(reused, 422, "Idempotency-Key")
    assert problem["errors"][0]["code"] == "key_reused"
    assert stored_count(client, patient_id) == 1
    # The original is still replayed for its own body.
    again = client.post("/v1/screenings", json=ucla3(patient_id), headers=headers)
    assert again.content == first.content


def test_a_failed_request_does_not_burn_its_key(client: Any) -> None:
    patient_id = new_patient_id()
    headers = {"Idempotency-Key": new_key()}
    future = ucla3(patient_id, completed_at="2999-01-01T00:00:00Z")
    assert client.post("/v1/screenings", json=future, headers=headers).status_code == 422
    # A corrected body under the same key is a new request, not a reuse.
    fixed = client.post("/v1/screenings", json=ucla3(patient_id), headers=headers)
    assert fixed.status_code == 201, fixed.text
    assert "idempotent-replayed" not in fixed.headers


@pytest.mark.parametrize(
    "key",
    [
        pytest.param("has space", id="space"),
        pytest.param("x" * 256, id="too-long"),
        pytest.param("tab\tkey", id="tab"),
    ],
)
def test_malformed_key_is_400(client: Any, clinic: Clinic, storage: Storage, key: str) -> None:
    patient_id = new_patient_id()
    response = client.post(
        "/v1/screenings", json=ucla3(patient_id), headers={"Idempotency-Key": key}
    )
    body = assert_problem(response, 400)
    assert any("idempotency" in e["field"].lower() for e in body["errors"]), body
    assert storage.patient(clinic.clinic_id, patient_id).profile is None


def test_longest_valid_key_is_accepted(client: Any) -> None:
    headers = {"Idempotency-Key": "~" * 255}
    first = client.post("/v1/screenings", json=ucla3(new_patient_id()), headers=headers)
    assert first.status_code == 201, first.text


def test_concurrent_retries_store_exactly_one_screening(
    session_client: Any, client: Any, clinic: Clinic, storage: Storage
) -> None:
    patient_id = new_patient_id()
    body = ucla3(patient_id)
    headers = {**clinic.headers, "Idempotency-Key": new_key()}

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=session_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(
                *(http.post("/v1/screenings", json=body, headers=headers) for _ in range(50))
            )

    responses = session_client.blocking_portal.call(burst)

    statuses = Counter(r.status_code for r in responses)
    assert set(statuses) <= {201, 409}, {r.status_code: r.text for r in responses}
    created = [r for r in responses if r.status_code == 201]
    firsts = [r for r in created if "idempotent-replayed" not in r.headers]
    assert len(firsts) == 1
    assert {r.content for r in created} == {firsts[0].content}
    for conflict in (r for r in responses if r.status_code == 409):
        assert conflict.headers["retry-after"]
        assert_problem(conflict, 409, "Idempotency-Key")
    assert stored_count(client, patient_id) == 1
    stored = storage.patient(clinic.clinic_id, patient_id)
    assert (stored.screenings, stored.questionnaire_responses) == (1, 1)
    # After the burst, a retry replays the one stored result.
    replay = client.post("/v1/screenings", json=body, headers=headers)
    assert replay.headers["idempotent-replayed"] == "true"
    assert replay.content == firsts[0].content


def test_concurrent_posts_with_distinct_keys_each_store_one(
    session_client: Any, client: Any, clinic: Clinic, storage: Storage
) -> None:
    patient_id = new_patient_id()
    profile = {"languages": ["en"]}

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=session_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return await asyncio.gather(
                *(
                    http.post(
                        "/v1/screenings",
                        json=ucla3(patient_id, profile=profile),
                        headers={**clinic.headers, "Idempotency-Key": new_key()},
                    )
                    for _ in range(20)
                )
            )

    responses = session_client.blocking_portal.call(burst)

    assert [r.status_code for r in responses] == [201] * 20, [r.text for r in responses]
    assert len({r.json()["id"] for r in responses}) == 20
    assert stored_count(client, patient_id) == 20
    stored = storage.patient(clinic.clinic_id, patient_id)
    assert (stored.profile, stored.screenings, stored.observations) == (profile, 20, 100)
