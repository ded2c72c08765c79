"""Every resource Belong emits is valid FHIR R4 and follows the profiles it claims.

Structure is checked with ``fhir.resources.R4B`` (never the default R5 classes); the
profile rules R4B does not know (required bindings, slices, invariants, links between a
score and its items) are checked here explicitly, the invariants with fhirpathpy and the
expressions copied from the IGs:

- SDOHCC-ObservationScreeningResponse (SDOHCC 2.3.0, reference fhir.md section 1.3):
  status from SDOHCC Observation Status, categories survey + sdoh (SDOH-Obs-4), subject
  and effective[x] present, UCUM quantities, scores derived (no performer, derivedFrom the
  QuestionnaireResponse and the item Observations), interpretation POS/NEG, panels with
  hasMember and no value.
- US Core Observation Screening Assessment (7.0.0, section 1.7): us-core-2.
- Bundle, CapabilityStatement and OperationOutcome core invariants (FHIR R4).
"""

from __future__ import annotations

import json
import re
import uuid
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import fhirpathpy
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.observation import Observation
from fhir.resources.R4B.operationoutcome import OperationOutcome
from fhir.resources.R4B.questionnaire import Questionnaire
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from fhirpathpy.models import models
from pydantic import ValidationError

from service.instruments.model import Interval
from tests.conftest import INSTRUMENTS_DIR

R4 = models["r4"]
LOINC = "http://loinc.org"
UCUM = "http://unitsofmeasure.org"
BELONG = "https://belong.example/fhir"
OBSERVATION_CATEGORY = "http://terminology.hl7.org/CodeSystem/observation-category"
US_CORE_CATEGORY = "http://hl7.org/fhir/us/core/CodeSystem/us-core-category"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
INTERPRETATION = "http://terminology.hl7.org/CodeSystem/v3-ObservationInterpretation"
SDOHCC_OSR = (
    "http://hl7.org/fhir/us/sdoh-clinicalcare/StructureDefinition/"
    "SDOHCC-ObservationScreeningResponse"
)
ORDINAL_VALUE = "http://hl7.org/fhir/StructureDefinition/ordinalValue"
OSR_STATUS = {"final", "corrected", "entered-in-error", "unknown"}

# Invariants, verbatim from the IGs and the R4 core specification.
SDOH_OBS_4 = (
    "category.where(coding.where(system = "
    "'http://hl7.org/fhir/us/core/CodeSystem/us-core-category' and code='sdoh')"
    ".exists()).exists()"
)
US_CORE_2 = (
    "(component.empty() and hasMember.empty()) implies "
    "(dataAbsentReason.exists() or value.exists())"
)
SURVEY_SLICE = (
    "category.where(coding.where(system = "
    "'http://terminology.hl7.org/CodeSystem/observation-category' and code = 'survey')"
    ".exists()).count() = 1"
)
OBS_6 = "dataAbsentReason.empty() or value.empty()"
OBS_7 = (
    "value.empty() or "
    "component.code.where(coding.intersect(%resource.code.coding).exists()).empty()"
)
BUNDLE_INVARIANTS = {
    "bdl-1": "total.empty() or (type = 'searchset') or (type = 'history')",
    "bdl-2": "entry.search.empty() or (type = 'searchset')",
    "bdl-7": (
        "(type = 'history') or entry.where(fullUrl.exists())"
        ".select(fullUrl&resource.meta.versionId).isDistinct()"
    ),
    "bdl-8": "entry.fullUrl.all(contains('/_history/').not())",
}
CAPABILITY_INVARIANTS = {
    "cpb-1": "rest.exists() or messaging.exists() or document.exists()",
    "cpb-2": "(description.count() + software.count() + implementation.count()) > 0",
    "cpb-3": "messaging.endpoint.empty() or kind = 'instance'",
    "cpb-14": "(kind != 'instance') or implementation.exists()",
    "cpb-15": "(kind != 'capability') or (implementation.exists().not() and software.exists())",
    "cpb-16": (
        "(kind!='requirements') or (implementation.exists().not() and software.exists().not())"
    ),
}
QR_INVARIANTS = {
    "qrs-1": "item.all((answer.exists() and item.exists()).not())",
    "qrs-2": "repeat(answer|item).select(item.linkId).isDistinct()",
}
# The R4 IssueType value set (required binding of OperationOutcome.issue.code).
ISSUE_TYPES = {
    "invalid", "structure", "required", "value", "invariant", "security", "login",
    "unknown", "expired", "forbidden", "suppressed", "processing", "not-supported",
    "duplicate", "multiple-matches", "not-found", "deleted", "too-long", "code-invalid",
    "extension", "too-costly", "business-rule", "conflict", "transient", "lock-error",
    "no-store", "exception", "timeout", "incomplete", "throttled", "informational",
}  # fmt: skip
DATE_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")
FHIR_JSON = "application/fhir+json"

