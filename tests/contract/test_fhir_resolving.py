"""Canonicals and references resolve, as fhirpy and SMART's fhirclient follow them.

One ``belong serve`` runs for the module with ``BELONG_FHIR_CANONICAL_BASE`` set to a base
of its own: Questionnaires are found by their canonical (with and without ``|version``),
``_id`` and ``code``; a QuestionnaireResponse citing ``url|version`` is scored; and the
``requester`` of a stored ServiceRequest resolves to the clinic's Organization, which
another clinic's client cannot read.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import httpx
import pytest
from fhir.resources.R4B.bundle import Bundle as BundleR4B
from fhir.resources.R4B.capabilitystatement import CapabilityStatement as CapabilityR4B
from fhir.resources.R4B.organization import Organization as OrganizationR4B
from fhir.resources.R4B.questionnaire import Questionnaire as QuestionnaireR4B
from fhirclient import client as smart_client
from fhirclient.models.organization import Organization as SmartOrganization
from fhirclient.models.questionnaire import Questionnaire as SmartQuestionnaire
from fhirclient.models.servicerequest import ServiceRequest as SmartServiceRequest
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import ResourceNotFound

from tests.conftest import scratch_database
from tests.contract.test_fhir_clients import TimeoutSession
from tests.live import LiveServer, belong, live_server

TIMEOUT = 10.0
CANONICAL_BASE = "https://fhir.clinic.example/belong/fhir"
UCLA3 = f"{CANONICAL_BASE}/Questionnaire/ucla-3"
UCLA3_VERSION = "hughes-2004"
"""The slug of its version, "Hughes 2004"."""
LOINC = "http://loinc.org"
LACKS_COMPANIONSHIP = "66855-8"
"""LOINC code of an item of both UCLA-3 (item 1) and UCLA-20 (item 2)."""
UCLA3_PANEL = "106418-7"
SCOPES = (
    "screenings:write",
    "screenings:read",
    "referrals:read",
    "referrals:write",
    "directory:write",
)


@dataclass(frozen=True)
class Served:
    live: LiveServer
    base: str
    """The FHIR base, http://127.0.0.1:PORT/fhir"""
    clinic_id: str


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("resolving")
    url = scratch_database("fhir_resolving")
    extra = {"BELONG_FHIR_CANONICAL_BASE": CANONICAL_BASE}
    with live_server(url, folder, SCOPES, clinic="resolving", extra_env=extra) as live:
        listed = belong("clinics", "list", env=live.env)
        (line,) = [line for line in listed.splitlines() if "resolving" in line.split()]
        clinic_id = next(word for word in line.split() if _is_uuid(word))
        yield Served(live, f"{live.origin}/fhir", clinic_id)


def _is_uuid(word: str) -> bool:
    try:
        uuid.UUID(word)
    except ValueError:
        return False
    return True


@pytest.fixture(scope="module")
def fhirpy_client(served: Served) -> SyncFHIRClient:
    return SyncFHIRClient(
        served.base,
        authorization=f"Bearer {served.live.token}",
        requests_config={"timeout": TIMEOUT},
    )


@pytest.fixture(scope="module")
def smart(served: Served) -> smart_client.FHIRClient:
    fhir = smart_client.FHIRClient(settings={"app_id": "belong-resolving", "api_base": served.base})
    session = TimeoutSession()
    session.headers["Authorization"] = f"Bearer {served.live.token}"
    fhir.server.session = session
    return fhir


def found_ids(fhirpy_client: SyncFHIRClient, **params: str) -> list[str]:
    """The ids of the Questionnaires a fhirpy search finds, every resource valid R4."""
    found = fhirpy_client.resources("Questionnaire").search(**params).limit(100).fetch_all()
    for resource in found:
        QuestionnaireR4B.model_validate(resource.serialize())
    return sorted(resource.id for resource in found)


