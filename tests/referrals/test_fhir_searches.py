"""The ServiceRequest and Task searches US Core and SDOHCC require of a server, over HTTP on
real PostgreSQL, and two of them through fhirpy against a live ``belong serve``.

US Core ServiceRequest: ``_id``, ``patient``, ``patient+category``, ``patient+code``,
``patient+category+authored``, ``status``; SDOHCC Task polling: ``focus``, ``owner``
(``owner:missing``), ``status``, ``_include=Task:focus``. Comma lists are OR, repeated
parameters AND, ``system|`` is any code of the system, and a reference may be this
server's absolute URL. Every Bundle is validated with ``fhir.resources.R4B``.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
import requests
from fhir.resources.R4B.bundle import Bundle
from fhirpy import SyncFHIRClient
from litestar import Litestar
from litestar.testing import TestClient

from service.platform.credentials import SCOPES
from tests.conftest import Clinic, MakeClinic, scratch_database
from tests.helpers import FhirSeed, seed_fhir
from tests.live import live_server

SNOMED = "http://snomed.info/sct"
SDOHCC_CODES = "http://hl7.org/fhir/us/sdoh-clinicalcare/CodeSystem/SDOHCC-CodeSystemTemporaryCodes"
TIMEOUT = 10.0


@pytest.fixture
def seed(client: TestClient[Litestar]) -> FhirSeed:
    return seed_fhir(client)


def search(client: TestClient[Litestar], kind: str, params: Any) -> dict[str, Any]:
    """A searchset of ``kind``, R4B-valid, its matches of that type."""
    response = client.get(f"/fhir/{kind}", params=params)
    assert response.status_code == 200, response.text
    bundle = response.json()
    Bundle.model_validate(bundle)
    assert bundle["type"] == "searchset"
    for entry in bundle.get("entry", []):
        if entry["search"]["mode"] == "match":
            assert entry["resource"]["resourceType"] == kind
    return bundle


def matched(client: TestClient[Litestar], kind: str, params: Any) -> set[str]:
    bundle = search(client, kind, params)
    found = {e["resource"]["id"] for e in bundle.get("entry", []) if e["search"]["mode"] == "match"}
    assert bundle["total"] == len(found)
    return found


def fhir_base(client: TestClient[Litestar]) -> str:
    """This server's FHIR base as its links give it."""
    self_link = search(client, "Task", {"_count": 1})["link"][0]["url"]
    return self_link.split("/fhir/")[0] + "/fhir"


def test_service_request_by_id_with_or_lists_and_and_repeats(client, seed: FhirSeed) -> None:
    assert matched(client, "ServiceRequest", {"_id": seed.active}) == {seed.active}
    both = f"{seed.active},{seed.revoked}"
    assert matched(client, "ServiceRequest", {"_id": both}) == {seed.active, seed.revoked}
    repeated = [("_id", both), ("_id", f"{seed.revoked},{seed.completed}")]
    assert matched(client, "ServiceRequest", repeated) == {seed.revoked}
    assert matched(client, "ServiceRequest", {"_id": "no-such-referral"}) == set()


def test_service_request_by_patient_and_category(client, seed: FhirSeed) -> None:
    mine = {seed.active, seed.completed}
    for category in (f"{SNOMED}|410606002", "social-connection", f"{SDOHCC_CODES}|", "x,410606002"):
        found = matched(client, "ServiceRequest", {"patient": seed.patient, "category": category})
        assert found == mine, category
    for category in (f"{SNOMED}|999999", f"{SNOMED}|social-connection", "sdoh"):
        found = matched(client, "ServiceRequest", {"patient": seed.patient, "category": category})
        assert found == set(), category
    # Repeated: both must be among the request's categories.
    both = [("patient", seed.patient), ("category", "410606002"), ("category", "social-connection")]
    assert matched(client, "ServiceRequest", both) == mine
    one_wrong = [("patient", seed.patient), ("category", "410606002"), ("category", "sdoh")]
    assert matched(client, "ServiceRequest", one_wrong) == set()


def test_service_request_by_patient_and_code(client, seed: FhirSeed) -> None:
    def codes(code: str) -> set[str]:
        return matched(client, "ServiceRequest", {"patient": seed.patient, "code": code})

    assert codes(f"{SNOMED}|711281004") == {seed.active}  # referral to support group
    assert codes("306226009") == {seed.completed}  # mental health counselling
    assert codes("711281004,306226009") == {seed.active, seed.completed}
    assert codes(f"{SNOMED}|") == {seed.active, seed.completed}  # any code of SNOMED CT
    assert codes("http://loinc.org|711281004") == set()
    assert codes("http://loinc.org|") == set()
    anded = [("patient", seed.patient), ("code", "711281004"), ("code", "306226009")]
    assert matched(client, "ServiceRequest", anded) == set()