# (instrument, answers by linkId; None leaves an item unanswered)
CASES = [
    pytest.param("ucla-3", {"1": 3, "2": 2, "3": 3}, id="ucla-3-lonely"),
    pytest.param("ucla-3", {"1": 1, "2": 1, "3": 2}, id="ucla-3-not-lonely"),
    pytest.param(
        "djg-6", {"3": 1, "4": 1, "7": 2, "8": 5, "9": 4, "10": None}, id="djg-6-one-missing"
    ),
    pytest.param("djg-6", {"3": 5, "4": 1, "7": 1, "8": 2, "9": 4, "10": 5}, id="djg-6-none"),
    pytest.param("mspss", {str(n): 2 + n % 2 for n in range(1, 13)}, id="mspss-low"),
    pytest.param("mspss", {str(n): 6 for n in range(1, 13)}, id="mspss-high"),
    pytest.param("lsns-6", {"1": 1, "2": 1, "3": 1, "4": 2, "5": 2, "6": 2}, id="lsns-6"),
    pytest.param("peg", {"P": 7, "E": 5, "G": 6}, id="peg"),
    pytest.param("ahc-isolation", {"1": 4}, id="ahc-positive"),
    pytest.param("ahc-isolation", {"1": 2}, id="ahc-negative"),
]


def fhirpath(resource: dict[str, Any], expression: str) -> list[Any]:
    return fhirpathpy.evaluate(resource, expression, model=R4)


def _json(resource: dict[str, Any]) -> bytes:
    return json.dumps(resource).encode()


def patient_id() -> str:
    return f"pat-{uuid.uuid4().hex[:12]}"


# -- building requests -----------------------------------------------------------------


def questionnaire_of(client, instrument_id: str) -> dict[str, Any]:
    response = client.get(f"/fhir/Questionnaire/{instrument_id}")
    assert response.status_code == 200
    return response.json()


def questions(questionnaire: dict[str, Any]) -> list[dict[str, Any]]:
    """The items that take an answer (display items only show text, such as a preamble)."""
    return [item for item in questionnaire["item"] if item["type"] != "display"]


def answer_codings(questionnaire: dict[str, Any]) -> dict[str, dict[int, dict[str, str]]]:
    """linkId -> option value (its ordinalValue) -> the answer's valueCoding."""
    codings: dict[str, dict[int, dict[str, str]]] = {}
    for item in questions(questionnaire):
        options = codings.setdefault(item["linkId"], {})
        for option in item["answerOption"]:
            (ordinal,) = [
                e["valueDecimal"] for e in option["extension"] if e["url"] == ORDINAL_VALUE
            ]
            options[int(ordinal)] = option["valueCoding"]
    return codings


def own_response(
    questionnaire: dict[str, Any],
    answers: dict[str, int | None],
    patient: str,
    authored: str = "2025-03-04T09:30:00Z",
) -> dict[str, Any]:
    """A QuestionnaireResponse to one of Belong's Questionnaires, as an EHR would send it."""
    codings = answer_codings(questionnaire)
    items = []
    for item in questions(questionnaire):
        value = answers.get(item["linkId"])
        entry: dict[str, Any] = {"linkId": item["linkId"], "text": item["text"]}
        if value is not None:
            entry["answer"] = [{"valueCoding": codings[item["linkId"]][value]}]
        items.append(entry)
    return {
        "resourceType": "QuestionnaireResponse",
        "identifier": {"system": "urn:ehr:qr", "value": str(uuid.uuid4())},
        "questionnaire": questionnaire["url"],
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": authored,
        "item": items,
    }


def search_all(client, **params: str) -> list[dict[str, Any]]:
    response = client.get("/fhir/Observation", params={**params, "_count": "100"})
    assert response.status_code == 200, response.text
    bundle = response.json()
    assert "next" not in [link["relation"] for link in bundle.get("link", [])]
    return [entry["resource"] for entry in bundle.get("entry", [])]


# -- the profile checks ----------------------------------------------------------------


