"""A clinic never sees another clinic's patients: a foreign id is exactly a missing one."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from tests.conftest import Clinic, MakeClinic
from tests.helpers import PROBLEM_JSON, Storage, new_patient_id, ucla3

PROFILE_A = {"postcode": "SW1A 1AA", "languages": ["en"], "pain_conditions": ["crps"]}


def shape(response: Any, identifier: str) -> tuple[int, str, dict[str, Any]]:
    """Status, media type and body with the requested id blanked out."""
    body = response.text.replace(identifier, "<id>")
    return response.status_code, response.headers["content-type"], json.loads(body)


@pytest.fixture
def two_clinics(make_clinic: MakeClinic) -> tuple[Clinic, Clinic]:
    return make_clinic(), make_clinic()


@pytest.fixture
def a_data(session_client: Any, two_clinics: tuple[Clinic, Clinic]) -> dict[str, str]:
    """Clinic A's patient (with a profile) and one UCLA-3 screening of theirs."""
    a, _ = two_clinics
    patient_id = new_patient_id()
    put = session_client.put(f"/v1/patients/{patient_id}", json=PROFILE_A, headers=a.headers)
    assert put.status_code == 201, put.text
    posted = session_client.post("/v1/screenings", json=ucla3(patient_id), headers=a.headers)
    assert posted.status_code == 201, posted.text
    return {"patient_id": patient_id, "screening_id": posted.json()["id"]}


@pytest.mark.parametrize(
    "path",
    [
        "/v1/patients/{patient_id}",
        "/v1/patients/{patient_id}/screenings",
        "/v1/screenings/{screening_id}",
    ],
)
def test_foreign_ids_answer_exactly_like_missing_ones(
    session_client: Any, two_clinics: tuple[Clinic, Clinic], a_data: dict[str, str], path: str
) -> None:
    a, b = two_clinics
    missing = {"patient_id": new_patient_id(), "screening_id": str(uuid.uuid4())}
    foreign_url = path.format(**a_data)
    missing_url = path.format(**missing)
    key = "screening_id" if "{screening_id}" in path else "patient_id"

    foreign = session_client.get(foreign_url, headers=b.headers)
    absent = session_client.get(missing_url, headers=b.headers)

    assert foreign.status_code == 404
    assert foreign.headers["content-type"].startswith(PROBLEM_JSON)
    assert shape(foreign, a_data[key]) == shape(absent, missing[key])
    # The owner still reads it.
    assert session_client.get(foreign_url, headers=a.headers).status_code == 200


def test_put_of_a_foreign_patient_id_creates_a_separate_patient(
    session_client: Any,
    two_clinics: tuple[Clinic, Clinic],
    a_data: dict[str, str],
    storage: Storage,
) -> None:
    a, b = two_clinics
    patient_id = a_data["patient_id"]
    before = storage.patient(a.clinic_id, patient_id)

    put = session_client.put(
        f"/v1/patients/{patient_id}", json={"postcode": "EH1 1YZ"}, headers=b.headers
    )

    assert put.status_code == 201, put.text  # new for clinic B
    assert put.json()["profile"] == {"postcode": "EH1 1YZ"}
    a_view = session_client.get(f"/v1/patients/{patient_id}", headers=a.headers).json()
    assert a_view["profile"] == PROFILE_A
    assert storage.patient(a.clinic_id, patient_id) == before
    # B's patient of that id has none of A's screenings.
    history = session_client.get(f"/v1/patients/{patient_id}/screenings", headers=b.headers)
    assert history.status_code == 200
    assert history.json() == {"patient_id": patient_id, "instruments": []}
    assert storage.patient(b.clinic_id, patient_id).screenings == 0
    # ...and still cannot read A's screening.
    foreign = session_client.get(f"/v1/screenings/{a_data['screening_id']}", headers=b.headers)
    assert foreign.status_code == 404


def test_a_screening_for_a_shared_patient_id_stays_with_its_clinic(
    session_client: Any, two_clinics: tuple[Clinic, Clinic], a_data: dict[str, str]
) -> None:
    a, b = two_clinics
    patient_id = a_data["patient_id"]
    posted = session_client.post(
        "/v1/screenings",
        json=ucla3(patient_id, answers={"1": 1, "2": 1, "3": 1}),
        headers=b.headers,
    )
    assert posted.status_code == 201, posted.text

    def totals(clinic: Clinic) -> list[float]:
        body = session_client.get(
            f"/v1/patients/{patient_id}/screenings", headers=clinic.headers
        ).json()
        return [s["total"] for h in body["instruments"] for s in h["screenings"]]

    assert totals(a) == [8]
    assert totals(b) == [3]
    # B's screening created B's patient with an empty profile; A's profile is untouched.
    assert (
        session_client.get(f"/v1/patients/{patient_id}", headers=b.headers).json()["profile"] == {}
    )
    assert (
        session_client.get(f"/v1/patients/{patient_id}", headers=a.headers).json()["profile"]
        == PROFILE_A
    )