def test_service_request_by_patient_category_and_authored(client, seed: FhirSeed) -> None:
    today = datetime.now(UTC).date()
    base = [("patient", seed.patient), ("category", f"{SNOMED}|410606002")]
    mine = {seed.active, seed.completed}
    assert matched(client, "ServiceRequest", [*base, ("authored", today.isoformat())]) == mine
    window = [
        ("authored", f"ge{(today - timedelta(days=1)).isoformat()}"),
        ("authored", f"lt{(today + timedelta(days=2)).isoformat()}"),
    ]
    assert matched(client, "ServiceRequest", [*base, *window]) == mine
    assert matched(client, "ServiceRequest", [*base, ("authored", "lt2020-01-01")]) == set()
    disjoint = [("authored", "lt2020-01-01"), ("authored", f"ge{today.isoformat()}")]
    assert matched(client, "ServiceRequest", [*base, *disjoint]) == set()


def test_service_request_status_or_lists_with_draft(client, seed: FhirSeed) -> None:
    def statuses(*values: str) -> set[str]:
        return matched(client, "ServiceRequest", [("status", v) for v in values])

    assert statuses("draft") == set()  # Belong stores no drafts
    assert statuses("draft,active") == {seed.active}
    assert statuses("active,completed,revoked") == {seed.active, seed.completed, seed.revoked}
    assert statuses("entered-in-error,unknown,on-hold") == set()
    assert statuses("active,completed", "completed,revoked") == {seed.completed}
    assert statuses("active", "completed") == set()


def test_references_by_absolute_url_of_this_server(client, seed: FhirSeed) -> None:
    base = fhir_base(client)
    mine = {seed.active, seed.completed}
    own = f"{base}/Patient/{seed.patient}"
    assert matched(client, "ServiceRequest", {"patient": own}) == mine
    assert matched(client, "ServiceRequest", {"subject": f"Patient/{seed.patient}"}) == mine
    elsewhere = f"https://elsewhere.example/fhir/Patient/{seed.patient}"
    assert matched(client, "ServiceRequest", {"patient": elsewhere}) == set()
    either = f"{elsewhere},{seed.other_patient}"
    assert matched(client, "ServiceRequest", {"patient": either}) == {seed.revoked}
    focus = f"{base}/ServiceRequest/{seed.completed}"
    assert matched(client, "Task", {"focus": focus}) == {seed.completed}


def test_task_by_focus_owner_and_status(client, seed: FhirSeed) -> None:
    assert matched(client, "Task", {"focus": f"ServiceRequest/{seed.active}"}) == {seed.active}
    both = f"ServiceRequest/{seed.active},{seed.revoked}"
    assert matched(client, "Task", {"focus": both}) == {seed.active, seed.revoked}
    group = {seed.active, seed.revoked}
    assert matched(client, "Task", {"owner": f"HealthcareService/{seed.group}"}) == group
    assert matched(client, "Task", {"owner": seed.counselling}) == {seed.completed}
    assert matched(client, "Task", {"owner": "HealthcareService/none-such"}) == set()
    assert matched(client, "Task", {"status": "requested"}) == {seed.active}
    assert matched(client, "Task", {"status": "cancelled,completed"}) == {
        seed.revoked,
        seed.completed,
    }
    assert matched(client, "Task", {"status": "draft,received,ready"}) == set()
    polled = [("owner", seed.group), ("status", "requested,accepted")]
    assert matched(client, "Task", polled) == {seed.active}
    assert matched(client, "Task", [("status", "requested"), ("status", "cancelled")]) == set()
    everything = {seed.active, seed.completed, seed.revoked}
    assert matched(client, "Task", {"owner:missing": "false"}) == everything
    assert matched(client, "Task", {"owner:missing": "true"}) == set()  # every Task has one


def test_task_include_focus_adds_the_service_request(client, seed: FhirSeed) -> None:
    bundle = search(client, "Task", {"owner": seed.group, "_include": "Task:focus"})
    matches = [e for e in bundle["entry"] if e["search"]["mode"] == "match"]
    included = [e for e in bundle["entry"] if e["search"]["mode"] == "include"]
    assert {e["resource"]["id"] for e in matches} == {seed.active, seed.revoked}
    assert bundle["total"] == 2  # the total counts matches only
    assert {e["resource"]["resourceType"] for e in included} == {"ServiceRequest"}
    assert {f"ServiceRequest/{e['resource']['id']}" for e in included} == {
        e["resource"]["focus"]["reference"] for e in matches
    }
    for entry in included:
        assert entry["fullUrl"].endswith(f"/fhir/ServiceRequest/{entry['resource']['id']}")
    assert "_include=Task%3Afocus" in bundle["link"][0]["url"]
    without = search(client, "Task", {"owner": seed.group})
    assert {e["search"]["mode"] for e in without["entry"]} == {"match"}


