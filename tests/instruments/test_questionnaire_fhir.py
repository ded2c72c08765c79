"""Every instrument as a Questionnaire validates as FHIR R4 (fhir.resources.R4B), has a
version that makes a valid ``url|version`` canonical, and is found by url, _id and code."""

from __future__ import annotations

import re
import uuid

import fhirpathpy
import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.capabilitystatement import CapabilityStatement
from fhir.resources.R4B.questionnaire import Questionnaire
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings
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


CANONICAL = re.compile(r"^\S+$")
"""R4's canonical (a uri): no whitespace."""
VERSION_SLUG = re.compile(r"^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$")


@pytest.mark.parametrize("instrument_id", INSTRUMENT_IDS)
def test_questionnaire_version_makes_a_valid_versioned_canonical(
    client, catalog, instrument_id
) -> None:
    body = client.get(f"/fhir/Questionnaire/{instrument_id}").json()
    resource = Questionnaire.model_validate(body)
    assert VERSION_SLUG.fullmatch(resource.version), resource.version
    versioned = f"{resource.url}|{resource.version}"
    assert CANONICAL.fullmatch(versioned) and versioned.count("|") == 1
    # the slug keeps every letter and digit of the instrument's version, in order
    published = catalog[instrument_id].definition.version
    assert re.sub(r"[^a-z0-9]", "", resource.version) == re.sub(r"[^a-z0-9]", "", published.lower())
    found = client.get("/fhir/Questionnaire", params={"url": versioned}).json()
    assert [e["resource"]["id"] for e in found["entry"]] == [instrument_id]


def test_questionnaire_search_by_each_parameter(client) -> None:
    url = "https://belong.example/fhir/Questionnaire/lsns-6"
    version = client.get("/fhir/Questionnaire/lsns-6").json()["version"]
    for params, expected in (
        ({"url": url}, ["lsns-6"]),
        ({"url": f"{url}|{version}"}, ["lsns-6"]),
        ({"url": f"{url}|not-{version}"}, []),
        ({"_id": "lsns-6"}, ["lsns-6"]),
        ({"_id": "lsns-6,ucla-3"}, ["lsns-6", "ucla-3"]),
        ({"_id": "no-such"}, []),
        ({"code": "http://loinc.org|106418-7"}, ["ucla-3"]),
        ({"url": url, "code": "http://loinc.org|106418-7"}, []),
    ):
        response = client.get("/fhir/Questionnaire", params=params)
        assert response.status_code == 200, (params, response.text)
        bundle = Bundle.model_validate(response.json())
        assert sorted(e.resource.id for e in bundle.entry or []) == expected, params
        assert bundle.total == len(expected)
        (self_link,) = [link.url for link in bundle.link if link.relation == "self"]
        assert all(name in self_link for name in params), "the self link shows what was applied"


@pytest.mark.parametrize(
    ("name", "value"), [("code", "a|b|c"), ("_id", "bad id"), ("url", "https://x/ a")]
)
def test_malformed_questionnaire_search_is_400_naming_the_parameter(client, name, value) -> None:
    response = client.get("/fhir/Questionnaire", params={name: value})
    assert response.status_code == 400
    body = response.json()
    assert body["resourceType"] == "OperationOutcome"
    assert name in str(body["issue"])


def test_the_canonical_base_setting_moves_every_canonical(database_url, make_clinic) -> None:
    base = "https://belong.clinic.example/fhir"
    app = create_app(Settings(database_url=database_url, fhir_canonical_base=base))
    with TestClient(app) as configured:
        statement = CapabilityStatement.model_validate(configured.get("/fhir/metadata").json())
        assert statement.url == f"{base}/CapabilityStatement/belong"
        questionnaire = Questionnaire.model_validate(
            configured.get("/fhir/Questionnaire/ahc-isolation").json()
        )
        assert questionnaire.url == f"{base}/Questionnaire/ahc-isolation"
        assert configured.get("/v1/instruments/ahc-isolation").json()["questionnaire"] == (
            questionnaire.url
        )
        clinic = make_clinic()
        patient = f"pat-{uuid.uuid4().hex[:12]}"
        option = questionnaire.item[0].answerOption[-1].valueCoding
        posted = configured.post(
            "/fhir/QuestionnaireResponse",
            headers={**clinic.headers, "content-type": "application/fhir+json"},
            json={
                "resourceType": "QuestionnaireResponse",
                "questionnaire": f"{questionnaire.url}|{questionnaire.version}",
                "status": "completed",
                "subject": {"reference": f"Patient/{patient}"},
                "authored": "2025-06-01T09:00:00Z",
                "item": [
                    {
                        "linkId": questionnaire.item[0].linkId,
                        "answer": [{"valueCoding": option.model_dump(exclude_none=True)}],
                    }
                ],
            },
        )
        assert posted.status_code == 201, posted.text
        found = configured.get(
            "/fhir/Observation", params={"patient": patient}, headers=clinic.headers
        ).json()
        codes = {e["resource"]["code"]["coding"][0]["system"] for e in found["entry"]}
        assert codes, "the response was scored"
        assert all(s == "http://loinc.org" or s.startswith(f"{base}/") for s in codes), codes
    default = Settings()
    assert default.fhir_canonical_base == "https://belong.example/fhir"


@pytest.mark.parametrize(
    "value", ["https://x.example/fhir/", "https://x.example/f hir", "ftp://x.example", "x|y"]
)
def test_a_canonical_base_that_cannot_mint_canonicals_stops_start_up(value) -> None:
    with pytest.raises(SystemExit, match="fhir_canonical_base"):
        Settings.from_env({"BELONG_FHIR_CANONICAL_BASE": value})
