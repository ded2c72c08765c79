"""FHIR search rules every search shares (service/fhir/params.py): lenient handling unless
``Prefer: handling=strict``, the result parameters (_count capped, _count=0, _summary=count,
_total, _elements), _format and _pretty, 406 for XML, and keyset paging that stays stable
while matching rows arrive. /v1 keeps refusing unknown parameters."""

from __future__ import annotations

import json
from typing import Any
from urllib.parse import parse_qsl, urlsplit

import pytest
from fhir.resources.R4B.bundle import Bundle
from fhir.resources.R4B.operationoutcome import OperationOutcome

from service.platform.errors import FHIR_JSON
from tests.helpers import new_patient_id, ucla3

SEARCHES = ("Observation", "ServiceRequest", "Task", "HealthcareService", "Questionnaire")
SUBSETTED = "SUBSETTED"


def screen(client: Any, patient: str, completed_at: str) -> None:
    response = client.post("/v1/screenings", json=ucla3(patient, completed_at=completed_at))
    assert response.status_code == 201, response.text


@pytest.fixture
def patient(client: Any) -> str:
    """A patient with two UCLA-3 screenings: ten Observations."""
    patient = new_patient_id()
    for day in ("05", "06"):
        screen(client, patient, f"2025-01-{day}T10:00:00Z")
    return patient


def bundle_of(response: Any) -> dict[str, Any]:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    body = response.json()
    Bundle.model_validate(body)  # and every entry's resource with it
    return body


def outcome_of(response: Any, status: int) -> list[dict[str, Any]]:
    assert response.status_code == status, response.text
    assert response.headers["content-type"].startswith(FHIR_JSON)
    OperationOutcome.model_validate(response.json())
    return response.json()["issue"]


def link(bundle: dict[str, Any], relation: str) -> str | None:
    return next((x["url"] for x in bundle["link"] if x["relation"] == relation), None)


def query_of(url: str) -> list[tuple[str, str]]:
    return parse_qsl(urlsplit(url).query)


def follow(client: Any, url: str) -> dict[str, Any]:
    parts = urlsplit(url)
    return bundle_of(client.get(parts.path, params=parse_qsl(parts.query)))


@pytest.mark.parametrize("resource_type", SEARCHES)
def test_unknown_parameters_are_ignored_and_left_out_of_the_self_link(
    client: Any, resource_type: str
) -> None:
    bundle = bundle_of(
        client.get(f"/fhir/{resource_type}", params={"_count": "5", "colour": "blue"})
    )
    assert query_of(link(bundle, "self") or "") == [("_count", "5")]


@pytest.mark.parametrize("resource_type", SEARCHES)
def test_strict_handling_refuses_an_unknown_parameter_naming_it(
    client: Any, resource_type: str
) -> None:
    response = client.get(
        f"/fhir/{resource_type}",
        params={"colour": "blue"},
        headers={"Prefer": "return=representation, handling=strict"},
    )
    issues = outcome_of(response, 400)
    assert issues[0]["expression"] == ["colour"]
    lenient = client.get(
        f"/fhir/{resource_type}", params={"colour": "blue"}, headers={"Prefer": "handling=lenient"}
    )
    assert lenient.status_code == 200


def test_the_self_link_shows_what_was_applied(client: Any, patient: str) -> None:
    bundle = bundle_of(
        client.get(
            "/fhir/Observation",
            params=[
                ("patient", patient),
                ("code:text", "lonely"),  # a modifier Belong does not support: ignored
                ("date", "ge2025-01-01"),
                ("_count", "4"),
                ("_sort", "date"),
                ("_totalMethod", "count"),
            ],
        )
    )
    applied = query_of(link(bundle, "self") or "")
    assert sorted(applied) == [
        ("_count", "4"),
        ("_sort", "date"),
        ("date", "ge2025-01-01"),
        ("patient", patient),
    ]
    assert bundle["total"] == 10
    following = query_of(link(bundle, "next") or "")
    assert following[:-1] == applied and following[-1][0] == "_cursor"


def test_v1_and_fhir_reads_still_refuse_unknown_parameters(client: Any, patient: str) -> None:
    v1 = client.get("/v1/referrals", params={"colour": "blue"})
    assert v1.status_code == 400 and v1.json()["errors"][0]["field"] == "colour"
    observation = bundle_of(client.get("/fhir/Observation", params={"patient": patient}))
    read = client.get(
        f"/fhir/Observation/{observation['entry'][0]['resource']['id']}", params={"colour": "b"}
    )
    assert outcome_of(read, 400)[0]["expression"] == ["colour"]