def test_service_request_revinclude_task_focus(client, seed: FhirSeed) -> None:
    bundle = search(client, "ServiceRequest", {"_id": seed.completed, "_revinclude": "Task:focus"})
    modes = [(e["search"]["mode"], e["resource"]["resourceType"]) for e in bundle["entry"]]
    assert modes == [("match", "ServiceRequest"), ("include", "Task")]
    task = bundle["entry"][1]["resource"]
    assert task["focus"]["reference"] == f"ServiceRequest/{seed.completed}"
    assert task["status"] == "completed"


def test_searches_stay_in_the_callers_clinic(
    client, seed: FhirSeed, make_clinic: MakeClinic, session_client: TestClient[Litestar]
) -> None:
    other: Clinic = make_clinic()
    for kind, params in (
        ("ServiceRequest", {"_id": f"{seed.active},{seed.completed}"}),
        ("ServiceRequest", {"patient": seed.patient, "category": "social-connection"}),
        ("Task", {"owner": seed.group, "_include": "Task:focus"}),
        ("Task", {"focus": seed.active}),
        ("ServiceRequest", {"status": "active,completed,revoked", "_revinclude": "Task:focus"}),
    ):
        response = session_client.get(f"/fhir/{kind}", params=params, headers=other.headers)
        assert response.status_code == 200, response.text
        assert response.json()["total"] == 0
        assert response.json().get("entry", []) == []


@pytest.mark.parametrize(
    ("kind", "params", "field"),
    [
        ("ServiceRequest", {"_id": "a b"}, "_id"),
        ("ServiceRequest", {"status": "active,bogus"}, "status"),
        ("ServiceRequest", {"patient": "Group/1"}, "patient"),
        ("ServiceRequest", {"authored": "2024-13-01"}, "authored"),
        ("ServiceRequest", {"_revinclude": "Task:owner"}, "_revinclude"),
        ("Task", {"_include": "Task:owner"}, "_include"),
        ("Task", {"owner:missing": "maybe"}, "owner:missing"),
        ("Task", {"focus": "ServiceRequest/\x00"}, "focus"),
        ("Task", {"status": "requested,nope"}, "status"),
    ],
)
def test_bad_search_values_are_400_naming_the_parameter(client, kind, params, field) -> None:
    response = client.get(f"/fhir/{kind}", params=params)
    assert response.status_code == 400, response.text
    outcome = response.json()
    assert outcome["resourceType"] == "OperationOutcome"
    assert any(field in issue.get("expression", []) for issue in outcome["issue"]), outcome


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
    folder = tmp_path_factory.mktemp("searches")
    url = scratch_database("fhir_searches")
    clinic = f"searches-{uuid.uuid4().hex[:8]}"
    with live_server(url, folder, SCOPES, clinic=clinic) as server:
        seeded = seed_fhir(LiveSession(server.origin, server.token))  # type: ignore[arg-type]
        fhirpy = SyncFHIRClient(
            f"{server.origin}/fhir",
            authorization=f"Bearer {server.token}",
            requests_config={"timeout": TIMEOUT},
        )
        yield fhirpy, seeded


def test_fhirpy_service_requests_by_patient_and_code(live) -> None:
    fhirpy, seeded = live
    found = (
        fhirpy.resources("ServiceRequest")
        .search(patient=f"Patient/{seeded.patient}", code=f"{SNOMED}|711281004")
        .fetch_all()
    )
    assert [r.id for r in found] == [seeded.active]
    assert found[0]["code"]["coding"][0]["code"] == "711281004"
    either = fhirpy.resources("ServiceRequest").search(status="draft,active").fetch_all()
    assert {r.id for r in either} == {seeded.active}
    # fhirpy sends a list as the parameter repeated: each must match.
    both = fhirpy.resources("ServiceRequest").search(status=["draft", "active"]).fetch_all()
    assert both == []


def test_fhirpy_tasks_by_owner_with_their_service_requests(live) -> None:
    fhirpy, seeded = live
    bundle = (
        fhirpy.resources("Task")
        .search(owner=f"HealthcareService/{seeded.group}")
        .include("Task", "focus")
        .fetch_raw()
    )
    entries = [
        {
            "fullUrl": e.fullUrl,
            "search": {"mode": e.search.mode},
            "resource": e.resource.serialize(),
        }
        for e in bundle.entry
    ]  # fhirpy made each entry's resource one of its own
    Bundle.model_validate({"resourceType": "Bundle", "type": bundle.type, "entry": entries})
    by_mode: dict[str, set[str]] = {}
    for entry in entries:
        resource = entry["resource"]
        by_mode.setdefault(entry["search"]["mode"], set()).add(
            f"{resource['resourceType']}/{resource['id']}"
        )
    assert by_mode == {
        "match": {f"Task/{seeded.active}", f"Task/{seeded.revoked}"},
        "include": {f"ServiceRequest/{seeded.active}", f"ServiceRequest/{seeded.revoked}"},
    }
