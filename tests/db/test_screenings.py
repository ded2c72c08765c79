"""Screenings end to end: score and Observations out, history with trend, profile, audit."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import sqlalchemy as sa

from service.platform.tables import observations
from tests.conftest import Clinic
from tests.db.conftest import Storage, assert_problem, new_patient_id, ucla3

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


def history(client: Any, patient_id: str, **params: Any) -> dict[str, dict[str, Any]]:
    response = client.get(f"/v1/patients/{patient_id}/screenings", params=params)
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["patient_id"] == patient_id
    return {h["instrument"]: h for h in body["instruments"]}


def lsns6(patient_id: str, value: int, completed_at: str) -> dict[str, Any]:
    answers = {str(i): value for i in range(1, 7)}
    return {
        "patient_id": patient_id,
        "instrument": "lsns-6",
        "completed_at": completed_at,
        "answers": answers,
    }


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


def test_history_is_per_instrument_newest_first_with_change_and_trend(client: Any) -> None:
    patient_id = new_patient_id()
    # Posted out of order: the history sorts by completed_at, not by arrival.
    later = post(
        client,
        ucla3(patient_id, completed_at="2024-05-01T10:00:00Z", answers={"1": 3, "2": 3, "3": 3}),
    )
    earlier = post(
        client,
        ucla3(patient_id, completed_at="2024-04-01T10:00:00Z", answers={"1": 1, "2": 1, "3": 1}),
    )
    lsns_low = post(client, lsns6(patient_id, 1, "2024-04-02T10:00:00Z"))
    lsns_high = post(client, lsns6(patient_id, 3, "2024-05-02T10:00:00Z"))

    histories = history(client, patient_id)

    assert set(histories) == {"ucla-3", "lsns-6"}
    ucla = histories["ucla-3"]
    assert (ucla["title"], ucla["direction"]) == ("Three-Item Loneliness Scale", "higher-worse")
    assert [s["id"] for s in ucla["screenings"]] == [later["id"], earlier["id"]]
    newest, first = ucla["screenings"]
    # No meaningful-change threshold is published for UCLA-3: the change, but no verdict.
    assert ucla["meaningful_change"]["kind"] == "none"
    assert (newest["total"], newest["change"], newest["trend"]) == (9, 6, None)
    assert newest["band"]["code"] == "lonely"
    assert newest["completed_at"] == "2024-05-01T10:00:00Z"
    assert (first["total"], first["change"], first["trend"]) == (3, None, None)
    assert first["band"]["code"] == "not-lonely"

    lsns = histories["lsns-6"]
    assert lsns["direction"] == "higher-better"
    assert [s["id"] for s in lsns["screenings"]] == [lsns_high["id"], lsns_low["id"]]
    assert lsns["meaningful_change"]["kind"] == "none"
    assert [(s["total"], s["change"], s["trend"]) for s in lsns["screenings"]] == [
        (18, 12, None),
        (6, None, None),
    ]


def promis_si_4a(patient_id: str, raw: int, day: int) -> dict[str, Any]:
    """A PROMIS Social Isolation 4a screening with the given raw score (4..20)."""
    values = [raw // 4 + (1 if i < raw % 4 else 0) for i in range(4)]
    links = ("UCLA11x2", "UCLA13x3", "UCLA14x2", "UCLA18x2")
    return {
        "patient_id": patient_id,
        "instrument": "promis-si-4a",
        "completed_at": f"2024-07-{day:02d}T08:00:00Z",
        "answers": dict(zip(links, values, strict=True)),
    }


def test_history_trend_is_better_or_worse_only_past_the_minimal_important_difference(
    licensed_client: Any,
) -> None:
    patient_id = new_patient_id()
    # Raw 12, 13, 15, 12: T 56.1, 58.1, 62.0, 56.1 (higher = more isolated).
    for day, raw in enumerate((12, 13, 15, 12), start=1):
        post(licensed_client, promis_si_4a(patient_id, raw, day))

    promis = history(licensed_client, patient_id)["promis-si-4a"]

    assert promis["meaningful_change"]["kind"] == "mid"
    assert promis["meaningful_change"]["value"] == 3.0
    assert [(s["total"], s["change"], s["trend"]) for s in promis["screenings"]] == [
        (56.1, -5.9, "better"),
        (62.0, 3.9, "worse"),
        (58.1, 2.0, "no meaningful change"),
        (56.1, None, None),
    ]


def test_history_without_a_threshold_gives_the_change_and_limit(client: Any) -> None:
    patient_id = new_patient_id()
    for day in (1, 2, 3):
        post(client, ucla3(patient_id, completed_at=f"2024-06-0{day}T08:00:00Z"))

    full = history(client, patient_id)["ucla-3"]["screenings"]
    assert [s["completed_at"][:10] for s in full] == ["2024-06-03", "2024-06-02", "2024-06-01"]
    assert [(s["change"], s["trend"]) for s in full] == [(0, None), (0, None), (None, None)]

    limited = history(client, patient_id, limit=2)["ucla-3"]["screenings"]
    assert [s["id"] for s in limited] == [s["id"] for s in full[:2]]
    # The oldest shown still carries its change from the one cut off.
    assert limited[-1]["change"] == 0


def test_history_of_unknown_patient_is_404(client: Any) -> None:
    assert_problem(client.get(f"/v1/patients/{new_patient_id()}/screenings"), 404, "patient_id")


def test_inline_profile_is_stored_and_readable(
    client: Any, clinic: Clinic, storage: Storage
) -> None:
    patient_id = new_patient_id()
    profile = {
        "pain_conditions": ["fibromyalgia", "low-back-pain"],
        "languages": ["en", "es-MX"],
        "postcode": "SW1A 1AA",
        "location": {"lat": 51.5, "lon": -0.14},
        "preferred_modalities": ["online"],
        "age_band": "65-74",
        "max_travel_km": 12.5,
    }
    post(client, ucla3(patient_id, profile=profile, pain_conditions=["crps"]))

    read = client.get(f"/v1/patients/{patient_id}")
    assert read.status_code == 200
    assert read.json()["id"] == patient_id
    assert read.json()["profile"] == profile
    assert storage.patient(clinic.clinic_id, patient_id).profile == profile

    # A later screening without a profile leaves the stored one alone.
    post(client, ucla3(patient_id, completed_at="2024-03-02T09:30:00Z"))
    assert client.get(f"/v1/patients/{patient_id}").json()["profile"] == profile


def test_put_patient_answers_201_then_200_and_replaces_the_profile(client: Any) -> None:
    patient_id = new_patient_id()
    created = client.put(f"/v1/patients/{patient_id}", json={"languages": ["en"]})
    assert created.status_code == 201, created.text
    assert created.json()["profile"] == {"languages": ["en"]}

    replaced = client.put(
        f"/v1/patients/{patient_id}", json={"postcode": "EH1 1YZ", "age_band": "75+"}
    )
    assert replaced.status_code == 200, replaced.text
    body = replaced.json()
    assert body["profile"] == {"postcode": "EH1 1YZ", "age_band": "75+"}
    assert body["created_at"] == created.json()["created_at"]
    assert body["updated_at"] >= created.json()["updated_at"]
    assert client.get(f"/v1/patients/{patient_id}").json() == body


def test_unknown_patient_is_404(client: Any) -> None:
    patient_id = new_patient_id()
    body = assert_problem(client.get(f"/v1/patients/{patient_id}"), 404, "patient_id")
    assert body["errors"][0]["code"] == "not_found"


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
