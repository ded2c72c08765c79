"""The FHIR REST interactions of /fhir, against FHIR R4 http.html and search.html.

QuestionnaireResponse create (plain and conditional), read and the errors it answers;
Observation read and search (patient, subject, code, category, date, _lastUpdated,
_count, _sort) with paging; and conditional create under concurrency.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import httpx
import hypothesis
import pytest
import sqlalchemy as sa
from hypothesis import strategies as st

from service.cli import OPENAPI_DIR
from service.platform.credentials import principal_for_token
from service.platform.tables import idempotency_keys, observations, questionnaire_responses

FHIR_JSON = "application/fhir+json"
LOINC = "http://loinc.org"
BELONG = "https://belong.example/fhir"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
MAX_PAGES = 100


def new_patient() -> str:
    return f"pat-{uuid.uuid4().hex[:12]}"


def ahc_response(
    patient: str,
    answer: str = "LA10044-8",
    identifier: dict[str, str] | None = None,
    authored: str = "2025-04-01T12:00:00Z",
) -> dict[str, Any]:
    """A response to Belong's AHC loneliness Questionnaire (one item, LOINC answers)."""
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{BELONG}/Questionnaire/ahc-isolation",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": authored,
        "item": [
            {
                "linkId": "1",
                "answer": [{"valueCoding": {"system": LOINC, "code": answer}}],
            }
        ],
    }
    if identifier is not None:
        resource["identifier"] = identifier
    return resource


def post(client, resource: Any, headers: dict[str, str] | None = None, **kwargs: Any):
    body = resource if isinstance(resource, bytes) else json.dumps(resource).encode()
    return client.post(
        "/fhir/QuestionnaireResponse",
        content=body,
        headers={"Content-Type": FHIR_JSON, **(headers or {})},
        **kwargs,
    )


def outcome(response, status: int) -> list[dict[str, Any]]:
    """The issues of an OperationOutcome answered with ``status``."""
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"]
    return body["issue"]


def search(client, **params: Any) -> dict[str, Any]:
    response = client.get("/fhir/Observation", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    bundle = response.json()
    assert bundle["resourceType"] == "Bundle" and bundle["type"] == "searchset"
    return bundle


def ids(bundle: dict[str, Any]) -> list[str]:
    return [entry["resource"]["id"] for entry in bundle.get("entry", [])]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle.get("link", []) if x["relation"] == relation), None)


def follow(client, first: dict[str, Any]) -> tuple[list[str], list[int]]:
    """Every id on every page, in order, following ``next``; and each page's total."""
    seen, totals, bundle = ids(first), [first["total"]], first
    for _ in range(MAX_PAGES):
        url = link(bundle, "next")
        if url is None:
            return seen, totals
        parts = urlsplit(url)
        assert parts.path == "/fhir/Observation"
        response = client.get(parts.path, params=parse_qsl(parts.query))
        assert response.status_code == 200
        bundle = response.json()
        seen += ids(bundle)
        totals.append(bundle["total"])
    raise AssertionError(f"more than {MAX_PAGES} pages")


def count_rows(session_client, table: sa.Table, clinic) -> int:
    async def count() -> int:
        async with session_client.app.state.db.begin() as conn:
            query = sa.select(sa.func.count()).where(table.c.clinic_id == clinic.clinic_id)
            return (await conn.execute(query)).scalar_one()

    return session_client.blocking_portal.call(count)


def clinic_of(client):
    """The clinic the ``client`` fixture is authenticated as (found by its token)."""
    token = client.headers["Authorization"].removeprefix("Bearer ")

    async def find():
        async with client.app.state.db.engine.connect() as conn:
            principal, _ = await principal_for_token(conn, token)
            return principal

    return client.blocking_portal.call(find)


# -- create ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "content_type",
    [FHIR_JSON, "application/json", "application/fhir+json; fhirVersion=4.0", "Application/JSON"],
)
def test_create_accepts_fhir_json_and_json(client, content_type) -> None:
    patient = new_patient()
    response = post(client, ahc_response(patient), {"Content-Type": content_type})
    assert response.status_code == 201, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)


def test_create_answers_415_for_other_media_types(client) -> None:
    for content_type in ("text/plain", "application/xml", "application/fhir+xml"):
        response = post(client, ahc_response(new_patient()), {"Content-Type": content_type})
        issues = outcome(response, 415)
        assert issues[0]["code"] == "not-supported"
    assert count_rows(client, questionnaire_responses, clinic_of(client)) == 0


def test_create_returns_201_location_etag_and_the_resource(client) -> None:
    patient = new_patient()
    posted = ahc_response(patient, identifier={"system": "urn:ehr", "value": "c-1"})
    response = post(client, posted)
    assert response.status_code == 201
    body = response.json()
    assert body["resourceType"] == "QuestionnaireResponse"
    assert body["id"] and body["meta"]["versionId"] == "1" and body["meta"]["lastUpdated"]
    for key in ("identifier", "questionnaire", "status", "subject", "authored", "item"):
        assert body[key] == posted[key]
    assert response.headers["etag"] == f'W/"{body["meta"]["versionId"]}"'
    location = response.headers["location"]
    assert f"/fhir/QuestionnaireResponse/{body['id']}" in location
    read = client.get(urlsplit(location).path.split("/_history/")[0])
    assert read.status_code == 200
    assert read.json() == body
    assert read.headers["etag"] == response.headers["etag"]
    # Scored: the item and the total, interpreted (Often is a positive screen).
    found = search(client, patient=patient)
    assert found["total"] == 2
    (total,) = [e["resource"] for e in found["entry"] if "valueQuantity" in e["resource"]]
    assert total["valueQuantity"]["value"] == 4
    assert total["interpretation"][0]["coding"][0]["code"] == "POS"
    assert {"reference": f"QuestionnaireResponse/{body['id']}"} in total["derivedFrom"]


