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
    assert [i.linkId for i in resource.item] == [i.linkId for i in definition.items]
    for item, source in zip(resource.item, definition.items, strict=True):
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
