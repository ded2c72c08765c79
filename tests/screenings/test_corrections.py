"""Corrections propagate (issue #15 point 3), over HTTP against PostgreSQL.

A QuestionnaireResponse re-sent with its identifier and status ``amended`` (POST, or PUT
by id or by ``?identifier=``) is stored as its next version and re-scored: its
Observations keep their ids and become ``corrected`` with the new values and version,
and the /v1 screening, history and recommendations show the corrected score. One sent
``entered-in-error`` withdraws the screening from needs and history and stays readable.
Each correction is audited; a refused one leaves what is stored as it was. fhirpy's
``save()`` and conditional ``update()`` drive the same against a real ``belong serve``.
Every resource answered is validated with fhir.resources.R4B.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhirpy import SyncFHIRClient

from tests.conftest import scratch_database
from tests.live import LiveServer, live_server

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
UCLA3 = "https://belong.example/fhir/Questionnaire/ucla-3"
SYSTEM = "urn:ehr:qr"
TIMEOUT = 10.0
SOME = {"system": LOINC, "code": "LA14733-2", "display": "Some of the time"}
OFTEN = {"system": LOINC, "code": "LA10044-8", "display": "Often"}


def new_patient() -> str:
    return f"pat-{uuid.uuid4().hex[:12]}"


def ucla3(
    patient: str,
    answers: tuple[dict[str, Any], ...] = (OFTEN, SOME, OFTEN),
    status: str = "completed",
    identifier: str | None = None,
) -> dict[str, Any]:
    """A UCLA-3 QuestionnaireResponse; by default Often, Some of the time, Often (8)."""
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": UCLA3,
        "status": status,
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2025-06-01T09:00:00Z",
        "item": [
            {"linkId": str(n), "answer": [{"valueCoding": coding}]}
            for n, coding in enumerate(answers, start=1)
        ],
    }
    if identifier is not None:
        resource["identifier"] = {"system": SYSTEM, "value": identifier}
    return resource


def send(client, method: str, url: str, resource: Any, **headers: str):
    body = json.dumps(resource).encode()
    return client.request(method, url, content=body, headers={"Content-Type": FHIR_JSON, **headers})


def hardly_ever(client) -> dict[str, Any]:
    """UCLA-3's "Hardly ever" coding, as its published Questionnaire offers it."""
    questionnaire = client.get("/fhir/Questionnaire/ucla-3").json()
    options = questionnaire["item"][0]["answerOption"]
    coding = next(o["valueCoding"] for o in options if o["valueCoding"]["display"] == "Hardly ever")
    return {k: coding[k] for k in ("system", "code", "display") if k in coding}


def read(client, path: str) -> tuple[dict[str, Any], str]:
    response = client.get(path)
    assert response.status_code == 200, response.text
    return response.json(), response.headers["ETag"]


def observations_of(client, patient: str) -> dict[str, dict[str, Any]]:
    bundle = client.get("/fhir/Observation", params={"patient": patient, "_count": 100}).json()
    found = {e["resource"]["id"]: e["resource"] for e in bundle.get("entry", [])}
    for resource in found.values():
        Observation.model_validate(resource)
    return found


def total_of(observations: dict[str, dict[str, Any]]) -> dict[str, Any]:
    (total,) = [o for i, o in observations.items() if i.endswith("-total")]
    return total


@pytest.fixture
def lonely_service(client) -> str:
    """A support group in the clinic's directory, so a loneliness need is matched."""
    response = client.post(
        "/v1/directory/services",
        json={
            "name": "Corrections Circle",
            "organization": "Test Trust",
            "category": "support-group",
            "modalities": ["online"],
        },
    )
    assert response.status_code == 201, response.text
    return response.json()["id"]