def test_read_of_unknown_ids_is_404(client) -> None:
    for path in (
        f"/fhir/QuestionnaireResponse/{uuid.uuid4()}",
        f"/fhir/Observation/{uuid.uuid4()}-total",
    ):
        issues = outcome(client.get(path), 404)
        assert issues[0]["code"] == "not-found"


# -- conditional create ----------------------------------------------------------------


def test_conditional_create_with_if_none_exist(client) -> None:
    patient = new_patient()
    posted = ahc_response(patient, identifier={"system": "urn:ehr", "value": "qr-1"})
    header = {"If-None-Exist": "identifier=urn:ehr|qr-1"}
    first = post(client, posted, header)
    assert first.status_code == 201
    again = post(client, posted, header)
    assert again.status_code == 200
    assert again.json() == first.json()
    assert again.headers["etag"] == first.headers["etag"]
    assert search(client, patient=patient)["total"] == 2, "nothing scored twice"
    # The bare value and the URL-encoded form name the same one.
    assert post(client, posted, {"If-None-Exist": "identifier=qr-1"}).status_code == 200
    encoded = {"If-None-Exist": "identifier=urn%3Aehr%7Cqr-1"}
    assert post(client, posted, encoded).json()["id"] == first.json()["id"]
    # Another system with the same value is not a match.
    other = ahc_response(patient, identifier={"system": "urn:other", "value": "qr-1"})
    assert post(client, other, {"If-None-Exist": "identifier=urn:other|qr-1"}).status_code == 201
    # A retry of a plain create with a stored identifier returns the stored resource.
    retry = post(client, posted)
    assert retry.status_code == 200
    assert retry.json()["id"] == first.json()["id"]


def test_a_keyed_create_whose_identifier_is_taken_stores_nothing(client, session_client) -> None:
    """The key, the resource and its Observations are one write: when the identifier is
    already stored, none of them is, so the key stays free for another request."""
    patient = new_patient()
    taken = {"system": "urn:ehr", "value": f"taken-{uuid.uuid4().hex[:8]}"}
    first = post(client, ahc_response(patient, identifier=taken))
    assert first.status_code == 201
    clinic = clinic_of(client)
    counts = {
        table.name: count_rows(session_client, table, clinic)
        for table in (questionnaire_responses, observations, idempotency_keys)
    }
    key = {"Idempotency-Key": f"key-{uuid.uuid4()}"}
    clash = post(client, ahc_response(patient, answer="LA6270-8", identifier=taken), key)
    assert clash.status_code == 200, clash.text
    assert clash.json()["id"] == first.json()["id"]
    for table in (questionnaire_responses, observations, idempotency_keys):
        assert count_rows(session_client, table, clinic) == counts[table.name], table.name
    # Not stored with the clash, the key is free: another body under it is a new create.
    fresh = {"system": "urn:ehr", "value": f"fresh-{uuid.uuid4().hex[:8]}"}
    created = post(client, ahc_response(patient, identifier=fresh), key)
    assert created.status_code == 201, created.text
    assert count_rows(session_client, idempotency_keys, clinic) == counts["idempotency_keys"] + 1


def test_conditional_create_with_the_query_string(client) -> None:
    """fhirpy's get_or_create sends the condition as the query string of the POST."""
    patient = new_patient()
    posted = ahc_response(patient, identifier={"system": "urn:ehr", "value": "qs-1"})
    params = {"identifier": "urn:ehr|qs-1"}
    first = post(client, posted, params=params)
    assert first.status_code == 201
    again = post(client, posted, params=params)
    assert again.status_code == 200
    assert again.json()["id"] == first.json()["id"]
    assert search(client, patient=patient)["total"] == 2


def test_conditional_create_with_no_system_matches_any_system(client) -> None:
    patient = new_patient()
    posted = ahc_response(patient, identifier={"system": "urn:a", "value": "shared"})
    first = post(client, posted)
    assert first.status_code == 201
    assert (
        post(client, posted, {"If-None-Exist": "identifier=shared"}).json()["id"]
        == (first.json()["id"])
    )
    # "|value" is a value with no system: the stored one has a system, so no match.
    no_system = ahc_response(patient, identifier={"value": "shared"})
    assert post(client, no_system, {"If-None-Exist": "identifier=|shared"}).status_code == 201


def test_conditional_create_is_412_when_ambiguous(client, session_client) -> None:
    patient = new_patient()
    for system in ("urn:a", "urn:b"):
        posted = ahc_response(patient, identifier={"system": system, "value": "twice"})
        assert post(client, posted).status_code == 201
    clinic = clinic_of(client)
    before = count_rows(session_client, questionnaire_responses, clinic)
    fresh = ahc_response(patient, identifier={"system": "urn:c", "value": "twice"})
    issues = outcome(post(client, fresh, {"If-None-Exist": "identifier=twice"}), 412)
    assert issues[0]["code"] in ("duplicate", "multiple-matches")
    issues = outcome(post(client, fresh, params={"identifier": "twice"}), 412)
    assert count_rows(session_client, questionnaire_responses, clinic) == before


def test_conditional_create_is_scoped_to_the_clinic(client, make_clinic) -> None:
    patient = new_patient()
    posted = ahc_response(patient, identifier={"system": "urn:ehr", "value": "per-clinic"})
    header = {"If-None-Exist": "identifier=urn:ehr|per-clinic"}
    first = post(client, posted, header)
    assert first.status_code == 201
    other = make_clinic()
    second = post(client, posted, {**header, **other.headers})
    assert second.status_code == 201
    assert second.json()["id"] != first.json()["id"]


