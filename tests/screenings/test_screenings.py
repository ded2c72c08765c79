"""Screenings end to end: score and Observations out, read back, audited."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from service.platform.tables import observations
from tests.conftest import Clinic
from tests.helpers import Storage, assert_problem, new_patient_id, ucla3

CATEGORY_CODES = ["survey", "sdoh", "social-connection"]
LOINC = "http://loinc.org"
SDOHCC = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
    "SDOHCC-ObservationScreeningResponse"
)


def post(client: Any, body: dict[str, Any]) -> dict[str, Any]:
    response = client.post("/v1/screenings", json=body)
    assert response.status_code == 201, response.text
    return response.json()


def stored_part(body: dict[str, Any]) -> dict[str, Any]:
    """The body without ``recommendations``, which only the POST answer carries."""
    return {k: v for k, v in body.items() if k != "recommendations"}


def by_observation_id(body: dict[str, Any]) -> dict[str, Any]:
    observations = sorted(body["observations"], key=lambda o: o["id"])
    return {**stored_part(body), "observations": observations}


def test_post_returns_201_with_location_score_and_observations(client: Any) -> None:
    patient_id = new_patient_id()
    response = client.post(
        "/v1/screenings",
        json=ucla3(patient_id, encounter_id="enc-7", completed_at="2024-03-01T11:30:00+02:00"),
    )

    assert response.status_code == 201, response.text
    body = response.json()
    sid = body["id"]
    uuid.UUID(sid)
    assert response.headers["location"] == f"/v1/screenings/{sid}"
    assert body["patient_id"] == patient_id
    assert body["instrument"] == "ucla-3"
    assert body["encounter_id"] == "enc-7"
    assert body["completed_at"] == "2024-03-01T09:30:00Z"  # normalised to UTC
    assert body["questionnaire_response"] == f"QuestionnaireResponse/{sid}"
    score = body["score"]
    assert (score["total"], score["raw"], score["missing"]) == (8, 8, [])
    assert score["band"]["code"] == "lonely"
    assert score["band"]["positive"] is True

    observations = {o["id"]: o for o in body["observations"]}
    assert set(observations) == {f"{sid}-{s}" for s in ("i1", "i2", "i3", "total", "panel")}
    qr = {"reference": f"QuestionnaireResponse/{sid}"}
    items = [observations[f"{sid}-i{n}"] for n in (1, 2, 3)]
    total = observations[f"{sid}-total"]
    panel = observations[f"{sid}-panel"]

    for observation in observations.values():
        assert observation["resourceType"] == "Observation"
        assert observation["status"] == "final"
        codes = [c["coding"][0]["code"] for c in observation["category"]]
        assert codes == CATEGORY_CODES
        assert observation["subject"] == {"reference": f"Patient/{patient_id}"}
        assert observation["encounter"] == {"reference": "Encounter/enc-7"}
        assert observation["effectiveDateTime"] == "2024-03-01T09:30:00Z"
        assert observation["issued"] == body["recorded_at"]

    for item in items:
        assert item["derivedFrom"] == [qr]
        assert item["performer"] == [{"reference": f"Patient/{patient_id}"}]
    assert [i["valueCodeableConcept"]["text"] for i in items] == [
        "Some of the time",
        "Often",
        "Often",
    ]
    # LOINC-coded items claim the SDOHCC profile; the uncoded "left out" item does not.
    assert items[0]["code"]["coding"][0] == {
        "system": LOINC,
        "code": "66855-8",
        "display": "How often do you feel that you lack companionship",
    }
    assert items[0]["meta"]["profile"] == [SDOHCC]
    assert items[1]["code"]["coding"][0]["system"] != LOINC
    assert not items[1]["meta"].get("profile")

    assert total["code"]["coding"][0]["code"] == "106421-1"
    assert total["valueQuantity"]["value"] == 8
    assert total["derivedFrom"] == [qr] + [
        {"reference": f"Observation/{sid}-i{n}"} for n in (1, 2, 3)
    ]
    assert "performer" not in total
    (interpretation,) = total["interpretation"]
    assert interpretation["coding"][0]["code"] == "POS"

    assert panel["code"]["coding"][0]["code"] == "106418-7"
    assert panel["derivedFrom"] == [qr]
    assert panel["hasMember"] == [
        {"reference": f"Observation/{sid}-{s}"} for s in ("i1", "i2", "i3", "total")
    ]


def test_a_negative_screen_is_interpreted_neg(client: Any) -> None:
    body = post(client, ucla3(new_patient_id(), answers={"1": 1, "2": 1, "3": 2}))
    total = next(o for o in body["observations"] if o["id"].endswith("-total"))
    assert body["score"]["band"]["code"] == "not-lonely"
    assert total["interpretation"][0]["coding"][0]["code"] == "NEG"


def test_get_returns_what_post_returned(client: Any) -> None:
    posted = client.post("/v1/screenings", json=ucla3(new_patient_id(), encounter_id="e.1"))
    assert posted.status_code == 201
    read = client.get(posted.headers["location"])
    assert read.status_code == 200
    assert read.headers["content-type"].startswith("application/json")
    assert by_observation_id(read.json()) == by_observation_id(posted.json())
    assert read.json().get("recommendations") is None


@pytest.mark.parametrize(
    "instrument, answers",
    [
        pytest.param("ucla-3", {"1": 2, "2": 3, "3": 3}, id="ucla-3"),
        pytest.param("ucla-20", {str(i): 2 for i in range(1, 21)}, id="ucla-20"),
    ],
)
def test_get_returns_the_post_body_unchanged(
    client: Any, instrument: str, answers: dict[str, int]
) -> None:
    body = ucla3(new_patient_id(), instrument=instrument, answers=answers)
    posted = client.post("/v1/screenings", json=body)
    assert posted.status_code == 201, posted.text
    read = client.get(posted.headers["location"])
    assert [o["id"] for o in read.json()["observations"]] == [
        o["id"] for o in posted.json()["observations"]
    ]
    assert stored_part(read.json()) == stored_part(posted.json())


def test_unknown_screening_is_404(client: Any) -> None:
    assert_problem(client.get(f"/v1/screenings/{uuid.uuid4()}"), 404, "screening_id")


def audit_trail(client: Any, patient_id: str) -> list[dict[str, Any]]:
    response = client.get("/v1/audit-events", params={"patient_id": patient_id, "limit": 200})
    assert response.status_code == 200, response.text
    return list(response.json()["items"])


def test_an_observation_must_be_its_screenings_patients(
    client: Any, clinic: Clinic, storage: Storage
) -> None:
    """The database refuses an Observation whose patient is not its screening's."""
    owner, other = new_patient_id(), new_patient_id()
    posted = client.post("/v1/screenings", json=ucla3(owner))
    assert posted.status_code == 201, posted.text
    assert client.post("/v1/screenings", json=ucla3(other)).status_code == 201
    screening_id = posted.json()["id"]

    def insert_for(patient_id: str) -> Any:
        async def insert(conn: Any) -> None:
            await conn.execute(
                sa.insert(observations).values(
                    id=str(uuid.uuid4()),
                    clinic_id=clinic.clinic_id,
                    patient_id=patient_id,
                    screening_id=screening_id,
                    position=9,
                    code_system="http://loinc.org",
                    code="test",
                    effective_at=datetime.now(UTC),
                    last_updated=datetime.now(UTC),
                    resource={"resourceType": "Observation"},
                )
            )

        return insert

    with pytest.raises(sa.exc.IntegrityError):
        storage.run(insert_for(other))
    storage.run(insert_for(owner))  # the same row for the screening's own patient is fine
    assert storage.patient(clinic.clinic_id, owner).observations == 6
    assert storage.patient(clinic.clinic_id, other).observations == 5


