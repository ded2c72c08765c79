"""The referral pages over HTTP: refer with consent (the same referral as /v1 makes, the same
ServiceRequest and Task), the referral with its timeline and only its allowed next steps,
each step through the state machine, stale and forbidden steps, tenancy and audit."""

from __future__ import annotations

import json
import re
import uuid
from typing import Any

import pytest
from fhir.resources.R4B.servicerequest import ServiceRequest
from fhir.resources.R4B.task import Task
from litestar import Litestar
from litestar.testing import TestClient

from service.referrals.repository import ReferralStore
from tests.conftest import Clinic, MakeClinic
from tests.helpers import new_patient_id, ucla3
from tests.signed_in import SignedIn, sign_in

PROFILE = {"pain_conditions": ["crps"], "languages": ["en"], "preferred_modalities": ["online"]}
BUTTON = re.compile(r'<button type="submit"[^>]*>([^<]+)</button>')
STEP_BUTTONS = {
    "requested": {"Accept", "Reject", "Cancel the referral"},
    "accepted": {"Mark in progress", "Cancel the referral"},
    "in-progress": {"Mark completed", "Mark failed", "Put on hold"},
}


def add_service(client: TestClient[Litestar], clinic: Clinic, name: str, **fields: Any) -> str:
    body = {
        "name": name,
        "organization": f"{name} Trust",
        "category": "support-group",
        "modalities": ["online"],
        "contact": {"phone": "555-0100", "email": "hello@circle.example.org"},
        **fields,
    }
    response = client.post("/v1/directory/services", json=body, headers=clinic.headers)
    assert response.status_code == 201, response.text
    return response.json()["id"]


def lonely_patient(client: TestClient[Litestar], clinic: Clinic) -> tuple[str, str]:
    """A patient with a profile and a positive UCLA-3: (patient id, screening id)."""
    patient = new_patient_id()
    put = client.put(f"/v1/patients/{patient}", json=PROFILE, headers=clinic.headers)
    assert put.status_code == 201, put.text
    screening = client.post("/v1/screenings", json=ucla3(patient), headers=clinic.headers)
    assert screening.status_code == 201, screening.text
    return patient, screening.json()["id"]


@pytest.fixture
def setting(session_client: TestClient[Litestar], clinic: Clinic) -> dict[str, Any]:
    service = add_service(session_client, clinic, "CRPS Online Circle", conditions=["crps"])
    patient, screening = lonely_patient(session_client, clinic)
    user = sign_in(session_client, clinic.name, "clinician", name="Dr Ada Refer")
    return {"service": service, "patient": patient, "screening": screening, "user": user}


def consent_form(service: str, **fields: str) -> dict[str, str]:
    return {
        "service_id": service,
        "consent_given": "yes",
        "consent_method": "verbal",
        "consent_recorded_by": "Dr Ada Refer",
        "note": "Prefers evening online groups",
        **fields,
    }


def refer(user: SignedIn, patient: str, service: str) -> str:
    made = user.post(f"/app/patients/{patient}/referrals", consent_form(service))
    assert made.status_code == 303, made.text
    location = made.headers["location"]
    assert location.startswith("/app/referrals/")
    return location.rsplit("/", 1)[1]


def api_referral(client: TestClient[Litestar], clinic: Clinic, referral_id: str) -> dict[str, Any]:
    response = client.get(f"/v1/referrals/{referral_id}", headers=clinic.headers)
    assert response.status_code == 200, response.text
    return response.json()


def task_status(client: TestClient[Litestar], clinic: Clinic, referral_id: str) -> str:
    response = client.get(f"/fhir/Task/{referral_id}", headers=clinic.headers)
    assert response.status_code == 200, response.text
    Task.model_validate(response.json())
    return response.json()["status"]


INSTANT = re.compile(r"\d{4}-\d\d-\d\dT[0-9:.]+(Z|[+-]\d\d:\d\d)")


def without_ids_and_times(resource: dict[str, Any], referral_id: str) -> str:
    """The resource as JSON text with its own id and every instant blanked out."""
    text = json.dumps(resource, sort_keys=True).replace(referral_id, "ID")
    return INSTANT.sub("INSTANT", text)


