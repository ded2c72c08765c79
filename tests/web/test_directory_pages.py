"""The directory's pages over HTTP against the real app and PostgreSQL: search and its
filters (the same services, in the same order, as /v1's search), paging, a service in
words, adding and editing (the same entries /v1 reads back), import through the form
(the same services as the API's import), roles and clinics."""

from __future__ import annotations

import json
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from litestar import Litestar
from litestar.testing import TestClient

from tests.conftest import Clinic, MakeClinic
from tests.signed_in import SignedIn, sign_in

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "deploy" / "seed" / "directory.hsds.json"
SERVICES = "/v1/directory/services"
OMITTED = {"conditions": [], "languages": [], "accepting_referrals": True}
"""What the API leaves out of an entry when it is the default."""
RESULT = re.compile(r'<h3><a href="/app/directory/([^"/?]+)">')


class Form(HTMLParser):
    """The fields a browser would send for the page's form with ``action``: text inputs,
    the checked boxes and radios, selects' chosen options and textareas."""

    def __init__(self, action: str) -> None:
        super().__init__()
        self.action = action
        self.inside = False
        self.fields: list[tuple[str, str]] = []
        self._textarea: str | None = None
        self._text = ""

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = {k: v or "" for k, v in attrs}
        if tag == "form":
            self.inside = a.get("action") == self.action
        if not self.inside:
            return
        if tag == "input" and a.get("name"):
            kind = a.get("type", "text")
            if kind in ("checkbox", "radio") and "checked" not in a:
                return
            if kind not in ("submit", "file"):
                self.fields.append((a["name"], a.get("value", "")))
        elif tag == "textarea":
            self._textarea, self._text = a["name"], ""

    def handle_data(self, data: str) -> None:
        if self._textarea is not None:
            self._text += data

    def handle_endtag(self, tag: str) -> None:
        if tag == "textarea" and self._textarea is not None:
            self.fields.append((self._textarea, self._text))
            self._textarea = None
        elif tag == "form":
            self.inside = False


def form_fields(html: str, action: str) -> dict[str, Any]:
    parser = Form(action)
    parser.feed(html)
    found: dict[str, Any] = {}
    for name, value in parser.fields:
        if name in ("modalities", "conditions"):
            found.setdefault(name, []).append(value)
        else:
            found[name] = value
    return found


