"""QuestionnaireResponse search (``_id``, ``patient``, ``identifier``, ``authored``) and
Observation ``_include=Observation:derived-from``, over HTTP on real PostgreSQL, with a
search through fhirpy against a live ``belong serve``. Every Bundle is validated with
``fhir.resources.R4B``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from fhirpy import SyncFHIRClient
from litestar import Litestar
from litestar.testing import TestClient

from service.platform.credentials import SCOPES
from tests.conftest import Clinic, MakeClinic, scratch_database
from tests.helpers import FhirSeed, questionnaire_response, seed_fhir
from tests.live import live_server

TIMEOUT = 10.0
QR = "QuestionnaireResponse"


@pytest.fixture
def seed(client: TestClient[Litestar]) -> FhirSeed:
    return seed_fhir(client)


def search(client: TestClient[Litestar], kind: str, params: Any) -> dict[str, Any]:
    response = client.get(f"/fhir/{kind}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/fhir+json")
    bundle = response.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    return bundle


def matched(client: TestClient[Litestar], params: Any) -> set[str]:
    bundle = search(client, QR, params)
    entries = bundle.get("entry", [])
    assert {e["search"]["mode"] for e in entries} <= {"match"}
    assert {e["resource"]["resourceType"] for e in entries} <= {QR}
    assert bundle["total"] == len(entries)
    return {e["resource"]["id"] for e in entries}


def test_by_patient_and_subject(client, seed: FhirSeed) -> None:
    mine, theirs = seed.questionnaire_response, seed.other_questionnaire_response
    assert matched(client, {"patient": seed.patient}) == {mine}
    assert matched(client, {"subject": f"Patient/{seed.other_patient}"}) == {theirs}
    assert matched(client, {"patient": f"{seed.patient},{seed.other_patient}"}) == {mine, theirs}
    repeated = [("patient", seed.patient), ("patient", seed.other_patient)]
    assert matched(client, repeated) == set()
    base = search(client, QR, {"_count": 1})["link"][0]["url"].split("/fhir/")[0]
    assert matched(client, {"patient": f"{base}/fhir/Patient/{seed.patient}"}) == {mine}
    assert matched(client, {"patient": f"https://ehr.example/fhir/Patient/{seed.patient}"}) == set()


def test_by_id(client, seed: FhirSeed) -> None:
    mine, theirs = seed.questionnaire_response, seed.other_questionnaire_response
    assert matched(client, {"_id": mine}) == {mine}
    assert matched(client, {"_id": f"{mine},{theirs}"}) == {mine, theirs}
    assert matched(client, [("_id", f"{mine},{theirs}"), ("_id", theirs)]) == {theirs}
    assert matched(client, {"_id": "no-such-response"}) == set()
    read = client.get(f"/fhir/{QR}/{mine}").json()
    (entry,) = search(client, QR, {"_id": mine})["entry"]
    assert entry["resource"] == read
    assert entry["fullUrl"].endswith(f"/fhir/{QR}/{mine}")


def test_by_identifier(client, seed: FhirSeed) -> None:
    mine = seed.questionnaire_response
    for token in (
        f"urn:ehr:qr|{seed.identifier}",
        seed.identifier,
        "urn:ehr:qr|",  # any identifier of the system
        f"urn:other|x,urn:ehr:qr|{seed.identifier}",
    ):
        assert matched(client, {"identifier": token}) == {mine}, token
    for token in (f"urn:other|{seed.identifier}", f"|{seed.identifier}", "urn:other|", "nope"):
        assert matched(client, {"identifier": token}) == set(), token
    both = [("identifier", "urn:ehr:qr|"), ("identifier", seed.identifier)]
    assert matched(client, both) == {mine}
    assert matched(client, {"identifier:missing": "false"}) == {mine}
    assert matched(client, {"identifier:missing": "true"}) == {seed.other_questionnaire_response}


def test_by_authored_with_and_repeats(client, seed: FhirSeed) -> None:
    mine, theirs = seed.questionnaire_response, seed.other_questionnaire_response
    assert matched(client, {"authored": "2025-04-01"}) == {mine}  # 2025-04-01T12:00:00Z
    assert matched(client, {"authored": "2024-03"}) == {theirs}  # 2024-03-01T09:30:00Z
    assert matched(client, {"authored": "ge2024-01-01"}) == {mine, theirs}
    window = [("authored", "gt2025-04-01T11:59:00Z"), ("authored", "lt2025-04-01T12:01:00Z")]
    assert matched(client, window) == {mine}
    assert matched(client, [("authored", "lt2024-03-02"), ("authored", "ge2025-01-01")]) == set()
    patient_and_date = {"patient": seed.patient, "authored": "2024"}
    assert matched(client, patient_and_date) == set()


def test_newest_first_and_paged(client, seed: FhirSeed) -> None:
    for n in range(3):
        body = questionnaire_response(seed.patient, authored=f"2025-05-0{n + 1}T08:00:00Z")
        created = client.post(f"/fhir/{QR}", json=body)
        assert created.status_code == 201, created.text
    first = search(client, QR, {"patient": seed.patient, "_count": 2})
    assert first["total"] == 4
    authored = [e["resource"]["authored"] for e in first["entry"]]
    assert authored == ["2025-05-03T08:00:00Z", "2025-05-02T08:00:00Z"]
    next_url = next(link["url"] for link in first["link"] if link["relation"] == "next")
    second = client.get("/fhir/" + next_url.split("/fhir/", 1)[1])
    assert [e["resource"]["authored"] for e in second.json()["entry"]] == [
        "2025-05-01T08:00:00Z",
        "2025-04-01T12:00:00Z",
    ]


def test_stays_in_the_callers_clinic(
    client, seed: FhirSeed, make_clinic: MakeClinic, session_client: TestClient[Litestar]
) -> None:
    other: Clinic = make_clinic()
    for params in (
        {"_id": seed.questionnaire_response},
        {"patient": seed.patient},
        {"identifier": f"urn:ehr:qr|{seed.identifier}"},
        {"authored": "ge2000"},
    ):
        response = session_client.get(f"/fhir/{QR}", params=params, headers=other.headers)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 0
    included = session_client.get(
        "/fhir/Observation",
        params={"_include": "Observation:derived-from"},
        headers=other.headers,
    )
    assert included.json().get("entry", []) == []


def test_needs_screenings_read(client, make_clinic: MakeClinic, session_client) -> None:
    writer = make_clinic(scopes=("screenings:write",))
    response = session_client.get(f"/fhir/{QR}", headers=writer.headers)
    assert response.status_code == 403


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"_id": "a/b"}, "_id"),
        ({"patient": "Practitioner/1"}, "patient"),
        ({"identifier": "urn:x|\x00"}, "identifier"),
        ({"identifier": "|"}, "identifier"),
        ({"identifier:missing": "yes"}, "identifier:missing"),
        ({"authored": "2025-02-30"}, "authored"),
    ],
)
def test_bad_values_are_400_naming_the_parameter(client, params, field) -> None:
    response = client.get(f"/fhir/{QR}", params=params)
    assert response.status_code in (400, 422), response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(field in issue.get("expression", []) for issue in outcome["issue"]), outcome


# -- Observation _include=Observation:derived-from -----------------------------------------


def test_observation_include_derived_from(client, seed: FhirSeed) -> None:
    params = {"patient": seed.patient, "_include": "Observation:derived-from"}
    bundle = search(client, "Observation", params)
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert bundle["total"] == len(matches)
    assert [(e["resource"]["resourceType"], e["resource"]["id"]) for e in included] == [
        (QR, seed.questionnaire_response)
    ]  # the item Observations the score derives from are matches already: listed once
    assert included[0]["fullUrl"].endswith(f"/fhir/{QR}/{seed.questionnaire_response}")
    assert included[0]["resource"] == client.get(f"/fhir/{QR}/{seed.questionnaire_response}").json()
    assert "_include=Observation%3Aderived-from" in bundle["link"][0]["url"]


def test_observation_include_derived_from_by_target_type(client, seed: FhirSeed) -> None:
    total = client.get(f"/fhir/Observation/{seed.total}").json()
    items = {r["reference"] for r in total["derivedFrom"] if r["reference"].startswith("Obs")}
    assert items
    code = total["code"]["coding"][0]
    params = [
        ("patient", seed.patient),
        ("code", f"{code['system']}|{code['code']}"),
        ("_include", "Observation:derived-from:Observation"),
    ]
    bundle = search(client, "Observation", params)
    modes = {(e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"]}
    assert modes == {("match", "Observation"), ("include", "Observation")}
    included = {
        f"Observation/{e['resource']['id']}"
        for e in bundle["entry"]
        if e["search"]["mode"] == "include"
    }
    assert included == items
    params[-1] = ("_include", "Observation:derived-from:QuestionnaireResponse")
    bundle = search(client, "Observation", params)
    assert [e["resource"]["resourceType"] for e in bundle["entry"]] == ["Observation", QR]


def test_observation_include_other_values_are_400(client) -> None:
    response = client.get("/fhir/Observation", params={"_include": "Observation:subject"})
    assert response.status_code == 400
    assert response.json()["issue"][0]["expression"] == ["_include"]


# -- fhirpy against a live server ----------------------------------------------------------


class LiveSession(requests.Session):
    """Requests to the live server by path, as seed_fhir makes them, each with a timeout."""

    def __init__(self, origin: str, token: str) -> None:
        super().__init__()
        self.origin = origin
        self.headers["Authorization"] = f"Bearer {token}"

    def request(self, method: str | bytes, url: str | bytes, *args: Any, **kwargs: Any) -> Any:
        kwargs.setdefault("timeout", TIMEOUT)
        return super().request(method, f"{self.origin}{url!s}", *args, **kwargs)


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[SyncFHIRClient, FhirSeed]]:
    folder = tmp_path_factory.mktemp("qr_search")
    url = scratch_database("qr_search")
    with live_server(url, folder, SCOPES, clinic=f"qr-{uuid.uuid4().hex[:8]}") as server:
        seeded = seed_fhir(LiveSession(server.origin, server.token))  # type: ignore[arg-type]
        fhirpy = SyncFHIRClient(
            f"{server.origin}/fhir",
            authorization=f"Bearer {server.token}",
            requests_config={"timeout": TIMEOUT},
        )
        yield fhirpy, seeded


def test_fhirpy_finds_a_response_by_identifier_and_patient(live) -> None:
    fhirpy, seeded = live
    found = (
        fhirpy.resources(QR)
        .search(identifier=f"urn:ehr:qr|{seeded.identifier}", patient=seeded.patient)
        .fetch_all()
    )
    assert [r.id for r in found] == [seeded.questionnaire_response]
    assert found[0]["identifier"] == {"system": "urn:ehr:qr", "value": seeded.identifier}
    dated = fhirpy.resources(QR).search(authored__ge="2025-01-01").fetch_all()
    assert [r.id for r in dated] == [seeded.questionnaire_response]


def test_observation_repeats_and_and_lists_or(client, seed: FhirSeed) -> None:
    everyone = set(seed.observations | seed.other_observations)

    def found(params: Any) -> set[str]:
        bundle = search(client, "Observation", params)
        return {e["resource"]["id"] for e in bundle.get("entry", [])}

    assert found({"patient": f"{seed.patient},{seed.other_patient}", "_count": 100}) == everyone
    assert found([("patient", seed.patient), ("subject", f"Patient/{seed.patient}")]) == set(
        seed.observations
    )
    assert found([("patient", seed.patient), ("patient", seed.other_patient)]) == set()
    base = search(client, QR, {"_count": 1})["link"][0]["url"].split("/fhir/")[0]
    own = f"{base}/fhir/Patient/{seed.other_patient}"
    assert found({"patient": own}) == set(seed.other_observations)
    total = client.get(f"/fhir/Observation/{seed.total}").json()["code"]["coding"][0]
    code = f"{total['system']}|{total['code']}"
    assert found([("code", code), ("code", f"{total['system']}|")]) == {seed.total}
    assert found([("code", code), ("code", "http://loinc.org|0000-0")]) == set()
    categories = [("category", "survey"), ("category", "social-connection"), ("_count", "100")]
    assert found(categories) == everyone
    assert found([("category", "survey"), ("category", "vital-signs")]) == set()