def buttons(html: str) -> set[str]:
    """The labels of the referral's steps (its status forms' buttons)."""
    main = html.split('<main id="main"', 1)[1]
    forms = re.findall(
        r'<form method="post" action="/app/referrals/[^"]+/status".*?</form>', main, re.S
    )
    return {label.strip() for form in forms for label in BUTTON.findall(form)}


def step(user: SignedIn, referral_id: str, version: int, **fields: str) -> Any:
    return user.post(f"/app/referrals/{referral_id}/status", {"version": str(version), **fields})


def test_the_refer_page_offers_the_recommended_services_and_preselects_one(
    session_client: TestClient[Litestar], setting: dict[str, Any]
) -> None:
    user = setting["user"]
    page = user.get(f"/app/patients/{setting['patient']}/refer?service={setting['service']}")
    assert page.status_code == 200, page.text
    assert "CRPS Online Circle" in page.text and "Support group" in page.text
    assert f'value="{setting["service"]}" checked' in page.text
    for method in ("Verbally", "In writing", "Electronically"):
        assert method in page.text
    assert 'value="Dr Ada Refer"' in page.text  # recorded by: the signed-in user
    bad = user.get(f"/app/patients/{setting['patient']}/refer?service=not%20an%20id")
    assert bad.status_code == 400 and "service" in bad.text