def seed_directory(client: TestClient[Litestar], clinic: Clinic) -> None:
    response = client.post(
        "/v1/directory/import",
        content=SEED.read_bytes(),
        headers={**clinic.headers, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text


def api_search(client: TestClient[Litestar], clinic: Clinic, **params: Any) -> dict[str, Any]:
    response = client.get(SERVICES, params={"limit": 200, **params}, headers=clinic.headers)
    assert response.status_code == 200, response.text
    return response.json()


def api_entry(client: TestClient[Litestar], clinic: Clinic, service_id: str) -> dict[str, Any]:
    response = client.get(f"{SERVICES}/{service_id}", headers=clinic.headers)
    assert response.status_code == 200, response.text
    return response.json()


def page_ids(user: SignedIn, **params: Any) -> list[str]:
    response = user.get("/app/directory", params={"limit": 200, **params})
    assert response.status_code == 200, response.text
    return RESULT.findall(response.text)


def visible_text(html: str) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", html))


def error_for(html: str, field: str) -> str:
    found = re.search(rf'<p class="field-error" id="{field}-error">([^<]*)</p>', html)
    assert found is not None, f"no error shown for {field}"
    return found.group(1)


@pytest.fixture
def seeded(session_client: TestClient[Litestar], clinic: Clinic) -> Clinic:
    seed_directory(session_client, clinic)
    return clinic


@pytest.fixture
def clinician(session_client: TestClient[Litestar], clinic: Clinic) -> SignedIn:
    return sign_in(session_client, clinic.name, "clinician")


@pytest.fixture
def coordinator(session_client: TestClient[Litestar], clinic: Clinic) -> SignedIn:
    return sign_in(session_client, clinic.name, "coordinator")


def full_service(**changes: Any) -> dict[str, Any]:
    entry = {
        "name": "Harbour <Pain> Café",
        "organization": "Elmsbury Pain Network",
        "category": "family-communication",
        "modalities": ["in-person", "phone"],
        "conditions": ["crps", "fibromyalgia"],
        "languages": ["en", "pl"],
        "location": {"lat": 51.5052, "lon": -0.0204},
        "address": "12 Quayside Walk, Harbourside",
        "catchment_km": 12.5,
        "schedule": "Tuesdays 6 to 7.30pm",
        "cost": "Free",
        "min_age": 18,
        "max_age": 65,
        "accepting_referrals": True,
        "capacity": 4,
        "contact": {
            "phone": "555-0100",
            "email": "cafe@example.org",
            "url": "https://example.org/cafe",
        },
        "referral_method": "Email the intake worker",
        "description": "Families talk about living with pain.\nTea is served.",
    }
    entry.update(changes)
    return entry


def create_service(client: TestClient[Litestar], clinic: Clinic, **changes: Any) -> str:
    response = client.post(SERVICES, json=full_service(**changes), headers=clinic.headers)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


# -- search ---------------------------------------------------------------------------------

FILTERS = [
    {},
    {"name": "circle"},
    {"name": "CIRCLE"},
    {"category": "support-group"},
    {"category": "family-communication"},
    {"condition": "crps"},
    {"modality": "phone"},
    {"language": "pl"},
    {"accepting": "false"},
    {"accepting": "true", "modality": "online"},
    {"near": (51.5052, -0.0204), "radius_km": "5"},
    {"near": (51.5052, -0.0204)},
    {"near": (51.5, -0.1), "radius_km": "200", "category": "counselling"},
]


@pytest.mark.parametrize("filters", FILTERS, ids=lambda f: ",".join(f) or "none")
def test_each_filter_finds_what_the_api_search_finds_in_its_order(
    session_client: TestClient[Litestar], seeded: Clinic, clinician: SignedIn, filters: Any
) -> None:
    api_params = dict(filters)
    page_params = dict(filters)
    if "near" in filters:
        lat, lon = filters["near"]
        api_params["near"] = f"{lat},{lon}"
        del page_params["near"]
        page_params.update(latitude=str(lat), longitude=str(lon))
    expected = [item["id"] for item in api_search(session_client, seeded, **api_params)["items"]]
    everything = api_search(session_client, seeded)["total"]
    assert page_ids(clinician, **page_params) == expected
    if filters:
        assert 0 < len(expected) < everything, "the filter should narrow the seed"


def test_the_results_show_each_service_in_words_with_a_link(
    session_client: TestClient[Litestar], clinic: Clinic, clinician: SignedIn
) -> None:
    service_id = create_service(session_client, clinic)
    create_service(session_client, clinic, name="Full Circle", capacity=0, languages=[])
    page = clinician.get("/app/directory", params={"latitude": "51.51", "longitude": "-0.02"})
    assert page.status_code == 200
    text = visible_text(page.text)
    assert "2 services found" in text
    assert f'<a href="/app/directory/{service_id}">Harbour &lt;Pain&gt; Café</a>' in page.text
    for shown in (
        "Elmsbury Pain Network",
        "Family communication",
        "In person, By phone",
        "English, Polish",
        "Taking referrals (4 places open)",
        "Full: no places open",
        "Not stated",
        "km away",
    ):
        assert shown in text, shown
    assert "family-communication</dd>" not in page.text


def test_paging_shows_the_count_and_walks_the_api_order(
    session_client: TestClient[Litestar], seeded: Clinic, clinician: SignedIn
) -> None:
    everything = api_search(session_client, seeded)
    total = everything["total"]
    ordered = [item["id"] for item in everything["items"]]
    first = clinician.get("/app/directory", params={"limit": "20"})
    text = visible_text(first.text)
    assert f"{total} services found" in text
    assert f"Showing 1 to 20 of {total}, by name" in text
    assert 'rel="prev"' not in first.text
    next_link = re.search(r'<a href="([^"]+)" rel="next">', first.text)
    assert next_link is not None
    walked = RESULT.findall(first.text)
    link = next_link.group(1).replace("&amp;", "&")
    while link:
        following = clinician.get(link)
        assert following.status_code == 200
        walked.extend(RESULT.findall(following.text))
        assert 'rel="prev"' in following.text
        found = re.search(r'<a href="([^"]+)" rel="next">', following.text)
        link = found.group(1).replace("&amp;", "&") if found else ""
    assert walked == ordered
    last = clinician.get("/app/directory", params={"limit": "20", "offset": "40"})
    assert f"Showing 41 to {total} of {total}" in visible_text(last.text)
    beyond = clinician.get("/app/directory", params={"offset": "500"})
    assert beyond.status_code == 200
    assert RESULT.findall(beyond.text) == []
    assert f"{total} services found" in visible_text(beyond.text)


BAD_SEARCHES = [
    ({"category": "choir"}, "category"),
    ({"condition": "gout"}, "condition"),
    ({"modality": "carrier-pigeon"}, "modality"),
    ({"language": "english!"}, "language"),
    ({"accepting": "maybe"}, "accepting"),
    ({"latitude": "91", "longitude": "0"}, "latitude"),
    ({"latitude": "51", "longitude": "east"}, "longitude"),
    ({"latitude": "51"}, "longitude"),
    ({"latitude": "nan", "longitude": "0"}, "latitude"),
    ({"radius_km": "0"}, "radius_km"),
    ({"radius_km": "1001"}, "radius_km"),
    ({"limit": "0"}, "limit"),
    ({"limit": "201"}, "limit"),
    ({"limit": "ten"}, "limit"),
    ({"offset": "-1"}, "offset"),
    ({"offset": "100001"}, "offset"),
    ({"name": "x" * 201}, "name"),
]


@pytest.mark.parametrize(("params", "field"), BAD_SEARCHES, ids=[f for _, f in BAD_SEARCHES])
def test_a_bad_search_value_is_400_naming_the_field(
    clinician: SignedIn, params: dict[str, str], field: str
) -> None:
    response = clinician.get("/app/directory", params=params)
    assert response.status_code == 400
    assert "Please check this field" in response.text
    if field == "offset":  # no field of the form: the summary names it
        assert "Start at" in visible_text(response.text)
    else:
        assert error_for(response.text, field)
        assert f'href="#{field}"' in response.text  # the summary names it too
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', response.text)
    assert RESULT.findall(response.text) == []


# -- a service ------------------------------------------------------------------------------


def test_the_service_page_shows_every_detail_in_words(
    session_client: TestClient[Litestar], clinic: Clinic, clinician: SignedIn
) -> None:
    service_id = create_service(session_client, clinic)
    response = clinician.get(f"/app/directory/{service_id}")
    assert response.status_code == 200
    assert "<h1>Harbour &lt;Pain&gt; Café</h1>" in response.text
    text = visible_text(response.text)
    for shown in (
        "Run by Elmsbury Pain Network",
        "Family communication",
        "Families talk about living with pain. Tea is served.",
        "Complex regional pain syndrome (CRPS)",
        "Fibromyalgia",
        "In person, By phone",
        "English, Polish",
        "12 Quayside Walk, Harbourside",
        "Latitude 51.5052, longitude -0.0204",
        "Takes people within 12.5 km",
        "Tuesdays 6 to 7.30pm",
        "Free",
        "18 to 65",
        "Taking referrals (4 places open)",
        "Email the intake worker",
        "555-0100",
        "cafe@example.org",
        "https://example.org/cafe",
        "Added in Belong",
    ):
        assert shown in text, shown
    assert 'href="tel:555-0100"' in response.text
    assert 'href="mailto:cafe@example.org"' in response.text
    for code in ("family-communication", "in-person", "fibromyalgia", ">en<", ">pl<"):
        assert code not in text, code
    assert "Edit this service" not in text  # a clinician cannot edit


def test_a_sparse_service_says_what_is_not_given(
    session_client: TestClient[Litestar], clinic: Clinic, clinician: SignedIn
) -> None:
    response = session_client.post(
        SERVICES,
        json={
            "name": "Bare",
            "organization": "Org",
            "category": "counselling",
            "modalities": ["online"],
            "accepting_referrals": False,
        },
        headers=clinic.headers,
    )
    text = visible_text(clinician.get(f"/app/directory/{response.json()['id']}").text)
    for shown in ("Every pain condition", "Any age", "Not taking referrals", "Counselling"):
        assert shown in text, shown


def test_another_clinics_service_is_404_on_every_page(
    session_client: TestClient[Litestar],
    clinic: Clinic,
    make_clinic: MakeClinic,
    coordinator: SignedIn,
) -> None:
    stranger = make_clinic()
    theirs = create_service(session_client, stranger)
    before = api_entry(session_client, stranger, theirs)
    for path in (f"/app/directory/{theirs}", f"/app/directory/{theirs}/edit"):
        response = coordinator.get(path)
        assert response.status_code == 404, path
        assert "Not found" in response.text
        missing = coordinator.get(path.replace(theirs, "no-such-service"))
        assert missing.status_code == 404
    posted = coordinator.post(f"/app/directory/{theirs}", data={"name": "Mine now"})
    assert posted.status_code == 404
    assert api_entry(session_client, stranger, theirs) == before


# -- add and edit ---------------------------------------------------------------------------


def test_the_edit_form_round_trips_to_the_api(
    session_client: TestClient[Litestar], clinic: Clinic, coordinator: SignedIn
) -> None:
    service_id = create_service(session_client, clinic)
    before = api_entry(session_client, clinic, service_id)
    action = f"/app/directory/{service_id}"
    form = coordinator.get(f"{action}/edit")
    assert form.status_code == 200
    fields = form_fields(form.text, action)
    assert fields["name"] == "Harbour <Pain> Café"
    assert fields["languages"] == "English, Polish"

    unchanged = coordinator.post(action, data=fields)
    assert unchanged.status_code == 303
    assert unchanged.headers["location"] == f"{action}?saved=1"
    after = api_entry(session_client, clinic, service_id)
    assert {k: v for k, v in after.items() if k != "updated_at"} == {
        k: v for k, v in before.items() if k != "updated_at"
    }

    fields.update(
        name="Harbour Family Café",
        category="support-group",
        modalities=["online"],
        conditions=[],
        languages="Urdu, pt-BR",
        latitude="",
        longitude="",
        catchment_km="",
        min_age="",
        max_age="80",
        accepting_referrals="false",
        capacity="0",
        email="",
        description="",
    )
    changed = coordinator.post(action, data=fields)
    assert changed.status_code == 303
    entry = api_entry(session_client, clinic, service_id)
    expected = full_service(
        name="Harbour Family Café",
        category="support-group",
        modalities=["online"],
        conditions=[],
        languages=["ur", "pt-BR"],
        max_age=80,
        accepting_referrals=False,
        capacity=0,
        contact={"phone": "555-0100", "url": "https://example.org/cafe"},
    )
    for gone in ("location", "catchment_km", "min_age", "description"):
        del expected[gone]
    for key, value in expected.items():
        assert entry.get(key, OMITTED.get(key)) == value, key
    for gone in ("location", "catchment_km", "min_age", "description"):
        assert gone not in entry or entry[gone] is None, gone
    shown = coordinator.get(changed.headers["location"])
    assert "Your changes are saved." in shown.text
    assert "Full: no places open" not in shown.text  # not accepting comes first
    assert "Not taking referrals" in shown.text


BAD_FIELDS = {
    "name": "",
    "organization": "x" * 201,
    "category": "choir",
    "languages": "English, Klingon",
    "latitude": "95",
    "catchment_km": "-3",
    "min_age": "200",
    "max_age": "sixty",
    "capacity": "1.5",
    "phone": "call us",
    "email": "not-an-address",
    "url": "example.org",
    "description": "x" * 4001,
}


def test_a_bad_edit_is_422_naming_each_field_and_changes_nothing(
    session_client: TestClient[Litestar], clinic: Clinic, coordinator: SignedIn
) -> None:
    service_id = create_service(session_client, clinic)
    before = api_entry(session_client, clinic, service_id)
    action = f"/app/directory/{service_id}"
    fields = form_fields(coordinator.get(f"{action}/edit").text, action)
    fields.update(BAD_FIELDS, longitude="", modalities=[], accepting_referrals="perhaps")
    response = coordinator.post(action, data=fields)
    assert response.status_code == 422
    html = response.text
    for field in (*BAD_FIELDS, "longitude", "modalities", "accepting_referrals"):
        assert error_for(html, field), field
        assert f'href="#{field}"' in html, field
        assert re.search(rf'id="{field}"[^>]*aria-invalid="true"', html), field
    assert 'value="not-an-address"' in html  # what was typed is kept
    assert "Klingon" in error_for(html, "languages")
    assert api_entry(session_client, clinic, service_id) == before


def test_ages_the_wrong_way_round_are_422_on_the_youngest_age(
    session_client: TestClient[Litestar], clinic: Clinic, coordinator: SignedIn
) -> None:
    service_id = create_service(session_client, clinic)
    before = api_entry(session_client, clinic, service_id)
    action = f"/app/directory/{service_id}"
    fields = form_fields(coordinator.get(f"{action}/edit").text, action)
    fields.update(min_age="70", max_age="30")
    response = coordinator.post(action, data=fields)
    assert response.status_code == 422
    assert "above the oldest" in error_for(response.text, "min_age")
    assert api_entry(session_client, clinic, service_id) == before


def test_a_service_added_through_the_form_is_the_one_the_api_reads(
    session_client: TestClient[Litestar], clinic: Clinic, coordinator: SignedIn
) -> None:
    form = coordinator.get("/app/directory/new")
    assert form.status_code == 200
    fields = form_fields(form.text, "/app/directory")
    assert fields["accepting_referrals"] == "true"
    fields.update(
        name="Lakeside Walking Group",
        organization="Elmsbury Walkers",
        category="social-activity",
        modalities=["in-person"],
        conditions=["low-back-pain"],
        languages="English",
        latitude="51.41",
        longitude="-0.3",
        min_age="18",
    )
    refused = coordinator.post("/app/directory", data={**fields, "name": ""})
    assert refused.status_code == 422
    assert api_search(session_client, clinic)["total"] == 0
    added = coordinator.post("/app/directory", data=fields)
    assert added.status_code == 303
    service_id = added.headers["location"].split("/")[-1].split("?")[0]
    entry = api_entry(session_client, clinic, service_id)
    assert entry["name"] == "Lakeside Walking Group"
    assert entry["category"] == "social-activity"
    assert entry["conditions"] == ["low-back-pain"]
    assert entry["languages"] == ["en"]
    assert entry["location"] == {"lat": 51.41, "lon": -0.3}
    assert entry["min_age"] == 18
    assert entry.get("accepting_referrals", OMITTED["accepting_referrals"]) is True
    assert entry["source_system"] == "api"
    assert "The service is added" in coordinator.get(added.headers["location"]).text


def test_a_clinician_cannot_add_edit_or_import(
    session_client: TestClient[Litestar], clinic: Clinic, clinician: SignedIn
) -> None:
    service_id = create_service(session_client, clinic)
    before = api_entry(session_client, clinic, service_id)
    for path in (
        f"/app/directory/{service_id}/edit",
        "/app/directory/new",
        "/app/directory/import",
    ):
        refused = clinician.get(path)
        assert refused.status_code == 403, path
        assert "Not allowed" in refused.text
    edit = clinician.post(f"/app/directory/{service_id}", data={"name": "Changed"})
    add = clinician.post("/app/directory", data={"name": "New"})
    upload = clinician.post(
        "/app/directory/import", files={"file": ("seed.json", SEED.read_bytes())}
    )
    for response in (edit, add, upload):
        assert response.status_code == 403
    assert api_entry(session_client, clinic, service_id) == before
    assert api_search(session_client, clinic)["total"] == 1
    assert "Add a service" not in clinician.get("/app/directory").text


def test_a_form_without_its_security_token_is_refused(
    session_client: TestClient[Litestar], clinic: Clinic, coordinator: SignedIn
) -> None:
    service_id = create_service(session_client, clinic)
    response = coordinator.post(f"/app/directory/{service_id}", data={"_csrf": "forged"})
    assert response.status_code == 403
    assert api_entry(session_client, clinic, service_id)["name"] == "Harbour <Pain> Café"


# -- import ---------------------------------------------------------------------------------


def outcomes(html: str) -> list[tuple[str, ...]]:
    """The report's rows: record, id in the file, service and what happened (its first words)."""
    rows = re.findall(r"<tr>\s*(.*?)</tr>", html, re.S)
    cells = [
        re.findall(r'<td data-label="[^"]+">(.*?)(?:<ul>.*?)?</td>', row, re.S) for row in rows
    ]
    return [tuple(unescape(cell).strip() for cell in row) for row in cells if row]


def comparable(client: TestClient[Litestar], clinic: Clinic) -> list[dict[str, Any]]:
    """The clinic's directory without what differs between clinics (ids, times)."""
    items = api_search(client, clinic)["items"]
    return [
        {k: v for k, v in item.items() if k not in ("id", "created_at", "updated_at")}
        for item in items
    ]


def test_the_seed_imported_through_the_form_is_what_the_api_import_gives(
    session_client: TestClient[Litestar],
    clinic: Clinic,
    make_clinic: MakeClinic,
    coordinator: SignedIn,
) -> None:
    form = coordinator.get("/app/directory/import")
    assert form.status_code == 200
    assert 'enctype="multipart/form-data"' in form.text
    response = coordinator.post(
        "/app/directory/import",
        files={"file": ("directory.hsds.json", SEED.read_bytes(), "application/json")},
    )
    assert response.status_code == 200, response.text
    seed_count = len(json.loads(SEED.read_text(encoding="utf-8")))
    text = visible_text(response.text)
    assert "Import finished" in text
    assert f"{seed_count} services added and 0 updated" in text
    assert "Open Referral HSDS 3.0" in text and "directory.hsds.json" in text
    seed = json.loads(SEED.read_text(encoding="utf-8"))
    assert outcomes(response.text) == [
        (f"Service {index + 1}", record["id"], record["name"], "Added")
        for index, record in enumerate(seed)
    ]

    by_api = make_clinic()
    seed_directory(session_client, by_api)
    assert comparable(session_client, clinic) == comparable(session_client, by_api)

    again = coordinator.post(
        "/app/directory/import", files={"file": ("directory.hsds.json", SEED.read_bytes())}
    )
    assert f"0 services added and {seed_count} updated" in visible_text(again.text)
    assert {outcome for *_, outcome in outcomes(again.text)} == {"Updated"}
    assert api_search(session_client, clinic)["total"] == seed_count


def test_a_file_with_a_bad_record_is_reported_and_imports_nothing_unless_asked(
    session_client: TestClient[Litestar], clinic: Clinic, coordinator: SignedIn
) -> None:
    services = json.loads(SEED.read_text(encoding="utf-8"))[:3]
    services[1] = {**services[1], "name": ""}
    content = json.dumps(services).encode()
    refused = coordinator.post("/app/directory/import", files={"file": ("three.json", content)})
    assert refused.status_code == 422
    text = visible_text(refused.text)
    assert "Nothing was imported" in text
    assert outcomes(refused.text) == [
        ("Service 2", services[1]["id"], "Not read", "Cannot be read:")
    ]
    assert "name" in text  # the reason names the field
    assert api_search(session_client, clinic)["total"] == 0

    skipped = coordinator.post(
        "/app/directory/import",
        data={"on_error": "skip-record"},
        files={"file": ("three.json", content)},
    )
    assert skipped.status_code == 200
    assert "2 services added and 0 updated; 1 record left out" in visible_text(skipped.text)
    assert [outcome for *_, outcome in outcomes(skipped.text)] == ["Added", "Left out:", "Added"]
    assert api_search(session_client, clinic)["total"] == 2


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"this is not json", "not JSON"),
        (b'{"services": []}', "neither an Open Referral HSDS 3.0"),
        (b'"a string"', "neither an Open Referral HSDS 3.0"),
        (b"", "Choose a file"),
    ],
    ids=["not-json", "other-object", "string", "empty"],
)
def test_a_file_that_is_not_a_directory_is_422_with_a_clear_message(
    session_client: TestClient[Litestar],
    clinic: Clinic,
    coordinator: SignedIn,
    content: bytes,
    message: str,
) -> None:
    response = coordinator.post("/app/directory/import", files={"file": ("f.json", content)})
    assert response.status_code == 422
    assert message in error_for(response.text, "file")
    assert api_search(session_client, clinic)["total"] == 0


def test_a_file_above_the_body_limit_is_413_naming_the_limit_and_the_command_line(
    session_client: TestClient[Litestar], clinic: Clinic, coordinator: SignedIn
) -> None:
    limit = session_client.app.state.settings.max_body_bytes
    content = b"[" + b" " * limit + b"]"
    response = coordinator.post("/app/directory/import", files={"file": ("big.json", content)})
    assert response.status_code == 413
    text = visible_text(response.text)
    assert "The file is too large" in text
    assert "up to 1 MiB" in text
    assert f'belong directory import --clinic "{clinic.name}" FILE' in text.replace("&#34;", '"')
    assert api_search(session_client, clinic)["total"] == 0