@pytest.mark.parametrize(
    "condition",
    ["identifier=", "identifier=urn:ehr|", "patient=Patient/1", "identifier=a&identifier=b"],
)
def test_unsupported_conditions_are_400(client, condition) -> None:
    posted = ahc_response(new_patient(), identifier={"system": "urn:ehr", "value": "x"})
    outcome(post(client, posted, {"If-None-Exist": condition}), 400)


# -- PRAPARE and AHC HRSN forms --------------------------------------------------------


def coding(code: str, display: str) -> dict[str, Any]:
    return {"valueCoding": {"system": LOINC, "code": code, "display": display}}


def prapare_response(patient: str, contact: str = "LA27722-0") -> dict[str, Any]:
    """An LHC-Forms style PRAPARE response: groups, path linkIds, LOINC answers."""
    return {
        "resourceType": "QuestionnaireResponse",
        "meta": {
            "profile": ["http://hl7.org/fhir/uv/sdc/StructureDefinition/sdc-questionnaireresponse"]
        },
        "identifier": {"system": "urn:ehr:prapare", "value": str(uuid.uuid4())},
        "questionnaire": "http://loinc.org/q/93025-5",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2025-05-06T14:00:00-04:00",
        "item": [
            {
                "linkId": "/93043-8",
                "text": "Personal characteristics",
                "item": [
                    {
                        "linkId": "/93043-8/56051-6",
                        "text": "Hispanic or Latino?",
                        "answer": [coding("LA33-6", "Yes")],
                    },
                ],
            },
            {
                "linkId": "/93041-2",
                "text": "Social and emotional health",
                "item": [
                    {
                        "linkId": "/93043-8/93029-7",
                        "text": (
                            "How often do you see or talk to people that you care about "
                            "and feel close to?"
                        ),
                        "answer": [coding(contact, "Less than once a week")],
                    },
                    {
                        "linkId": "/93041-2/93038-8",
                        "text": "Stress",
                        "answer": [coding("LA6568-5", "Not at all")],
                    },
                ],
            },
        ],
    }


def ahc_hrsn_response(patient: str, lonely: str = "LA9933-8") -> dict[str, Any]:
    """An AHC HRSN response with its housing item and the loneliness item 93159-2."""
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://loinc.org/q/96777-8",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2025-05-07T09:00:00Z",
        "item": [
            {
                "linkId": "/71802-3",
                "text": "Housing status",
                "answer": [coding("LA31993-1", "I have a steady place to live")],
            },
            {
                "linkId": "/96780-2",
                "text": "Supplemental questions",
                "item": [
                    {
                        "linkId": "/96780-2/93159-2",
                        "text": "How often do you feel lonely or isolated from those around you?",
                        "answer": [coding(lonely, "Always")],
                    }
                ],
            },
        ],
    }


def scored(client, patient: str) -> dict[str, dict[str, Any]]:
    """The patient's Observations by their (system, code)."""
    found = search(client, patient=patient, _count=100)
    by_code = {}
    for entry in found.get("entry", []):
        (c,) = entry["resource"]["code"]["coding"]
        by_code[c["code"]] = entry["resource"]
    assert len(by_code) == found["total"]
    return by_code


def test_prapare_response_is_picked_out_and_scored(client) -> None:
    patient = new_patient()
    posted = prapare_response(patient)
    response = post(client, posted)
    assert response.status_code == 201, response.text
    stored = client.get(f"/fhir/QuestionnaireResponse/{response.json()['id']}").json()
    assert stored["item"] == posted["item"], "the received form is stored as sent"
    assert stored["questionnaire"] == posted["questionnaire"]
    by_code = scored(client, patient)
    item = by_code["93029-7"]
    (answer,) = item["valueCodeableConcept"]["coding"]
    assert (answer["system"], answer["code"]) == (LOINC, "LA27722-0")
    assert item["effectiveDateTime"] == "2025-05-06T18:00:00Z"
    (total,) = [o for o in by_code.values() if "valueQuantity" in o]
    assert total["valueQuantity"]["value"] == 1
    assert total["interpretation"][0]["coding"][0]["code"] == "POS"
    assert len(by_code) == 2, "only the social-contact item belongs to an instrument"


def test_prapare_weekly_contact_is_negative(client) -> None:
    patient = new_patient()
    assert post(client, prapare_response(patient, "LA30131-9")).status_code == 201
    (total,) = [o for o in scored(client, patient).values() if "valueQuantity" in o]
    assert total["valueQuantity"]["value"] == 3
    assert total["interpretation"][0]["coding"][0]["code"] == "NEG"


def test_ahc_hrsn_response_is_picked_out_and_scored(client) -> None:
    patient = new_patient()
    response = post(client, ahc_hrsn_response(patient))
    assert response.status_code == 201, response.text
    by_code = scored(client, patient)
    assert set(by_code) == {"93159-2", "total"}
    total = by_code["total"]
    assert total["code"]["coding"][0]["system"] == f"{BELONG}/CodeSystem/ahc-isolation"
    assert total["valueQuantity"]["value"] == 5
    assert total["interpretation"][0]["coding"][0]["code"] == "POS"