def check_osr_profile(observation: dict[str, Any]) -> None:
    """Rules every Observation Belong emits must meet, whatever its role."""
    Observation.model_validate(observation)
    assert observation["status"] in OSR_STATUS
    assert fhirpath(observation, SDOH_OBS_4) == [True], "SDOH-Obs-4"
    assert fhirpath(observation, US_CORE_2) == [True], "us-core-2"
    assert fhirpath(observation, SURVEY_SLICE) == [True], "category:survey 1..1"
    assert fhirpath(observation, OBS_6) == [True], "obs-6"
    assert fhirpath(observation, OBS_7) == [True], "obs-7"
    assert len(observation["category"]) >= 2  # category 2..*
    categories = {(c["system"], c["code"]) for cc in observation["category"] for c in cc["coding"]}
    assert (OBSERVATION_CATEGORY, "survey") in categories
    assert (SDOHCC_CODES, "social-connection") in categories  # the SDOHCC domain slice
    assert re.fullmatch(r"Patient/[A-Za-z0-9\-.]{1,64}", observation["subject"]["reference"])
    assert DATE_TIME.match(observation["effectiveDateTime"])  # us-core-1: at least a day
    assert "bodySite" not in observation and "specimen" not in observation
    if "valueQuantity" in observation:  # us-core-3 and the OSR's required UCUM binding
        quantity = observation["valueQuantity"]
        assert quantity["system"] == UCUM
        assert quantity["code"]
        assert isinstance(quantity["value"], int | float)
    codings = observation["code"]["coding"]
    assert len(codings) == 1 and codings[0]["system"] and codings[0]["code"]
    claims_osr = SDOHCC_OSR in observation.get("meta", {}).get("profile", [])
    assert claims_osr == (codings[0]["system"] == LOINC), (
        "SDOHCC-ObservationScreeningResponse is claimed exactly where the code is LOINC"
    )


def interpretation(observation: dict[str, Any]) -> list[str]:
    return [
        coding["code"]
        for concept in observation.get("interpretation", [])
        for coding in concept["coding"]
        if coding["system"] == INTERPRETATION
    ]


def check_screening(
    catalog,
    instrument_id: str,
    answers: dict[str, int | None],
    observations: list[dict[str, Any]],
    questionnaire_response: str,
) -> None:
    """The Observations of one scored screening: items, scores and the panel, linked."""
    instrument = catalog[instrument_id]
    definition = instrument.definition
    for observation in observations:
        check_osr_profile(observation)
    by_id = {o["id"]: o for o in observations}
    assert len(by_id) == len(observations)
    (screening_id,) = {o["id"].rsplit("-", 1)[0] for o in observations}
    subject = observations[0]["subject"]
    qr = {"reference": questionnaire_response}
    assert all(o["subject"] == subject for o in observations)
    assert len({o["effectiveDateTime"] for o in observations}) == 1

    seen: list[str] = []
    item_refs: dict[str, dict[str, str]] = {}
    for number, item in enumerate(definition.items, start=1):
        value = answers.get(item.linkId)
        observation_id = f"{screening_id}-i{number}"
        if value is None:
            assert observation_id not in by_id
            continue
        observation = by_id[observation_id]
        seen.append(observation_id)
        item_refs[item.linkId] = {"reference": f"Observation/{observation_id}"}
        (code,) = observation["code"]["coding"]
        if item.code is not None:
            assert (code["system"], code["code"]) == (LOINC, item.code.code)
        else:
            assert (code["system"], code["code"]) == (
                f"{BELONG}/CodeSystem/{instrument_id}",
                item.linkId,
            )
        (answer,) = observation["valueCodeableConcept"]["coding"]
        option = instrument.options[item.linkId][value]
        if option.code:
            assert (answer["system"], answer["code"]) == (LOINC, option.code)
        else:
            expected = (f"{BELONG}/CodeSystem/{instrument_id}-answers", str(value))
            assert (answer["system"], answer["code"]) == expected
        assert observation["performer"] == [subject]  # the patient answered
        assert observation["derivedFrom"] == [qr]
        assert "valueQuantity" not in observation and "hasMember" not in observation

    all_links = tuple(definition.scoring.items or [i.linkId for i in definition.items])
    scales = [("total", definition.scoring.code, all_links, definition.bands, definition.scoring)]
    scales += [
        (f"s{n}", sub.code, tuple(sub.items), sub.bands, sub)
        for n, sub in enumerate(definition.subscales, start=1)
    ]
    for suffix, code, link_ids, bands, rule in scales:
        observation_id = f"{screening_id}-{suffix}"
        missing = sum(answers.get(link) is None for link in link_ids)
        if missing > rule.missing.max_missing:
            assert observation_id not in by_id, f"{suffix} cannot be scored"
            continue
        observation = by_id[observation_id]
        seen.append(observation_id)
        (coding,) = observation["code"]["coding"]
        if code is not None:
            assert (coding["system"], coding["code"]) == (code.system, code.code)
        else:
            assert coding["system"] == f"{BELONG}/CodeSystem/{instrument_id}"
        assert "performer" not in observation, "a derived score has no performer"
        assert observation["derivedFrom"] == [
            qr,
            *(item_refs[link] for link in link_ids if link in item_refs),
        ]
        quantity = observation["valueQuantity"]
        assert quantity["code"] == definition.scoring.unit
        matching = [b for b in bands if quantity["value"] in Interval.parse(b.range)]
        if bands:
            (band,) = matching
            assert interpretation(observation) == ["POS" if band.positive else "NEG"]
        else:
            assert "interpretation" not in observation

    panel_id = f"{screening_id}-panel"
    if definition.panel is None:
        assert panel_id not in by_id
    else:
        panel = by_id[panel_id]
        (coding,) = panel["code"]["coding"]
        assert (coding["system"], coding["code"]) == (LOINC, definition.panel.code)
        assert sorted(m["reference"] for m in panel["hasMember"]) == sorted(
            f"Observation/{i}" for i in seen
        )
        assert not [k for k in panel if k.startswith("value")], "a panel has no value"
        assert "performer" not in panel and "interpretation" not in panel
        assert panel["derivedFrom"] == [qr]
        seen.append(panel_id)
    assert sorted(seen) == sorted(by_id), "no Observation beyond items, scores and panel"


