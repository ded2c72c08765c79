"""A clinic's directory end to end: CRUD, search (filters, distance, paging), import.

Every test works in a clinic of its own (the ``client`` fixture), so a directory starts
empty. Distances are placed with the direct geodesic formula on the same sphere the
service uses, so "9.9 km away" means 9.9 km of great circle. The CLI import runs the real
``belong`` command in a subprocess against a fresh database it migrated itself.
"""

from __future__ import annotations

import asyncio
import json
import math
import os
import subprocess
import sys
import uuid
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient
from sqlalchemy.ext.asyncio import create_async_engine

from service.directory.fhir import CATEGORY_SYSTEM, CONDITION_SYSTEM, MODALITY_SYSTEM
from service.matching.model import EARTH_RADIUS_KM
from tests.conftest import Clinic, MakeClinic, scratch_database
from tests.helpers import PROBLEM_JSON, assert_problem

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "deploy" / "seed" / "directory.hsds.json"
SERVICES = "/v1/directory/services"
IMPORT = "/v1/directory/import"
JSON_HEADERS = {"Content-Type": "application/json"}


def destination(lat: float, lon: float, bearing: float, km: float) -> tuple[float, float]:
    """The point ``km`` along the great circle leaving (lat, lon) at ``bearing`` degrees."""
    p1, l1, theta, d = (
        math.radians(lat),
        math.radians(lon),
        math.radians(bearing),
        km / EARTH_RADIUS_KM,
    )
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(theta))
    l2 = l1 + math.atan2(
        math.sin(theta) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2)
    )
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


def body(name: str = "Service", **fields: Any) -> dict[str, Any]:
    entry: dict[str, Any] = {
        "name": name,
        "organization": "Org",
        "category": "support-group",
        "modalities": ["online"],
    }
    if isinstance(fields.get("location"), tuple):
        lat, lon = fields["location"]
        fields["location"] = {"lat": lat, "lon": lon}
    entry.update(fields)
    return entry


def create(client: TestClient[Litestar], name: str = "Service", **fields: Any) -> dict[str, Any]:
    response = client.post(SERVICES, json=body(name, **fields))
    assert response.status_code == 201, response.text
    return response.json()