def screened(client, identifier: str | None = None) -> tuple[str, str, str]:
    """A patient with a profile and a stored lonely UCLA-3 response: (patient, response id,
    screening id)."""
    patient = new_patient()
    profile = {"languages": ["en"], "preferred_modalities": ["online"]}
    assert client.put(f"/v1/patients/{patient}", json=profile).status_code == 201
    created = send(
        client, "POST", "/fhir/QuestionnaireResponse", ucla3(patient, identifier=identifier)
    )
    assert created.status_code == 201, created.text
    assert created.headers["ETag"] == 'W/"1"'
    qr_id = created.json()["id"]
    total = total_of(observations_of(client, patient))
    assert total["valueQuantity"]["value"] == 8
    assert total["meta"]["versionId"] == "1"
    return patient, qr_id, total["id"].removesuffix("-total")


def needs(client, patient: str) -> list[dict[str, Any]]:
    response = client.get(f"/v1/patients/{patient}/referrals")
    assert response.status_code == 200, response.text
    return response.json()["recommendations"]["needs"]


def history_totals(client, patient: str) -> list[float]:
    response = client.get(f"/v1/patients/{patient}/screenings")
    assert response.status_code == 200, response.text
    return [s["total"] for h in response.json()["instruments"] for s in h["screenings"]]


def assert_rescored(
    client, patient: str, qr_id: str, screening_id: str, total: float, version: str
):
    """The response, its Observations and the /v1 views all say ``total``, at ``version``."""
    resource, etag = read(client, f"/fhir/QuestionnaireResponse/{qr_id}")
    QuestionnaireResponse.model_validate(resource)
    assert resource["meta"]["versionId"] == version and etag == f'W/"{version}"'
    observations = observations_of(client, patient)
    assert {i.rsplit("-", 1)[0] for i in observations} == {screening_id}, "same ids, no others"
    for observation in observations.values():
        assert observation["status"] == "corrected"
        assert observation["meta"]["versionId"] == version
        _, observation_etag = read(client, f"/fhir/Observation/{observation['id']}")
        assert observation_etag == f'W/"{version}"'
    assert total_of(observations)["valueQuantity"]["value"] == total
    screening = client.get(f"/v1/screenings/{screening_id}").json()
    assert screening["status"] == "corrected" and screening["score"]["total"] == total
    assert history_totals(client, patient) == [total]


def test_an_amended_post_with_the_identifier_rescores_the_stored_response(
    client, lonely_service
) -> None:
    patient, qr_id, screening_id = screened(client, identifier="amend-post")
    assert [n["signal"] for n in needs(client, patient)] == ["loneliness"]
    before = observations_of(client, patient)

    low = hardly_ever(client)
    amended = ucla3(patient, (low, low, low), status="amended", identifier="amend-post")
    response = send(client, "POST", "/fhir/QuestionnaireResponse", amended)

    assert response.status_code == 200, response.text
    body = response.json()
    QuestionnaireResponse.model_validate(body)
    assert body["id"] == qr_id and body["status"] == "amended"
    assert body["item"] == amended["item"]
    assert response.headers["ETag"] == 'W/"2"'
    assert_rescored(client, patient, qr_id, screening_id, 3, "2")
    after = observations_of(client, patient)
    assert after.keys() == before.keys()
    assert total_of(after)["interpretation"][0]["coding"][0]["code"] == "NEG"
    assert total_of(after)["derivedFrom"] == total_of(before)["derivedFrom"]
    assert needs(client, patient) == [], "the corrected (negative) score raises no need"


def test_a_resent_correction_makes_no_further_version(client) -> None:
    patient, qr_id, _ = screened(client, identifier="amend-twice")
    amended = ucla3(patient, (SOME, SOME, SOME), status="amended", identifier="amend-twice")
    for _ in range(2):
        response = send(
            client, "POST", "/fhir/QuestionnaireResponse", amended, **{"Idempotency-Key": "k-1"}
        )
        assert response.status_code == 200, response.text
        assert response.json()["id"] == qr_id
        assert response.json()["meta"]["versionId"] == "2"
    completed = ucla3(patient, identifier="amend-twice")
    again = send(client, "POST", "/fhir/QuestionnaireResponse", completed)
    assert again.status_code == 200 and again.json()["status"] == "amended", (
        "a completed re-send is a match"
    )