def test_one_form_with_two_instruments_scores_both(client) -> None:
    patient = new_patient()
    posted = prapare_response(patient)
    posted["item"] += ahc_hrsn_response(patient)["item"]
    response = post(client, posted)
    assert response.status_code == 201, response.text
    by_code = search(client, patient=patient, _count=100)
    codes = sorted(e["resource"]["code"]["coding"][0]["code"] for e in by_code["entry"])
    assert codes == ["93029-7", "93159-2", "total", "total"]
    qr = {"reference": f"QuestionnaireResponse/{response.json()['id']}"}
    assert all(qr in e["resource"]["derivedFrom"] for e in by_code["entry"])


# -- errors ----------------------------------------------------------------------------


def with_nul(path: str) -> dict[str, Any]:
    resource = ahc_response(new_patient())
    if path == "item.text":
        resource["item"][0]["text"] = "How often\u0000?"
    elif path == "linkId":
        resource["item"][0]["linkId"] = "1\u0000"
    elif path == "subject":
        resource["subject"]["reference"] += "\u0000"
    elif path == "unknown-element":
        resource["note"] = {"deep": ["ok", "bad\u0000"]}
    elif path == "key":
        resource["x\u0000"] = "y"
    elif path == "answer-code":
        resource["item"][0]["answer"][0]["valueCoding"]["code"] = "LA9933-8\u0000"
    return resource


@pytest.mark.parametrize(
    ("case", "body", "status"),
    [
        ("not-json", b'{"resourceType": "QuestionnaireResponse",', 400),
        ("not-utf8", b'{"resourceType": "\xff"}', 400),
        ("array", b"[]", 400),
        ("empty", b"", 400),
        ("wrong-resource-type", {**ahc_response("p"), "resourceType": "Observation"}, 400),
        (
            "no-resource-type",
            {k: v for k, v in ahc_response("p").items() if k != "resourceType"},
            400,
        ),
        ("status-not-a-string", {**ahc_response("p"), "status": 1}, 400),
        ("no-status", {k: v for k, v in ahc_response("p").items() if k != "status"}, 400),
        ("item-not-a-list", {**ahc_response("p"), "item": {"linkId": "1"}}, 400),
        ("authored-not-a-date", {**ahc_response("p"), "authored": "yesterday"}, 400),
        ("authored-without-zone", {**ahc_response("p"), "authored": "2025-04-01T12:00:00"}, 400),
        pytest.param(
            "meta-not-an-object",
            {**ahc_response("p"), "meta": "v1"},
            400,
        ),
    ],
)
def test_unparseable_or_base_invalid_input_is_400(client, case, body, status) -> None:
    outcome(post(client, body), status)


@pytest.mark.parametrize(
    "where", ["item.text", "linkId", "subject", "unknown-element", "key", "answer-code"]
)
def test_nul_characters_anywhere_are_400(client, where) -> None:
    issues = outcome(post(client, with_nul(where)), 400)
    assert issues[0]["code"] == "invalid"
    assert "NUL" in issues[0]["diagnostics"]


def future(days: int = 1) -> str:
    return (datetime.now(UTC) + timedelta(days=days)).isoformat(timespec="seconds")


@pytest.mark.parametrize(
    ("case", "change", "field"),
    [
        ("in-progress", {"status": "in-progress"}, "QuestionnaireResponse.status"),
        ("stopped", {"status": "stopped"}, "QuestionnaireResponse.status"),
        ("no-subject", {"subject": None}, "QuestionnaireResponse.subject"),
        ("group-subject", {"subject": {"reference": "Group/g1"}}, "QuestionnaireResponse.subject"),
        ("no-authored", {"authored": None}, "QuestionnaireResponse.authored"),
        ("future-authored", {"authored": future()}, "QuestionnaireResponse.authored"),
    ],
)
def test_business_rule_failures_are_422(client, case, change, field) -> None:
    resource = {**ahc_response(new_patient()), **change}
    resource = {k: v for k, v in resource.items() if v is not None}
    issues = outcome(post(client, resource), 422)
    assert field in [e for issue in issues for e in issue.get("expression", [])]


def test_an_answer_that_is_not_an_option_is_422(client) -> None:
    resource = ahc_response(new_patient(), answer="LA6568-5")  # "Not at all": not an option
    issues = outcome(post(client, resource), 422)
    expressions = [e for issue in issues for e in issue.get("expression", [])]
    assert "QuestionnaireResponse.item[0].answer[0].valueCoding" in expressions
    assert issues[0]["code"] == "processing"


def test_a_questionnaire_nothing_can_be_scored_from_is_422(client) -> None:
    resource = {
        **ahc_response(new_patient()),
        "questionnaire": "http://example.org/Questionnaire/phq-9",
        "item": [{"linkId": "/44250-9", "answer": [coding("LA6568-5", "Not at all")]}],
    }
    issues = outcome(post(client, resource), 422)
    assert issues[0]["expression"] == ["QuestionnaireResponse.questionnaire"]


@pytest.mark.parametrize("case", ["integer-not-an-option", "answered-twice", "nul"])
def test_issue_expressions_point_into_the_resource(client, case) -> None:
    resource = ahc_response(new_patient())
    status = 422
    if case == "integer-not-an-option":
        resource["item"][0]["answer"] = [{"valueInteger": 9}]
    elif case == "answered-twice":
        resource["item"].append({"linkId": "1", "answer": [{"valueInteger": 2}]})
    else:
        resource, status = with_nul("item.text"), 400
    issues = outcome(post(client, resource), status)
    expressions = [e for issue in issues for e in issue.get("expression", [])]
    assert expressions
    for expression in expressions:
        assert expression.startswith("QuestionnaireResponse."), expression


@pytest.mark.parametrize("authored", ["2025-03-04", "2025-03"])
def test_a_date_only_authored_is_not_a_400(client, authored) -> None:
    response = post(client, {**ahc_response(new_patient()), "authored": authored})
    assert response.status_code in (200, 201, 422), response.text


