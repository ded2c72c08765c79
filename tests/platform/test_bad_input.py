"""Bad input answers a clear 4xx problem naming the field, and changes nothing stored.

Every case runs against a patient who already has a profile and no screenings; after the
rejected request the stored patient (profile, update time, screenings, QuestionnaireResponses,
Observations) must be exactly as before, both as the database holds it and as the API reads it.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from tests.conftest import Clinic
from tests.helpers import Storage, assert_problem, new_patient_id, ucla3

PROFILE = {"postcode": "SW1A 1AA", "languages": ["en"], "pain_conditions": ["fibromyalgia"]}
HUGE = 10**20
JSON_HEADERS = {"content-type": "application/json"}


@dataclass(frozen=True)
class Bad:
    """A request for patient ``pid`` that must be refused with ``status``."""

    send: Callable[[Any, str], Any]
    status: int
    field: str | None
    """The field an error must name (None: no field applies, e.g. a 413)."""


def post_screening(**overrides: Any) -> Callable[[Any, str], Any]:
    return lambda client, pid: client.post("/v1/screenings", json=ucla3(pid, **overrides))


def post_raw(content: bytes) -> Callable[[Any, str], Any]:
    return lambda client, pid: client.post("/v1/screenings", content=content, headers=JSON_HEADERS)


def put_profile(profile: Any) -> Callable[[Any, str], Any]:
    return lambda client, pid: client.put(f"/v1/patients/{pid}", json=profile)


def valid_raw(pid: str, **overrides: Any) -> bytes:
    return json.dumps(ucla3(pid, **overrides)).encode()


CASES = {
    "nul-in-patient-id": Bad(
        lambda client, pid: client.post("/v1/screenings", json=ucla3(pid + "\x00")),
        400,
        "patient_id",
    ),
    "nul-in-encounter-id": Bad(post_screening(encounter_id="enc\x001"), 400, "encounter_id"),
    "nul-in-answers-key": Bad(
        post_screening(answers={"1\x00": 2, "2": 3, "3": 3}), 422, "answers.1\x00"
    ),
    "nul-in-inline-profile-postcode": Bad(
        post_screening(profile={"postcode": "AB\x001"}), 400, "profile.postcode"
    ),
    "nul-in-put-profile-postcode": Bad(put_profile({"postcode": "AB\x001"}), 400, "postcode"),
    "nul-in-put-profile-language": Bad(put_profile({"languages": ["e\x00n"]}), 400, "languages[0]"),
    "malformed-json": Bad(post_raw(b'{"patient_id": '), 400, "body"),
    "json-not-an-object": Bad(post_raw(b"[1, 2]"), 400, None),
    "completed-at-in-future": Bad(
        post_screening(completed_at="2999-01-01T00:00:00Z"), 422, "completed_at"
    ),
    "completed-at-without-timezone": Bad(
        post_screening(completed_at="2024-03-01T09:30:00"), 400, "completed_at"
    ),
    "completed-at-unparseable": Bad(
        post_screening(completed_at="last tuesday"), 400, "completed_at"
    ),
    "completed-at-impossible-date": Bad(
        post_screening(completed_at="2024-02-30T09:30:00Z"), 400, "completed_at"
    ),
    "huge-answer": Bad(
        post_screening(answers={"1": 99999999999999999999, "2": 3, "3": 3}), 422, "answers.1"
    ),
    "negative-huge-answer": Bad(
        post_screening(answers={"1": -HUGE, "2": 3, "3": 3}), 422, "answers.1"
    ),
    "answer-out-of-range": Bad(post_screening(answers={"1": 4, "2": 3, "3": 3}), 422, "answers.1"),
    "missing-answer": Bad(post_screening(answers={"1": 2, "2": 3}), 422, "answers.3"),
    "unknown-instrument": Bad(post_screening(instrument="no-such-scale"), 404, "instrument"),
    "unlicensed-promis": Bad(post_screening(instrument="promis-si-4a"), 403, "instrument"),
    "unknown-pain-condition-in-screening": Bad(
        post_screening(pain_conditions=["gout"]), 400, "pain_conditions[0]"
    ),
    "latitude-out-of-range": Bad(
        put_profile({"location": {"lat": 90.5, "lon": 0}}), 400, "location.lat"
    ),
    "longitude-out-of-range": Bad(
        put_profile({"location": {"lat": 0, "lon": -181}}), 400, "location.lon"
    ),
    "inline-coordinates-out-of-range": Bad(
        post_screening(profile={"location": {"lat": 0, "lon": 1e300}}), 400, "profile.location.lon"
    ),
    "unknown-pain-condition-in-profile": Bad(
        put_profile({"pain_conditions": ["gout"]}), 400, "pain_conditions[0]"
    ),
    "max-travel-km-beyond-range": Bad(put_profile({"max_travel_km": HUGE}), 400, "max_travel_km"),
    "profile-not-an-object": Bad(put_profile(["postcode"]), 400, None),
    "oversized-body": Bad(
        lambda client, pid: client.post(
            "/v1/screenings",
            content=valid_raw(pid, encounter_id="e" + " " * (1 << 20)),
            headers=JSON_HEADERS,
        ),
        413,
        None,
    ),
}


def unknown_field_named(body: dict[str, Any], name: str) -> bool:
    return any(name in e["field"] or name in e["message"] for e in body["errors"])


@pytest.fixture
def patient(client: Any, clinic: Clinic, storage: Storage) -> str:
    patient_id = new_patient_id()
    response = client.put(f"/v1/patients/{patient_id}", json=PROFILE)
    assert response.status_code == 201, response.text
    return patient_id


def assert_unchanged(client: Any, clinic: Clinic, storage: Storage, pid: str, before: Any) -> None:
    after = storage.patient(clinic.clinic_id, pid)
    assert after == before
    assert (after.screenings, after.questionnaire_responses, after.observations) == (0, 0, 0)
    assert client.get(f"/v1/patients/{pid}").json()["profile"] == PROFILE
    assert client.get(f"/v1/patients/{pid}/screenings").json()["instruments"] == []


@pytest.mark.parametrize("case", list(CASES), ids=list(CASES))
def test_bad_input_is_refused_and_stores_nothing(
    client: Any, clinic: Clinic, storage: Storage, patient: str, case: str
) -> None:
    bad = CASES[case]
    before = storage.patient(clinic.clinic_id, patient)

    response = bad.send(client, patient)

    assert_problem(response, bad.status, bad.field)
    assert_unchanged(client, clinic, storage, patient, before)


@pytest.mark.parametrize(
    "send",
    [
        pytest.param(
            lambda client, pid: client.post("/v1/screenings", json={**ucla3(pid), "score": 9}),
            id="screening",
        ),
        pytest.param(
            lambda client, pid: client.post(
                "/v1/screenings", json=ucla3(pid, profile={**PROFILE, "score": 9})
            ),
            id="inline-profile",
        ),
        pytest.param(
            lambda client, pid: client.put(f"/v1/patients/{pid}", json={**PROFILE, "score": 9}),
            id="put-profile",
        ),
        pytest.param(
            lambda client, pid: client.post(
                "/v1/screenings",
                json=ucla3(pid, profile={"location": {"lat": 1, "lon": 1, "score": 9}}),
            ),
            id="coordinates",
        ),
    ],
)
def test_unknown_fields_are_refused(
    client: Any, clinic: Clinic, storage: Storage, patient: str, send: Any
) -> None:
    before = storage.patient(clinic.clinic_id, patient)
    body = assert_problem(send(client, patient), 400)
    assert unknown_field_named(body, "score"), body
    assert_unchanged(client, clinic, storage, patient, before)


@pytest.mark.parametrize(
    "path",
    [
        "/v1/patients/{pid}/screenings?limit={n}",
        "/v1/patients/{pid}/screenings?limit=-{n}",
        "/v1/audit-events?limit={n}",
        "/v1/audit-events?offset={n}",
        "/v1/audit-events?limit=0",
        "/v1/audit-events?offset=-1",
    ],
)
def test_query_integers_beyond_range_are_400(
    client: Any, clinic: Clinic, storage: Storage, patient: str, path: str
) -> None:
    before = storage.patient(clinic.clinic_id, patient)
    response = client.get(path.format(pid=patient, n=HUGE))
    field = "offset" if "offset" in path else "limit"
    assert_problem(response, 400, field)
    assert_unchanged(client, clinic, storage, patient, before)


@pytest.mark.parametrize("method", ["POST", "PUT"])
def test_a_body_that_is_not_utf8_is_400(
    client: Any, clinic: Clinic, storage: Storage, patient: str, method: str
) -> None:
    before = storage.patient(clinic.clinic_id, patient)
    if method == "POST":
        content = valid_raw(patient).replace(b"ucla-3", b"ucla-\xff")
        response = client.post("/v1/screenings", content=content, headers=JSON_HEADERS)
    else:
        content = b'{"postcode": "SW1A \xff"}'
        response = client.put(f"/v1/patients/{patient}", content=content, headers=JSON_HEADERS)
    assert_problem(response, 400, "body")
    assert_unchanged(client, clinic, storage, patient, before)


def assert_refused(response: Any, field: str) -> None:
    assert response.status_code in {400, 422}, response.text
    assert_problem(response, response.status_code, field)


@pytest.mark.parametrize("completed_at", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_completed_at_beyond_the_representable_range_is_refused(
    client: Any, clinic: Clinic, storage: Storage, patient: str, completed_at: str
) -> None:
    before = storage.patient(clinic.clinic_id, patient)
    response = client.post("/v1/screenings", json=ucla3(patient, completed_at=completed_at))
    assert_refused(response, "completed_at")
    assert_unchanged(client, clinic, storage, patient, before)


@pytest.mark.parametrize("param", ["since", "until"])
@pytest.mark.parametrize("instant", ["0001-01-01T00:00:00+01:00", "9999-12-31T23:59:59-01:00"])
def test_audit_time_filters_beyond_the_representable_range_are_refused(
    client: Any, param: str, instant: str
) -> None:
    assert_refused(client.get("/v1/audit-events", params={param: instant}), param)


def test_a_nul_byte_in_an_audit_filter_is_400(client: Any) -> None:
    assert_problem(
        client.get("/v1/audit-events", params={"patient_id": "a\x00b"}), 400, "patient_id"
    )


@pytest.mark.parametrize(
    "request_path",
    [
        pytest.param(("GET", "/v1/patients/{pid}%00"), id="get-patient-nul"),
        pytest.param(("PUT", "/v1/patients/{pid}%00"), id="put-patient-nul"),
        pytest.param(("GET", "/v1/patients/{pid}%00/screenings"), id="history-nul"),
        pytest.param(("GET", "/v1/patients/{long}"), id="get-patient-65-chars"),
        pytest.param(("GET", "/v1/patients/{long}/screenings"), id="history-65-chars"),
        pytest.param(("GET", "/v1/screenings/{long}"), id="get-screening-65-chars"),
    ],
)
def test_invalid_ids_in_the_path_are_400(
    request: pytest.FixtureRequest,
    database_url: str,
    client: Any,
    clinic: Clinic,
    storage: Storage,
    patient: str,
    request_path: tuple[str, str],
) -> None:
    method, template = request_path
    before = storage.patient(clinic.clinic_id, patient)
    path = template.format(pid=patient, long="x" * 65)
    kwargs = {"json": PROFILE} if method == "PUT" else {}

    response = client.request(method, path, **kwargs)

    field = "screening_id" if path.startswith("/v1/screenings") else "patient_id"
    assert_problem(response, 400, field)
    assert_unchanged(client, clinic, storage, patient, before)