def test_every_read_and_write_is_audited(client: Any, clinic: Clinic, storage: Storage) -> None:
    patient_id = new_patient_id()
    (client_id,) = storage.client_ids(clinic.clinic_id)
    assert client.put(f"/v1/patients/{patient_id}", json={"languages": ["en"]}).status_code == 201
    sid = post(client, ucla3(patient_id))["id"]
    assert client.get(f"/v1/screenings/{sid}").status_code == 200
    assert client.get(f"/v1/patients/{patient_id}").status_code == 200
    assert client.get(f"/v1/patients/{patient_id}/screenings").status_code == 200

    events = audit_trail(client, patient_id)

    summary = [
        (e["action"], e["resource_type"], e["resource_id"], e["outcome"], e["status_code"])
        for e in reversed(events)  # listed newest first
    ]
    assert summary == [
        ("update", "Patient", patient_id, "success", 201),
        ("create", "Screening", sid, "success", 201),
        ("read", "Screening", sid, "success", 200),
        ("read", "Patient", patient_id, "success", 200),
        ("search", "Screening", None, "success", 200),
    ]
    assert {e["client_id"] for e in events} == {str(client_id)}
    assert {e["patient_id"] for e in events} == {patient_id}
    times = [e["recorded_at"] for e in events]
    assert times == sorted(times, reverse=True)
    assert all(t.endswith("Z") for t in times)