def test_failed_creates_store_nothing(client, session_client) -> None:
    clinic = clinic_of(client)
    for resource in (
        {**ahc_response(new_patient()), "status": "in-progress"},
        ahc_response(new_patient(), answer="LA6568-5"),
        with_nul("item.text"),
    ):
        assert post(client, resource).status_code in (400, 422)
    assert count_rows(session_client, questionnaire_responses, clinic) == 0
    assert count_rows(session_client, observations, clinic) == 0


# -- authentication, scopes, clinics ---------------------------------------------------


def test_no_token_is_401(session_client) -> None:
    for response in (
        session_client.get("/fhir/Observation"),
        session_client.get(f"/fhir/QuestionnaireResponse/{uuid.uuid4()}"),
        session_client.post(
            "/fhir/QuestionnaireResponse",
            content=json.dumps(ahc_response("p")).encode(),
            headers={"Content-Type": FHIR_JSON},
        ),
        session_client.get("/fhir/Observation", headers={"Authorization": "Bearer nope"}),
    ):
        issues = outcome(response, 401)
        assert issues[0]["code"] == "login"
        assert response.headers["www-authenticate"].startswith("Bearer")
    assert session_client.get("/fhir/metadata").status_code == 200


def test_missing_scope_is_403(session_client, make_clinic) -> None:
    reader = make_clinic(scopes=("screenings:read",))
    writer = make_clinic(scopes=("screenings:write",))
    body = json.dumps(ahc_response(new_patient())).encode()
    response = session_client.post(
        "/fhir/QuestionnaireResponse",
        content=body,
        headers={**reader.headers, "Content-Type": FHIR_JSON},
    )
    assert outcome(response, 403)[0]["code"] == "forbidden"
    created = session_client.post(
        "/fhir/QuestionnaireResponse",
        content=body,
        headers={**writer.headers, "Content-Type": FHIR_JSON},
    )
    assert created.status_code == 201
    qr_id = created.json()["id"]
    for path in ("/fhir/Observation", f"/fhir/QuestionnaireResponse/{qr_id}"):
        response = session_client.get(path, headers=writer.headers)
        assert outcome(response, 403)[0]["code"] == "forbidden"


def test_another_clinics_resources_answer_404(client, make_clinic) -> None:
    patient = new_patient()
    created = post(client, ahc_response(patient))
    assert created.status_code == 201
    (observation_id, _) = ids(search(client, patient=patient))
    other = make_clinic().headers
    qr_path = f"/fhir/QuestionnaireResponse/{created.json()['id']}"
    outcome(client.get(qr_path, headers=other), 404)
    outcome(client.get(f"/fhir/Observation/{observation_id}", headers=other), 404)
    assert (
        client.get("/fhir/Observation", params={"patient": patient}, headers=other).json()["total"]
        == 0
    )
    assert client.get("/fhir/Observation", headers=other).json()["total"] == 0


# -- search ----------------------------------------------------------------------------

DAY1, DAY2, DAY3 = "2025-01-01T10:00:00Z", "2025-01-02T10:00:00Z", "2025-01-03T10:00:00Z"
LATE2 = "2025-01-02T23:59:59Z"


@pytest.fixture
def history(client) -> dict[str, Any]:
    """One patient: UCLA-3 on three days (5 Observations each) and an AHC item late on
    day 2 (2 Observations); and a second patient with one UCLA-3."""
    patient, other = new_patient(), new_patient()
    before = datetime.now(UTC) - timedelta(seconds=1)
    screenings = [
        (patient, "ucla-3", DAY1, {"1": 3, "2": 3, "3": 3}),
        (patient, "ucla-3", DAY2, {"1": 1, "2": 1, "3": 1}),
        (patient, "ucla-3", DAY3, {"1": 2, "2": 2, "3": 2}),
        (patient, "ahc-isolation", LATE2, {"1": 1}),
        (other, "ucla-3", DAY2, {"1": 2, "2": 2, "3": 2}),
    ]
    for patient_id, instrument, completed_at, answers in screenings:
        response = client.post(
            "/v1/screenings",
            json={
                "patient_id": patient_id,
                "instrument": instrument,
                "completed_at": completed_at,
                "answers": answers,
            },
        )
        assert response.status_code == 201, response.text
    return {"patient": patient, "other": other, "before": before}


def effective(bundle: dict[str, Any]) -> list[str]:
    return [e["resource"]["effectiveDateTime"] for e in bundle.get("entry", [])]


def test_search_by_patient_and_subject(client, history) -> None:
    patient = history["patient"]
    everything = search(client, patient=patient, _count=100)
    assert everything["total"] == len(everything["entry"]) == 17
    assert all(
        e["resource"]["subject"] == {"reference": f"Patient/{patient}"} for e in everything["entry"]
    )
    for params in (
        {"patient": f"Patient/{patient}"},
        {"subject": patient},
        {"subject": f"Patient/{patient}"},
    ):
        assert sorted(ids(search(client, **params, _count=100))) == sorted(ids(everything))
    assert search(client, patient=history["other"])["total"] == 5
    assert search(client, patient=new_patient())["total"] == 0
    assert search(client, _count=100)["total"] == 22