def test_fhirpy_finds_a_questionnaire_by_every_search_form(fhirpy_client) -> None:
    assert found_ids(fhirpy_client, url=UCLA3) == ["ucla-3"]
    assert found_ids(fhirpy_client, url=f"{UCLA3}|{UCLA3_VERSION}") == ["ucla-3"]
    assert found_ids(fhirpy_client, _id="ucla-3") == ["ucla-3"]
    assert found_ids(fhirpy_client, _id="ucla-3,lsns-6") == ["lsns-6", "ucla-3"]
    assert found_ids(fhirpy_client, code=f"{LOINC}|{UCLA3_PANEL}") == ["ucla-3"]
    both = ["ucla-20", "ucla-3"]
    assert found_ids(fhirpy_client, code=f"{LOINC}|{LACKS_COMPANIONSHIP}") == both
    assert found_ids(fhirpy_client, code=LACKS_COMPANIONSHIP) == both
    assert found_ids(fhirpy_client, code=f"{LOINC}|{UCLA3_PANEL},{LOINC}|66867-3") == both
    assert found_ids(fhirpy_client, url=UCLA3, _id="ucla-3", code=UCLA3_PANEL) == ["ucla-3"]
    # Two parameters: both must match
    assert found_ids(fhirpy_client, _id="ucla-3", code=LACKS_COMPANIONSHIP) == ["ucla-3"]
    # What matches nothing, alone or in combination, is an empty searchset
    for params in (
        {"url": f"{UCLA3}|v9"},
        {"url": "https://belong.example/fhir/Questionnaire/ucla-3"},  # not this deployment's
        {"url": UCLA3, "_id": "lsns-6"},
        {"_id": "ucla-3", "code": f"{LOINC}|0000-0"},
        {"code": f"http://snomed.info/sct|{UCLA3_PANEL}"},
        {"code": f"|{UCLA3_PANEL}"},
    ):
        assert found_ids(fhirpy_client, **params) == [], params
    assert len(found_ids(fhirpy_client)) > 20, "no parameter: every instrument"


def test_a_search_by_canonical_is_a_valid_searchset_linking_the_server(served: Served) -> None:
    response = httpx.get(f"{served.base}/Questionnaire", params={"url": UCLA3}, timeout=TIMEOUT)
    assert response.status_code == 200
    bundle = BundleR4B.model_validate(response.json())
    assert bundle.total == 1
    (entry,) = bundle.entry
    assert entry.fullUrl == f"{served.base}/Questionnaire/ucla-3"
    assert [link.url for link in bundle.link if link.relation == "self"] == [
        f"{served.base}/Questionnaire?url={UCLA3.replace(':', '%3A').replace('/', '%2F')}"
    ]


def test_fhirclient_finds_a_questionnaire_by_versioned_canonical(smart) -> None:
    search = SmartQuestionnaire.where(struct={"url": f"{UCLA3}|{UCLA3_VERSION}"})
    (questionnaire,) = list(search.perform_resources_iter(smart.server))
    assert questionnaire.id == "ucla-3"
    assert questionnaire.url == UCLA3
    assert questionnaire.version == UCLA3_VERSION
    nothing = SmartQuestionnaire.where(struct={"_id": "no-such"})
    assert list(nothing.perform_resources_iter(smart.server)) == []


def test_the_canonical_base_setting_names_the_questionnaire_and_the_capability_statement(
    served: Served,
) -> None:
    statement = httpx.get(f"{served.base}/metadata", timeout=TIMEOUT).json()
    assert CapabilityR4B.model_validate(statement).url == (
        f"{CANONICAL_BASE}/CapabilityStatement/belong"
    )
    body = httpx.get(f"{served.base}/Questionnaire/ucla-3", timeout=TIMEOUT).json()
    questionnaire = QuestionnaireR4B.model_validate(body)
    assert questionnaire.url == UCLA3
    answers = {a.valueCoding.system for item in questionnaire.item for a in item.answerOption}
    # "Hardly ever" has no LOINC answer code: Belong's answer code system, under the base
    assert answers == {LOINC, f"{CANONICAL_BASE}/CodeSystem/ucla-3-answers"}
    instrument = httpx.get(f"{served.live.origin}/v1/instruments/ucla-3", timeout=TIMEOUT)
    assert instrument.json()["questionnaire"] == UCLA3


def ucla3_response(patient: str, questionnaire: str) -> dict[str, Any]:
    often = {"system": LOINC, "code": "LA10044-8", "display": "Often"}
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire,
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2025-06-01T09:00:00Z",
        "item": [{"linkId": link, "answer": [{"valueCoding": often}]} for link in "123"],
    }


