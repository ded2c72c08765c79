"""Referrals as SDOHCC ServiceRequest + Task, and the directory as HealthcareService.

Every resource the FHIR facade emits here, whether read or found by a search, is checked
three ways: it parses with ``fhir.resources.R4B`` (FHIR R4; never the default R5 classes),
it carries the elements its profile requires (reference fhir.md 1.2 and 1.6), and it
agrees with the referral it was built from (status mapping, references that resolve).

- SDOHCC-ServiceRequest (on US Core ServiceRequest): status, intent, code, subject
  mandatory; category with the SDOHCC slice; authoredOn, requester, performer.
- SDOHCC-TaskForReferralManagement: intent = order, code = task-code#fulfill, focus
  (the ServiceRequest), for, authoredOn, requester; status from TaskStatus but not
  ``ready`` or ``received``; statusReason.text whenever statusReason is present.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.healthcareservice import HealthcareService
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.organization import Organization
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import Clinic, MakeClinic
from tests.helpers import new_patient_id, ucla3

FHIR_JSON = "application/fhir+json"
SDOHCC = "http://hl7.org/fhir/us/sdoh-clinicalcare"
SDOHCC_SR = f"{SDOHCC}/StructureDefinition/SDOHCC-ServiceRequest"
SDOHCC_TASK = f"{SDOHCC}/StructureDefinition/SDOHCC-TaskForReferralManagement"
SDOHCC_CODES = f"{SDOHCC}/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
TASK_CODE = "http://hl7.org/fhir/CodeSystem/task-code"
SNOMED = "http://snomed.info/sct"
CATEGORY_SYSTEM = "https://belong.example/fhir/CodeSystem/service-category"
REQUEST_STATUS = {"draft", "active", "on-hold", "revoked", "completed", "entered-in-error"}
TASK_STATUS = {
    "draft", "requested", "received", "accepted", "rejected", "ready", "cancelled",
    "in-progress", "on-hold", "failed", "completed", "entered-in-error",
}  # fmt: skip
SR_STATUS_OF = {
    "requested": "active",
    "accepted": "active",
    "in-progress": "active",
    "on-hold": "on-hold",
    "completed": "completed",
    "rejected": "revoked",
    "cancelled": "revoked",
    "failed": "revoked",
}
PATHS = {
    "requested": [],
    "accepted": ["accepted"],
    "rejected": ["rejected"],
    "cancelled": ["cancelled"],
    "in-progress": ["accepted", "in-progress"],
    "on-hold": ["accepted", "in-progress", "on-hold"],
    "completed": ["accepted", "in-progress", "completed"],
    "failed": ["accepted", "in-progress", "failed"],
}


@dataclass(frozen=True)
class Referrals:
    clinic: Clinic
    patient_id: str
    other_patient: str
    screening_id: str
    services: dict[str, str]
    by_status: dict[str, str]
    """referral status -> referral id (the first patient's, one per status)"""
    other_referral: str


def add_service(client: TestClient[Litestar], name: str, **fields: Any) -> str:
    body = {
        "name": name,
        "organization": f"{name} Org",
        "category": "support-group",
        "modalities": ["online"],
        **fields,
    }
    response = client.post("/v1/directory/services", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def referrals(client: TestClient[Litestar], clinic: Clinic) -> Referrals:
    services = {
        "group": add_service(
            client,
            "CRPS Group",
            conditions=["crps", "other"],
            languages=["en", "es-MX"],
            modalities=["in-person", "online"],
            location={"lat": 51.5, "lon": -0.1},
            catchment_km=10,
            capacity=4,
            min_age=18,
            contact={"phone": "555-0100", "email": "a@b.example.org", "url": "https://b.example"},
            referral_method="Email",
            schedule="Tuesdays",
            description="A group.",
        ),
        "counselling": add_service(
            client, "Pain Counselling", category="counselling", modalities=["phone"]
        ),
        "activity": add_service(client, "Walking Club", category="social-activity"),
        "family": add_service(client, "Family Sessions", category="family-communication"),
    }
    patient_id, other = new_patient_id(), new_patient_id()
    for patient in (patient_id, other):
        assert client.put(f"/v1/patients/{patient}", json={}).status_code == 201
    screening = client.post("/v1/screenings", json=ucla3(patient_id))
    assert screening.status_code == 201, screening.text
    screening_id = screening.json()["id"]

    by_status = {}
    for status, path in PATHS.items():
        made = client.post(
            "/v1/referrals",
            json={
                "patient_id": patient_id,
                "service_id": services["counselling" if status == "failed" else "group"],
                "screening_id": screening_id,
                "need": "loneliness",
                "note": f"Referral that ends {status}",
                "consent": {"given": True, "method": "written"},
            },
        )
        assert made.status_code == 201, made.text
        rid = made.json()["id"]
        for step in path:
            moved = client.patch(
                f"/v1/referrals/{rid}", json={"status": step, "reason": f"because {step}"}
            )
            assert moved.status_code == 200, moved.text
        by_status[status] = rid
    other_referral = client.post(
        "/v1/referrals",
        json={
            "patient_id": other,
            "service_id": services["activity"],
            "consent": {"given": True, "method": "electronic"},
        },
    )
    assert other_referral.status_code == 201, other_referral.text
    return Referrals(
        clinic, patient_id, other, screening_id, services, by_status, other_referral.json()["id"]
    )


# -- helpers ---------------------------------------------------------------------------------


def fhir_get(client: TestClient[Litestar], url: str, **params: Any) -> dict[str, Any]:
    response = client.get(url, params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    return response.json()


def searchset(client: TestClient[Litestar], kind: str, **params: Any) -> dict[str, Any]:
    bundle = fhir_get(client, f"/fhir/{kind}", **params)
    Bundle.model_validate(bundle)  # and every entry's resource with it
    assert bundle["type"] == "searchset"
    for entry in bundle.get("entry", []):
        assert entry["resource"]["resourceType"] == kind
        assert entry["fullUrl"].endswith(f"/fhir/{kind}/{entry['resource']['id']}")
        assert entry["search"]["mode"] == "match"
        check_resource(entry["resource"])
    return bundle


def ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


def every_page(client: TestClient[Litestar], kind: str, **params: Any) -> tuple[list[str], int]:
    """Follow ``next`` links from the first page; (ids in order, pages)."""
    bundle = searchset(client, kind, **params)
    found, pages = ids(bundle), 1
    while (url := link(bundle, "next")) is not None:
        parts = urlsplit(url)
        bundle = searchset(client, kind, **dict(parse_qsl(parts.query)))
        assert parts.path == f"/fhir/{kind}"
        found += ids(bundle)
        pages += 1
        assert pages < 50
    return found, pages


def check_resource(resource: dict[str, Any]) -> None:
    {
        "ServiceRequest": check_service_request,
        "Task": check_task,
        "HealthcareService": check_healthcare_service,
    }[resource["resourceType"]](resource)


def check_service_request(sr: dict[str, Any]) -> None:
    ServiceRequest.model_validate(sr)
    assert SDOHCC_SR in sr["meta"]["profile"]
    assert sr["meta"]["lastUpdated"]
    assert sr["status"] in REQUEST_STATUS
    assert sr["intent"] == "order"
    assert sr["code"]["coding"] and all(
        c.get("system") and c.get("code") for c in sr["code"]["coding"]
    )
    assert sr["subject"]["reference"].startswith("Patient/")
    sdohcc = [c for cat in sr["category"] for c in cat["coding"] if c["system"] == SDOHCC_CODES]
    assert [c["code"] for c in sdohcc] == ["social-connection"]
    assert any(
        c["system"] == SNOMED and c["code"] == "410606002"
        for cat in sr["category"]
        for c in cat["coding"]
    )
    assert sr["authoredOn"]
    assert sr["requester"]["reference"].startswith("Organization/")
    assert [p["reference"].split("/")[0] for p in sr["performer"]] == ["HealthcareService"]
    assert sr["priority"] in {"routine", "urgent", "asap", "stat"}


def check_task(task: dict[str, Any]) -> None:
    Task.model_validate(task)
    assert SDOHCC_TASK in task["meta"]["profile"]
    assert task["status"] in TASK_STATUS - {"ready", "received"}
    assert task["intent"] == "order"
    assert task["code"]["coding"] == [{"system": TASK_CODE, "code": "fulfill"}]
    assert task["focus"]["reference"] == f"ServiceRequest/{task['id']}"
    assert task["for"]["reference"].startswith("Patient/")
    assert task["authoredOn"]
    assert task["requester"]["reference"].startswith("Organization/")
    assert task["owner"]["reference"].startswith("HealthcareService/")
    if "statusReason" in task:
        assert task["statusReason"]["text"]
    for output in task.get("output", []):
        assert output["type"]["coding"] == [{"system": SDOHCC_CODES, "code": "resulting-activity"}]
        assert output["valueCodeableConcept"]["text"]
    assert task["priority"] in {"routine", "urgent", "asap", "stat"}


def check_healthcare_service(service: dict[str, Any]) -> None:
    HealthcareService.model_validate(service)
    assert service["active"] is True
    assert service["name"]
    assert service["meta"]["lastUpdated"]
    types = [c for t in service["type"] for c in t["coding"] if c["system"] == CATEGORY_SYSTEM]
    assert len(types) == 1
    assert {
        "system": SDOHCC_CODES,
        "code": "social-connection",
        "display": "Social Connection",
    } in [c for cat in service["category"] for c in cat["coding"]]


def outcome(response: Any, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    OperationOutcome.model_validate(body)
    assert body["resourceType"] == "OperationOutcome"
    return body["issue"]


# -- ServiceRequest ---------------------------------------------------------------------------


def test_every_referral_reads_as_a_valid_service_request(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    for status, rid in referrals.by_status.items():
        sr = fhir_get(client, f"/fhir/ServiceRequest/{rid}")
        check_service_request(sr)
        referral = client.get(f"/v1/referrals/{rid}").json()
        assert sr["id"] == rid
        assert sr["status"] == SR_STATUS_OF[status]
        assert sr["subject"] == {"reference": f"Patient/{referrals.patient_id}"}
        assert sr["performer"][0]["reference"] == f"HealthcareService/{referral['service']['id']}"
        assert sr["performer"][0]["display"] == referral["service"]["name"]
        assert sr["requester"]["reference"] == f"Organization/{referrals.clinic.clinic_id}"
        assert sr["requester"]["display"] == referrals.clinic.name
        assert datetime.fromisoformat(sr["authoredOn"]) == datetime.fromisoformat(
            referral["created_at"]
        )
        assert datetime.fromisoformat(sr["meta"]["lastUpdated"]) == datetime.fromisoformat(
            referral["updated_at"]
        )
        notes = [n["text"] for n in sr["note"]]
        assert any("consent" in n.lower() and "given" in n for n in notes)
        assert f"Referral that ends {status}" in notes


def test_service_request_codes_follow_the_category(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    group = fhir_get(client, f"/fhir/ServiceRequest/{referrals.by_status['requested']}")
    counselling = fhir_get(client, f"/fhir/ServiceRequest/{referrals.by_status['failed']}")
    activity = fhir_get(client, f"/fhir/ServiceRequest/{referrals.other_referral}")

    assert [(c["system"], c["code"]) for c in group["code"]["coding"]] == [(SNOMED, "711281004")]
    assert [(c["system"], c["code"]) for c in counselling["code"]["coding"]] == [
        (SNOMED, "306226009")
    ]
    assert [(c["system"], c["code"]) for c in activity["code"]["coding"]] == [
        (CATEGORY_SYSTEM, "social-activity")
    ]
    check_service_request(activity)


def test_the_requester_resolves_to_the_clinics_organization(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    rid = referrals.by_status["completed"]
    for kind in ("ServiceRequest", "Task"):
        requester = fhir_get(client, f"/fhir/{kind}/{rid}")["requester"]
        response = client.get(f"/fhir/{requester['reference']}")
        assert response.status_code == 200, response.text
        assert response.headers["content-type"].startswith(FHIR_JSON)
        organization = Organization.model_validate(response.json())
        assert organization.id == str(referrals.clinic.clinic_id)
        assert organization.name == referrals.clinic.name == requester["display"]
        assert organization.active is True


def test_another_clinics_organization_is_404_as_a_missing_one(
    session_client: TestClient[Litestar], referrals: Referrals, make_clinic: MakeClinic
) -> None:
    other = make_clinic(scopes=("referrals:read",))
    own = f"/fhir/Organization/{referrals.clinic.clinic_id}"
    foreign = session_client.get(own, headers=other.headers)
    missing = session_client.get(f"/fhir/Organization/{uuid.uuid4()}", headers=other.headers)
    codes = [[issue["code"] for issue in outcome(r, 404)] for r in (foreign, missing)]
    assert codes == [["not-found"], ["not-found"]]
    theirs = session_client.get(f"/fhir/Organization/{other.clinic_id}", headers=other.headers)
    assert Organization.model_validate(theirs.json()).id == str(other.clinic_id)
    unscoped = make_clinic(scopes=("screenings:read",))
    refused = session_client.get(
        f"/fhir/Organization/{unscoped.clinic_id}", headers=unscoped.headers
    )
    assert refused.status_code == 403


def test_the_reason_reference_resolves_to_the_score_observation(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    sr = fhir_get(client, f"/fhir/ServiceRequest/{referrals.by_status['requested']}")
    [reason] = sr["reasonReference"]

    observation = fhir_get(client, f"/fhir/{reason['reference']}")

    assert reason["reference"] == f"Observation/{referrals.screening_id}-total"
    assert observation["subject"]["reference"] == f"Patient/{referrals.patient_id}"
    assert observation["valueQuantity"]["value"] == 8
    without = fhir_get(client, f"/fhir/ServiceRequest/{referrals.other_referral}")
    assert "reasonReference" not in without


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("active", ["requested", "accepted", "in-progress"]),
        ("on-hold", ["on-hold"]),
        ("completed", ["completed"]),
        ("revoked", ["rejected", "cancelled", "failed"]),
    ],
)
def test_service_requests_search_by_patient_and_status(
    client: TestClient[Litestar], referrals: Referrals, status: str, expected: list[str]
) -> None:
    by_patient = searchset(client, "ServiceRequest", patient=referrals.patient_id, status=status)
    by_subject = searchset(
        client, "ServiceRequest", subject=f"Patient/{referrals.patient_id}", status=status
    )

    want = {referrals.by_status[s] for s in expected}
    assert set(ids(by_patient)) == want
    assert by_patient["total"] == len(want)
    assert ids(by_subject) == ids(by_patient)


def test_service_requests_search_all_and_page(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    everything = searchset(client, "ServiceRequest")
    assert everything["total"] == 9

    found, pages = every_page(client, "ServiceRequest", _count=4)

    assert pages == 3
    assert sorted(found) == sorted([*referrals.by_status.values(), referrals.other_referral])
    assert len(found) == len(set(found))
    mine = searchset(client, "ServiceRequest", patient=referrals.patient_id, _count=3)
    assert mine["total"] == 8 and len(ids(mine)) == 3
    next_url = link(mine, "next")
    assert next_url is not None and f"patient={referrals.patient_id}" in next_url
    assert referrals.other_patient not in str(mine)


def test_service_requests_search_by_last_updated(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    rid = referrals.by_status["requested"]
    before = fhir_get(client, f"/fhir/ServiceRequest/{rid}")["meta"]["lastUpdated"]
    moved = client.patch(f"/v1/referrals/{rid}", json={"status": "accepted"})
    assert moved.status_code == 200
    after = fhir_get(client, f"/fhir/ServiceRequest/{rid}")["meta"]["lastUpdated"]
    day = after[:10]

    assert rid in ids(searchset(client, "ServiceRequest", _lastUpdated=f"ge{after}"))
    recent = searchset(client, "ServiceRequest", _lastUpdated=f"ge{after}")
    assert ids(recent) == [rid]  # the only change since
    assert rid not in ids(searchset(client, "ServiceRequest", _lastUpdated=f"lt{after}"))
    assert before < after
    assert searchset(client, "ServiceRequest", _lastUpdated=day)["total"] == 9
    assert searchset(client, "ServiceRequest", _lastUpdated="le2000-01-01")["total"] == 0
    both = client.get(
        "/fhir/ServiceRequest",
        params=[("_lastUpdated", f"ge{day}"), ("_lastUpdated", "lt2999")],
    )
    assert both.status_code in (200, 400)  # repeats: ANDed, or refused outright


@pytest.mark.parametrize(
    "params",
    [
        {"status": "requested"},  # a Task status, not a ServiceRequest one
        {"patient": "Group/1"},
        {"_lastUpdated": "yesterday"},
        {"_lastUpdated": "ne2024-01-01"},
        {"_count": "-1"},
    ],
)
def test_bad_service_request_searches_are_400(
    client: TestClient[Litestar], referrals: Referrals, params: dict[str, str]
) -> None:
    outcome(client.get("/fhir/ServiceRequest", params=params), 400)


# -- Task ----------------------------------------------------------------------------------


def test_every_referral_reads_as_a_valid_task(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    for status, rid in referrals.by_status.items():
        task = fhir_get(client, f"/fhir/Task/{rid}")
        check_task(task)
        referral = client.get(f"/v1/referrals/{rid}").json()
        assert task["status"] == status
        assert task["for"] == {"reference": f"Patient/{referrals.patient_id}"}
        assert task["owner"]["reference"] == f"HealthcareService/{referral['service']['id']}"
        assert datetime.fromisoformat(task["lastModified"]) == datetime.fromisoformat(
            referral["updated_at"]
        )
        if referral["status_reason"]:
            assert task["statusReason"] == {"text": referral["status_reason"]}
        else:
            assert "statusReason" not in task
        focus = fhir_get(client, f"/fhir/{task['focus']['reference']}")
        check_service_request(focus)
        assert focus["subject"]["reference"] == task["for"]["reference"]


def test_tasks_with_a_reason_say_it(client: TestClient[Litestar], referrals: Referrals) -> None:
    for status in ("rejected", "cancelled", "on-hold", "failed"):
        task = fhir_get(client, f"/fhir/Task/{referrals.by_status[status]}")
        assert task["statusReason"]["text"] == f"because {status}"


def test_a_task_outputs_the_outcome_added_after_completion(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    rid = referrals.by_status["completed"]
    before = fhir_get(client, f"/fhir/Task/{rid}")

    added = client.patch(f"/v1/referrals/{rid}", json={"outcome": "Attended 6 of 8 sessions"})

    assert added.status_code == 200, added.text
    assert "output" not in before
    task = fhir_get(client, f"/fhir/Task/{rid}")
    check_task(task)
    assert (task["status"], task["output"]) == (
        "completed",
        [
            {
                "type": {"coding": [{"system": SDOHCC_CODES, "code": "resulting-activity"}]},
                "valueCodeableConcept": {"text": "Attended 6 of 8 sessions"},
            }
        ],
    )
    assert datetime.fromisoformat(task["lastModified"]) == datetime.fromisoformat(
        added.json()["updated_at"]
    )
    assert datetime.fromisoformat(task["lastModified"]) > datetime.fromisoformat(
        before["lastModified"]
    )
    assert task["meta"]["lastUpdated"] == task["lastModified"]
    polled = searchset(client, "Task", _lastUpdated=f"gt{before['lastModified']}")
    assert rid in ids(polled)


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("requested", ["requested"]),
        ("in-progress,on-hold", ["in-progress", "on-hold"]),
        ("rejected,cancelled,failed", ["rejected", "cancelled", "failed"]),
        ("completed", ["completed"]),
    ],
)
def test_tasks_search_by_status(
    client: TestClient[Litestar], referrals: Referrals, status: str, expected: list[str]
) -> None:
    bundle = searchset(client, "Task", patient=f"Patient/{referrals.patient_id}", status=status)

    assert set(ids(bundle)) == {referrals.by_status[s] for s in expected}
    assert {e["resource"]["status"] for e in bundle.get("entry", [])} == set(expected)


def test_tasks_search_by_owner_and_patient(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    counselling = referrals.services["counselling"]
    activity = referrals.services["activity"]

    owned = searchset(client, "Task", owner=f"HealthcareService/{counselling}")
    bare = searchset(client, "Task", owner=counselling)
    other = searchset(client, "Task", patient=referrals.other_patient, owner=activity)
    nobody = searchset(client, "Task", patient=referrals.other_patient, owner=counselling)

    assert ids(owned) == ids(bare) == [referrals.by_status["failed"]]
    assert ids(other) == [referrals.other_referral]
    assert nobody["total"] == 0 and "entry" not in nobody


def test_tasks_poll_by_last_updated_and_page(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    rid = referrals.by_status["accepted"]
    mark = fhir_get(client, f"/fhir/Task/{referrals.other_referral}")["meta"]["lastUpdated"]
    moved = client.patch(f"/v1/referrals/{rid}", json={"status": "in-progress"})
    assert moved.status_code == 200
    changed = fhir_get(client, f"/fhir/Task/{rid}")["meta"]["lastUpdated"]

    polled = searchset(client, "Task", _lastUpdated=f"ge{changed}", status="in-progress")
    found, pages = every_page(client, "Task", _count=2)

    assert rid in ids(polled)
    assert changed > mark
    assert pages == 5
    assert len(found) == 9 and len(set(found)) == 9
    first = searchset(client, "Task", _count=2)
    following = urlsplit(link(first, "next") or "")
    second = fhir_get(client, following.path, **dict(parse_qsl(following.query)))
    assert link(first, "previous") is None and link(second, "previous") is None
    assert ids(first) + ids(second) == found[:4]


def test_polling_with_a_fractional_last_updated_misses_nothing(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    rid = referrals.by_status["requested"]
    moved = client.patch(f"/v1/referrals/{rid}", json={"status": "accepted"})
    assert moved.status_code == 200
    changed = datetime.fromisoformat(
        fhir_get(client, f"/fhir/Task/{rid}")["meta"]["lastUpdated"].replace("Z", "+00:00")
    )
    just_before = (changed - timedelta(milliseconds=1)).isoformat().replace("+00:00", "Z")

    polled = searchset(client, "Task", _lastUpdated=f"gt{just_before}")

    assert rid in ids(polled)


@pytest.mark.parametrize(
    "params",
    [
        {"status": "bogus"},
        {"status": "active"},  # a ServiceRequest status
        {"patient": "not an id!"},
        {"_lastUpdated": "gt2024-1-01"},
        {"_count": "ten"},
    ],
)
def test_bad_task_searches_are_400(
    client: TestClient[Litestar], referrals: Referrals, params: dict[str, str]
) -> None:
    outcome(client.get("/fhir/Task", params=params), 400)


def test_a_last_updated_that_does_not_exist_is_refused(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    """Month 13 has the date syntax but no such date: 400 or 422, never a search."""
    for kind in ("Task", "ServiceRequest"):
        response = client.get(f"/fhir/{kind}", params={"_lastUpdated": "gt2024-13-01"})
        [issue] = outcome(response, response.status_code)
        assert response.status_code in (400, 422)
        assert issue["expression"] == ["_lastUpdated"]


# -- HealthcareService ----------------------------------------------------------------------


def test_the_directory_reads_as_healthcare_services(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    group_id = referrals.services["group"]
    group = fhir_get(client, f"/fhir/HealthcareService/{group_id}")
    entry = client.get(f"/v1/directory/services/{group_id}").json()

    check_healthcare_service(group)
    assert group["id"] == group_id
    assert group["name"] == "CRPS Group"
    assert group["providedBy"] == {"display": "CRPS Group Org"}
    assert [c["code"] for t in group["type"] for c in t["coding"]] == ["support-group"]
    assert sorted(c["text"] for c in group["characteristic"]) == [
        "crps",
        "in-person",
        "online",
        "other",
    ]
    crps = next(c for c in group["characteristic"] if c["text"] == "crps")
    assert {"system": SNOMED, "code": "128200000", "display": "Complex regional pain syndrome"} in (
        crps["coding"]
    )
    assert [c["coding"][0]["code"] for c in group["communication"]] == ["en", "es-MX"]
    assert {(t["system"], t["value"]) for t in group["telecom"]} == {
        ("phone", "555-0100"),
        ("email", "a@b.example.org"),
        ("url", "https://b.example"),
    }
    extensions = {x["url"].rsplit("/", 1)[1]: x for x in group["extension"]}
    assert extensions["accepting-referrals"]["valueBoolean"] is True
    assert extensions["catchment-km"]["valueDecimal"] == 10
    assert extensions["capacity"]["valueInteger"] == 4
    assert extensions["minimum-age"]["valueInteger"] == 18
    assert group["referralMethod"] == [{"text": "Email"}]
    assert group["availabilityExceptions"] == "Tuesdays"
    assert datetime.fromisoformat(group["meta"]["lastUpdated"]) == datetime.fromisoformat(
        entry["updated_at"]
    )


def test_a_full_service_is_not_accepting_in_fhir(client: TestClient[Litestar]) -> None:
    full = add_service(client, "Full", capacity=0)

    service = fhir_get(client, f"/fhir/HealthcareService/{full}")

    check_healthcare_service(service)
    accepting = [x for x in service["extension"] if x["url"].endswith("/accepting-referrals")]
    assert accepting[0]["valueBoolean"] is False


def test_healthcare_services_search_by_type_and_page(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    everything = searchset(client, "HealthcareService")
    counselling = searchset(client, "HealthcareService", **{"service-type": "counselling"})
    system = searchset(
        client, "HealthcareService", **{"service-type": f"{CATEGORY_SYSTEM}|social-activity"}
    )
    found, pages = every_page(client, "HealthcareService", _count=3)

    assert everything["total"] == 4
    assert ids(counselling) == [referrals.services["counselling"]]
    assert ids(system) == [referrals.services["activity"]]
    assert pages == 2 and sorted(found) == sorted(referrals.services.values())
    outcome(client.get("/fhir/HealthcareService", params={"service-type": "knitting"}), 400)


def test_a_withdrawn_service_leaves_the_fhir_directory_but_not_its_referrals(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    counselling = referrals.services["counselling"]
    assert client.delete(f"/v1/directory/services/{counselling}").status_code == 204

    outcome(client.get(f"/fhir/HealthcareService/{counselling}"), 404)
    assert counselling not in ids(searchset(client, "HealthcareService"))
    sr = fhir_get(client, f"/fhir/ServiceRequest/{referrals.by_status['failed']}")
    check_service_request(sr)
    assert sr["performer"][0]["reference"] == f"HealthcareService/{counselling}"


# -- other clinics ----------------------------------------------------------------------------


def test_another_clinics_resources_are_404_and_never_found(
    session_client: TestClient[Litestar], referrals: Referrals, make_clinic: MakeClinic
) -> None:
    b = make_clinic()
    rid = referrals.by_status["accepted"]
    service_id = referrals.services["group"]

    for url in (
        f"/fhir/ServiceRequest/{rid}",
        f"/fhir/Task/{rid}",
        f"/fhir/HealthcareService/{service_id}",
    ):
        foreign = session_client.get(url, headers=b.headers)
        missing = session_client.get(url.rsplit("/", 1)[0] + "/nothing-here", headers=b.headers)
        assert [i["code"] for i in outcome(foreign, 404)] == [
            i["code"] for i in outcome(missing, 404)
        ]
        owner = session_client.get(url, headers=referrals.clinic.headers)
        assert owner.status_code == 200

    for kind, params in [
        ("ServiceRequest", {"patient": referrals.patient_id}),
        ("Task", {"owner": f"HealthcareService/{service_id}"}),
        ("HealthcareService", {}),
    ]:
        response = session_client.get(f"/fhir/{kind}", params=params, headers=b.headers)
        assert response.status_code == 200
        assert response.json()["total"] == 0


def test_fhir_referral_reads_are_audited(
    client: TestClient[Litestar], referrals: Referrals
) -> None:
    rid = referrals.by_status["completed"]
    fhir_get(client, f"/fhir/ServiceRequest/{rid}")
    fhir_get(client, f"/fhir/Task/{rid}")
    fhir_get(client, "/fhir/Task", patient=referrals.patient_id)

    events = client.get(
        "/v1/audit-events", params={"patient_id": referrals.patient_id, "limit": 200}
    ).json()["items"]
    seen = {(e["action"], e["resource_type"], e["resource_id"]) for e in events}

    assert ("read", "ServiceRequest", rid) in seen
    assert ("read", "Task", rid) in seen
    assert ("search", "Task", None) in seen


def test_service_request_and_task_are_read_by_one_handler(app: Litestar) -> None:
    reads = {
        handler.operation_id: handler
        for route in app.routes
        for handler in getattr(route, "route_handlers", [])
        if handler.operation_id in ("fhir_read_service_request", "fhir_read_task")
    }
    service_request, task = reads["fhir_read_service_request"], reads["fhir_read_task"]
    assert service_request.fn.__code__ is task.fn.__code__
    assert service_request.opt["audit"] == ("read", "ServiceRequest")
    assert task.opt["audit"] == ("read", "Task")