@pytest.mark.parametrize(
    ("code", "expected"),
    [
        (f"{LOINC}|106421-1", 3),
        ("106421-1", 3),
        (f"{LOINC}|106418-7", 3),
        (f"{LOINC}|66855-8,{LOINC}|93159-2", 4),
        ("http://snomed.info/sct|106421-1", 0),
        (f"{BELONG}/CodeSystem/ucla-3|2", 3),
        ("2", 3),
        (f"{BELONG}/CodeSystem/ahc-isolation|total", 1),
        ("total", 1),
        ("0000-0", 0),
    ],
)
def test_search_by_code(client, history, code, expected) -> None:
    bundle = search(client, patient=history["patient"], code=code, _count=100)
    assert bundle["total"] == len(bundle.get("entry", [])) == expected
    tokens = [t.partition("|") for t in code.split(",")]
    for entry in bundle.get("entry", []):
        (c,) = entry["resource"]["code"]["coding"]
        assert any(c["code"] == t[2] if t[1] else c["code"] == t[0] for t in tokens)


def test_search_by_code_with_an_empty_system_matches_only_codes_without_one(
    client, history
) -> None:
    assert search(client, patient=history["patient"], code="|106421-1")["total"] == 0


@pytest.mark.parametrize(
    ("category", "expected"),
    [
        ("survey", 17),
        (f"{OBSERVATION_CATEGORY}|survey", 17),
        ("sdoh", 17),
        (f"{US_CORE_CATEGORY}|sdoh", 17),
        ("social-connection", 17),
        ("survey,laboratory", 17),
        ("laboratory", 0),
        ("vital-signs", 0),
        ("functional-status", 0),
    ],
)
def test_search_by_category(client, history, category, expected) -> None:
    bundle = search(client, patient=history["patient"], category=category, _count=100)
    assert bundle["total"] == len(bundle.get("entry", [])) == expected


def test_search_by_category_checks_the_system(client, history) -> None:
    patient = history["patient"]
    assert search(client, patient=patient, category="http://example.org/x|survey")["total"] == 0
    # sdoh is a US Core category code, not an observation-category one.
    assert search(client, patient=patient, category=f"{OBSERVATION_CATEGORY}|sdoh")["total"] == 0


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        # Day precision: the whole UTC day.
        (["2025-01-02"], [DAY2] * 5 + [LATE2] * 2),
        (["eq2025-01-02"], [DAY2] * 5 + [LATE2] * 2),
        (["ge2025-01-02"], [DAY2] * 5 + [LATE2] * 2 + [DAY3] * 5),
        (["gt2025-01-02"], [DAY3] * 5),
        (["lt2025-01-02"], [DAY1] * 5),
        (["le2025-01-02"], [DAY1] * 5 + [DAY2] * 5 + [LATE2] * 2),
        (["ge2025-01-02", "lt2025-01-03"], [DAY2] * 5 + [LATE2] * 2),
        # Instant precision (to the second).
        (["eq2025-01-02T10:00:00Z"], [DAY2] * 5),
        (["2025-01-02T11:00:00+01:00"], [DAY2] * 5),
        (["gt2025-01-02T10:00:00Z"], [LATE2] * 2 + [DAY3] * 5),
        (["ge2025-01-02T10:00:00Z"], [DAY2] * 5 + [LATE2] * 2 + [DAY3] * 5),
        (["lt2025-01-02T10:00:00Z"], [DAY1] * 5),
        (["le2025-01-02T10:00:00Z"], [DAY1] * 5 + [DAY2] * 5),
        (["lt2025-01-02T09:59:59Z"], [DAY1] * 5),
        (["eq2025-01-02T23:59:59Z"], [LATE2] * 2),
        # Coarser precision.
        (["2025-01"], [DAY1] * 5 + [DAY2] * 5 + [LATE2] * 2 + [DAY3] * 5),
        (["2025"], [DAY1] * 5 + [DAY2] * 5 + [LATE2] * 2 + [DAY3] * 5),
        (["2024"], []),
        (["gt2025-01"], []),
    ],
)
def test_search_by_date(client, history, dates, expected) -> None:
    bundle = search(client, patient=history["patient"], date=dates, _sort="date", _count=100)
    assert bundle["total"] == len(expected)
    assert effective(bundle) == expected