def test_conditional_update_rescores_and_honours_if_match(client) -> None:
    patient, qr_id, screening_id = screened(client, identifier="amend-put")
    url = f"/fhir/QuestionnaireResponse?identifier={SYSTEM}|amend-put"
    amended = ucla3(patient, (SOME, SOME, SOME), status="amended", identifier="amend-put")

    stale = send(client, "PUT", url, amended, **{"If-Match": 'W/"7"'})
    assert stale.status_code == 412, stale.text
    assert stale.json()["resourceType"] == "OperationOutcome"
    assert "If-Match" in json.dumps(stale.json()["issue"])
    assert total_of(observations_of(client, patient))["valueQuantity"]["value"] == 8

    response = send(client, "PUT", url, amended, **{"If-Match": 'W/"1"'})
    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == 'W/"2"'
    assert_rescored(client, patient, qr_id, screening_id, 6, "2")

    again = ucla3(patient, (OFTEN, OFTEN, OFTEN), status="amended", identifier="amend-put")
    third = send(client, "PUT", url, again)
    assert third.status_code == 200 and third.headers["ETag"] == 'W/"3"'
    assert_rescored(client, patient, qr_id, screening_id, 9, "3")


def test_update_by_id_rescores(client) -> None:
    patient, qr_id, screening_id = screened(client)
    current, _ = read(client, f"/fhir/QuestionnaireResponse/{qr_id}")
    changed = {**current, "status": "amended", "item": ucla3(patient, (SOME, SOME, SOME))["item"]}
    response = send(client, "PUT", f"/fhir/QuestionnaireResponse/{qr_id}", changed)
    assert response.status_code == 200, response.text
    assert_rescored(client, patient, qr_id, screening_id, 6, "2")


def test_conditional_update_with_no_match_creates_and_with_several_is_412(client) -> None:
    patient = new_patient()
    url = f"/fhir/QuestionnaireResponse?identifier={SYSTEM}|put-new"
    created = send(client, "PUT", url, ucla3(patient, identifier="put-new"))
    assert created.status_code == 201, created.text
    assert created.headers["ETag"] == 'W/"1"'
    assert created.headers["Location"].endswith(
        f"/fhir/QuestionnaireResponse/{created.json()['id']}/_history/1"
    )
    QuestionnaireResponse.model_validate(created.json())

    for system in ("urn:a", "urn:b"):
        resource = {**ucla3(patient), "identifier": {"system": system, "value": "twice"}}
        assert send(client, "POST", "/fhir/QuestionnaireResponse", resource).status_code == 201
    ambiguous = send(
        client,
        "PUT",
        "/fhir/QuestionnaireResponse?identifier=twice",
        ucla3(patient, status="amended"),
    )
    assert ambiguous.status_code == 412, ambiguous.text
    assert ambiguous.json()["issue"][0]["expression"] == ["identifier"]


def test_entered_in_error_withdraws_the_screening_and_keeps_it_readable(
    client, lonely_service
) -> None:
    patient, qr_id, screening_id = screened(client, identifier="mistake")
    assert needs(client, patient) != []
    withdrawn = ucla3(patient, status="entered-in-error", identifier="mistake")

    response = send(client, "POST", "/fhir/QuestionnaireResponse", withdrawn)

    assert response.status_code == 200, response.text
    assert response.headers["ETag"] == 'W/"2"'
    resource, _ = read(client, f"/fhir/QuestionnaireResponse/{qr_id}")
    QuestionnaireResponse.model_validate(resource)
    assert resource["status"] == "entered-in-error"
    observations = observations_of(client, patient)
    assert observations and all(o["status"] == "entered-in-error" for o in observations.values())
    assert all(o["meta"]["versionId"] == "2" for o in observations.values())
    assert total_of(observations)["valueQuantity"]["value"] == 8, "kept as it was recorded"
    screening = client.get(f"/v1/screenings/{screening_id}")
    assert screening.status_code == 200 and screening.json()["status"] == "entered-in-error"
    assert needs(client, patient) == []
    assert history_totals(client, patient) == []
    recommendations = client.get(f"/v1/patients/{patient}/referrals").json()["recommendations"]
    assert recommendations["items"] == []