def search(client: TestClient[Litestar], **params: Any) -> dict[str, Any]:
    response = client.get(SERVICES, params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return response.json()


def names(page: dict[str, Any]) -> list[str]:
    return [item["name"] for item in page["items"]]


def seed() -> list[dict[str, Any]]:
    return json.loads(SEED.read_text(encoding="utf-8"))


def count(client: TestClient[Litestar]) -> int:
    return search(client, limit=1)["total"]


def snapshot(client: TestClient[Litestar]) -> list[dict[str, Any]]:
    """The whole directory, for "nothing changed" checks."""
    items = []
    offset = 0
    while True:
        page = search(client, offset=offset)
        items.extend(page["items"])
        offset += page["limit"]
        if offset >= page["total"]:
            return items


# -- CRUD ----------------------------------------------------------------------------------


def test_create_read_replace_delete(client: TestClient[Litestar]) -> None:
    created = client.post(
        SERVICES,
        json=body(
            "Pain Cafe",
            category="social-activity",
            modalities=["in-person", "online"],
            conditions=["crps"],
            languages=["en", "es-MX"],
            location=(51.5, -0.1),
            catchment_km=12,
            min_age=18,
            capacity=5,
            contact={"phone": "555-0100", "url": "https://cafe.example.org/"},
        ),
    )
    assert created.status_code == 201, created.text
    entry = created.json()
    service_id = entry["id"]
    assert created.headers["location"] == f"{SERVICES}/{service_id}"
    assert (entry["source_system"], entry["source_id"]) == ("api", service_id)
    assert entry["created_at"] == entry["updated_at"]
    assert entry["location"] == {"lat": 51.5, "lon": -0.1}
    assert entry["languages"] == ["en", "es-MX"]

    read = client.get(f"{SERVICES}/{service_id}")
    assert read.status_code == 200
    assert read.json() == entry

    replaced = client.put(
        f"{SERVICES}/{service_id}",
        json=body(
            "Pain Cafe (moved online)", category="social-activity", accepting_referrals=False
        ),
    )
    assert replaced.status_code == 200, replaced.text
    after = replaced.json()
    assert after["id"] == service_id
    assert after["name"] == "Pain Cafe (moved online)"
    assert after["accepting_referrals"] is False
    for gone in ("location", "catchment_km", "conditions", "capacity", "contact"):
        assert gone not in after  # a PUT replaces the whole entry
    assert after["created_at"] == entry["created_at"]
    assert after["updated_at"] > entry["updated_at"]
    assert client.get(f"{SERVICES}/{service_id}").json() == after

    deleted = client.delete(f"{SERVICES}/{service_id}")
    assert deleted.status_code == 204
    assert_problem(client.get(f"{SERVICES}/{service_id}"), 404, "service_id")
    assert_problem(client.put(f"{SERVICES}/{service_id}", json=body()), 404, "service_id")
    assert_problem(client.delete(f"{SERVICES}/{service_id}"), 404, "service_id")
    assert search(client)["total"] == 0


@pytest.mark.parametrize(
    ("fields", "field"),
    [
        ({"category": "knitting"}, "category"),
        ({"modalities": []}, "modalities"),
        ({"languages": ["english"]}, "languages"),
        ({"name": "bad\x00name"}, "name"),
        ({"location": {"lat": 91, "lon": 0}}, "location.lat"),
        ({"surprise": True}, "data"),
    ],
)
def test_an_invalid_entry_is_refused_and_nothing_is_stored(
    client: TestClient[Litestar], fields: dict[str, Any], field: str
) -> None:
    problem = assert_problem(client.post(SERVICES, json=body(**fields)), 400)
    assert problem["errors"], problem
    assert count(client) == 0


def test_an_entry_with_min_age_above_max_age_is_refused(client: TestClient[Litestar]) -> None:
    created = create(client, "Aged")

    posted = client.post(SERVICES, json=body(min_age=40, max_age=30))
    replaced = client.put(f"{SERVICES}/{created['id']}", json=body(min_age=40, max_age=30))

    for response in (posted, replaced):
        problem = assert_problem(response, response.status_code)
        assert response.status_code in (400, 422)
        assert "min_age" in json.dumps(problem["errors"])
    assert snapshot(client) == [created]


def test_writes_need_directory_write_and_reads_need_referrals_read(
    session_client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    writer = make_clinic(scopes=("directory:write",))
    reader = make_clinic(scopes=("referrals:read",), name=f"reader-{uuid.uuid4()}")
    own = session_client.post(SERVICES, json=body(), headers=writer.headers)
    assert own.status_code == 201, own.text
    service_id = own.json()["id"]

    for method, url, payload in [
        ("GET", SERVICES, None),
        ("GET", f"{SERVICES}/{service_id}", None),
    ]:
        response = session_client.request(method, url, json=payload, headers=writer.headers)
        assert_problem(response, 403)
    for method, url, payload in [
        ("POST", SERVICES, body()),
        ("PUT", f"{SERVICES}/{service_id}", body()),
        ("DELETE", f"{SERVICES}/{service_id}", None),
        ("POST", IMPORT, seed()[:2]),
    ]:
        response = session_client.request(method, url, json=payload, headers=reader.headers)
        assert_problem(response, 403)
        anonymous = session_client.request(method, url, json=payload)
        assert_problem(anonymous, 401)
    assert session_client.get(SERVICES, headers=reader.headers).json()["total"] == 0


def test_another_clinics_service_answers_exactly_like_a_missing_one(
    session_client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    a, b = make_clinic(), make_clinic()
    mine = session_client.post(SERVICES, json=body("A's group"), headers=a.headers).json()
    missing = str(uuid.uuid4())

    def shape(response: Any, ident: str) -> tuple[int, str, Any]:
        return (
            response.status_code,
            response.headers["content-type"],
            json.loads(response.text.replace(ident, "<id>")),
        )

    for method, payload in [("GET", None), ("PUT", body("Hijack")), ("DELETE", None)]:
        foreign = session_client.request(
            method, f"{SERVICES}/{mine['id']}", json=payload, headers=b.headers
        )
        absent = session_client.request(
            method, f"{SERVICES}/{missing}", json=payload, headers=b.headers
        )
        assert foreign.status_code == 404
        assert foreign.headers["content-type"].startswith(PROBLEM_JSON)
        assert shape(foreign, mine["id"]) == shape(absent, missing)

    assert session_client.get(SERVICES, headers=b.headers).json()["total"] == 0
    still = session_client.get(f"{SERVICES}/{mine['id']}", headers=a.headers)
    assert still.status_code == 200 and still.json() == mine


# -- search --------------------------------------------------------------------------------


@pytest.fixture
def four(client: TestClient[Litestar]) -> TestClient[Litestar]:
    create(
        client,
        "Alpha",
        category="support-group",
        conditions=["crps"],
        languages=["en"],
        modalities=["in-person"],
        location=(51.5, -0.1),
    )
    create(
        client,
        "Bravo",
        category="counselling",
        languages=["es-MX"],
        modalities=["online"],
        accepting_referrals=False,
    )
    create(
        client,
        "Charlie",
        category="social-activity",
        conditions=["fibromyalgia"],
        languages=["en", "pl"],
        modalities=["phone"],
        capacity=0,
    )
    create(
        client,
        "Delta",
        category="family-communication",
        languages=["fr"],
        modalities=["in-person", "online"],
    )
    return client


@pytest.mark.parametrize(
    ("params", "expected"),
    [
        ({}, ["Alpha", "Bravo", "Charlie", "Delta"]),
        ({"category": "counselling"}, ["Bravo"]),
        ({"condition": "crps"}, ["Alpha", "Bravo", "Delta"]),  # none listed: every condition
        ({"condition": "fibromyalgia"}, ["Bravo", "Charlie", "Delta"]),
        ({"language": "es"}, ["Bravo"]),
        ({"language": "es-ES"}, ["Bravo"]),
        ({"language": "en"}, ["Alpha", "Charlie"]),
        ({"language": "pl"}, ["Charlie"]),
        ({"modality": "online"}, ["Bravo", "Delta"]),
        ({"modality": "in-person"}, ["Alpha", "Delta"]),
        ({"accepting": "true"}, ["Alpha", "Delta"]),  # capacity 0 is not accepting
        ({"accepting": "false"}, ["Bravo", "Charlie"]),
        ({"category": "support-group", "condition": "crps", "accepting": "true"}, ["Alpha"]),
        ({"modality": "online", "accepting": "true"}, ["Delta"]),
        ({"name": "ha"}, ["Alpha", "Charlie"]),  # anywhere in the name, in any case
        ({"name": "BRAVO"}, ["Bravo"]),
        ({"name": "%"}, []),  # the text as written, not a LIKE pattern
        ({"name": "_"}, []),
        ({"name": "a", "language": "en"}, ["Alpha", "Charlie"]),
    ],
)
def test_search_filters(
    four: TestClient[Litestar], params: dict[str, str], expected: list[str]
) -> None:
    page = search(four, **params)

    assert names(page) == expected
    assert page["total"] == len(expected)


@pytest.mark.parametrize(
    "params",
    [
        {"category": "knitting"},
        {"modality": "telepathy"},
        {"language": "english"},
        {"near": "51.5"},
        {"near": "91,0"},
        {"near": "0,181"},
        {"near": "0,0", "radius_km": "0"},
        {"near": "0,0", "radius_km": "5000"},
        {"limit": "0"},
        {"limit": "201"},
        {"offset": "-1"},
        {"name": ""},
        {"name": "x" * 201},
        {"name": "a\x00b"},
    ],
)
def test_bad_search_parameters_answer_400(
    client: TestClient[Litestar], params: dict[str, str]
) -> None:
    assert_problem(client.get(SERVICES, params=params), 400)


def test_paging_by_limit_and_offset_with_total(client: TestClient[Litestar]) -> None:
    for letter in "GCEAFDB":
        create(client, f"Group {letter}")

    pages = [search(client, limit=3, offset=offset) for offset in (0, 3, 6, 9)]

    assert [names(p) for p in pages] == [
        ["Group A", "Group B", "Group C"],
        ["Group D", "Group E", "Group F"],
        ["Group G"],
        [],
    ]
    assert {p["total"] for p in pages} == {7}
    assert [(p["limit"], p["offset"]) for p in pages] == [(3, 0), (3, 3), (3, 6), (3, 9)]


def place_ring(
    client: TestClient[Litestar], center: tuple[float, float], bearing: float
) -> dict[str, float]:
    """Services 9.9 and 10.1 km from ``center``, and one without a location."""
    placed = {}
    for km in (9.9, 10.1, 3.0):
        name = f"{km} km"
        create(client, name, location=destination(*center, bearing, km))
        placed[name] = km
    create(client, "Nowhere")
    return placed


@pytest.mark.parametrize(
    ("center", "bearing"),
    [
        pytest.param((0.0, 10.0), 90, id="equator-east"),
        pytest.param((0.0, 10.0), 0, id="equator-north"),
        pytest.param((-0.01, -78.5), 225, id="equator-southwest"),
        pytest.param((69.65, 18.96), 90, id="tromso-east"),
        pytest.param((69.65, 18.96), 300, id="tromso-northwest"),
        pytest.param((-77.85, 166.67), 45, id="antarctic"),
        pytest.param((89.95, 0.0), 0, id="over-the-pole"),
    ],
)
def test_near_keeps_services_within_the_great_circle_radius(
    client: TestClient[Litestar], center: tuple[float, float], bearing: float
) -> None:
    place_ring(client, center, bearing)

    page = search(client, near=f"{center[0]},{center[1]}", radius_km=10)

    assert names(page) == ["3.0 km", "9.9 km"]  # nearest first; 10.1 km and no location out
    assert [item["distance_km"] for item in page["items"]] == [
        pytest.approx(3.0, abs=0.006),
        pytest.approx(9.9, abs=0.006),
    ]
    assert page["total"] == 2
    wider = search(client, near=f"{center[0]},{center[1]}", radius_km=10.2)
    assert names(wider) == ["3.0 km", "9.9 km", "10.1 km"]


def test_near_at_high_latitude_counts_the_circles_widest_point(
    client: TestClient[Litestar],
) -> None:
    """At 70 degrees north the farthest-east point of a 10 km circle is not due east."""
    center = (70.0, 25.0)
    bearings = [b / 10 for b in range(3600)]
    east = max(bearings, key=lambda b: destination(*center, b, 9.9)[1])
    create(client, "Tangent 9.9", location=destination(*center, east, 9.9))
    create(client, "Tangent 10.1", location=destination(*center, east, 10.1))

    assert names(search(client, near="70.0,25.0", radius_km=10)) == ["Tangent 9.9"]


def test_near_across_the_antimeridian(client: TestClient[Litestar]) -> None:
    center = (-17.8, 179.95)
    place_ring(client, center, 90)  # east of 179.95 is -179.9...

    page = search(client, near="-17.8,179.95", radius_km=10)

    assert names(page) == ["3.0 km", "9.9 km"]


def test_near_with_a_large_radius_at_high_latitude(client: TestClient[Litestar]) -> None:
    center = (80.0, 0.0)
    bearings = [b / 10 for b in range(3600)]
    widest = max(bearings, key=lambda b: destination(*center, b, 990)[1])
    create(client, "Far but within", location=destination(*center, widest, 990))
    create(client, "Due north", location=destination(*center, 0, 990))

    page = search(client, near="80,0", radius_km=1000)

    assert sorted(names(page)) == ["Due north", "Far but within"]


def test_near_pages_by_distance(client: TestClient[Litestar]) -> None:
    center = (51.5, -0.1)
    for km in (7, 1, 5, 3, 9, 30):
        create(client, f"Z at {km}", location=destination(*center, km * 40, km))

    first = search(client, near="51.5,-0.1", radius_km=10, limit=2)
    rest = search(client, near="51.5,-0.1", radius_km=10, limit=2, offset=2)

    assert names(first) == ["Z at 1", "Z at 3"]
    assert names(rest) == ["Z at 5", "Z at 7"]
    assert first["total"] == rest["total"] == 5


def test_near_combines_with_the_other_filters(four: TestClient[Litestar]) -> None:
    create(four, "Echo", category="support-group", location=destination(51.5, -0.1, 10, 2))

    page = search(four, near="51.5,-0.1", radius_km=5, category="support-group")

    assert names(page) == ["Alpha", "Echo"]
    assert page["items"][0]["distance_km"] == 0


# -- import through the API ------------------------------------------------------------------


def post_import(client: TestClient[Litestar], data: Any, **params: str) -> Any:
    return client.post(IMPORT, json=data, params=params)


def test_the_seed_file_imports_then_updates(client: TestClient[Litestar]) -> None:
    first = post_import(client, seed())
    assert first.status_code == 200, first.text
    report = first.json()
    imported = report.pop("imported")
    assert report == {
        "format": "hsds",
        "applied": True,
        "created": 55,
        "updated": 0,
        "rejected": [],
    }
    assert imported == [
        {"index": index, "source_id": record["id"], "name": record["name"], "created": True}
        for index, record in enumerate(seed())
    ]
    before = {item["source_id"]: item for item in snapshot(client)}
    assert len(before) == 55
    assert {item["source_system"] for item in before.values()} == {"hsds"}

    second = post_import(client, seed())
    assert second.status_code == 200, second.text
    assert (second.json()["created"], second.json()["updated"]) == (0, 55)
    assert not any(record["created"] for record in second.json()["imported"])
    after = {item["source_id"]: item for item in snapshot(client)}
    assert count(client) == 55
    for source_id, item in after.items():
        assert item["id"] == before[source_id]["id"]  # same entries, updated in place
        assert item["created_at"] == before[source_id]["created_at"]
        assert item["updated_at"] > before[source_id]["updated_at"]


def test_an_import_updates_changed_records_and_revives_withdrawn_ones(
    client: TestClient[Litestar],
) -> None:
    records = seed()[:3]
    assert post_import(client, records).status_code == 200
    by_source = {i["source_id"]: i for i in snapshot(client)}
    withdrawn = by_source[records[1]["id"]]["id"]
    assert client.delete(f"{SERVICES}/{withdrawn}").status_code == 204
    records[0]["name"] = "Renamed Group"

    again = post_import(client, records)

    assert (again.json()["created"], again.json()["updated"]) == (0, 3)
    now = {i["source_id"]: i for i in snapshot(client)}
    assert now[records[0]["id"]]["name"] == "Renamed Group"
    assert now[records[1]["id"]]["id"] == withdrawn


def test_the_page_form_of_hsds_is_accepted(client: TestClient[Litestar]) -> None:
    response = post_import(client, {"total_items": 4, "contents": seed()[:4]})

    assert response.status_code == 200, response.text
    assert response.json()["created"] == 4


def fhir_bundle() -> dict[str, Any]:
    """Two HealthcareServices, one with its Location and Organization."""
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {"resource": {"resourceType": "Organization", "id": "org-1", "name": "Pain Org"}},
            {
                "resource": {
                    "resourceType": "Location",
                    "id": "loc-1",
                    "position": {"latitude": 51.51, "longitude": -0.12},
                    "address": {"text": "3 Low Road, Elmsbury"},
                }
            },
            {
                "resource": {
                    "resourceType": "HealthcareService",
                    "id": "hs-crps",
                    "active": True,
                    "name": "CRPS Circle",
                    "providedBy": {"reference": "Organization/org-1"},
                    "location": [{"reference": "Location/loc-1"}],
                    "type": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "support-group"}]}],
                    "characteristic": [
                        {"coding": [{"system": CONDITION_SYSTEM, "code": "crps"}]},
                        {"coding": [{"system": MODALITY_SYSTEM, "code": "in-person"}]},
                    ],
                    "communication": [{"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}],
                }
            },
            {
                "resource": {
                    "resourceType": "HealthcareService",
                    "id": "hs-talk",
                    "name": "Pain Talk",
                    "providedBy": {"display": "Talk Org"},
                    "type": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "counselling"}]}],
                    "characteristic": [
                        {"coding": [{"system": MODALITY_SYSTEM, "code": "online"}]},
                    ],
                }
            },
        ],
    }