def test_failed_reads_are_audited_as_failures(client: Any) -> None:
    patient_id = new_patient_id()
    missing_screening = str(uuid.uuid4())
    assert client.get(f"/v1/patients/{patient_id}").status_code == 404
    assert client.get(f"/v1/patients/{patient_id}/screenings").status_code == 404
    assert client.get(f"/v1/screenings/{missing_screening}").status_code == 404

    by_patient = audit_trail(client, patient_id)
    assert sorted((e["action"], e["outcome"], e["status_code"]) for e in by_patient) == [
        ("read", "failure", 404),
        ("search", "failure", 404),
    ]
    everything = client.get("/v1/audit-events", params={"limit": 200}).json()["items"]
    (screening_read,) = [e for e in everything if e["resource_id"] == missing_screening]
    assert (screening_read["action"], screening_read["outcome"]) == ("read", "failure")
    assert screening_read["status_code"] == 404
    assert screening_read["patient_id"] is None


def test_rejected_write_is_audited_as_a_failure(client: Any) -> None:
    patient_id = new_patient_id()
    bad = client.post("/v1/screenings", json=ucla3(patient_id, answers={"1": 7, "2": 3, "3": 3}))
    assert bad.status_code == 422
    everything = client.get("/v1/audit-events", params={"limit": 200}).json()["items"]
    creates = [e for e in everything if e["action"] == "create"]
    assert [(e["outcome"], e["status_code"]) for e in creates] == [("failure", 422)]


def test_audit_filters_by_time(client: Any) -> None:
    patient_id = new_patient_id()
    post(client, ucla3(patient_id))
    (event,) = audit_trail(client, patient_id)
    at = event["recorded_at"]

    def count(**params: str) -> int:
        response = client.get("/v1/audit-events", params={"patient_id": patient_id, **params})
        assert response.status_code == 200, response.text
        return len(response.json()["items"])

    assert count(since=at) == 1
    assert count(until=at) == 0
    assert count(since="2999-01-01T00:00:00Z") == 0
    assert count(until="2999-01-01T00:00:00Z") == 1


def test_the_audit_trail_pages_like_the_other_lists(client: Any) -> None:
    patient_id = new_patient_id()
    assert client.put(f"/v1/patients/{patient_id}", json={"languages": ["en"]}).status_code == 201
    for _ in range(4):
        assert client.get(f"/v1/patients/{patient_id}").status_code == 200

    def page(**params: Any) -> dict[str, Any]:
        response = client.get("/v1/audit-events", params={"patient_id": patient_id, **params})
        assert response.status_code == 200, response.text
        return dict(response.json())

    everything = page(limit=200)
    first, second, past_the_end = page(limit=3), page(limit=3, offset=3), page(offset=10)

    assert set(everything) == {"items", "total", "limit", "offset"}
    assert (everything["total"], everything["limit"], everything["offset"]) == (5, 200, 0)
    assert len(everything["items"]) == 5
    assert (first["total"], first["limit"], first["offset"], len(first["items"])) == (5, 3, 0, 3)
    assert (second["total"], second["offset"], len(second["items"])) == (5, 3, 2)
    assert [e["id"] for e in first["items"] + second["items"]] == [
        e["id"] for e in everything["items"]
    ]
    assert (past_the_end["items"], past_the_end["total"], past_the_end["limit"]) == ([], 5, 50)


def test_completed_at_just_inside_the_clock_skew_is_accepted(client: Any) -> None:
    soon = (datetime.now(UTC) + timedelta(minutes=2)).isoformat().replace("+00:00", "Z")
    body = post(client, ucla3(new_patient_id(), completed_at=soon))
    assert body["completed_at"][:16] == soon[:16]