def check_questionnaire_response(
    client,
    reference: str,
    instrument_id: str,
    answers: dict[str, int | None],
    patient: str,
    authored: str,
) -> dict[str, Any]:
    response = client.get(f"/fhir/{reference}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    resource = QuestionnaireResponse.model_validate(body)
    for name, expression in QR_INVARIANTS.items():
        assert fhirpath(body, expression) == [True], name
    assert f"QuestionnaireResponse/{resource.id}" == reference
    assert resource.meta.versionId == "1"
    questionnaire = questionnaire_of(client, instrument_id)
    Questionnaire.model_validate(questionnaire)
    assert (
        body["questionnaire"] == questionnaire["url"] == f"{BELONG}/Questionnaire/{instrument_id}"
    )
    assert body["status"] == "completed"
    assert body["subject"] == {"reference": f"Patient/{patient}"}
    assert body["authored"] == authored
    codings = answer_codings(questionnaire)
    assert [i["linkId"] for i in body["item"]] == [i["linkId"] for i in questions(questionnaire)]
    for item in body["item"]:
        value = answers.get(item["linkId"])
        if value is None:
            assert "answer" not in item
            continue
        (answer,) = item["answer"]
        allowed = [(c["system"], c["code"]) for c in codings[item["linkId"]].values()]
        coding = answer["valueCoding"]
        assert (coding["system"], coding["code"]) in allowed, "an answer is one of the options"
        expected = codings[item["linkId"]][value]
        assert (coding["system"], coding["code"]) == (expected["system"], expected["code"])
    return body


# -- Observations ----------------------------------------------------------------------


@pytest.mark.parametrize(("instrument_id", "answers"), CASES)
def test_screening_observations_follow_the_profile(client, catalog, instrument_id, answers) -> None:
    patient = patient_id()
    response = client.post(
        "/v1/screenings",
        json={
            "patient_id": patient,
            "instrument": instrument_id,
            "completed_at": "2025-02-03T08:15:00Z",
            "answers": answers,
        },
    )
    assert response.status_code == 201, response.text
    result = response.json()
    observations = result["observations"]
    check_screening(catalog, instrument_id, answers, observations, result["questionnaire_response"])
    assert all(o["effectiveDateTime"] == "2025-02-03T08:15:00Z" for o in observations)
    # The interpretation agrees with the band /v1 reports.
    (total,) = [o for o in observations if o["id"].endswith("-total")]
    assert total["valueQuantity"]["value"] == result["score"]["total"]
    band = result["score"]["band"]
    assert interpretation(total) == ([] if band is None else ["POS" if band["positive"] else "NEG"])
    # Stored as returned: each one reads back the same, and the search finds exactly these.
    for observation in observations:
        read = client.get(f"/fhir/Observation/{observation['id']}")
        assert read.status_code == 200
        assert read.headers["content-type"].startswith(FHIR_JSON)
        assert read.json() == observation
    assert sorted(o["id"] for o in search_all(client, patient=patient)) == sorted(
        o["id"] for o in observations
    )
    check_questionnaire_response(
        client,
        result["questionnaire_response"],
        instrument_id,
        answers,
        patient,
        "2025-02-03T08:15:00Z",
    )


@pytest.mark.parametrize(("instrument_id", "answers"), CASES)
def test_questionnaire_response_observations_follow_the_profile(
    client, catalog, instrument_id, answers
) -> None:
    patient = patient_id()
    questionnaire = questionnaire_of(client, instrument_id)
    posted = own_response(questionnaire, answers, patient)
    QuestionnaireResponse.model_validate(posted)  # the test's own input is valid R4
    response = client.post(
        "/fhir/QuestionnaireResponse",
        content=_json(posted),
        headers={"Content-Type": FHIR_JSON},
    )
    assert response.status_code == 201, response.text
    created = response.json()
    QuestionnaireResponse.model_validate(created)
    reference = f"QuestionnaireResponse/{created['id']}"
    observations = search_all(client, patient=patient)
    check_screening(catalog, instrument_id, answers, observations, reference)
    assert all(o["effectiveDateTime"] == posted["authored"] for o in observations)
    stored = check_questionnaire_response(
        client, reference, instrument_id, answers, patient, posted["authored"]
    )
    assert stored == created
    assert stored["identifier"] == posted["identifier"]


def test_a_response_that_echoes_the_preambles_still_scores(client, catalog) -> None:
    """Some renderers copy display items into the response; they carry no answer."""
    patient = patient_id()
    questionnaire = questionnaire_of(client, "lsns-6")
    answers: dict[str, int | None] = {str(n): 2 for n in range(1, 7)}
    posted = own_response(questionnaire, answers, patient)
    by_link = {item["linkId"]: item for item in posted["item"]}
    posted["item"] = [
        by_link.get(item["linkId"], {"linkId": item["linkId"], "text": item["text"]})
        for item in questionnaire["item"]
    ]
    assert [i["linkId"] for i in posted["item"]][:2] == ["family", "1"]
    QuestionnaireResponse.model_validate(posted)
    response = client.post(
        "/fhir/QuestionnaireResponse", content=_json(posted), headers={"Content-Type": FHIR_JSON}
    )
    assert response.status_code == 201, response.text
    observations = search_all(client, patient=patient)
    check_screening(
        catalog, "lsns-6", answers, observations, f"QuestionnaireResponse/{response.json()['id']}"
    )
    (total,) = [o for o in observations if o["id"].endswith("-total")]
    assert total["valueQuantity"]["value"] == 12


@pytest.mark.parametrize(
    ("instrument_id", "code"), [("promis-si-8a", "77849-8"), ("promis-is-8a", "77850-6")]
)
def test_promis_8a_score_carries_the_pco_score_code_and_no_panel(
    licensed_client, catalog, instrument_id, code
) -> None:
    answers: dict[str, int | None] = {link: 3 for link in catalog[instrument_id].link_ids}
    response = licensed_client.post(
        "/v1/screenings",
        json={
            "patient_id": patient_id(),
            "instrument": instrument_id,
            "completed_at": "2025-02-03T08:15:00Z",
            "answers": answers,
        },
    )
    assert response.status_code == 201, response.text
    result = response.json()
    observations = result["observations"]
    check_screening(catalog, instrument_id, answers, observations, result["questionnaire_response"])
    assert not [o for o in observations if o["id"].endswith("-panel") or "hasMember" in o]
    (total,) = [o for o in observations if o["id"].endswith("-total")]
    assert [(c["system"], c["code"]) for c in total["code"]["coding"]] == [(LOINC, code)]
    assert total["meta"]["profile"] == [SDOHCC_OSR]


def test_answers_at_another_utc_offset_are_effective_in_utc(client, catalog) -> None:
    patient = patient_id()
    answers = {"1": 4}
    questionnaire = questionnaire_of(client, "ahc-isolation")
    posted = own_response(questionnaire, answers, patient, authored="2025-03-04T23:30:00-05:00")
    response = client.post(
        "/fhir/QuestionnaireResponse", content=_json(posted), headers={"Content-Type": FHIR_JSON}
    )
    assert response.status_code == 201, response.text
    observations = search_all(client, patient=patient)
    check_screening(
        catalog,
        "ahc-isolation",
        answers,
        observations,
        f"QuestionnaireResponse/{response.json()['id']}",
    )
    assert {o["effectiveDateTime"] for o in observations} == {"2025-03-05T04:30:00Z"}


ALL_INSTRUMENTS = sorted(p.stem for p in INSTRUMENTS_DIR.glob("*.yaml"))


@pytest.mark.parametrize("extreme", ["lowest", "highest"])
@pytest.mark.parametrize("instrument_id", ALL_INSTRUMENTS)
def test_every_instrument_emits_valid_resources(
    licensed_client, catalog, instrument_id, extreme
) -> None:
    """Both write paths, for every instrument in the catalog (licensed ones enabled)."""
    instrument = catalog[instrument_id]
    pick = min if extreme == "lowest" else max
    answers: dict[str, int | None] = {
        link: pick(v for v, option in options.items() if not option.declined)
        for link, options in instrument.options.items()
    }
    patient = patient_id()
    response = licensed_client.post(
        "/v1/screenings",
        json={
            "patient_id": patient,
            "instrument": instrument_id,
            "completed_at": "2025-02-03T08:15:00Z",
            "answers": answers,
        },
    )
    assert response.status_code == 201, response.text
    result = response.json()
    check_screening(
        catalog, instrument_id, answers, result["observations"], result["questionnaire_response"]
    )
    check_questionnaire_response(
        licensed_client,
        result["questionnaire_response"],
        instrument_id,
        answers,
        patient,
        "2025-02-03T08:15:00Z",
    )
    patient = patient_id()
    posted = own_response(questionnaire_of(licensed_client, instrument_id), answers, patient)
    created = licensed_client.post(
        "/fhir/QuestionnaireResponse", content=_json(posted), headers={"Content-Type": FHIR_JSON}
    )
    assert created.status_code == 201, created.text
    reference = f"QuestionnaireResponse/{created.json()['id']}"
    check_screening(
        catalog, instrument_id, answers, search_all(licensed_client, patient=patient), reference
    )


# Resources that R4 rejects, each posted as an otherwise good response. Belong stores the
# received QuestionnaireResponse and serves it back, so what it accepts it must be able to
# serve as valid FHIR: base-invalid input is 400 (service/screenings/controllers/fhir.py docstring).
BASE_INVALID = {
    "unknown-element": lambda r: r.update(colour="blue"),
    "item-text-not-a-string": lambda r: r["item"][0].update(text=5),
    "two-value-x": lambda r: r["item"][0]["answer"][0].update(valueInteger=5),
    "empty-string": lambda r: r["identifier"].update(value=""),
}


@pytest.mark.parametrize("case", sorted(BASE_INVALID))
def test_base_invalid_responses_are_rejected_not_served(client, case) -> None:
    resource = own_response(questionnaire_of(client, "ahc-isolation"), {"1": 5}, patient_id())
    BASE_INVALID[case](resource)
    with pytest.raises(ValidationError):  # the input really is invalid R4
        QuestionnaireResponse.model_validate(resource)
    response = client.post(
        "/fhir/QuestionnaireResponse", content=_json(resource), headers={"Content-Type": FHIR_JSON}
    )
    if response.status_code == 400:
        check_operation_outcome(response, 400)
        return
    assert response.status_code == 201
    served = client.get(f"/fhir/QuestionnaireResponse/{response.json()['id']}")
    try:
        QuestionnaireResponse.model_validate(served.json())
    except ValidationError as exc:
        raise AssertionError(f"served as invalid R4: {exc}") from exc


# -- searchset Bundles -----------------------------------------------------------------


def check_searchset(body: dict[str, Any], resource_type: str) -> Bundle:
    bundle = Bundle.model_validate(body)
    assert bundle.type == "searchset"
    for name, expression in BUNDLE_INVARIANTS.items():
        assert fhirpath(body, expression) == [True], name
    relations = [link["relation"] for link in body["link"]]
    assert relations.count("self") == 1
    for entry in body.get("entry", []):
        assert entry["search"] == {"mode": "match"}
        assert entry["resource"]["resourceType"] == resource_type
        assert entry["fullUrl"].endswith(f"/fhir/{resource_type}/{entry['resource']['id']}")
        assert entry["fullUrl"].startswith("http")
    return bundle


def test_observation_searchset_validates(client) -> None:
    patient = patient_id()
    for completed_at in ("2025-01-05T10:00:00Z", "2025-01-06T10:00:00Z"):
        response = client.post(
            "/v1/screenings",
            json={
                "patient_id": patient,
                "instrument": "ucla-3",
                "completed_at": completed_at,
                "answers": {"1": 2, "2": 2, "3": 2},
            },
        )
        assert response.status_code == 201
    first = client.get("/fhir/Observation", params={"patient": patient, "_count": "3"})
    assert first.status_code == 200
    assert first.headers["content-type"].startswith(FHIR_JSON)
    bundle = check_searchset(first.json(), "Observation")
    assert bundle.total == 10
    assert len(bundle.entry) == 3
    for entry in first.json()["entry"]:
        check_osr_profile(entry["resource"])
        assert (
            client.get(f"/fhir/Observation/{entry['resource']['id']}").json() == entry["resource"]
        )
    relations = {link.relation: link.url for link in bundle.link}
    assert "next" in relations
    last = first.json()
    for _ in range(3):  # pages of 3, 3, 3 and the last, of 1
        url = urlsplit(next(x["url"] for x in last["link"] if x["relation"] == "next"))
        last = client.get(url.path, params=parse_qsl(url.query)).json()
    assert len(check_searchset(last, "Observation").entry) == 1
    assert [link["relation"] for link in last["link"]].count("next") == 0


def test_empty_searchset_validates(client) -> None:
    response = client.get("/fhir/Observation", params={"patient": patient_id()})
    assert response.status_code == 200
    bundle = check_searchset(response.json(), "Observation")
    assert bundle.total == 0
    assert not bundle.entry


def test_questionnaire_searchset_validates(client) -> None:
    response = client.get("/fhir/Questionnaire")
    assert response.status_code == 200
    check_searchset(response.json(), "Questionnaire")


# -- the CapabilityStatement -----------------------------------------------------------

# What this file's resources declare, exactly (other resource types are checked generically).
EXPECTED_INTERACTIONS = {
    "Questionnaire": {"read", "search-type"},
    "QuestionnaireResponse": {"read", "vread", "create", "update", "search-type"},
    "Observation": {"read", "search-type"},
    "Organization": {"read"},
}
OBSERVATION_SEARCH_PARAMS = {
    "patient": "reference",
    "subject": "reference",
    "code": "token",
    "category": "token",
    "date": "date",
    "_lastUpdated": "date",
}


def capability(client) -> dict[str, Any]:
    response = client.get("/fhir/metadata")
    assert response.status_code == 200
    return response.json()


def test_capability_statement_is_valid_r4(session_client) -> None:
    response = session_client.get("/fhir/metadata")  # public: no token
    assert response.status_code == 200
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    statement = CapabilityStatement.model_validate(body)
    for name, expression in CAPABILITY_INVARIANTS.items():
        assert fhirpath(body, expression) == [True], name
    assert statement.fhirVersion == "4.0.1"
    assert statement.kind == "instance"
    assert statement.status == "active"
    assert FHIR_JSON in statement.format
    (rest,) = statement.rest
    assert rest.mode == "server"
    resources = {r.type: r for r in rest.resource}
    assert len(resources) == len(rest.resource), "each resource type once"
    for kind, interactions in EXPECTED_INTERACTIONS.items():
        assert {i.code for i in resources[kind].interaction} == interactions, kind
    assert resources["QuestionnaireResponse"].conditionalCreate is True
    assert resources["QuestionnaireResponse"].conditionalUpdate is True
    assert SDOHCC_OSR in resources["Observation"].supportedProfile
    params = {p.name: p.type for p in resources["Observation"].searchParam}
    assert params == OBSERVATION_SEARCH_PARAMS
    params = {p.name: p.type for p in resources["Questionnaire"].searchParam}
    assert params == {"url": "uri", "_id": "token", "code": "token"}
    for resource in rest.resource:
        names = [p.name for p in resource.searchParam or []]
        assert len(names) == len(set(names)), resource.type
        assert not set(names) & {"_count", "_sort", "_offset"}, "result parameters"


def test_capability_statement_lists_what_works(client) -> None:
    """Each declared interaction and Observation search parameter answers and filters."""
    patient = patient_id()
    questionnaire = questionnaire_of(client, "ahc-isolation")
    posted = own_response(questionnaire, {"1": 5}, patient)
    # QuestionnaireResponse: create, read.
    created = client.post(
        "/fhir/QuestionnaireResponse", content=_json(posted), headers={"Content-Type": FHIR_JSON}
    )
    assert created.status_code == 201
    qr_id = created.json()["id"]
    assert client.get(f"/fhir/QuestionnaireResponse/{qr_id}").status_code == 200
    # Questionnaire: read, search-type.
    assert client.get("/fhir/Questionnaire").status_code == 200
    assert client.get("/fhir/Questionnaire/ahc-isolation").status_code == 200
    # Observation: read, and search-type with each declared parameter, each one narrowing.
    (observation, _) = sorted(search_all(client, patient=patient), key=lambda o: o["id"])
    assert client.get(f"/fhir/Observation/{observation['id']}").status_code == 200
    samples = {
        "patient": (f"Patient/{patient}", f"Patient/{patient_id()}"),
        "subject": (f"Patient/{patient}", f"Patient/{patient_id()}"),
        "code": (f"{LOINC}|93159-2", f"{LOINC}|0000-0"),
        "category": (f"{US_CORE_CATEGORY}|sdoh", "laboratory"),
        "date": ("2025-03-04", "2024-03-04"),
        "_lastUpdated": (f"ge{created.json()['meta']['lastUpdated'][:19]}Z", "lt2000-01-01"),
    }
    declared = {r["type"]: r for r in capability(client)["rest"][0]["resource"]}
    assert {p["name"] for p in declared["Observation"]["searchParam"]} == set(samples)
    for name, (matching, excluded) in samples.items():
        base = {} if name in ("patient", "subject") else {"patient": patient}
        response = client.get("/fhir/Observation", params={**base, name: matching})
        assert response.status_code == 200, (name, response.text)
        assert response.json()["total"] == (1 if name == "code" else 2), name
        none = client.get("/fhir/Observation", params={**base, name: excluded})
        assert none.status_code == 200 and none.json()["total"] == 0, name


def test_declared_resource_types_answer_and_undeclared_ones_do_not(client) -> None:
    declared = {r["type"]: r for r in capability(client)["rest"][0]["resource"]}
    for kind, resource in declared.items():
        interactions = {i["code"] for i in resource["interaction"]}
        if "search-type" in interactions:
            response = client.get(f"/fhir/{kind}", params={"_count": "1"})
            assert response.status_code == 200, (kind, response.text)
            check_searchset(response.json(), kind)
        else:
            assert client.get(f"/fhir/{kind}").status_code in (404, 405), kind
        if "read" in interactions:
            check_operation_outcome(client.get(f"/fhir/{kind}/no-such-id"), 404)
        if "create" not in interactions:
            response = client.post(f"/fhir/{kind}", json={"resourceType": kind})
            assert response.status_code in (404, 405), kind
        assert client.put(f"/fhir/{kind}/x", json={"resourceType": kind}).status_code in (
            404,
            405,
        )
        assert client.delete(f"/fhir/{kind}/x").status_code in (404, 405), kind
    for kind in ("Patient", "Encounter", "Condition", "Bundle"):
        if kind not in declared:
            check_operation_outcome(client.get(f"/fhir/{kind}"), 404)
            check_operation_outcome(client.get(f"/fhir/{kind}/x"), 404)


# -- OperationOutcome ------------------------------------------------------------------

ERRORS = {
    "400-not-json": ("POST", "/fhir/QuestionnaireResponse", b"{nope", FHIR_JSON, 400),
    "400-resource-type": (
        "POST",
        "/fhir/QuestionnaireResponse",
        b'{"resourceType": "Observation"}',
        FHIR_JSON,
        400,
    ),
    "415-text-plain": ("POST", "/fhir/QuestionnaireResponse", b"{}", "text/plain", 415),
    "422-in-progress": (
        "POST",
        "/fhir/QuestionnaireResponse",
        b'{"resourceType": "QuestionnaireResponse", "status": "in-progress"}',
        FHIR_JSON,
        422,
    ),
    "404-questionnaire-response": ("GET", "/fhir/QuestionnaireResponse/nope", None, None, 404),
    "404-observation": ("GET", "/fhir/Observation/nope", None, None, 404),
    "404-no-route": ("GET", "/fhir/Patient/1", None, None, 404),
    "400-search-date": ("GET", "/fhir/Observation?date=2026-13", None, None, 400),
    "400-search-count": ("GET", "/fhir/Observation?_count=-1", None, None, 400),
}


def check_operation_outcome(response, status: int) -> dict[str, Any]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    outcome = OperationOutcome.model_validate(body)
    assert outcome.issue
    for issue in outcome.issue:
        assert issue.severity in ("fatal", "error")
        assert issue.code in ISSUE_TYPES
        assert issue.diagnostics or issue.details
    return body


@pytest.mark.parametrize("case", sorted(ERRORS))
def test_errors_are_valid_operation_outcomes(client, case) -> None:
    method, path, body, content_type, status = ERRORS[case]
    headers = {"Content-Type": content_type} if content_type else {}
    response = client.request(method, path, content=body, headers=headers)
    check_operation_outcome(response, status)


def test_auth_errors_are_valid_operation_outcomes(session_client, make_clinic) -> None:
    response = session_client.get("/fhir/Observation")
    check_operation_outcome(response, 401)
    assert response.headers["www-authenticate"].startswith("Bearer")
    reader = make_clinic(scopes=("screenings:read",))
    response = session_client.post(
        "/fhir/QuestionnaireResponse",
        content=b"{}",
        headers={**reader.headers, "Content-Type": FHIR_JSON},
    )
    body = check_operation_outcome(response, 403)
    assert body["issue"][0]["code"] == "forbidden"


def test_conflict_outcome_is_valid(client) -> None:
    questionnaire = questionnaire_of(client, "ahc-isolation")
    for system in ("urn:a", "urn:b"):
        posted = own_response(questionnaire, {"1": 1}, patient_id())
        posted["identifier"] = {"system": system, "value": "same"}
        created = client.post(
            "/fhir/QuestionnaireResponse",
            content=_json(posted),
            headers={"Content-Type": FHIR_JSON},
        )
        assert created.status_code == 201
    response = client.post(
        "/fhir/QuestionnaireResponse",
        content=_json(posted),
        headers={"Content-Type": FHIR_JSON, "If-None-Exist": "identifier=same"},
    )
    body = check_operation_outcome(response, 412)
    assert body["issue"][0]["code"] in ("duplicate", "multiple-matches")