def test_a_fhir_bundle_imports_then_updates(client: TestClient[Litestar]) -> None:
    first = post_import(client, fhir_bundle())
    assert first.status_code == 200, first.text
    report = first.json()
    assert [(r["source_id"], r["created"]) for r in report.pop("imported")] == [
        ("hs-crps", True),
        ("hs-talk", True),
    ]
    assert report == {
        "format": "fhir",
        "applied": True,
        "created": 2,
        "updated": 0,
        "rejected": [],
    }
    items = {i["source_id"]: i for i in snapshot(client)}
    assert set(items) == {"hs-crps", "hs-talk"}
    crps = items["hs-crps"]
    assert (crps["source_system"], crps["organization"], crps["conditions"]) == (
        "fhir",
        "Pain Org",
        ["crps"],
    )
    assert crps["location"] == {"lat": 51.51, "lon": -0.12}
    assert crps["address"] == "3 Low Road, Elmsbury"
    assert names(search(client, near="51.51,-0.12", radius_km=1)) == ["CRPS Circle"]

    second = post_import(client, fhir_bundle())
    assert (second.json()["created"], second.json()["updated"]) == (0, 2)
    assert count(client) == 2


def seed_with_bad_record(index: int = 3) -> list[dict[str, Any]]:
    records = seed()
    records[0]["name"] = "Changed by the bad file"
    records[index]["attributes"] = [
        a for a in records[index]["attributes"] if a["taxonomy_term"]["code"] != "category"
    ]
    return records


