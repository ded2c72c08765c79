"""Every instrument as a Questionnaire validates as FHIR R4 (fhir.resources.R4B)."""

from __future__ import annotations

import fhirpathpy
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.questionnaire import Questionnaire

from tests.conftest import INSTRUMENTS_DIR

INSTRUMENT_IDS = sorted(p.stem for p in INSTRUMENTS_DIR.glob("*.yaml"))
LOINC = "http://loinc.org"


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_questionnaire_is_valid_r4(client, catalog, instrument_id) -> None:
    response = client.get(f"/fhir/Questionnaire/{instrument_id}")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    resource = Questionnaire.model_validate(body)
    assert resource.id == instrument_id
    assert resource.url == f"https://belong.example/fhir/Questionnaire/{instrument_id}"
    assert resource.status == "active"
    # que-0: name is computer-friendly
    assert fhirpathpy.evaluate(body, "name.matches('[A-Z]([A-Za-z0-9_]){0,254}')") == [True]
    definition = catalog[instrument_id].definition
    questions = [i for i in resource.item if i.type != "display"]
    assert [i.linkId for i in questions] == [i.linkId for i in definition.items]
    for item, source in zip(questions, definition.items, strict=True):
        assert item.type == "choice"
        assert item.text == source.text
        if source.code is not None:
            assert [(c.system, c.code) for c in item.code] == [(LOINC, source.code.code)]
        else:
            assert item.code is None
        options = definition.option_sets[source.options]
        assert [o.extension[0].valueDecimal for o in item.answerOption] == [
            o.value for o in options
        ]
        for answer, option in zip(item.answerOption, options, strict=True):
            coding = answer.valueCoding
            assert coding.display == option.display
            if option.code:
                assert (coding.system, coding.code) == (LOINC, option.code)
            else:
                assert coding.system.endswith(f"/CodeSystem/{instrument_id}-answers")
                assert coding.code == str(option.value)
    if definition.panel is not None:
        assert resource.code[0].code == definition.panel.code


LSNS6_FAMILY = "Considering the people to whom you are related by birth, marriage, adoption, etc…"
LSNS6_FRIENDSHIPS = "Considering all of your friends including those who live in your neighborhood…"


def test_lsns6_shows_each_preamble_as_display_text_before_its_block(client) -> None:
    body = client.get("/fhir/Questionnaire/lsns-6").json()
    resource = Questionnaire.model_validate(body)
    assert [(i.linkId, i.type) for i in resource.item] == [
        ("family", "display"),
        ("1", "choice"),
        ("2", "choice"),
        ("3", "choice"),
        ("friends", "display"),
        ("4", "choice"),
        ("5", "choice"),
        ("6", "choice"),
    ]
    family, friends = (i for i in resource.item if i.type == "display")
    assert (family.prefix, family.text) == ("FAMILY", LSNS6_FAMILY)
    assert (friends.prefix, friends.text) == ("FRIENDSHIPS", LSNS6_FRIENDSHIPS)
    for display in (family, friends):
        # que-6 and the display-item rules: no answers, no required/repeats, no code.
        assert display.answerOption is None and display.required is None
        assert display.repeats is None and display.code is None
    assert resource.item[5].text == (
        "How many of your friends do you see or hear from at least once a month?"
    )


def test_questionnaire_without_preambles_has_no_display_items(client) -> None:
    body = client.get("/fhir/Questionnaire/ucla-3").json()
    assert {item["type"] for item in body["item"]} == {"choice"}


def test_questionnaire_search_is_a_searchset_of_every_instrument(client) -> None:
    response = client.get("/fhir/Questionnaire")
    assert response.status_code == 200
    bundle = Bundle.model_validate(response.json())
    assert bundle.type == "searchset"
    assert bundle.total == len(INSTRUMENT_IDS)
    assert sorted(e.resource.id for e in bundle.entry) == INSTRUMENT_IDS
    assert all(e.fullUrl.endswith(f"/fhir/Questionnaire/{e.resource.id}") for e in bundle.entry)


def test_unknown_questionnaire_is_operation_outcome_404(client) -> None:
    response = client.get("/fhir/Questionnaire/nope")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/fhir+json")
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert body["issue"][0]["code"] == "not-found"