def test_search_by_last_updated(client, history) -> None:
    patient = history["patient"]
    before = history["before"].strftime("%Y-%m-%dT%H:%M:%SZ")
    assert search(client, patient=patient, _lastUpdated=f"ge{before}")["total"] == 17
    assert search(client, patient=patient, _lastUpdated=f"lt{before}")["total"] == 0
    stamps = {
        e["resource"]["meta"]["lastUpdated"]
        for e in search(client, patient=patient, _count=100)["entry"]
    }
    latest = max(datetime.fromisoformat(s.replace("Z", "+00:00")) for s in stamps)
    # A later batch: only it is newer than the second after the first batch.
    time.sleep(max(0.0, (latest + timedelta(seconds=1.05) - datetime.now(UTC)).total_seconds()))
    response = client.post(
        "/v1/screenings",
        json={
            "patient_id": patient,
            "instrument": "ahc-isolation",
            "completed_at": DAY1,
            "answers": {"1": 5},
        },
    )
    assert response.status_code == 201
    newer = search(client, patient=patient, _lastUpdated=f"gt{latest.isoformat()}")
    assert sorted(ids(newer)) == sorted(o["id"] for o in response.json()["observations"])
    cutoff = latest.strftime("%Y-%m-%dT%H:%M:%SZ")
    assert search(client, patient=patient, _lastUpdated=f"le{cutoff}")["total"] == 17
    day = latest.strftime("%Y-%m-%d")  # day precision: that whole UTC day
    same_day = search(client, patient=patient, _lastUpdated=day, _count=100)
    assert same_day["total"] >= 1
    assert all(e["resource"]["meta"]["lastUpdated"][:10] == day for e in same_day["entry"])
    later = (datetime.now(UTC) + timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert search(client, patient=patient, _lastUpdated=f"gt{later}")["total"] == 0


def test_sort_by_date_ascending_and_descending(client, history) -> None:
    patient = history["patient"]
    ascending = search(client, patient=patient, _sort="date", _count=100)
    descending = search(client, patient=patient, _sort="-date", _count=100)
    default = search(client, patient=patient, _count=100)
    assert effective(ascending) == sorted(effective(ascending))
    assert effective(descending) == sorted(effective(descending), reverse=True)
    assert effective(ascending)[0] == DAY1 and effective(descending)[0] == DAY3
    assert ids(descending) == list(reversed(ids(ascending)))
    assert ids(default) == ids(descending), "newest first by default"


@pytest.mark.parametrize("count", [1, 3, 4, 17, 20])
@pytest.mark.parametrize("sort", ["date", "-date", "_lastUpdated"])
def test_paging_visits_every_match_once(client, history, count, sort) -> None:
    patient = history["patient"]
    first = search(client, patient=patient, _count=count, _sort=sort)
    assert len(first["entry"]) == min(count, 17)
    seen, totals = follow(client, first)
    assert totals == [17] * len(totals)
    assert len(seen) == len(set(seen)) == 17
    assert len(totals) == -(-17 // count)
    assert seen == ids(search(client, patient=patient, _count=100, _sort=sort))
    if len(totals) > 1:  # a page's self link (its cursor) serves that page again
        second = client.get(
            urlsplit(link(first, "next")).path,
            params=parse_qsl(urlsplit(link(first, "next")).query),
        ).json()
        again = link(second, "self")
        assert again is not None and "_cursor=" in again
        page = client.get(urlsplit(again).path, params=parse_qsl(urlsplit(again).query)).json()
        assert ids(page) == ids(second)
        assert link(second, "previous") is None, "keyset pages lead forward only"


def test_next_links_keep_every_filter(client, history) -> None:
    params = {
        "patient": history["patient"],
        "code": f"{LOINC}|66855-8,{LOINC}|66867-3",
        "category": "survey",
        "date": ["ge2025-01-02", "le2025-01-03"],
        "_count": 1,
        "_sort": "date",
    }
    first = search(client, **params)
    assert first["total"] == 4
    seen, _ = follow(client, first)
    assert len(set(seen)) == len(seen) == 4
    next_url = link(first, "next")
    assert next_url is not None
    query = parse_qsl(urlsplit(next_url).query)
    for name in ("patient", "code", "category", "_count", "_sort"):
        assert (name, str(params[name])) in query
    assert [v for k, v in query if k == "date"] == params["date"]


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("date", "2026-13"),
        ("date", "2025-02-30"),
        ("date", "ne2025-01-01"),
        ("date", "sa2025-01-01"),
        ("date", "yesterday"),
        ("_lastUpdated", "2025-13-01"),
        ("_count", "-1"),
        ("_count", "ten"),
        ("_sort", "status"),
        ("patient", "Group/1/x"),
    ],
)
def test_bad_search_parameters_are_400(client, name, value) -> None:
    issues = outcome(client.get("/fhir/Observation", params={name: value}), 400)
    assert issues[0]["code"] == "invalid"


@pytest.mark.parametrize(
    ("name", "value"),
    [("status", "preliminary"), ("code:text", "lonely"), ("patient:missing", "true")],
)
def test_unsupported_parameters_are_not_claimed_as_used(client, history, name, value) -> None:
    response = client.get("/fhir/Observation", params={"patient": history["patient"], name: value})
    if response.status_code == 400:  # rejecting it is conformant too
        outcome(response, 400)
        return
    bundle = response.json()
    used = dict(parse_qsl(urlsplit(link(bundle, "self")).query))
    assert name not in used


@pytest.mark.parametrize(
    "pair",
    [
        ("patient", "patient"),
        ("patient", "subject"),
        ("subject", "patient"),
        ("code", "code"),
        ("category", "category"),
    ],
)
def test_repeated_parameters_must_all_match(client, history, pair) -> None:
    """Each Observation has one subject and one code, so two different values match none."""
    first, second = pair
    values = {
        "patient": (history["patient"], history["other"]),
        "subject": (history["other"], history["patient"]),
        "code": (f"{LOINC}|106421-1", f"{LOINC}|106418-7"),
        "category": ("survey", "laboratory"),
    }
    for a, b in (values[first], tuple(reversed(values[second]))):
        params = [("patient", history["patient"])] if "patient" not in pair else []
        response = client.get("/fhir/Observation", params=[*params, (first, a), (second, b)])
        if response.status_code == 400:  # refusing AND is conformant too
            continue
        assert response.status_code == 200
        assert response.json()["total"] == 0, (first, a, second, b)


# -- concurrency -----------------------------------------------------------------------


@pytest.mark.parametrize("how", ["if-none-exist", "query-string", "identifier-only"])
def test_concurrent_conditional_creates_store_one(session_client, make_clinic, how) -> None:
    clinic = make_clinic()
    patient = new_patient()
    identifier = {"system": "urn:ehr:burst", "value": str(uuid.uuid4())}
    body = json.dumps(ahc_response(patient, identifier=identifier)).encode()
    condition = f"identifier={identifier['system']}|{identifier['value']}"
    headers = {**clinic.headers, "Content-Type": FHIR_JSON}
    url = "/fhir/QuestionnaireResponse"
    if how == "if-none-exist":
        headers["If-None-Exist"] = condition
    elif how == "query-string":
        url += f"?{condition}"

    async def burst() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=session_client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", timeout=60
        ) as http:
            return await asyncio.wait_for(
                asyncio.gather(*(http.post(url, content=body, headers=headers) for _ in range(50))),
                timeout=120,
            )

    responses = session_client.blocking_portal.call(burst)
    statuses = sorted(r.status_code for r in responses)
    assert set(statuses) <= {200, 201}, [r.text for r in responses if r.status_code >= 300][:3]
    assert statuses.count(201) == 1
    assert len({r.json()["id"] for r in responses}) == 1
    assert count_rows(session_client, questionnaire_responses, clinic) == 1
    assert count_rows(session_client, observations, clinic) == 2