def test_one_bad_record_changes_nothing_and_names_the_record(
    client: TestClient[Litestar],
) -> None:
    assert post_import(client, seed()).status_code == 200
    before = snapshot(client)

    response = post_import(client, seed_with_bad_record(3))

    problem = assert_problem(response, 422, "[3]")
    assert [e["field"] for e in problem["errors"]] == ["[3]"]
    assert "category" in problem["errors"][0]["message"]
    assert snapshot(client) == before


def test_one_bad_record_in_a_first_import_creates_nothing(client: TestClient[Litestar]) -> None:
    response = post_import(client, seed_with_bad_record(54), on_error="reject-file")

    assert_problem(response, 422, "[54]")
    assert count(client) == 0


def test_skip_record_applies_the_rest_and_reports_the_rejection(
    client: TestClient[Litestar],
) -> None:
    records = seed_with_bad_record(3)
    bad_source = records[3]["id"]

    response = post_import(client, records, on_error="skip-record")

    assert response.status_code == 200, response.text
    report = response.json()
    assert (report["applied"], report["created"], report["updated"]) == (True, 54, 0)
    [rejected] = report["rejected"]
    assert (rejected["index"], rejected["source_id"]) == (3, bad_source)
    assert any("category" in reason for reason in rejected["reasons"])
    stored = {i["source_id"]: i for i in snapshot(client)}
    assert len(stored) == 54 and bad_source not in stored
    assert stored[records[0]["id"]]["name"] == "Changed by the bad file"


