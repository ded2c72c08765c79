"""Reading directory files: Open Referral HSDS 3.0 and FHIR Bundles of HealthcareService.

The sample directory is checked against the facts deploy/seed/README.md states about it
(counts by category, modality, language, condition, who is not taking referrals, the
worked example), so the parser and the documented format cannot drift apart. The rest
builds small files, one bad record at a time. Writing to a database is in
tests/directory/test_directory.py.
"""

from __future__ import annotations

import copy
import json
import math
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import msgspec
import pytest

from service.directory import hsds
from service.directory.fhir import (
    CATEGORY_SYSTEM,
    CONDITION_SYSTEM,
    EXTENSION,
    MODALITY_SYSTEM,
    healthcare_service,
    healthcare_service_details,
)
from service.directory.importing import ImportFileError, parse_file
from service.directory.model import DirectoryService, ServiceDetails
from service.patients.model import Coordinates

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "deploy" / "seed" / "directory.hsds.json"
TAXONOMY = json.loads((ROOT / "schemas" / "hsds" / "belong-taxonomy.json").read_text())
SNOMED = "http://snomed.info/sct"
HARBOURSIDE = "fd9f25f1-746b-55c4-ade9-a5db2e67c9cb"


@pytest.fixture(scope="module")
def seed() -> list[dict[str, Any]]:
    return json.loads(SEED.read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def parsed(seed: list[dict[str, Any]]) -> dict[str, ServiceDetails]:
    results = hsds.parse(seed)
    rejected = [r for r in results if isinstance(r, hsds.Rejected)]
    assert rejected == []
    return {r.source_id: r.details for r in results if isinstance(r, hsds.Parsed)}


def term(code: str, value: str) -> dict[str, Any]:
    """A ``belong`` attribute as the seed README shows it."""
    return {
        "id": f"attr-{code}-{value}",
        "link_type": "service",
        "link_entity": "service",
        "value": value,
        "taxonomy_term": {"id": f"term-{code}", "code": code, "taxonomy": "belong"},
    }


def hsds_service(ident: str = "svc-1", **overrides: Any) -> dict[str, Any]:
    """A small valid HSDS service: an online support group."""
    body: dict[str, Any] = {
        "id": ident,
        "name": f"Group {ident}",
        "status": "active",
        "organization": {"id": "org-1", "name": "Org"},
        "attributes": [
            term("category", "support-group"),
            term("modality", "online"),
            term("accepting-referrals", "true"),
        ],
    }
    body.update(overrides)
    return body


def with_terms(*terms: tuple[str, str], ident: str = "svc-1", **overrides: Any) -> dict:
    return hsds_service(ident, attributes=[term(c, v) for c, v in terms], **overrides)


def physical(lat: float | None = 51.5, lon: float | None = -0.1) -> dict[str, Any]:
    location: dict[str, Any] = {
        "id": "loc-1",
        "location_type": "physical",
        "addresses": [{"address_1": "1 High St", "city": "Elmsbury", "postal_code": "EL1 1AA"}],
    }
    if lat is not None:
        location.update(latitude=lat, longitude=lon)
    return {"id": "sal-1", "location": location}


def only(results: list[hsds.Parsed | hsds.Rejected]) -> hsds.Parsed | hsds.Rejected:
    (result,) = results
    return result


def parse_one(service: Any) -> hsds.Parsed | hsds.Rejected:
    return only(hsds.parse([service]))


def details_of(service: Any) -> ServiceDetails:
    result = parse_one(service)
    assert isinstance(result, hsds.Parsed), result
    return result.details


def rejected_reasons(service: Any) -> str:
    result = parse_one(service)
    assert isinstance(result, hsds.Rejected), result
    return " | ".join(result.reasons)


# -- the sample directory, as its README describes it -------------------------------------


def test_the_seed_file_holds_55_services_all_accepted(parsed: dict[str, ServiceDetails]) -> None:
    assert len(parsed) == 55
    assert len({d.organization for d in parsed.values()}) == 11


def test_seed_counts_by_category(parsed: dict[str, ServiceDetails]) -> None:
    assert Counter(d.category.value for d in parsed.values()) == {
        "support-group": 17,
        "social-activity": 14,
        "family-communication": 12,
        "counselling": 12,
    }


def test_seed_counts_by_modality(parsed: dict[str, ServiceDetails]) -> None:
    combos = Counter(tuple(sorted(m.value for m in d.modalities)) for d in parsed.values())
    assert combos == {
        ("in-person",): 27,
        ("online",): 9,
        ("phone",): 3,
        ("in-person", "online"): 9,
        ("in-person", "phone"): 4,
        ("online", "phone"): 2,
        ("in-person", "online", "phone"): 1,
    }
    each = Counter(m.value for d in parsed.values() for m in d.modalities)
    assert each == {"in-person": 41, "online": 21, "phone": 10}


def test_seed_counts_by_language(parsed: dict[str, ServiceDetails]) -> None:
    assert Counter(t for d in parsed.values() for t in d.languages) == {
        "en": 54,
        "pa": 6,
        "pl": 6,
        "ur": 6,
        "es": 5,
        "fr": 4,
        "ar": 3,
        "zh": 2,
    }
    (spanish_only,) = [d for d in parsed.values() if d.languages == ["es"]]
    assert spanish_only.name == "Grupo de Apoyo Fibromialgia Elmsbury"


def test_seed_counts_by_condition(parsed: dict[str, ServiceDetails]) -> None:
    every = [d for d in parsed.values() if not d.conditions]
    assert len(every) == 30
    assert Counter(c.value for d in parsed.values() for c in d.conditions) == {
        "crps": 7,
        "chronic-headache": 5,
        "chronic-pain-syndrome": 5,
        "fibromyalgia": 5,
        "low-back-pain": 4,
    }
    (two,) = [d for d in parsed.values() if len(d.conditions) == 2]
    assert two.name == "Fibromyalgia Coping Skills Counselling"


def test_seed_age_limits(parsed: dict[str, ServiceDetails]) -> None:
    limits = Counter(
        (d.min_age, d.max_age)
        for d in parsed.values()
        if d.min_age is not None or d.max_age is not None
    )
    assert limits == {(18, None): 6, (18, 30): 2, (18, 25): 1, (65, None): 3}


def test_seed_services_not_taking_referrals(parsed: dict[str, ServiceDetails]) -> None:
    closed = {
        d.name: (d.accepting_referrals, d.capacity)
        for d in parsed.values()
        if not DirectoryService(**msgspec.structs.asdict(d), id="x").takes_referrals
    }
    assert closed == {
        "Dim Screen Migraine & Headache Online Group": (False, None),
        "Elmsbury Befriending Home and Café Visits (65+)": (False, None),
        "Carers' Chai and Chat (Urdu and Punjabi)": (False, None),
        "Farrowmoor Pain Management Counselling": (False, None),
        "Saltmarsh Bay Pain Support Group": (False, None),  # status inactive
        "Fibromyalgia Family & Friends Evening": (False, None),  # status inactive
        "Fibro Friendly Art Club": (True, 0),
        "Consejería para el Dolor Crónico (Spanish-language Pain Counselling)": (True, 0),
    }


def test_seed_catchments_and_locations(parsed: dict[str, ServiceDetails]) -> None:
    in_person = [d for d in parsed.values() if "in-person" in d.modalities]
    assert all(d.location is not None and d.catchment_km is not None for d in in_person)
    assert min(d.catchment_km or 0 for d in in_person) == 8
    assert max(d.catchment_km or 0 for d in in_person) == 40
    remote = [d for d in parsed.values() if "in-person" not in d.modalities]
    assert all(d.location is None and d.catchment_km is None for d in remote)
    # Five sit far from Elmsbury: even its nearest corner is beyond their catchments.
    corners = [(lat, lon) for lat in (51.41, 51.63) for lon in (-0.33, 0.08)]
    far = {
        d.name: min(haversine(corner, d.location) for corner in corners) - (d.catchment_km or 0)
        for d in in_person
        if d.location and haversine((51.52, -0.125), d.location) > 100
    }
    assert sorted(far) == [
        "Farrowmoor CRPS Fellowship",
        "Farrowmoor Pain Management Counselling",
        "Highcombe Moor Pain-Friendly Crafts and Chat",
        "Saltmarsh Bay Carers Group",
        "Saltmarsh Bay Pain Support Group",
    ]
    assert all(beyond_catchment > 50 for beyond_catchment in far.values())


def haversine(a: tuple[float, float], b: Coordinates) -> float:
    lat1, lon1, lat2, lon2 = map(math.radians, (*a, b.lat, b.lon))
    h = (
        math.sin((lat2 - lat1) / 2) ** 2
        + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    )
    return 2 * 6371.0088 * math.asin(math.sqrt(h))


def test_the_worked_example_reads_as_the_readme_says(parsed: dict[str, ServiceDetails]) -> None:
    d = parsed[HARBOURSIDE]

    assert d.name == "Harbourside CRPS Peer Circle"
    assert d.category == "support-group"
    assert d.conditions == ["crps"]
    assert d.modalities == ["in-person"]
    assert d.catchment_km == 15
    assert (d.accepting_referrals, d.capacity) == (True, 6)
    assert d.referral_method == "Email the intake worker"
    assert d.languages == ["en"]
    assert d.cost == "Free"
    assert d.schedule == "Tuesdays 6-7.30pm"
    assert d.location is not None
    assert (d.location.lat, d.location.lon) == (51.5052, -0.0204)
    assert d.address is not None and "12 Quayside Walk" in d.address
    assert d.contact is not None and d.contact.phone == "555-0100"


def test_the_seed_uses_only_terms_and_values_of_the_belong_taxonomy(
    seed: list[dict[str, Any]],
) -> None:
    rules = {t["code"]: t["value_rules"] for t in TAXONOMY["taxonomy_terms"]}
    for service in seed:
        found = Counter(a["taxonomy_term"]["code"] for a in service["attributes"])
        for code, rule in rules.items():
            count = found.get(code, 0)
            allowed = {
                "exactly-one": count == 1,
                "zero-or-one": count <= 1,
                "one-or-more": count >= 1,
                "zero-or-more": True,
            }[rule["cardinality"]]
            assert allowed, (service["name"], code, count)
        for attribute in service["attributes"]:
            rule = rules[attribute["taxonomy_term"]["code"]]
            if "values" in rule:
                assert attribute["value"] in rule["values"]


# -- file shapes ---------------------------------------------------------------------------


def test_a_list_a_page_and_a_bundle_are_recognised(seed: list[dict[str, Any]]) -> None:
    assert parse_file(seed).format == "hsds"
    page = parse_file({"total_items": 55, "contents": seed})
    assert (page.format, len(page.records)) == ("hsds", 55)
    bundle = parse_file(fhir_bundle())
    assert (bundle.format, bundle.source_system) == ("fhir", "fhir")


@pytest.mark.parametrize(
    "raw",
    [
        pytest.param(42, id="number"),
        pytest.param("services", id="string"),
        pytest.param(None, id="null"),
        pytest.param({"services": []}, id="object-without-contents"),
        pytest.param({"contents": {"id": "x"}}, id="contents-not-a-list"),
        pytest.param({"resourceType": "Patient", "id": "p"}, id="not-a-bundle"),
        pytest.param({"resourceType": "Bundle", "type": "collection"}, id="empty-bundle"),
        pytest.param({"resourceType": "Bundle", "entry": {}}, id="entry-not-a-list"),
    ],
)
def test_a_file_of_the_wrong_shape_is_refused_whole(raw: Any) -> None:
    with pytest.raises(ImportFileError):
        parse_file(raw)


@pytest.mark.parametrize(
    "path",
    [("name",), ("attributes", 0, "value"), ("organization", "name")],
)
def test_a_nul_character_in_a_stored_field_rejects_that_record(path: tuple[Any, ...]) -> None:
    service = hsds_service()
    target = service
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = "bad\x00value"

    ok, bad = parse_file([hsds_service("ok"), service]).records
    assert isinstance(ok, hsds.Parsed)
    assert isinstance(bad, hsds.Rejected)
    assert bad.index == 1


def test_a_nul_in_a_field_belong_does_not_read_stores_nothing_of_it() -> None:
    [record] = parse_file([{**hsds_service(), "x\x00": "y\x00"}]).records
    assert isinstance(record, hsds.Parsed)
    assert "\x00" not in msgspec.json.encode(record.details).decode()


# -- one HSDS record at a time ----------------------------------------------------------


def test_a_minimal_service() -> None:
    d = details_of(hsds_service())

    assert (d.name, d.organization, d.category, d.modalities) == (
        "Group svc-1",
        "Org",
        "support-group",
        ["online"],
    )
    assert d.accepting_referrals is True and d.conditions == [] and d.languages == []


@pytest.mark.parametrize(
    ("record", "reason"),
    [
        pytest.param("a string", "not an HSDS service object", id="not-an-object"),
        pytest.param({"name": "x"}, "id", id="no-id"),
        pytest.param(hsds_service(""), "id", id="blank-id"),
        pytest.param(hsds_service(7), "id", id="numeric-id"),  # type: ignore[arg-type]
        pytest.param(hsds_service("x" * 256), "id", id="id-too-long"),
        pytest.param(with_terms(("modality", "online")), "category", id="no-category"),
        pytest.param(
            with_terms(("category", "knitting"), ("modality", "online")), "category", id="bad-cat"
        ),
        pytest.param(with_terms(("category", "counselling")), "modality", id="no-modality"),
        pytest.param(
            with_terms(("category", "counselling"), ("modality", "carrier-pigeon")),
            "modalities",
            id="bad-modality",
        ),
        pytest.param(
            with_terms(("category", "counselling"), ("modality", "online"), ("condition", "flu")),
            "conditions",
            id="bad-condition",
        ),
        pytest.param(
            with_terms(("category", "counselling"), ("modality", "online"), ("capacity", "lots")),
            "capacity",
            id="capacity-not-a-number",
        ),
        pytest.param(
            with_terms(("category", "counselling"), ("modality", "online"), ("capacity", "-1")),
            "capacity",
            id="capacity-negative",
        ),
        pytest.param(
            with_terms(
                ("category", "counselling"),
                ("modality", "in-person"),
                ("catchment-km", "0"),
                service_at_locations=[physical()],
            ),
            "catchment_km",
            id="catchment-zero",
        ),
        pytest.param(hsds_service(minimum_age=40, maximum_age=30), "min_age", id="ages-reversed"),
        pytest.param(hsds_service(minimum_age=17.5), "min_age", id="fractional-age"),
        pytest.param(hsds_service(name=""), "name", id="empty-name"),
        pytest.param(hsds_service(organization=None), "organization", id="no-organization"),
        pytest.param(
            hsds_service(languages=[{"id": "l", "code": "english please"}]),
            "languages",
            id="bad-language-tag",
        ),
        pytest.param(
            hsds_service(service_at_locations=[physical(lat=95, lon=0)]),
            "lat",
            id="latitude-out-of-range",
        ),
        pytest.param(hsds_service(email="not-an-email"), "email", id="bad-email"),
    ],
)
def test_a_bad_record_is_rejected_with_its_reason(record: Any, reason: str) -> None:
    assert reason in rejected_reasons(record)


def test_rejections_carry_the_index_and_source_id_and_the_rest_still_parse() -> None:
    records = [
        hsds_service("a"),
        with_terms(("modality", "online"), ident="b"),
        hsds_service("c"),
        hsds_service("a"),  # again
        "junk",
    ]

    results = hsds.parse(records)

    assert [(type(r).__name__, r.index, r.source_id) for r in results] == [
        ("Parsed", 0, "a"),
        ("Rejected", 1, "b"),
        ("Parsed", 2, "c"),
        ("Rejected", 3, "a"),
        ("Rejected", 4, None),
    ]
    assert "more than once" in " ".join(results[3].reasons)  # type: ignore[union-attr]


def test_modalities_are_inferred_from_locations_when_no_term_says() -> None:
    virtual = {"id": "sal-2", "location": {"id": "loc-2", "location_type": "virtual"}}
    inferred = details_of(
        with_terms(("category", "support-group"), service_at_locations=[physical(), virtual])
    )
    stated = details_of(
        with_terms(
            ("category", "support-group"),
            ("modality", "phone"),
            service_at_locations=[physical()],
        )
    )

    assert inferred.modalities == ["in-person", "online"]
    assert inferred.location is not None and inferred.location.lat == 51.5
    assert inferred.address == "1 High St, Elmsbury, EL1 1AA"
    assert stated.modalities == ["phone"]


@pytest.mark.parametrize(
    ("status", "accepting", "capacity", "takes"),
    [
        ("active", "true", None, True),
        ("active", "TRUE", None, True),
        ("active", "false", None, False),
        ("inactive", "true", None, False),
        ("defunct", "true", None, False),
        ("active", "true", "0", False),
        ("active", "true", "3", True),
        ("active", None, None, True),  # not stated: taken to accept
    ],
)
def test_whether_a_service_takes_referrals(
    status: str, accepting: str | None, capacity: str | None, takes: bool
) -> None:
    terms = [("category", "counselling"), ("modality", "online")]
    if accepting is not None:
        terms.append(("accepting-referrals", accepting))
    if capacity is not None:
        terms.append(("capacity", capacity))

    d = details_of(with_terms(*terms, status=status))

    assert DirectoryService(**msgspec.structs.asdict(d), id="x").takes_referrals is takes


def test_attributes_of_other_taxonomies_are_ignored() -> None:
    foreign = term("category", "counselling")
    foreign["taxonomy_term"]["taxonomy"] = "open-eligibility"
    service = hsds_service()
    service["attributes"] = [foreign, *service["attributes"]]

    assert details_of(service).category == "support-group"


def test_native_fields_map_to_the_entry() -> None:
    service = hsds_service(
        description="A group.",
        fees_description="Free",
        minimum_age=18,
        maximum_age=30.0,
        url="https://group.example.org/",
        email="hello@group.example.org",
        languages=[{"id": "l1", "code": "en"}, {"id": "l2", "code": "es-MX"}],
        schedules=[
            {"id": "s1", "freq": "WEEKLY", "byday": "TU", "opens_at": "18:00", "closes_at": "19:30"}
        ],
        contacts=[{"id": "c1", "phones": [{"id": "p1", "number": "555-0199"}]}],
    )

    d = details_of(service)

    assert (d.description, d.cost, d.min_age, d.max_age) == ("A group.", "Free", 18, 30)
    assert d.languages == ["en", "es-MX"]
    assert d.schedule == "WEEKLY TU 18:00 -19:30"
    assert d.contact is not None
    assert (d.contact.phone, d.contact.email, d.contact.url) == (
        "555-0199",
        "hello@group.example.org",
        "https://group.example.org/",
    )


BUG_MALFORMED_NESTED = (
    "BUG: service/directory/hsds.py:95 _phone does (contact or {}).get(...) on a non-object "
    "contacts entry and raises AttributeError (API answers 500) instead of rejecting the record"
)


@pytest.mark.parametrize("contacts", [["oops"], [5]], ids=["string", "number"])
def test_a_record_with_a_malformed_contacts_entry_is_rejected_not_crashed(
    contacts: list[Any],
) -> None:
    assert "contacts" in rejected_reasons(hsds_service(contacts=contacts))


def test_an_accepting_referrals_value_outside_the_taxonomy_is_rejected() -> None:
    record = with_terms(
        ("category", "counselling"), ("modality", "online"), ("accepting-referrals", "yes")
    )

    assert "accepting" in rejected_reasons(record)


def test_two_categories_break_the_exactly_one_rule() -> None:
    record = with_terms(
        ("category", "counselling"), ("category", "support-group"), ("modality", "online")
    )

    assert "category" in rejected_reasons(record)


# -- FHIR Bundles of HealthcareService + Location + Organization ----------------------------


def fhir_bundle() -> dict[str, Any]:
    return {
        "resourceType": "Bundle",
        "type": "collection",
        "entry": [
            {
                "fullUrl": "urn:uuid:org-1",
                "resource": {"resourceType": "Organization", "id": "org-1", "name": "Pain Org"},
            },
            {
                "resource": {
                    "resourceType": "Location",
                    "id": "loc-1",
                    "position": {"latitude": 51.51, "longitude": -0.12},
                    "address": {"line": ["3 Low Rd"], "city": "Elmsbury", "postalCode": "EL2"},
                }
            },
            {
                "resource": {
                    "resourceType": "HealthcareService",
                    "id": "hs-crps",
                    "active": True,
                    "name": "CRPS Circle",
                    "providedBy": {"reference": "urn:uuid:org-1"},
                    "location": [{"reference": "Location/loc-1"}],
                    "type": [{"coding": [{"system": CATEGORY_SYSTEM, "code": "support-group"}]}],
                    "characteristic": [
                        {"coding": [{"system": SNOMED, "code": "128200000"}]},
                    ],
                    "communication": [{"coding": [{"system": "urn:ietf:bcp:47", "code": "en"}]}],
                    "extension": [
                        {"url": f"{EXTENSION}/catchment-km", "valueDecimal": 12.5},
                        {"url": f"{EXTENSION}/capacity", "valueInteger": 4},
                    ],
                    "telecom": [{"system": "phone", "value": "555-0111"}],
                    "referralMethod": [{"text": "Phone the group"}],
                    "availabilityExceptions": "Mondays",
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
                        {"coding": [{"system": MODALITY_SYSTEM, "code": "phone"}]},
                        {"coding": [{"system": CONDITION_SYSTEM, "code": "fibromyalgia"}]},
                    ],
                    "extension": [
                        {"url": f"{EXTENSION}/accepting-referrals", "valueBoolean": False},
                        {"url": f"{EXTENSION}/minimum-age", "valueInteger": 18},
                    ],
                }
            },
        ],
    }


