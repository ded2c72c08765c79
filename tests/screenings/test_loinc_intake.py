"""A QuestionnaireResponse keyed by LOINC item codes alone is read as the instrument whose
items carry those codes (service/screenings/intake.py ``pick_by_loinc``).

For every instrument with LOINC item codes a form is posted whose only link to Belong is
those codes (linkIds, plain or LHC-Forms path style; no Belong canonical). The item
Observations carry the LOINC codes and answers; where the coded items are all the score
needs, the total is scored (201), otherwise the answer is a 422 naming that instrument and
how many of its items (those without a LOINC code) are unanswered. Instruments sharing
codes (a short form and its parent) give the form to the best-filled one.
"""

from __future__ import annotations

from typing import Any

import msgspec
import pytest

from service.instruments.fhir import answer_system
from service.instruments.model import LOINC, Instrument
from service.instruments.scoring import score, validate
from service.screenings.fhir import local_system
from service.screenings.intake import InboundQuestionnaireResponse, pick_by_loinc
from tests.screenings.test_fhir_rest import new_patient, outcome, post, scored

CODED = (
    "ahc-isolation",
    "mmos-ss",
    "mos-sss",
    "peg",
    "prapare-social-contact",
    "ucla-20",
    "ucla-3",
)
"""The instruments with LOINC item codes (tests/instruments/test_loinc_codes.py checks them)."""


def coded_items(instrument: Instrument) -> dict[str, str]:
    """linkId -> LOINC code of the instrument's coded items."""
    return {
        item.linkId: item.code.code
        for item in instrument.definition.items
        if item.code is not None and item.code.system == LOINC
    }


def answer_for(instrument: Instrument, link_id: str) -> tuple[int, dict[str, Any]]:
    """The highest substantive option of an item, and how a form sends it."""
    options = instrument.options[link_id]
    value = max(v for v, option in options.items() if not option.declined)
    code = options[value].code
    if code:
        return value, {"valueCoding": {"system": LOINC, "code": code}}
    return value, {"valueInteger": value}


def loinc_form(
    patient: str, instruments: list[Instrument], path_style: bool = False
) -> dict[str, Any]:
    items = []
    for instrument in instruments:
        for link_id, code in coded_items(instrument).items():
            _, answer = answer_for(instrument, link_id)
            items.append({"linkId": f"/panel/{code}" if path_style else code, "answer": [answer]})
    return {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": "http://example.org/Questionnaire/intake-form",
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2025-06-02T10:00:00Z",
        "item": items,
    }


def test_the_coded_instruments_are_these(catalog) -> None:
    assert sorted(i for i in catalog if coded_items(catalog[i])) == sorted(CODED)


@pytest.mark.parametrize("path_style", [False, True], ids=["code", "path"])
@pytest.mark.parametrize("instrument_id", CODED)
def test_a_form_keyed_by_loinc_codes_is_read_as_the_instrument(
    client, catalog, instrument_id, path_style
) -> None:
    instrument = catalog[instrument_id]
    patient = new_patient()
    response = post(client, loinc_form(patient, [instrument], path_style))
    codes = coded_items(instrument)
    answers = {link_id: answer_for(instrument, link_id)[0] for link_id in codes}
    complete = len(codes) == len(instrument.definition.items)
    if not complete:
        (issue,) = outcome(response, 422)
        unanswered = len(instrument.definition.items) - len(codes)
        assert issue["diagnostics"].startswith(
            f"{instrument_id}: no total can be scored: {unanswered} of "
            f"{len(instrument.definition.items)} items unanswered"
        ), issue
        return
    assert response.status_code == 201, response.text
    by_code = scored(client, patient)
    for link_id, code in codes.items():
        (coding,) = by_code[code]["valueCodeableConcept"]["coding"]
        option = instrument.options[link_id][answers[link_id]]
        expected = (
            (LOINC, option.code)
            if option.code
            else (
                answer_system(instrument),
                str(answers[link_id]),
            )
        )
        assert (coding["system"], coding["code"]) == expected
    expected_total = score(instrument, validate(instrument, answers.items())).total
    total_code = instrument.definition.scoring.code
    system, code = (
        (total_code.system, total_code.code) if total_code else (local_system(instrument), "total")
    )
    total = by_code[code]
    assert total["code"]["coding"][0]["system"] == system
    assert total["valueQuantity"]["value"] == expected_total


def decoded(resource: dict[str, Any]) -> InboundQuestionnaireResponse:
    return msgspec.convert(resource, InboundQuestionnaireResponse)


@pytest.mark.parametrize(
    ("sent", "picked"),
    [
        (["mmos-ss"], ["mmos-ss"]),
        (["mos-sss"], ["mos-sss"]),
        (["ucla-3"], ["ucla-3"]),
        (["ucla-20"], ["ucla-20"]),
        (["ucla-3", "peg"], ["ucla-3", "peg"]),
        (["peg", "mmos-ss", "ahc-isolation"], ["peg", "mmos-ss", "ahc-isolation"]),
    ],
)
def test_instruments_sharing_codes_give_the_form_to_the_best_filled(catalog, sent, picked) -> None:
    """mMOS-SS items are MOS-SSS items and UCLA-3 items UCLA-20 items: the codes alone are
    read as the instrument with the most items answered, then the largest share of its own."""
    form = decoded(loinc_form("p", [catalog[i] for i in sent]))
    assert [p.instrument.id for p in pick_by_loinc(form, catalog.values())] == picked
