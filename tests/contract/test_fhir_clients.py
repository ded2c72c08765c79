"""Real FHIR clients against the real server: SMART's ``fhirclient`` and ``fhirpy``.

One ``belong serve`` (granian, one worker) runs on a free loopback port for the module, on
a fresh database migrated with ``belong db upgrade`` and a token made by ``belong
clients create``. Each client reads the CapabilityStatement, creates a
QuestionnaireResponse and pages through the patient's Observations by ``next`` links.
Every request has a timeout and every loop a bound; the server is stopped at the end.
"""

from __future__ import annotations

import itertools
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
import requests
from fhirclient import client as smart_client
from fhirclient.models.bundle import Bundle as SmartBundle
from fhirclient.models.capabilitystatement import CapabilityStatement as SmartCapability
from fhirclient.models.observation import Observation as SmartObservation
from fhirclient.models.questionnaireresponse import (
    QuestionnaireResponse as SmartQuestionnaireResponse,
)
from fhirpy import SyncFHIRClient
from fhirpy.base.exceptions import OperationOutcome as FhirpyOperationOutcome

from tests.conftest import scratch_database
from tests.live import live_server

TIMEOUT = 10.0
MAX_RESOURCES = 500
LOINC = "http://loinc.org"
QUESTIONNAIRE = "https://belong.example/fhir/Questionnaire"


@dataclass(frozen=True)
class Server:
    base: str
    """The FHIR base, e.g. http://127.0.0.1:PORT/fhir"""
    token: str


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    folder = tmp_path_factory.mktemp("served")
    url = scratch_database("fhir_clients")
    scopes = ("screenings:write", "screenings:read")
    with live_server(url, folder, scopes, clinic="fhir-clients") as live:
        yield Server(base=f"{live.origin}/fhir", token=live.token)


def new_patient() -> str:
    return f"pat-{uuid.uuid4().hex[:12]}"


def ucla3_response(patient: str, identifier: str | None = None) -> dict[str, Any]:
    """Answers to Belong's UCLA-3: Often, Some of the time, Often (a positive screen)."""
    often = {"system": LOINC, "code": "LA10044-8", "display": "Often"}
    some = {"system": LOINC, "code": "LA14733-2", "display": "Some of the time"}
    resource: dict[str, Any] = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": f"{QUESTIONNAIRE}/ucla-3",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2025-06-01T09:00:00Z",
        "item": [
            {"linkId": "1", "answer": [{"valueCoding": often}]},
            {"linkId": "2", "answer": [{"valueCoding": some}]},
            {"linkId": "3", "answer": [{"valueCoding": often}]},
        ],
    }
    if identifier is not None:
        resource["identifier"] = {"system": "urn:ehr:qr", "value": identifier}
    return resource


def check_ucla3_observations(observations: list[dict[str, Any]], qr_id: str) -> None:
    """Three items, the total and the panel, each seen once, all from this response."""
    ids = [o["id"] for o in observations]
    assert len(ids) == len(set(ids)) == 5
    assert {i.rsplit("-", 1)[1] for i in ids} == {"i1", "i2", "i3", "total", "panel"}
    (total,) = [o for o in observations if o["id"].endswith("-total")]
    assert total["valueQuantity"]["value"] == 8
    assert total["interpretation"][0]["coding"][0]["code"] == "POS"
    assert all(
        {"reference": f"QuestionnaireResponse/{qr_id}"} in o["derivedFrom"] for o in observations
    )


# -- fhirclient (SMART on FHIR client-py) ----------------------------------------------