def test_a_response_citing_a_versioned_canonical_is_scored(fhirpy_client) -> None:
    patient = f"pat-{uuid.uuid4().hex[:12]}"
    canonical = f"{UCLA3}|{UCLA3_VERSION}"
    response = fhirpy_client.resource("QuestionnaireResponse", **ucla3_response(patient, canonical))
    response.save()
    assert response["questionnaire"] == canonical  # stored as received
    found = fhirpy_client.resources("Observation").search(patient=patient).limit(20).fetch_all()
    (total,) = [o for o in found if o.id.endswith("-total")]
    assert total["valueQuantity"]["value"] == 9
    assert total["derivedFrom"][0]["reference"] == f"QuestionnaireResponse/{response.id}"


def stored_referral(served: Served) -> str:
    """A referral made through /v1 (with the clinic's own directory service): its id."""
    headers = served.live.headers
    origin = served.live.origin
    patient = f"pat-{uuid.uuid4().hex[:12]}"
    service = httpx.post(
        f"{origin}/v1/directory/services",
        headers=headers,
        json={
            "name": "Pain Peer Circle",
            "organization": "Test Trust",
            "category": "support-group",
            "modalities": ["online"],
        },
        timeout=TIMEOUT,
    )
    assert service.status_code == 201, service.text
    assert (
        httpx.put(
            f"{origin}/v1/patients/{patient}", headers=headers, json={}, timeout=TIMEOUT
        ).status_code
        == 201
    )
    referral = httpx.post(
        f"{origin}/v1/referrals",
        headers=headers,
        json={
            "patient_id": patient,
            "service_id": service.json()["id"],
            "need": "loneliness",
            "consent": {"given": True, "method": "verbal"},
        },
        timeout=TIMEOUT,
    )
    assert referral.status_code == 201, referral.text
    return str(referral.json()["id"])


def test_fhirpy_resolves_the_requester_to_the_clinics_organization(
    served: Served, fhirpy_client
) -> None:
    referral = stored_referral(served)
    request = fhirpy_client.reference("ServiceRequest", referral).to_resource()
    assert request["requester"]["reference"] == f"Organization/{served.clinic_id}"
    organization = request["requester"].to_resource()
    resource = OrganizationR4B.model_validate(organization.serialize())
    assert resource.id == served.clinic_id
    assert resource.name == "resolving" == request["requester"]["display"]
    assert resource.active is True
    task = fhirpy_client.reference("Task", referral).to_resource()
    assert task["requester"].to_resource().serialize() == organization.serialize()


def test_fhirclient_resolves_the_requester(served: Served, smart) -> None:
    referral = stored_referral(served)
    request = SmartServiceRequest.read(referral, smart.server)
    organization = request.requester.resolved(SmartOrganization)
    assert isinstance(organization, SmartOrganization)
    assert organization.id == served.clinic_id
    assert organization.name == "resolving"
    OrganizationR4B.model_validate(organization.as_json())


def test_another_clinic_cannot_read_the_organization(served: Served) -> None:
    other = belong(
        "clients",
        "create",
        "--create-clinic",
        "--clinic",
        f"other-{uuid.uuid4().hex[:8]}",
        "--scope",
        "referrals:read",
        env=served.live.env,
    ).splitlines()[-1]
    client = SyncFHIRClient(
        served.base, authorization=f"Bearer {other}", requests_config={"timeout": TIMEOUT}
    )
    with pytest.raises(ResourceNotFound):
        client.reference("Organization", served.clinic_id).to_resource()
    missing = httpx.get(
        f"{served.base}/Organization/{uuid.uuid4()}", headers=served.live.headers, timeout=TIMEOUT
    )
    foreign = httpx.get(
        f"{served.base}/Organization/{served.clinic_id}",
        headers={"Authorization": f"Bearer {other}"},
        timeout=TIMEOUT,
    )
    assert missing.status_code == foreign.status_code == 404
    assert missing.json()["resourceType"] == foreign.json()["resourceType"] == "OperationOutcome"
    assert foreign.json()["issue"][0]["code"] == missing.json()["issue"][0]["code"]