def test_a_bundle_reads_services_with_their_location_and_organization() -> None:
    parsed = parse_file(fhir_bundle())
    records = {r.source_id: r for r in parsed.records}

    assert [r.index for r in parsed.records] == [2, 3]  # Bundle entry positions
    crps = records["hs-crps"]
    talk = records["hs-talk"]
    assert isinstance(crps, hsds.Parsed) and isinstance(talk, hsds.Parsed)
    c, t = crps.details, talk.details
    assert (c.name, c.organization, c.category, c.modalities) == (
        "CRPS Circle",
        "Pain Org",
        "support-group",
        ["in-person"],
    )
    assert c.conditions == ["crps"]  # from the SNOMED code
    assert c.location is not None and (c.location.lat, c.location.lon) == (51.51, -0.12)
    assert c.address == "3 Low Rd, Elmsbury, EL2"
    assert (c.catchment_km, c.capacity, c.languages) == (12.5, 4, ["en"])
    assert c.contact is not None and c.contact.phone == "555-0111"
    assert (c.referral_method, c.schedule) == ("Phone the group", "Mondays")
    assert (t.organization, t.modalities, t.conditions) == (
        "Talk Org",
        ["online", "phone"],
        ["fibromyalgia"],
    )
    assert (t.accepting_referrals, t.min_age) == (False, 18)