def test_refer_with_consent_makes_the_same_referral_as_the_api(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    user, patient, service = setting["user"], setting["patient"], setting["service"]
    referral_id = refer(user, patient, service)
    made = api_referral(session_client, clinic, referral_id)

    twin = session_client.post(
        "/v1/referrals",
        json={
            "patient_id": patient,
            "service_id": service,
            "screening_id": setting["screening"],
            "need": "loneliness",
            "consent": {"given": True, "method": "verbal", "recorded_by": "Dr Ada Refer"},
            "note": "Prefers evening online groups",
        },
        headers=clinic.headers,
    ).json()
    different = {"id", "created_at", "updated_at", "history"}
    assert {k: v for k, v in made.items() if k not in different} | {
        "consent": {**made["consent"], "recorded_at": None}
    } == {k: v for k, v in twin.items() if k not in different} | {
        "consent": {**twin["consent"], "recorded_at": None}
    }
    assert made["status"] == "requested" and made["consent"]["given"] is True
    assert made["screening_id"] == setting["screening"] and made["need"] == "loneliness"

    for kind in ("ServiceRequest", "Task"):
        mine = session_client.get(f"/fhir/{kind}/{referral_id}", headers=clinic.headers).json()
        theirs = session_client.get(f"/fhir/{kind}/{twin['id']}", headers=clinic.headers).json()
        (ServiceRequest if kind == "ServiceRequest" else Task).model_validate(mine)
        assert without_ids_and_times(mine, referral_id) == without_ids_and_times(theirs, twin["id"])
        assert mine["status"] == ("active" if kind == "ServiceRequest" else "requested")


def test_refer_without_consent_is_422_naming_consent_and_stores_nothing(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    user, patient = setting["user"], setting["patient"]
    form = consent_form(setting["service"], note="kept as typed")
    del form["consent_given"]
    del form["consent_method"]
    refused = user.post(f"/app/patients/{patient}/referrals", form)
    assert refused.status_code == 422, refused.text
    assert 'href="#consent-given">Consent:' in refused.text
    assert 'href="#consent-method">How consent was given:' in refused.text
    assert 'id="consent-given" name="consent_given" value="yes" aria-invalid="true"' in (
        refused.text
    )
    assert "kept as typed" in refused.text
    listed = session_client.get(
        "/v1/referrals", params={"patient_id": patient}, headers=clinic.headers
    ).json()
    assert listed["total"] == 0

    no_service = user.post(
        f"/app/patients/{patient}/referrals", consent_form("", consent_recorded_by="")
    )
    assert no_service.status_code == 422
    assert 'href="#service">Service:' in no_service.text
    assert 'href="#consent-recorded-by">Consent recorded by:' in no_service.text


def test_a_closed_service_is_refused_by_the_use_case_and_named(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    closed = add_service(session_client, clinic, "Closed Circle", accepting_referrals=False)
    refused = setting["user"].post(
        f"/app/patients/{setting['patient']}/referrals", consent_form(closed)
    )
    assert refused.status_code == 422, refused.text
    assert 'href="#service">Service: This service is not taking referrals' in refused.text


def test_the_referral_page_shows_the_referral_and_only_its_allowed_steps(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    user = setting["user"]
    referral_id = refer(user, setting["patient"], setting["service"])
    page = user.get(f"/app/referrals/{referral_id}")
    assert page.status_code == 200, page.text
    text = page.text
    for shown in (
        "CRPS Online Circle",
        "Support group",
        "555-0100",
        "hello@circle.example.org",
        f'href="/app/patients/{setting["patient"]}"',
        "Given, verbally, recorded by Dr Ada Refer",
        "Prefers evening online groups",
        "Requested",
        "Loneliness",
        "by Dr Ada Refer",  # the timeline names the user
    ):
        assert shown in text, shown
    assert buttons(text) == STEP_BUTTONS["requested"]
    words = re.sub(r"<[^>]*>", " ", text.split("<main", 1)[1])
    assert "support-group" not in words and "verbal," not in words  # codes shown in words


def test_accept_then_in_progress_then_completed_with_an_outcome(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    user = setting["user"]
    referral_id = refer(user, setting["patient"], setting["service"])
    for version, (status, task, shown) in enumerate(
        [("accepted", "accepted", "accepted"), ("in-progress", "in-progress", "in-progress")],
        start=1,
    ):
        moved = step(user, referral_id, version, status=status)
        assert moved.status_code == 303, moved.text
        assert moved.headers["location"] == f"/app/referrals/{referral_id}"
        assert api_referral(session_client, clinic, referral_id)["status"] == status
        assert task_status(session_client, clinic, referral_id) == task
        page = user.get(f"/app/referrals/{referral_id}")
        assert buttons(page.text) == STEP_BUTTONS[shown]

    done = step(user, referral_id, 3, status="completed", outcome="Attended 6 of 8 sessions")
    assert done.status_code == 303, done.text
    referral = api_referral(session_client, clinic, referral_id)
    assert referral["status"] == "completed"
    assert referral["outcome"] == "Attended 6 of 8 sessions"
    task = session_client.get(f"/fhir/Task/{referral_id}", headers=clinic.headers).json()
    Task.model_validate(task)
    assert task["status"] == "completed"
    assert [o["valueCodeableConcept"]["text"] for o in task["output"]] == [
        "Attended 6 of 8 sessions"
    ]
    page = user.get(f"/app/referrals/{referral_id}").text
    assert "Accepted → In progress" in page and "In progress → Completed" in page
    assert buttons(page) == {"Change the outcome"}

    amended = user.post(
        f"/app/referrals/{referral_id}/status", {"version": "4", "outcome": "Attended 8 of 8"}
    )
    assert amended.status_code == 303, amended.text
    referral = api_referral(session_client, clinic, referral_id)
    assert referral["outcome"] == "Attended 8 of 8" and referral["status"] == "completed"
    assert "Outcome changed" in user.get(f"/app/referrals/{referral_id}").text


def test_a_reason_is_needed_to_reject_and_is_named(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    user = setting["user"]
    referral_id = refer(user, setting["patient"], setting["service"])
    refused = step(user, referral_id, 1, status="rejected")
    assert refused.status_code == 422, refused.text
    assert 'href="#reason-rejected">Reason:' in refused.text
    assert 'id="reason-rejected" name="reason"' in refused.text
    assert api_referral(session_client, clinic, referral_id)["status"] == "requested"
    rejected = step(user, referral_id, 1, status="rejected", reason="The group is full")
    assert rejected.status_code == 303
    referral = api_referral(session_client, clinic, referral_id)
    assert referral["status"] == "rejected" and referral["status_reason"] == "The group is full"
    page = user.get(f"/app/referrals/{referral_id}").text
    assert "Reason: The group is full" in page and buttons(page) == set()


def test_a_forbidden_step_posted_by_hand_is_409_and_changes_nothing(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    user = setting["user"]
    referral_id = refer(user, setting["patient"], setting["service"])
    before = api_referral(session_client, clinic, referral_id)
    forbidden = step(user, referral_id, 1, status="completed", outcome="Done")
    assert forbidden.status_code == 409, forbidden.text
    assert "That step is not possible now" in forbidden.text
    assert "it can next become: accepted, cancelled, rejected" in forbidden.text
    assert api_referral(session_client, clinic, referral_id) == before

    unknown = step(user, referral_id, 1, status="finished")
    assert unknown.status_code == 422
    assert api_referral(session_client, clinic, referral_id) == before


def test_a_stale_form_is_409_asking_to_reload(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    user = setting["user"]
    referral_id = refer(user, setting["patient"], setting["service"])
    meanwhile = session_client.patch(
        f"/v1/referrals/{referral_id}", json={"status": "accepted"}, headers=clinic.headers
    )
    assert meanwhile.status_code == 200
    stale = step(user, referral_id, 1, status="cancelled", reason="Patient moved away")
    assert stale.status_code == 409, stale.text
    assert "Someone changed this referral" in stale.text and "reload" in stale.text
    assert f'href="/app/referrals/{referral_id}"' in stale.text
    assert api_referral(session_client, clinic, referral_id)["status"] == "accepted"


def test_another_clinics_referral_is_a_404_page(
    session_client: TestClient[Litestar],
    clinic: Clinic,
    make_clinic: MakeClinic,
    setting: dict[str, Any],
) -> None:
    referral_id = refer(setting["user"], setting["patient"], setting["service"])
    other = make_clinic()
    stranger = sign_in(session_client, other.name, "clinician")
    for response in (
        stranger.get(f"/app/referrals/{referral_id}"),
        stranger.post(
            f"/app/referrals/{referral_id}/status", {"version": "1", "status": "accepted"}
        ),
        stranger.get(f"/app/patients/{setting['patient']}/refer"),
        stranger.post(
            f"/app/patients/{setting['patient']}/referrals", consent_form(setting["service"])
        ),
    ):
        assert response.status_code == 404, response.text
        assert "Not found" in response.text
        assert "CRPS Online Circle" not in response.text
    assert api_referral(session_client, clinic, referral_id)["status"] == "requested"


def test_the_timeline_names_api_clients_and_users(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    referral_id = refer(setting["user"], setting["patient"], setting["service"])
    session_client.patch(
        f"/v1/referrals/{referral_id}", json={"status": "accepted"}, headers=clinic.headers
    )
    page = setting["user"].get(f"/app/referrals/{referral_id}").text
    assert "by Dr Ada Refer" in page
    assert "by api (API client)" in page  # the client's name, as `belong clients create` set it


def test_the_pages_are_audited_with_the_user_as_actor(
    session_client: TestClient[Litestar], clinic: Clinic, setting: dict[str, Any]
) -> None:
    user, patient = setting["user"], setting["patient"]
    assert user.get(f"/app/patients/{patient}/refer").status_code == 200
    referral_id = refer(user, patient, setting["service"])
    assert user.get(f"/app/referrals/{referral_id}").status_code == 200
    assert step(user, referral_id, 1, status="accepted").status_code == 303
    events = session_client.get(
        "/v1/audit-events", params={"patient_id": patient, "limit": 200}, headers=clinic.headers
    ).json()["items"]
    by_user = [e for e in events if e.get("user_id")]
    seen = {(e["action"], e["resource_type"], e["resource_id"]) for e in by_user}
    assert ("read", "Patient", patient) in seen
    assert ("create", "Referral", referral_id) in seen
    assert ("read", "Referral", referral_id) in seen
    assert ("update", "Referral", referral_id) in seen
    assert all(e["client_id"] is None for e in by_user)
    assert len({e["user_id"] for e in by_user}) == 1


def test_the_timeline_reads_names_in_the_clinic_only(
    session_client: TestClient[Litestar],
    clinic: Clinic,
    make_clinic: MakeClinic,
    setting: dict[str, Any],
) -> None:
    referral_id = refer(setting["user"], setting["patient"], setting["service"])
    [event] = api_referral(session_client, clinic, referral_id)["history"]
    user_id = uuid.UUID(event["user_id"])
    other = make_clinic()

    async def names(clinic_id: uuid.UUID) -> dict[uuid.UUID, str]:
        async with session_client.app.state.db.begin() as conn:
            return await ReferralStore(conn, clinic_id).actor_names([user_id], [])

    assert session_client.blocking_portal.call(names, clinic.clinic_id) == {user_id: "Dr Ada Refer"}
    assert session_client.blocking_portal.call(names, other.clinic_id) == {}