def test_a_bad_healthcareservice_is_named_by_its_entry_index(
    client: TestClient[Litestar],
) -> None:
    bundle = fhir_bundle()
    bundle["entry"][3]["resource"]["characteristic"] = []  # no modality, no location

    assert_problem(post_import(client, bundle), 422, "[3]")
    assert count(client) == 0
    skipped = post_import(client, bundle, on_error="skip-record")
    assert skipped.json()["created"] == 1
    assert [r["index"] for r in skipped.json()["rejected"]] == [3]


@pytest.mark.parametrize(
    "content",
    [
        pytest.param(b"{not json", id="not-json"),
        pytest.param(b"", id="empty"),
        pytest.param(b'[{"id": "a"}\x00]', id="raw-nul-byte"),
        pytest.param(json.dumps(seed()[:2]).encode()[:-10], id="truncated"),
        pytest.param(b'"a string"', id="string"),
        pytest.param(b"42", id="number"),
        pytest.param(b'{"services": []}', id="object"),
        pytest.param(b'{"resourceType": "Bundle", "type": "collection"}', id="bundle-no-entry"),
    ],
)
def test_a_malformed_file_answers_400_and_changes_nothing(
    client: TestClient[Litestar], content: bytes
) -> None:
    assert post_import(client, seed()[:5]).status_code == 200
    before = snapshot(client)

    response = client.post(IMPORT, content=content, headers=JSON_HEADERS)

    problem = assert_problem(response, 400, "body")
    assert problem["detail"]
    assert snapshot(client) == before


