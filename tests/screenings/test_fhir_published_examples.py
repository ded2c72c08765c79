"""HL7-published example QuestionnaireResponses are valid R4, so the facade accepts them.

The examples (tests/fixtures/questionnaire_responses, sources in its README) include
primitive extensions (``_questionnaire``): they are stored as received and read back. A
scorable example answers 201; one that cannot be scored answers 422 for that reason, never
400. Elements R4 does not define, wrong types and NUL characters still answer 400 naming
the element.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse

from tests.screenings.test_fhir_rest import ahc_response, new_patient, outcome, post, scored

EXAMPLES = Path(__file__).parent.parent / "fixtures" / "questionnaire_responses"
PRAPARE = "QuestionnaireResponse-SDOHCC-QuestionnaireResponsePRAPAREExample.json"
LOINC = "http://loinc.org"
DISPLAY = "http://hl7.org/fhir/StructureDefinition/display"


def example(name: str) -> dict[str, Any]:
    return json.loads((EXAMPLES / name).read_text())


EXPECTED = {
    PRAPARE: (201, None),
    "QuestionnaireResponse-SDOHCC-QuestionnaireResponseHungerVitalSignExample.json": (
        422,
        "QuestionnaireResponse.questionnaire",
    ),
    "questionnaireresponse-example.json": (422, "QuestionnaireResponse.subject"),
    "questionnaireresponse-example-bluebook.json": (422, "QuestionnaireResponse.questionnaire"),
    "questionnaireresponse-example-f201-lifelines.json": (
        422,
        "QuestionnaireResponse.questionnaire",
    ),
    "questionnaireresponse-example-gcs.json": (422, "QuestionnaireResponse.questionnaire"),
    "questionnaireresponse-example-ussg-fht-answers.json": (422, "QuestionnaireResponse.status"),
}
"""What each example answers: 201, or 422 with the element that keeps it from a score."""


def test_every_example_is_here_and_valid_r4() -> None:
    assert sorted(EXPECTED) == sorted(p.name for p in EXAMPLES.glob("*.json"))
    for name in EXPECTED:
        QuestionnaireResponse.model_validate(example(name))


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_a_published_example_is_accepted(client, name) -> None:
    status, expression = EXPECTED[name]
    response = post(client, example(name))
    if status == 201:
        assert response.status_code == 201, response.text
        return
    (issue, *_) = outcome(response, 422)
    assert issue["expression"] == [expression], issue


def test_the_prapare_example_is_scored_and_stored_as_received(client) -> None:
    sent = example(PRAPARE)
    response = post(client, sent)
    assert response.status_code == 201, response.text
    stored = client.get(f"/fhir/QuestionnaireResponse/{response.json()['id']}").json()
    assert stored["_questionnaire"] == {
        "extension": [{"url": DISPLAY, "valueString": "SDOHCC Questionnaire PRAPARE"}]
    }
    for element in ("questionnaire", "item", "subject", "authored", "status"):
        assert stored[element] == sent[element], element
    assert stored["meta"]["profile"] == sent["meta"]["profile"]
    QuestionnaireResponse.model_validate(stored)
    by_code = scored(client, "pat-53234")
    (answer,) = by_code["93029-7"]["valueCodeableConcept"]["coding"]
    assert (answer["system"], answer["code"]) == (LOINC, "LA30130-1")
    (total,) = [o for o in by_code.values() if "valueQuantity" in o]
    assert total["valueQuantity"]["value"] == 2, "1 or 2 times a week"
    assert total["interpretation"][0]["coding"][0]["code"] == "NEG"


def primitive_extension(text: str) -> dict[str, Any]:
    return {"id": "x1", "extension": [{"url": DISPLAY, "valueString": text}]}


def with_primitive_extensions(patient: str) -> dict[str, Any]:
    """A Belong AHC response with an ``_x`` beside each kind of primitive it carries."""
    resource = ahc_response(patient, identifier={"system": "urn:ehr:qr", "value": patient})
    resource["_questionnaire"] = primitive_extension("AHC isolation")
    resource["_authored"] = primitive_extension("entered by a nurse")
    resource["_status"] = primitive_extension("status")
    resource["meta"] = {
        "profile": ["http://example.org/a", "http://example.org/b"],
        "_profile": [None, primitive_extension("second")],
        "_source": primitive_extension("source"),
    }
    resource["subject"]["_reference"] = primitive_extension("subject")
    resource["identifier"]["_value"] = primitive_extension("identifier")
    item = resource["item"][0]
    item["text"] = "How often do you feel lonely?"
    item["_text"] = primitive_extension("item text")
    item["_linkId"] = primitive_extension("linkId")
    item["answer"][0]["valueCoding"]["_code"] = primitive_extension("answer code")
    item["answer"][0]["valueCoding"]["_display"] = {"extension": []}
    return resource


def test_primitive_extensions_are_accepted_and_stored_as_received(client) -> None:
    patient = new_patient()
    sent = with_primitive_extensions(patient)
    response = post(client, sent)
    assert response.status_code == 201, response.text
    stored = client.get(f"/fhir/QuestionnaireResponse/{response.json()['id']}").json()
    for element in ("_questionnaire", "_authored", "_status", "subject", "identifier", "item"):
        assert stored[element] == sent[element], element
    assert stored["meta"]["_profile"] == sent["meta"]["_profile"]
    assert stored["meta"]["_source"] == sent["meta"]["_source"]
    QuestionnaireResponse.model_validate(stored)
    assert "93159-2" in scored(client, patient)


def changed(path: tuple[str | int, ...], value: Any) -> dict[str, Any]:
    resource = with_primitive_extensions(new_patient())
    node: Any = resource
    for step in path[:-1]:
        node = node[step]
    node[path[-1]] = value
    return resource


@pytest.mark.parametrize(
    ("path", "value", "expression"),
    [
        (("foo",), {"a": 1}, "QuestionnaireResponse"),
        (("_foo",), {}, "QuestionnaireResponse"),
        (("_subject",), {}, "QuestionnaireResponse"),
        (("item", 0, "_answer"), {}, "QuestionnaireResponse.item[0]"),
        (("_authored",), "not an Element", "QuestionnaireResponse._authored"),
        (("_authored",), {"url": "x"}, "QuestionnaireResponse._authored"),
        (("_authored",), [{}], "QuestionnaireResponse._authored"),
        (("meta", "_profile"), {}, "QuestionnaireResponse.meta._profile"),
        (("meta", "_profile"), ["x"], "QuestionnaireResponse.meta._profile[0]"),
        (("item", 0, "_text"), {"id": 1}, "QuestionnaireResponse.item[0]._text.id"),
        (("authored",), 2025, "QuestionnaireResponse.authored"),
    ],
)
def test_what_r4_does_not_define_is_still_400(client, path, value, expression) -> None:
    (issue, *_) = outcome(post(client, changed(path, value)), 400)
    assert issue["expression"] == [expression], issue
    assert str(path[-1]) in issue["diagnostics"]


def test_a_nul_in_a_primitive_extension_is_400(client) -> None:
    resource = with_primitive_extensions(new_patient())
    resource["item"][0]["_text"]["extension"][0]["valueString"] = "item\u0000text"
    (issue, *_) = outcome(post(client, resource), 400)
    assert "NUL" in issue["diagnostics"]
    assert issue["expression"] == ["QuestionnaireResponse.item[0]._text.extension[0].valueString"]
