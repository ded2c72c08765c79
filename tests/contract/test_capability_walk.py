"""The CapabilityStatement lists exactly the searches that work: a walk over it.

Against the app on real PostgreSQL, in a clinic seeded with known resources
(``tests.helpers.seed_fhir``), every advertised search parameter of every resource (and
every ``:missing`` modifier its documentation offers) is tried with a value that should
find a known set of resources and one that should find none, and every ``searchInclude``
and ``searchRevInclude`` must bring in the resources it names with search mode
``include``. A parameter advertised without a case here, or a case for one not advertised,
fails the walk. Each Bundle is validated with ``fhir.resources.R4B``.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from litestar import Litestar
from litestar.testing import TestClient

from tests.helpers import FhirSeed, seed_fhir

SNOMED = "http://snomed.info/sct"
QUESTIONNAIRES = "https://belong.example/fhir/Questionnaire"
CANONICAL = ("http://hl7.org/fhir/SearchParameter/", "http://hl7.org/fhir/us/core/SearchParameter/")


@dataclass(frozen=True)
class Case:
    """A value of one parameter that finds exactly ``found``, and one that does not."""

    matching: str
    found: set[str]
    missing: str


@dataclass(frozen=True)
class Include:
    """A search with an ``_include`` or ``_revinclude`` and the "Type/id"s it adds."""

    params: list[tuple[str, str]]
    included: set[str]


Cases = Callable[[FhirSeed, dict[str, Any]], Case]


def _total_code(resources: dict[str, Any]) -> str:
    coding = resources["total"]["code"]["coding"][0]
    return f"{coding['system']}|{coding['code']}"


PARAMETERS: dict[tuple[str, str], Cases] = {
    ("Observation", "patient"): lambda s, r: Case(s.patient, set(s.observations), "pat-none"),
    ("Observation", "subject"): lambda s, r: Case(
        f"Patient/{s.other_patient}", set(s.other_observations), "Patient/pat-none"
    ),
    ("Observation", "code"): lambda s, r: Case(
        _total_code(r), {s.total}, "http://loinc.org|0000-0"
    ),
    ("Observation", "category"): lambda s, r: Case(
        "social-connection", set(s.observations | s.other_observations), "vital-signs"
    ),
    ("Observation", "date"): lambda s, r: Case("2025-04-01", set(s.observations), "lt2000"),
    ("Observation", "_lastUpdated"): lambda s, r: Case(
        "ge2000", set(s.observations | s.other_observations), "lt2000"
    ),
    ("Questionnaire", "url"): lambda s, r: Case(
        f"{QUESTIONNAIRES}/ucla-3", {"ucla-3"}, f"{QUESTIONNAIRES}/none-such"
    ),
    ("Questionnaire", "_id"): lambda s, r: Case("peg,ucla-3", {"peg", "ucla-3"}, "none-such"),
    ("Questionnaire", "code"): lambda s, r: Case(
        "http://loinc.org|91145-3", {"peg"}, "http://loinc.org|0000-0"
    ),
    ("ServiceRequest", "_id"): lambda s, r: Case(s.active, {s.active}, "none-such"),
    ("ServiceRequest", "patient"): lambda s, r: Case(
        s.patient, {s.active, s.completed}, "pat-none"
    ),
    ("ServiceRequest", "subject"): lambda s, r: Case(
        f"Patient/{s.other_patient}", {s.revoked}, "Patient/pat-none"
    ),
    ("ServiceRequest", "category"): lambda s, r: Case(
        f"{SNOMED}|410606002", {s.active, s.completed, s.revoked}, f"{SNOMED}|1"
    ),
    ("ServiceRequest", "code"): lambda s, r: Case(
        f"{SNOMED}|711281004", {s.active, s.revoked}, f"{SNOMED}|1"
    ),
    ("ServiceRequest", "authored"): lambda s, r: Case(
        "ge2020", {s.active, s.completed, s.revoked}, "lt2020"
    ),
    ("ServiceRequest", "status"): lambda s, r: Case("draft,revoked", {s.revoked}, "draft"),
    ("ServiceRequest", "_lastUpdated"): lambda s, r: Case(
        "ge2020", {s.active, s.completed, s.revoked}, "lt2020"
    ),
    ("Task", "_id"): lambda s, r: Case(s.completed, {s.completed}, "none-such"),
    ("Task", "patient"): lambda s, r: Case(
        f"Patient/{s.patient}", {s.active, s.completed}, "pat-none"
    ),
    ("Task", "focus"): lambda s, r: Case(
        f"ServiceRequest/{s.revoked}", {s.revoked}, "ServiceRequest/none-such"
    ),
    ("Task", "owner"): lambda s, r: Case(
        f"HealthcareService/{s.counselling}", {s.completed}, "HealthcareService/none-such"
    ),
    ("Task", "owner:missing"): lambda s, r: Case(
        "false", {s.active, s.completed, s.revoked}, "true"
    ),
    ("Task", "status"): lambda s, r: Case("requested,completed", {s.active, s.completed}, "ready"),
    ("Task", "_lastUpdated"): lambda s, r: Case(
        "ge2020", {s.active, s.completed, s.revoked}, "lt2020"
    ),
    ("QuestionnaireResponse", "_id"): lambda s, r: Case(
        s.questionnaire_response, {s.questionnaire_response}, "none-such"
    ),
    ("QuestionnaireResponse", "patient"): lambda s, r: Case(
        s.other_patient, {s.other_questionnaire_response}, "pat-none"
    ),
    ("QuestionnaireResponse", "subject"): lambda s, r: Case(
        f"Patient/{s.patient}", {s.questionnaire_response}, "Patient/pat-none"
    ),
    ("QuestionnaireResponse", "identifier"): lambda s, r: Case(
        f"urn:ehr:qr|{s.identifier}", {s.questionnaire_response}, f"urn:other|{s.identifier}"
    ),
    ("QuestionnaireResponse", "identifier:missing"): lambda s, r: Case(
        "true", {s.other_questionnaire_response}, "false"
    ),
    ("QuestionnaireResponse", "authored"): lambda s, r: Case(
        "2024-03-01", {s.other_questionnaire_response}, "2024-03-02"
    ),
    ("QuestionnaireResponse", "_lastUpdated"): lambda s, r: Case(
        "ge2020", {s.questionnaire_response, s.other_questionnaire_response}, "lt2020"
    ),
    ("HealthcareService", "service-type"): lambda s, r: Case(
        "support-group", {s.group}, "family-communication"
    ),
}
"""Every advertised parameter: a value finding a known set of ids, and one finding none
(for a ``:missing`` modifier, none of those)."""

INCLUDES: dict[tuple[str, str, str], Callable[[FhirSeed, dict[str, Any]], Include]] = {
    ("Observation", "_include", "Observation:derived-from"): lambda s, r: Include(
        [("patient", s.patient)], {f"QuestionnaireResponse/{s.questionnaire_response}"}
    ),
    ("Observation", "_include", "Observation:derived-from:QuestionnaireResponse"): lambda s, r: (
        Include(
            [("_lastUpdated", "ge2000")],
            {
                f"QuestionnaireResponse/{s.questionnaire_response}",
                f"QuestionnaireResponse/{s.other_questionnaire_response}",
            },
        )
    ),
    ("Observation", "_include", "Observation:derived-from:Observation"): lambda s, r: Include(
        [("code", _total_code(r))],
        {ref["reference"] for ref in r["total"]["derivedFrom"] if ref["reference"][0] == "O"},
    ),
    ("Task", "_include", "Task:focus"): lambda s, r: Include(
        [("owner", s.group)], {f"ServiceRequest/{s.active}", f"ServiceRequest/{s.revoked}"}
    ),
    ("ServiceRequest", "_revinclude", "Task:focus"): lambda s, r: Include(
        [("_id", s.completed)], {f"Task/{s.completed}"}
    ),
}


@pytest.fixture
def walk(client: TestClient[Litestar]) -> tuple[dict[str, Any], FhirSeed, dict[str, Any]]:
    seeded = seed_fhir(client)
    statement = client.get("/fhir/metadata").json()
    CapabilityStatement.model_validate(statement)
    total = client.get(f"/fhir/Observation/{seeded.total}").json()
    return statement, seeded, {"total": total}


def _resources(statement: dict[str, Any]) -> list[dict[str, Any]]:
    (rest,) = statement["rest"]
    return rest["resource"]


def _advertised(statement: dict[str, Any]) -> set[tuple[str, str]]:
    names = set()
    for resource in _resources(statement):
        for param in resource.get("searchParam", []):
            names.add((resource["type"], param["name"]))
            if f"{param['name']}:missing" in param.get("documentation", ""):
                names.add((resource["type"], f"{param['name']}:missing"))
    return names


def _found(client: TestClient[Litestar], kind: str, params: list[tuple[str, str]]) -> Any:
    response = client.get(f"/fhir/{kind}", params=params)
    assert response.status_code == 200, (kind, params, response.text)
    bundle = response.json()
    Bundle.model_validate(bundle)
    return bundle


def test_every_search_parameter_is_a_defined_one(walk) -> None:
    statement, _, _ = walk
    for resource in _resources(statement):
        if resource.get("searchParam"):
            assert {"code": "search-type"} in resource["interaction"], resource["type"]
        for param in resource.get("searchParam", []):
            assert param["definition"].startswith(CANONICAL), param
            assert param["type"] in {"token", "reference", "date", "string", "uri"}
            assert param["documentation"]


def test_the_walk_covers_exactly_what_is_advertised(walk) -> None:
    statement, _, _ = walk
    assert _advertised(statement) == set(PARAMETERS)
    includes = {
        (resource["type"], key, value)
        for resource in _resources(statement)
        for key, listed in (("_include", "searchInclude"), ("_revinclude", "searchRevInclude"))
        for value in resource.get(listed, [])
    }
    assert includes == set(INCLUDES)


def test_every_advertised_parameter_matches_and_misses(client, walk) -> None:
    statement, seeded, known = walk
    for kind, name in sorted(_advertised(statement)):
        case = PARAMETERS[(kind, name)](seeded, known)
        bundle = _found(client, kind, [(name, case.matching)])
        ids = {e["resource"]["id"] for e in bundle.get("entry", [])}
        assert ids == case.found, (kind, name, case.matching)
        assert bundle["total"] == len(case.found)
        bundle = _found(client, kind, [(name, case.missing)])
        missed = {e["resource"]["id"] for e in bundle.get("entry", [])}
        if name.endswith(":missing"):
            assert not missed & case.found, (kind, name, case.missing)
        else:
            assert missed == set(), (kind, name, case.missing)


def test_every_advertised_include_brings_in_its_resources(client, walk) -> None:
    _, seeded, known = walk
    for (kind, key, value), make in INCLUDES.items():
        include = make(seeded, known)
        bundle = _found(client, kind, [*include.params, (key, value)])
        included = {
            f"{e['resource']['resourceType']}/{e['resource']['id']}"
            for e in bundle["entry"]
            if e["search"]["mode"] == "include"
        }
        assert included == include.included, (kind, key, value)
        assert all(e["search"]["mode"] == "match" for e in bundle["entry"][: bundle["total"]])
        plain = _found(client, kind, include.params)
        assert {e["search"]["mode"] for e in plain["entry"]} == {"match"}