def test_a_record_with_a_nul_in_a_stored_field_is_a_bad_record(
    client: TestClient[Litestar],
) -> None:
    assert post_import(client, seed()[:5]).status_code == 200
    before = snapshot(client)
    records = [*seed()[:2], {**seed()[2], "name": "nul\x00name"}]

    assert_problem(post_import(client, records), 422, "[2]")
    assert snapshot(client) == before


def test_a_healthcareservice_with_a_wrongly_typed_element_is_a_bad_record(
    client: TestClient[Litestar],
) -> None:
    bundle = fhir_bundle()
    bundle["entry"][2]["resource"]["providedBy"] = "Organization/org-1"

    assert_problem(post_import(client, bundle), 422, "[2]")
    assert count(client) == 0


def test_an_hsds_record_with_a_wrongly_typed_element_is_a_bad_record(
    client: TestClient[Litestar],
) -> None:
    records = seed()[:3]
    records[1]["contacts"] = ["call us"]

    assert_problem(post_import(client, records), 422, "[1]")
    assert count(client) == 0


def test_an_unknown_on_error_mode_is_refused(client: TestClient[Litestar]) -> None:
    assert_problem(post_import(client, seed()[:1], on_error="ignore"), 400)
    assert count(client) == 0


def test_each_clinic_imports_into_its_own_directory(
    session_client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    a, b = make_clinic(), make_clinic()
    records = seed()[:6]

    def run(clinic: Clinic) -> dict[str, Any]:
        response = session_client.post(IMPORT, json=records, headers=clinic.headers)
        assert response.status_code == 200, response.text
        return response.json()

    assert run(a)["created"] == 6
    assert run(b)["created"] == 6  # not "updated": A's rows are not B's
    a_ids = {i["id"] for i in session_client.get(SERVICES, headers=a.headers).json()["items"]}
    b_ids = {i["id"] for i in session_client.get(SERVICES, headers=b.headers).json()["items"]}
    assert len(a_ids) == len(b_ids) == 6
    assert not a_ids & b_ids


# -- import through the CLI -------------------------------------------------------------------


def belong(database_url: str, *args: str) -> subprocess.CompletedProcess[str]:
    """Run the ``belong`` console script of this virtualenv."""
    script = Path(sys.executable).with_name("belong")
    command = [str(script)] if script.exists() else [sys.executable, "-m", "service.cli"]
    env = {**os.environ, "BELONG_DATABASE_URL": database_url}
    return subprocess.run(
        [*command, *args],
        capture_output=True,
        text=True,
        env=env,
        cwd=ROOT,
        timeout=120,
        check=False,
    )


def stored_services(url: str, clinic: str) -> dict[str, tuple[str, str]]:
    """source_id -> (name, source_system) for one clinic, read straight from the database."""

    async def read() -> list[Any]:
        engine = create_async_engine(url)
        try:
            async with engine.connect() as conn:
                result = await conn.execute(
                    sa.text(
                        "SELECT s.source_id, s.name, s.source_system FROM directory_services s "
                        "JOIN clinics c ON c.id = s.clinic_id "
                        "WHERE c.name = :clinic AND s.deleted_at IS NULL"
                    ),
                    {"clinic": clinic},
                )
                return list(result)
        finally:
            await engine.dispose()

    return {source_id: (name, system) for source_id, name, system in asyncio.run(read())}


def test_the_cli_imports_the_seed_and_a_bundle_idempotently(tmp_path: Path) -> None:
    url = scratch_database("cli")
    upgraded = belong(url, "db", "upgrade")
    assert upgraded.returncode == 0, upgraded.stderr

    first = belong(
        url, "directory", "import", "--clinic", "CLI Clinic", "--create-clinic", str(SEED)
    )
    assert first.returncode == 0, first.stderr
    assert first.stdout.strip().splitlines()[-1] == "created 55, updated 0, rejected 0"
    second = belong(url, "directory", "import", "--clinic", "CLI Clinic", str(SEED))
    assert second.returncode == 0, second.stderr
    assert second.stdout.strip().splitlines()[-1] == "created 0, updated 55, rejected 0"
    stored = stored_services(url, "CLI Clinic")
    assert len(stored) == 55
    assert {system for _, system in stored.values()} == {"hsds"}

    bundle_file = tmp_path / "bundle.json"
    bundle_file.write_text(json.dumps(fhir_bundle()), encoding="utf-8")
    fhir = belong(url, "directory", "import", "--clinic", "CLI Clinic", str(bundle_file))
    assert fhir.returncode == 0, fhir.stderr
    assert fhir.stdout.strip().splitlines()[-1] == "created 2, updated 0, rejected 0"
    again = belong(url, "directory", "import", "--clinic", "CLI Clinic", str(bundle_file))
    assert again.stdout.strip().splitlines()[-1] == "created 0, updated 2, rejected 0"
    assert len(stored_services(url, "CLI Clinic")) == 57

    other = belong(
        url, "directory", "import", "--clinic", "Other Clinic", "--create-clinic", str(bundle_file)
    )
    assert other.stdout.strip().splitlines()[-1] == "created 2, updated 0, rejected 0"


def test_the_cli_refuses_a_bad_record_then_skips_it_when_asked(tmp_path: Path) -> None:
    url = scratch_database("cli")
    assert belong(url, "db", "upgrade").returncode == 0
    seed_file = tmp_path / "seed.json"
    seed_file.write_text(json.dumps(seed()[:10]), encoding="utf-8")
    assert belong(url, "clinics", "create", "--name", "C").returncode == 0
    assert belong(url, "directory", "import", "--clinic", "C", str(seed_file)).returncode == 0
    before = stored_services(url, "C")
    bad = seed_with_bad_record(3)[:10]
    bad_file = tmp_path / "bad.json"
    bad_file.write_text(json.dumps(bad), encoding="utf-8")

    refused = belong(url, "directory", "import", "--clinic", "C", str(bad_file))

    assert refused.returncode == 1
    assert f"rejected [3] {bad[3]['id']}" in refused.stderr
    assert "nothing imported" in refused.stderr
    assert stored_services(url, "C") == before

    skipped = belong(
        url, "directory", "import", "--clinic", "C", "--on-error", "skip-record", str(bad_file)
    )

    assert skipped.returncode == 0, skipped.stderr
    assert skipped.stdout.strip().splitlines()[-1] == "created 0, updated 9, rejected 1"
    after = stored_services(url, "C")
    assert after[bad[0]["id"]][0] == "Changed by the bad file"
    assert after[bad[3]["id"]] == before[bad[3]["id"]]


@pytest.mark.parametrize(
    "content",
    [b"{not json", b'{"services": []}', b"\x00"],
    ids=["not-json", "wrong-shape", "nul-byte"],
)
def test_the_cli_refuses_a_malformed_file(tmp_path: Path, content: bytes) -> None:
    url = scratch_database("cli")
    assert belong(url, "db", "upgrade").returncode == 0
    bad_file = tmp_path / "bad.json"
    bad_file.write_bytes(content)

    result = belong(url, "directory", "import", "--clinic", "C", "--create-clinic", str(bad_file))

    assert result.returncode == 2
    assert result.stderr.startswith(f"error: {bad_file}")
    assert stored_services(url, "C") == {}


def test_the_cli_imports_nothing_from_a_file_with_a_bad_record(tmp_path: Path) -> None:
    url = scratch_database("cli")
    assert belong(url, "db", "upgrade").returncode == 0
    bad_file = tmp_path / "bad.json"
    bad_file.write_bytes(b'[{"id": "a\\u0000"}]')

    result = belong(url, "directory", "import", "--clinic", "C", "--create-clinic", str(bad_file))

    assert result.returncode == 1
    assert "rejected [0]" in result.stderr
    assert stored_services(url, "C") == {}


def test_the_cli_and_the_api_agree_on_the_seed(
    tmp_path: Path, client: TestClient[Litestar]
) -> None:
    url = scratch_database("cli")
    assert belong(url, "db", "upgrade").returncode == 0
    assert belong(url, "clinics", "create", "--name", "C").returncode == 0
    assert belong(url, "directory", "import", "--clinic", "C", str(SEED)).returncode == 0
    assert post_import(client, seed()).status_code == 200

    api = {i["source_id"]: (i["name"], i["source_system"]) for i in snapshot(client)}

    assert stored_services(url, "C") == api