def test_entered_in_error_needs_a_stored_response(client) -> None:
    patient = new_patient()
    for method, url in (
        ("POST", "/fhir/QuestionnaireResponse"),
        ("PUT", f"/fhir/QuestionnaireResponse?identifier={SYSTEM}|never-stored"),
    ):
        response = send(
            client,
            method,
            url,
            ucla3(patient, status="entered-in-error", identifier="never-stored"),
        )
        assert response.status_code == 422, response.text
        assert response.json()["issue"][0]["expression"] == ["QuestionnaireResponse.status"]
    assert client.get("/fhir/Observation", params={"patient": patient}).json()["total"] == 0


def test_each_correction_is_audited(client) -> None:
    patient, qr_id, _ = screened(client, identifier="audited")
    amended = ucla3(patient, (SOME, SOME, SOME), status="amended", identifier="audited")
    assert send(client, "POST", "/fhir/QuestionnaireResponse", amended).status_code == 200
    url = f"/fhir/QuestionnaireResponse?identifier={SYSTEM}|audited"
    withdrawn = ucla3(patient, status="entered-in-error", identifier="audited")
    assert send(client, "PUT", url, withdrawn).status_code == 200

    events = client.get("/v1/audit-events", params={"patient_id": patient, "limit": 200}).json()
    updates = [
        e
        for e in events["items"]
        if e["action"] == "update" and e["resource_type"] == "QuestionnaireResponse"
    ]
    assert len(updates) == 2
    for event in updates:
        assert event["resource_id"] == qr_id
        assert event["status_code"] == 200 and event["outcome"] == "success"


def wrong_instrument(patient: str) -> dict[str, Any]:
    return {
        **ucla3(patient, status="amended"),
        "questionnaire": "https://belong.example/fhir/Questionnaire/ahc-isolation",
        "item": [
            {"linkId": "1", "answer": [{"valueCoding": {"system": LOINC, "code": "LA10044-8"}}]}
        ],
    }


REFUSED = {
    "unscored status": (
        lambda p: ucla3(p, status="in-progress"),
        422,
        "QuestionnaireResponse.status",
    ),
    "unknown status": (lambda p: ucla3(p, status="corrected"), 400, "QuestionnaireResponse.status"),
    "another patient": (
        lambda p: ucla3(new_patient(), status="amended"),
        422,
        "QuestionnaireResponse.subject",
    ),
    "another instrument": (wrong_instrument, 422, "QuestionnaireResponse.questionnaire"),
    "not an option": (
        lambda p: ucla3(p, ({"system": LOINC, "code": "LA0000-0"}, SOME, SOME), status="amended"),
        422,
        None,
    ),
    "no authored": (
        lambda p: {k: v for k, v in ucla3(p, status="amended").items() if k != "authored"},
        422,
        "QuestionnaireResponse.authored",
    ),
}


@pytest.mark.parametrize("case", REFUSED)
def test_a_refused_correction_keeps_what_is_stored(client, case) -> None:
    patient, qr_id, screening_id = screened(client)
    before, _ = read(client, f"/fhir/QuestionnaireResponse/{qr_id}")
    observations = observations_of(client, patient)
    build, status, field = REFUSED[case]

    response = send(client, "PUT", f"/fhir/QuestionnaireResponse/{qr_id}", build(patient))

    assert response.status_code == status, response.text
    issues = response.json()["issue"]
    if field is not None:
        assert field in [e for issue in issues for e in issue.get("expression", [])], issues
    assert read(client, f"/fhir/QuestionnaireResponse/{qr_id}") == (before, 'W/"1"')
    assert observations_of(client, patient) == observations
    assert client.get(f"/v1/screenings/{screening_id}").json()["status"] == "final"