# -- the documented syntax is the accepted syntax --------------------------------------


def documented(path: str, method: str, name: str) -> dict[str, Any]:
    """The schema of parameter ``name`` in the published document."""
    doc = json.loads((OPENAPI_DIR / "openapi.json").read_text(encoding="utf-8"))
    (parameter,) = [p for p in doc["paths"][path][method]["parameters"] if p["name"] == name]
    return parameter["schema"]


@hypothesis.settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    suppress_health_check=list(hypothesis.HealthCheck),
)
@hypothesis.given(data=st.data())
def test_every_documented_condition_is_accepted(client, data) -> None:
    """A conditional create whose condition fits the document is answered, never 400."""
    header = documented("/fhir/QuestionnaireResponse", "post", "If-None-Exist")
    query = documented("/fhir/QuestionnaireResponse", "post", "identifier")
    condition = data.draw(st.from_regex(header["pattern"], fullmatch=True), label="header")
    identifier = data.draw(st.from_regex(query["pattern"], fullmatch=True), label="query")
    posted = ahc_response(new_patient())
    by_header = post(client, posted, {"If-None-Exist": condition})
    assert by_header.status_code in (200, 201, 412), (condition, by_header.text)
    by_query = post(client, posted, params={"identifier": identifier})
    assert by_query.status_code in (200, 201, 412), (identifier, by_query.text)


def test_the_if_none_exist_header_is_documented_as_a_search_query() -> None:
    header = documented("/fhir/QuestionnaireResponse", "post", "If-None-Exist")
    for good in ("identifier=urn:ehr|c-1", "identifier=c-1", "identifier=|c-1"):
        assert re.fullmatch(header["pattern"], good), good
    for bad in ("identifier=", "identifier=urn:ehr|", "identifier=a&x=1", "identifier=%00"):
        assert not re.fullmatch(header["pattern"], bad), bad


def test_an_empty_if_none_exist_is_no_condition(client) -> None:
    assert post(client, ahc_response(new_patient()), {"If-None-Exist": ""}).status_code == 201


@pytest.mark.parametrize(
    "condition",
    ["identifier=a|%00", "identifier=|%7C", f"identifier={'x' * 256}", "identifier=a b"],
)
def test_conditions_outside_the_documented_syntax_are_400(client, condition) -> None:
    posted = ahc_response(new_patient(), identifier={"system": "urn:ehr", "value": "x"})
    issues = outcome(post(client, posted, {"If-None-Exist": condition}), 400)
    assert issues[0]["expression"] == ["If-None-Exist"]


@pytest.mark.parametrize("identifier", ["a|\x00", "|", "a|", "a|b|c", "x" * 256])
def test_identifiers_outside_the_documented_syntax_are_400(client, identifier) -> None:
    assert not re.fullmatch(
        documented("/fhir/QuestionnaireResponse", "post", "identifier")["pattern"], identifier
    )
    posted = ahc_response(new_patient(), identifier={"system": "urn:ehr", "value": "x"})
    issues = outcome(post(client, posted, params={"identifier": identifier}), 400)
    assert issues[0]["expression"] == ["identifier"]


DATE_SEARCHES = [
    ("/fhir/Observation", "date"),
    ("/fhir/Observation", "_lastUpdated"),
    ("/fhir/ServiceRequest", "_lastUpdated"),
    ("/fhir/Task", "_lastUpdated"),
]


@pytest.mark.parametrize(("path", "name"), DATE_SEARCHES)
@pytest.mark.parametrize(
    "value",
    [
        "2024-01-01T10:00:00+14:30",  # no such zone
        "2024-01-01T10:00+23:59",
        "2024-01-01T10:00:00.1234567Z",  # more than microseconds
        "\u0662\u0660\u0662\u0664",  # Arabic-Indic digits are not FHIR digits
        "ge2024-01-01\n",
        "2024-1-01",
        "0000",
    ],
)
def test_a_date_outside_the_search_syntax_is_400_naming_it(client, path, name, value) -> None:
    pattern = documented(path, "get", name)["items"]["pattern"]
    assert not re.fullmatch(pattern, value)
    issues = outcome(client.get(path, params={name: value}), 400)
    assert issues[0]["expression"] == [name]


@pytest.mark.parametrize(("path", "name"), DATE_SEARCHES)
def test_every_documented_date_is_answered(client, path, name) -> None:
    pattern = documented(path, "get", name)["items"]["pattern"]
    for value in ("9999-12-31", "9999", "0001-01-01T00:00+14:00", "le9999-12-31T23:59:59.999999Z"):
        assert re.fullmatch(pattern, value), value
        response = client.get(path, params={name: value})
        assert response.status_code == 200, (value, response.text)
    # A day the calendar does not have fits the syntax: a business rule, not a 400.
    issues = outcome(client.get(path, params={name: "2023-02-29"}), 422)
    assert issues[0]["expression"] == [name]
    assert client.get(path, params={name: "2024-02-29"}).status_code == 200