class TimeoutSession(requests.Session):
    """fhirclient sets no timeout; every request made through this session has one."""

    def request(self, *args: Any, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(*args, **kwargs)


@pytest.fixture(scope="module")
def smart(server: Server) -> smart_client.FHIRClient:
    fhir = smart_client.FHIRClient(
        settings={"app_id": "belong-contract-tests", "api_base": server.base}
    )
    session = TimeoutSession()
    session.headers["Authorization"] = f"Bearer {server.token}"
    fhir.server.session = session
    return fhir


def test_fhirclient_reads_the_capability_statement(smart) -> None:
    smart.prepare()  # GET [base]/metadata, parsed with the strict R4 (4.0.1) models
    statement = smart.server.capabilityStatement
    assert isinstance(statement, SmartCapability)
    assert statement.fhirVersion == "4.0.1"
    assert statement.kind == "instance"
    types = {r.type for r in statement.rest[0].resource}
    assert {"Questionnaire", "QuestionnaireResponse", "Observation"} <= types


def test_fhirclient_creates_and_pages(smart) -> None:
    patient = new_patient()
    response = SmartQuestionnaireResponse(ucla3_response(patient))
    created = response.create(smart.server)  # POST, Content-Type: application/fhir+json
    assert created is not None
    stored = SmartQuestionnaireResponse(created)  # the body is a valid R4 resource
    assert stored.id and stored.status == "completed"
    read = SmartQuestionnaireResponse.read(stored.id, smart.server)
    assert read.as_json() == stored.as_json()

    search = SmartObservation.where({"patient": patient, "_count": "2"})
    first = search.perform_iter(smart.server)
    pages = list(itertools.islice(first, MAX_RESOURCES))
    assert all(isinstance(page, SmartBundle) for page in pages)
    assert len(pages) == 3, "five Observations, two a page"
    assert {page.total for page in pages} == {5}
    observations = [
        entry.resource.as_json() for page in pages for entry in page.entry or [] if entry.resource
    ]
    check_ucla3_observations(observations, stored.id)
    # The resource iterator follows next links the same way.
    again = itertools.islice(search.perform_resources_iter(smart.server), MAX_RESOURCES)
    assert [o.id for o in again] == [o["id"] for o in observations]


def test_fhirclient_sees_operation_outcomes(smart) -> None:
    bad = ucla3_response(new_patient())
    bad["status"] = "in-progress"
    with pytest.raises(requests.HTTPError) as raised:
        SmartQuestionnaireResponse(bad).create(smart.server)
    assert raised.value.response.status_code == 422
    assert raised.value.response.json()["resourceType"] == "OperationOutcome"


# -- fhirpy ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def fhirpy_client(server: Server) -> SyncFHIRClient:
    return SyncFHIRClient(
        server.base,
        authorization=f"Bearer {server.token}",
        requests_config={"timeout": TIMEOUT},
    )


def test_fhirpy_reads_the_capability_statement(fhirpy_client) -> None:
    statement = fhirpy_client.execute("metadata", method="get")
    assert statement["resourceType"] == "CapabilityStatement"
    assert statement["fhirVersion"] == "4.0.1"


def test_fhirpy_creates_and_pages(fhirpy_client) -> None:
    patient = new_patient()
    response = fhirpy_client.resource("QuestionnaireResponse", **ucla3_response(patient))
    response.save()  # POST, Content-Type: application/json; rebuilt from the 201 body
    assert response.id
    assert response["meta"]["versionId"] == "1"
    read = fhirpy_client.reference("QuestionnaireResponse", response.id).to_resource()
    assert read.serialize() == response.serialize()

    search = fhirpy_client.resources("Observation").search(patient=patient).limit(2)
    # Iterating follows next links.
    observations = [o.serialize() for o in itertools.islice(iter(search), MAX_RESOURCES)]
    check_ucla3_observations(observations, response.id)


def test_fhirpy_get_or_create(fhirpy_client) -> None:
    """get_or_create puts the condition in the query string of the POST."""
    patient = new_patient()
    identifier = str(uuid.uuid4())
    resources = fhirpy_client.resources("QuestionnaireResponse").search(
        identifier=f"urn:ehr:qr|{identifier}"
    )
    resource = fhirpy_client.resource(
        "QuestionnaireResponse", **ucla3_response(patient, identifier)
    )
    created, was_created = resources.get_or_create(resource)
    assert was_created
    again, was_created = resources.get_or_create(resource)
    assert not was_created
    assert again.id == created.id
    found = fhirpy_client.resources("Observation").search(patient=patient).limit(100).fetch()
    assert len(found) == 5, "the second call scored nothing"


def test_fhirpy_sees_operation_outcomes(fhirpy_client) -> None:
    bad = ucla3_response(new_patient())
    bad["subject"] = {"reference": "Group/g1"}
    with pytest.raises(FhirpyOperationOutcome) as raised:
        fhirpy_client.resource("QuestionnaireResponse", **bad).save()
    assert raised.value.resource["issue"][0]["expression"] == ["QuestionnaireResponse.subject"]