@pytest.mark.parametrize(
    ("url", "headers", "field"),
    [
        ("/fhir/QuestionnaireResponse", {}, "identifier"),
        ("/fhir/QuestionnaireResponse?identifier=a|b|c", {}, "identifier"),
        ("/fhir/QuestionnaireResponse/{id}", {"If-Match": "1"}, "If-Match"),
        ("/fhir/QuestionnaireResponse/{id}", {}, "QuestionnaireResponse.id"),
    ],
)
def test_malformed_updates_are_400_naming_the_field(client, url, headers, field) -> None:
    patient, qr_id, _ = screened(client)
    body = {**ucla3(patient, status="amended"), "id": "not-this-one"}
    if "If-Match" in headers:
        body["id"] = qr_id
    response = send(client, "PUT", url.format(id=qr_id), body, **headers)
    assert response.status_code == 400, response.text
    assert field in json.dumps(response.json()["issue"])
    assert read(client, f"/fhir/QuestionnaireResponse/{qr_id}")[1] == 'W/"1"'


def test_update_of_an_unknown_id_is_404(client) -> None:
    response = send(
        client, "PUT", f"/fhir/QuestionnaireResponse/{uuid.uuid4()}", ucla3(new_patient())
    )
    assert response.status_code == 404, response.text


def test_another_clinics_response_cannot_be_corrected(client, make_clinic) -> None:
    patient, qr_id, _ = screened(client, identifier="theirs")
    stranger = make_clinic()
    amended = ucla3(patient, (SOME, SOME, SOME), status="amended", identifier="theirs")
    by_id = send(client, "PUT", f"/fhir/QuestionnaireResponse/{qr_id}", amended, **stranger.headers)
    assert by_id.status_code == 404
    assert read(client, f"/fhir/QuestionnaireResponse/{qr_id}")[1] == 'W/"1"'


# --- fhirpy against a real server ---------------------------------------------------------


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("corrections")
    url = scratch_database("corrections")
    with live_server(url, folder, ("screenings:write", "screenings:read"), clinic="fixes") as live:
        yield live


def test_fhirpy_save_and_conditional_update_correct_a_response(served: LiveServer) -> None:
    fhir = SyncFHIRClient(
        f"{served.origin}/fhir",
        authorization=f"Bearer {served.token}",
        requests_config={"timeout": TIMEOUT},
    )
    patient = new_patient()
    qr = fhir.resource("QuestionnaireResponse", **ucla3(patient, identifier="fhirpy-1"))
    qr.save()  # POST: no id yet
    assert qr["meta"]["versionId"] == "1"

    qr["status"] = "amended"
    qr["item"] = ucla3(patient, (SOME, SOME, SOME))["item"]
    qr.save()  # PUT /QuestionnaireResponse/{id}
    assert qr["meta"]["versionId"] == "2"
    QuestionnaireResponse.model_validate(qr.serialize())

    def total() -> dict[str, Any]:
        found = (
            fhir.resources("Observation")
            .search(patient=patient, code=f"{LOINC}|106421-1")
            .fetch_all()
        )
        (one,) = found
        Observation.model_validate(one.serialize())
        return one.serialize()

    assert total()["valueQuantity"]["value"] == 6 and total()["status"] == "corrected"

    withdrawn = fhir.resource(
        "QuestionnaireResponse", **ucla3(patient, status="entered-in-error", identifier="fhirpy-1")
    )
    stored, created = (
        fhir.resources("QuestionnaireResponse")
        .search(identifier=f"{SYSTEM}|fhirpy-1")
        .update(withdrawn)
    )
    assert not created and stored.id == qr.id and stored["meta"]["versionId"] == "3"
    assert total()["status"] == "entered-in-error"
    read_back = requests.get(
        f"{served.origin}/fhir/QuestionnaireResponse/{qr.id}",
        headers={"Authorization": f"Bearer {served.token}"},
        timeout=TIMEOUT,
    )
    assert read_back.status_code == 200 and read_back.headers["ETag"] == 'W/"3"'
    assert read_back.json()["status"] == "entered-in-error"