def test_count_above_the_maximum_is_capped(client: Any) -> None:
    patient = new_patient_id()
    for day in range(1, 23):  # 22 screenings, 110 Observations
        screen(client, patient, f"2025-01-{day:02d}T10:00:00Z")
    bundle = bundle_of(
        client.get("/fhir/Observation", params={"patient": patient, "_count": "1000"})
    )
    assert len(bundle["entry"]) == 100 and bundle["total"] == 110
    assert ("_count", "100") in query_of(link(bundle, "self") or "")
    rest = follow(client, link(bundle, "next") or "")
    assert len(rest["entry"]) == 10 and link(rest, "next") is None


@pytest.mark.parametrize(
    "params", [{"_summary": "count"}, {"_count": "0"}, {"_summary": "count", "_count": "3"}]
)
def test_a_total_without_entries(client: Any, patient: str, params: dict[str, str]) -> None:
    bundle = bundle_of(client.get("/fhir/Observation", params={"patient": patient, **params}))
    assert bundle["total"] == 10
    assert bundle.get("entry", []) == []
    assert link(bundle, "next") is None


def test_total_none_leaves_the_total_out(client: Any, patient: str) -> None:
    bundle = bundle_of(
        client.get("/fhir/Observation", params={"patient": patient, "_total": "none"})
    )
    assert "total" not in bundle and len(bundle["entry"]) == 10
    for accurate in ("accurate", "estimate"):
        counted = client.get("/fhir/Observation", params={"patient": patient, "_total": accurate})
        assert bundle_of(counted)["total"] == 10


@pytest.mark.parametrize("resource_type", ["Observation", "Questionnaire"])
def test_elements_subsets_and_tags_subsetted(client: Any, patient: str, resource_type: str) -> None:
    params = {"_elements": "valueQuantity,subject", "_count": "3"}
    if resource_type == "Observation":
        params["patient"] = patient
    bundle = bundle_of(client.get(f"/fhir/{resource_type}", params=params))
    assert bundle["entry"]
    for entry in bundle["entry"]:
        resource = entry["resource"]
        allowed = {"resourceType", "id", "meta", "status", "code", "valueQuantity", "subject"}
        assert set(resource) <= allowed
        assert "status" in resource  # required elements are kept
        assert SUBSETTED in [tag["code"] for tag in resource["meta"]["tag"]]
    assert ("_elements", "valueQuantity,subject") in query_of(link(bundle, "self") or "")


@pytest.mark.parametrize(
    "value", ["json", "application/json", "application/fhir+json", "fhir+json"]
)
def test_format_json_forms_are_served(client: Any, patient: str, value: str) -> None:
    bundle = bundle_of(
        client.get("/fhir/Observation", params={"patient": patient, "_format": value})
    )
    assert bundle["total"] == 10
    assert not any(name == "_format" for name, _ in query_of(link(bundle, "self") or ""))


def test_format_typed_unencoded_is_served(client: Any, patient: str) -> None:
    """A "+" typed into a URL arrives as a space: application/fhir+json still."""
    url = f"/fhir/Observation?patient={patient}&_format=application/fhir+json"
    assert bundle_of(client.get(url))["total"] == 10


@pytest.mark.parametrize(
    ("params", "headers"),
    [
        ({"_format": "xml"}, {}),
        ({"_format": "application/fhir+xml"}, {}),
        ({}, {"Accept": "application/fhir+xml"}),
        ({}, {"Accept": "application/xml;q=0.9, text/xml"}),
    ],
)
@pytest.mark.parametrize("path", ["/fhir/Observation", "/fhir/metadata", "/fhir/Questionnaire"])
def test_xml_is_not_acceptable(
    client: Any, path: str, params: dict[str, str], headers: dict[str, str]
) -> None:
    issues = outcome_of(client.get(path, params=params, headers=headers), 406)
    assert issues[0]["expression"] == [next(iter(params), "Accept")]


def test_accept_with_json_among_others_is_served(client: Any) -> None:
    response = client.get(
        "/fhir/Questionnaire", headers={"Accept": "application/fhir+xml, application/fhir+json"}
    )
    assert bundle_of(response)["total"] >= 1