def test_audit_events_never_cross_clinics(
    session_client: Any,
    two_clinics: tuple[Clinic, Clinic],
    a_data: dict[str, str],
    storage: Storage,
) -> None:
    a, b = two_clinics
    patient_id = a_data["patient_id"]
    # B probes A's patient and screening, then makes a patient of the same id.
    session_client.get(f"/v1/patients/{patient_id}", headers=b.headers)
    session_client.get(f"/v1/screenings/{a_data['screening_id']}", headers=b.headers)
    session_client.put(f"/v1/patients/{patient_id}", json={}, headers=b.headers)

    def events(clinic: Clinic, **params: Any) -> list[dict[str, Any]]:
        response = session_client.get(
            "/v1/audit-events", params={"limit": 200, **params}, headers=clinic.headers
        )
        assert response.status_code == 200, response.text
        return list(response.json()["items"])

    a_events = events(a)
    b_events = events(b)
    b_for_patient = events(b, patient_id=patient_id)
    (a_client,) = storage.client_ids(a.clinic_id)
    (b_client,) = storage.client_ids(b.clinic_id)

    assert {e["client_id"] for e in a_events} == {str(a_client)}
    assert {e["client_id"] for e in b_events} == {str(b_client)}
    assert not {e["id"] for e in a_events} & {e["id"] for e in b_events}
    assert {e["id"] for e in b_for_patient} <= {e["id"] for e in b_events}
    # B sees only its own three calls: two failed reads and the update.
    assert sorted((e["action"], e["outcome"]) for e in b_events) == [
        ("read", "failure"),
        ("read", "failure"),
        ("update", "success"),
    ]
    # A's own trail holds A's create, unaffected by B's probes.
    assert ("create", "Screening", a_data["screening_id"]) in {
        (e["action"], e["resource_type"], e["resource_id"]) for e in a_events
    }
    assert all(e["outcome"] == "success" for e in a_events)


def test_idempotency_keys_are_per_clinic(
    session_client: Any, two_clinics: tuple[Clinic, Clinic], storage: Storage
) -> None:
    a, b = two_clinics
    patient_id = new_patient_id()
    key = f"shared-{uuid.uuid4()}"
    body = ucla3(patient_id)
    headers = {"Idempotency-Key": key}

    first = session_client.post("/v1/screenings", json=body, headers={**a.headers, **headers})
    second = session_client.post("/v1/screenings", json=body, headers={**b.headers, **headers})

    assert first.status_code == 201, first.text
    assert second.status_code == 201, second.text
    assert "idempotent-replayed" not in first.headers
    assert "idempotent-replayed" not in second.headers
    assert first.json()["id"] != second.json()["id"]
    assert storage.patient(a.clinic_id, patient_id).screenings == 1
    assert storage.patient(b.clinic_id, patient_id).screenings == 1
    # Within one clinic the key still replays.
    again = session_client.post("/v1/screenings", json=body, headers={**b.headers, **headers})
    assert again.headers.get("idempotent-replayed") == "true"
    assert again.content == second.content


def test_the_hot_paths_read_only_their_clinic(
    session_client: Any, two_clinics: tuple[Clinic, Clinic], a_data: dict[str, str]
) -> None:
    """The one-statement reads and writes (service/screenings/repository.py) are scoped too."""
    a, b = two_clinics
    patient_id = a_data["patient_id"]

    def observations(clinic: Clinic) -> int:
        found = session_client.get(
            "/fhir/Observation", params={"patient": patient_id}, headers=clinic.headers
        )
        assert found.status_code == 200, found.text
        return int(found.json()["total"])

    assert observations(b) == 0
    assert (
        session_client.get(f"/v1/patients/{patient_id}/referrals", headers=b.headers).json()[
            "status"
        ]
        == 404
    )
    # B's first screening of the same patient id sees neither A's lonely UCLA-3 nor A's
    # profile: no need, so nothing is recommended.
    posted = session_client.post(
        "/v1/screenings",
        json=ucla3(patient_id, answers={"1": 1, "2": 1, "3": 1}),
        headers=b.headers,
    )
    assert posted.status_code == 201, posted.text
    assert posted.json()["recommendations"]["needs"] == []
    assert observations(b) == 5
    assert observations(a) == 5
    needs = session_client.get(f"/v1/patients/{patient_id}/referrals", headers=a.headers).json()
    assert [n["instrument"] for n in needs["recommendations"]["needs"]] == ["ucla-3"]