def test_a_bad_healthcareservice_is_rejected_by_its_entry_index() -> None:
    bundle = fhir_bundle()
    bundle["entry"][3]["resource"]["type"] = []  # no category
    bundle["entry"].append(copy.deepcopy(bundle["entry"][2]))  # duplicate id
    bundle["entry"].append({"resource": {"resourceType": "HealthcareService", "name": "No id"}})

    records = parse_file(bundle).records

    assert [(type(r).__name__, r.index, r.source_id) for r in records] == [
        ("Parsed", 2, "hs-crps"),
        ("Rejected", 3, "hs-talk"),
        ("Rejected", 4, "hs-crps"),
        ("Rejected", 5, None),
    ]


@pytest.mark.parametrize(
    ("element", "value"),
    [
        ("providedBy", "Organization/org-1"),
        ("characteristic", ["online"]),
        ("location", ["Location/loc-1"]),
        ("communication", ["en"]),
    ],
)
def test_a_malformed_healthcareservice_is_rejected_not_crashed(element: str, value: Any) -> None:
    bundle = fhir_bundle()
    bundle["entry"][2]["resource"][element] = value

    records = parse_file(bundle).records

    assert isinstance(records[0], hsds.Rejected)


def test_what_belong_emits_as_healthcareservice_imports_back() -> None:
    original = msgspec.convert(
        {
            "id": "svc-9",
            "name": "Round Trip Group",
            "organization": "Trip Org",
            "category": "family-communication",
            "modalities": ["online", "phone"],
            "conditions": ["crps", "chronic-headache"],
            "languages": ["en", "pl"],
            "min_age": 18,
            "max_age": 64,
            "capacity": 3,
            "contact": {"phone": "555-0123", "email": "a@b.example.org"},
            "referral_method": "Online form",
            "schedule": "Fridays",
            "description": "A group.",
        },
        DirectoryService,
    )
    resource = msgspec.to_builtins(healthcare_service(original, datetime(2024, 1, 1, tzinfo=UTC)))
    bundle = {"resourceType": "Bundle", "entry": [{"resource": resource}]}

    details = healthcare_service_details(resource, bundle)
    back = msgspec.convert(details, ServiceDetails)

    expected = msgspec.structs.asdict(original)
    for only_stored in ("id", "capacity_status", "capacity_status_at"):
        expected.pop(only_stored)
    assert msgspec.structs.asdict(back) == expected
