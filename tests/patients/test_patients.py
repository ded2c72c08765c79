"""Patients end to end: the matching profile, and the screening history with its change and
trend."""

from __future__ import annotations

from typing import Any

from tests.conftest import Clinic
from tests.helpers import Storage, assert_problem, new_patient_id, ucla3


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