def test_pretty_indents_the_same_json(client: Any, patient: str) -> None:
    plain = client.get("/fhir/Observation", params={"patient": patient})
    pretty = client.get("/fhir/Observation", params={"patient": patient, "_pretty": "true"})
    assert pretty.status_code == 200
    assert "\n  " in pretty.text and "\n" not in plain.text
    assert json.loads(pretty.text)["entry"] == plain.json()["entry"]
    assert int(pretty.headers["content-length"]) == len(pretty.content)


@pytest.mark.parametrize(
    ("name", "value"),
    [("_summary", "maybe"), ("_total", "all"), ("_elements", "a b"), ("_pretty", "yes")],
)
def test_bad_result_parameter_values_are_400(client: Any, name: str, value: str) -> None:
    issues = outcome_of(client.get("/fhir/Observation", params={name: value}), 400)
    assert issues[0]["expression"] == [name]


def test_a_cursor_belongs_to_its_sort(client: Any, patient: str) -> None:
    first = bundle_of(client.get("/fhir/Observation", params={"patient": patient, "_count": "2"}))
    cursor = dict(query_of(link(first, "next") or ""))["_cursor"]
    other = client.get(
        "/fhir/Observation",
        params={"patient": patient, "_count": "2", "_sort": "date", "_cursor": cursor},
    )
    assert outcome_of(other, 422)[0]["expression"] == ["_cursor"]
    forged = client.get("/fhir/Observation", params={"patient": patient, "_cursor": "bm9wZQ"})
    assert outcome_of(forged, 422)[0]["expression"] == ["_cursor"]
    malformed = client.get("/fhir/Observation", params={"patient": patient, "_cursor": "a b"})
    assert outcome_of(malformed, 400)[0]["expression"] == ["_cursor"]


@pytest.mark.parametrize("sort", ["-date", "date", "-_lastUpdated", "_lastUpdated"])
def test_paging_is_stable_while_matching_rows_arrive(client: Any, sort: str) -> None:
    """Between pages, screenings dated at both ends of the order arrive: no row repeats and
    none that existed at the start is skipped."""
    patient = new_patient_id()
    for day in range(10, 16):  # 6 screenings, 30 Observations
        screen(client, patient, f"2025-03-{day}T10:00:00Z")
    bundle = bundle_of(
        client.get("/fhir/Observation", params={"patient": patient, "_count": "4", "_sort": sort})
    )
    at_start = {
        e["resource"]["id"]
        for e in bundle_of(
            client.get("/fhir/Observation", params={"patient": patient, "_count": "100"})
        )["entry"]
    }
    seen = [e["resource"]["id"] for e in bundle["entry"]]
    arriving = iter(f"2025-{month:02d}-01T10:00:00Z" for month in (1, 12, 2, 11, 4, 9, 5, 8))
    for _ in range(40):
        url = link(bundle, "next")
        if url is None:
            break
        when = next(arriving, None)
        if when is not None:
            screen(client, patient, when)
        bundle = follow(client, url)
        seen.extend(e["resource"]["id"] for e in bundle["entry"])
    assert link(bundle, "next") is None
    assert len(seen) == len(set(seen)), "no row repeats"
    assert at_start <= set(seen), "none of those there at the start is skipped"


def test_directory_pages_follow_by_name_and_id(client: Any) -> None:
    """Services sharing a name are paged by id after it, each seen once."""
    for name in ("Walk", "Art", "Walk", "Walk", "Choir"):
        service = {"name": name, "organization": "Org", "category": "support-group"}
        created = client.post("/v1/directory/services", json={**service, "modalities": ["online"]})
        assert created.status_code == 201, created.text
    first = bundle_of(client.get("/fhir/HealthcareService", params={"_count": "2"}))
    assert first["total"] == 5
    names = [e["resource"]["name"] for e in first["entry"]]
    ids = [e["resource"]["id"] for e in first["entry"]]
    bundle = first
    while (url := link(bundle, "next")) is not None:
        bundle = follow(client, url)
        names.extend(e["resource"]["name"] for e in bundle["entry"])
        ids.extend(e["resource"]["id"] for e in bundle["entry"])
    assert names == ["Art", "Choir", "Walk", "Walk", "Walk"]
    assert len(set(ids)) == 5
