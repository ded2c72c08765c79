"""Referrals end to end: recommendations, consent, the lifecycle, concurrency, tenancy, audit.

Each test has a clinic of its own with a small directory (``world``), a patient with a
matching profile and one positive UCLA-3 screening. The worked example at the end uses
the sample directory from deploy/seed, as the issue's closing note asks.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from litestar import Litestar
from litestar.testing import TestClient

from service.referrals.model import Status, check
from service.referrals.repository import ReferralStore
from tests.conftest import Clinic, MakeClinic
from tests.helpers import PROBLEM_JSON, Storage, assert_problem, new_patient_id, ucla3

ROOT = Path(__file__).resolve().parents[2]
SEED = ROOT / "deploy" / "seed" / "directory.hsds.json"
REFERRALS = "/v1/referrals"
CONSENT = {"given": True, "method": "verbal"}
PROFILE = {
    "pain_conditions": ["crps"],
    "languages": ["en"],
    "preferred_modalities": ["online"],
    "age_band": "45-64",
}
NEGATIVE_UCLA3 = {"1": 1, "2": 1, "3": 1}
HIGH_PEG = {"P": 8, "E": 8, "G": 7}
REASON = "the patient asked"
PATH_TO: dict[Status, list[Status]] = {
    Status.REQUESTED: [],
    Status.ACCEPTED: [Status.ACCEPTED],
    Status.REJECTED: [Status.REJECTED],
    Status.CANCELLED: [Status.CANCELLED],
    Status.IN_PROGRESS: [Status.ACCEPTED, Status.IN_PROGRESS],
    Status.ON_HOLD: [Status.ACCEPTED, Status.IN_PROGRESS, Status.ON_HOLD],
    Status.COMPLETED: [Status.ACCEPTED, Status.IN_PROGRESS, Status.COMPLETED],
    Status.FAILED: [Status.ACCEPTED, Status.IN_PROGRESS, Status.FAILED],
}
ALLOWED = {
    Status.REQUESTED: {Status.ACCEPTED, Status.REJECTED, Status.CANCELLED},
    Status.ACCEPTED: {Status.IN_PROGRESS, Status.CANCELLED},
    Status.IN_PROGRESS: {Status.COMPLETED, Status.FAILED, Status.ON_HOLD},
    Status.ON_HOLD: {Status.IN_PROGRESS, Status.CANCELLED},
}


@dataclass(frozen=True)
class World:
    clinic: Clinic
    patient_id: str
    screening_id: str
    services: dict[str, str]
    """name -> id"""


def add_service(client: TestClient[Litestar], name: str, **fields: Any) -> str:
    body = {
        "name": name,
        "organization": "Org",
        "category": "support-group",
        "modalities": ["online"],
        **fields,
    }
    response = client.post("/v1/directory/services", json=body)
    assert response.status_code == 201, response.text
    return response.json()["id"]


@pytest.fixture
def world(client: TestClient[Litestar], clinic: Clinic) -> World:
    services = {
        "CRPS Online Circle": add_service(client, "CRPS Online Circle", conditions=["crps"]),
        "General Group": add_service(client, "General Group", modalities=["in-person"]),
        "Pain Counselling": add_service(
            client, "Pain Counselling", category="counselling", modalities=["phone"]
        ),
        "Closed Group": add_service(client, "Closed Group", accepting_referrals=False),
        "Full Group": add_service(client, "Full Group", capacity=0),
        "French Group": add_service(client, "French Group", languages=["fr"]),
    }
    patient_id = new_patient_id()
    put = client.put(f"/v1/patients/{patient_id}", json=PROFILE)
    assert put.status_code == 201, put.text
    posted = client.post("/v1/screenings", json=ucla3(patient_id))
    assert posted.status_code == 201, posted.text
    return World(clinic, patient_id, posted.json()["id"], services)


def refer(
    client: TestClient[Litestar], world: World, service: str = "CRPS Online Circle", **fields: Any
) -> Any:
    body = {
        "patient_id": world.patient_id,
        "service_id": world.services.get(service, service),
        "consent": CONSENT,
        **fields,
    }
    return client.post(REFERRALS, json=body)


def new_referral(client: TestClient[Litestar], world: World, **fields: Any) -> dict[str, Any]:
    response = refer(client, world, **fields)
    assert response.status_code == 201, response.text
    return response.json()


def move(
    client: TestClient[Litestar],
    referral_id: str,
    status: Status | str,
    reason: str | None = None,
    outcome: str | None = None,
    **headers: str,
) -> Any:
    body: dict[str, Any] = {"status": str(status)}
    if reason is not None:
        body["reason"] = reason
    if outcome is not None:
        body["outcome"] = outcome
    return client.patch(f"{REFERRALS}/{referral_id}", json=body, headers=headers)


def drive(client: TestClient[Litestar], referral_id: str, to: Status) -> dict[str, Any]:
    current = client.get(f"{REFERRALS}/{referral_id}").json()
    for step in PATH_TO[to]:
        response = move(client, referral_id, step, reason=REASON)
        assert response.status_code == 200, response.text
        current = response.json()
    assert current["status"] == to
    return current


def read(client: TestClient[Litestar], referral_id: str) -> dict[str, Any]:
    response = client.get(f"{REFERRALS}/{referral_id}")
    assert response.status_code == 200, response.text
    return response.json()


def worklist(client: TestClient[Litestar], **params: Any) -> dict[str, Any]:
    response = client.get(REFERRALS, params=params)
    assert response.status_code == 200, response.text
    return response.json()


# -- making a referral -------------------------------------------------------------------


def test_a_referral_starts_requested_with_consent_and_history(
    client: TestClient[Litestar], world: World, storage: Storage
) -> None:
    before = datetime.now(UTC)

    response = refer(
        client, world, screening_id=world.screening_id, need="loneliness", note="Prefers evenings"
    )

    assert response.status_code == 201, response.text
    referral = response.json()
    assert response.headers["location"] == f"{REFERRALS}/{referral['id']}"
    assert referral["status"] == "requested"
    assert referral["allowed_next"] == ["accepted", "cancelled", "rejected"]
    assert referral["version"] == 1
    assert (referral["patient_id"], referral["screening_id"], referral["need"]) == (
        world.patient_id,
        world.screening_id,
        "loneliness",
    )
    assert referral["note"] == "Prefers evenings"
    assert referral["service"]["id"] == world.services["CRPS Online Circle"]
    assert referral["service"]["name"] == "CRPS Online Circle"
    assert referral["consent"]["given"] is True and referral["consent"]["method"] == "verbal"
    assert datetime.fromisoformat(referral["consent"]["recorded_at"]) >= before
    (client_id,) = storage.client_ids(world.clinic.clinic_id)
    [event] = referral["history"]
    assert (event["from_status"], event["to_status"], event["client_id"]) == (
        None,
        "requested",
        str(client_id),
    )
    assert read(client, referral["id"]) == referral


def test_consent_must_be_given(client: TestClient[Litestar], world: World) -> None:
    refused = refer(client, world, consent={"given": False, "method": "written"})

    problem = assert_problem(refused, 422, "consent.given")
    assert problem["errors"][0]["code"] == "consent_required"
    assert worklist(client)["total"] == 0


@pytest.mark.parametrize(
    "consent",
    [None, {"given": True}, {"given": True, "method": "telepathic"}, {"given": "yes"}],
    ids=["missing", "no-method", "bad-method", "not-boolean"],
)
def test_consent_must_be_well_formed(
    client: TestClient[Litestar], world: World, consent: dict[str, Any] | None
) -> None:
    body = {"patient_id": world.patient_id, "service_id": world.services["General Group"]}
    if consent is not None:
        body["consent"] = consent

    assert_problem(client.post(REFERRALS, json=body), 400)
    assert worklist(client)["total"] == 0


@pytest.mark.parametrize(
    ("fields", "field", "code"),
    [
        ({"patient_id": "nobody-here"}, "patient_id", "not_found"),
        ({"service_id": "no-such-service"}, "service_id", "not_found"),
        ({"screening_id": str(uuid.uuid4())}, "screening_id", "not_found"),
        ({"service": "Closed Group"}, "service_id", "closed"),
        ({"service": "Full Group"}, "service_id", "closed"),
    ],
)
def test_unknown_or_closed_targets_are_422(
    client: TestClient[Litestar],
    world: World,
    fields: dict[str, str],
    field: str,
    code: str,
) -> None:
    response = refer(client, world, **fields)

    problem = assert_problem(response, 422, field)
    assert [e["code"] for e in problem["errors"] if e["field"] == field] == [code]
    assert worklist(client)["total"] == 0


def test_all_problems_are_named_at_once(client: TestClient[Litestar], world: World) -> None:
    body = {
        "patient_id": "nobody-here",
        "service_id": "no-such-service",
        "screening_id": world.screening_id,  # not this patient's
        "consent": CONSENT,
    }

    problem = assert_problem(client.post(REFERRALS, json=body), 422)

    assert sorted(e["field"] for e in problem["errors"]) == [
        "patient_id",
        "screening_id",
        "service_id",
    ]


def test_a_screening_of_another_patient_is_refused(
    client: TestClient[Litestar], world: World
) -> None:
    other = new_patient_id()
    other_screening = client.post("/v1/screenings", json=ucla3(other)).json()["id"]

    assert_problem(refer(client, world, screening_id=other_screening), 422, "screening_id")


def test_a_withdrawn_service_takes_no_new_referrals_but_old_ones_keep_it(
    client: TestClient[Litestar], world: World
) -> None:
    referral = new_referral(client, world, service="General Group")
    service_id = world.services["General Group"]
    assert client.delete(f"/v1/directory/services/{service_id}").status_code == 204

    assert_problem(refer(client, world, service="General Group"), 422, "service_id")
    kept = read(client, referral["id"])
    assert kept["service"]["name"] == "General Group"
    assert move(client, referral["id"], "accepted").status_code == 200


# -- the lifecycle -------------------------------------------------------------------------


def test_the_full_lifecycle_with_history(
    client: TestClient[Litestar], world: World, storage: Storage
) -> None:
    started = datetime.now(UTC)
    referral = new_referral(client, world)
    rid = referral["id"]
    steps = [
        ("accepted", None, None),
        ("in-progress", None, None),
        ("on-hold", "Group paused for the summer", None),
        ("in-progress", None, "Back after the break"),
        ("completed", None, "Attended 6 of 8 sessions"),
    ]

    for number, (status, reason, outcome) in enumerate(steps, start=2):
        response = move(client, rid, status, reason, outcome)
        assert response.status_code == 200, response.text
        assert response.headers["etag"] == f'"{number}"'
        assert response.json()["version"] == number

    final = read(client, rid)
    finished = datetime.now(UTC)
    assert final["status"] == "completed"
    assert final["allowed_next"] == []
    assert final["outcome"] == "Attended 6 of 8 sessions"
    assert final["status_reason"] is None
    history = final["history"]
    assert [(e["from_status"], e["to_status"]) for e in history] == [
        (None, "requested"),
        ("requested", "accepted"),
        ("accepted", "in-progress"),
        ("in-progress", "on-hold"),
        ("on-hold", "in-progress"),
        ("in-progress", "completed"),
    ]
    assert [(e["reason"], e["outcome"]) for e in history[1:]] == [
        (reason, outcome) for _, reason, outcome in steps
    ]
    (client_id,) = storage.client_ids(world.clinic.clinic_id)
    assert {e["client_id"] for e in history} == {str(client_id)}
    times = [datetime.fromisoformat(e["recorded_at"]) for e in history]
    assert times == sorted(times)
    assert started <= times[0] and times[-1] <= finished
    assert datetime.fromisoformat(final["updated_at"]) == times[-1]
    assert datetime.fromisoformat(final["created_at"]) == times[0]


def test_on_hold_records_its_reason_and_the_next_step_clears_it(
    client: TestClient[Litestar], world: World
) -> None:
    rid = new_referral(client, world)["id"]
    drive(client, rid, Status.IN_PROGRESS)

    held = move(client, rid, "on-hold", reason="Patient in hospital").json()
    resumed = move(client, rid, "in-progress").json()

    assert (held["status_reason"], held["allowed_next"]) == (
        "Patient in hospital",
        ["cancelled", "in-progress"],
    )
    assert resumed["status_reason"] is None


@pytest.mark.parametrize("status", ["rejected", "cancelled", "failed", "on-hold"])
def test_steps_that_must_say_why_are_refused_without_a_reason(
    client: TestClient[Litestar], world: World, status: str
) -> None:
    rid = new_referral(client, world)["id"]
    ready = drive(
        client, rid, Status.IN_PROGRESS if status in ("failed", "on-hold") else Status.REQUESTED
    )

    missing = move(client, rid, status)
    empty = client.patch(f"{REFERRALS}/{rid}", json={"status": status, "reason": ""})

    assert_problem(missing, 422, "reason")
    assert_problem(empty, 400)
    assert read(client, rid) == ready
    assert move(client, rid, status, reason="No places left").status_code == 200


@pytest.mark.parametrize(
    "step",
    [(a, b) for a, nexts in ALLOWED.items() for b in sorted(nexts)],
    ids=lambda s: f"{s[0]}->{s[1]}",
)
def test_every_allowed_step_through_the_api(
    client: TestClient[Litestar], world: World, step: tuple[Status, Status]
) -> None:
    rid = new_referral(client, world)["id"]
    before = drive(client, rid, step[0])

    response = move(client, rid, step[1], reason=REASON)

    assert response.status_code == 200, response.text
    after = response.json()
    assert after["status"] == step[1]
    assert after["version"] == before["version"] + 1
    assert after["history"][-1]["from_status"] == step[0]
    assert after["allowed_next"] == sorted(ALLOWED.get(step[1], set()))


@pytest.mark.parametrize("current", list(Status), ids=str)
def test_every_forbidden_step_through_the_api_is_409_naming_the_allowed_states(
    client: TestClient[Litestar], world: World, current: Status
) -> None:
    rid = new_referral(client, world)["id"]
    before = drive(client, rid, current)
    allowed = ALLOWED.get(current, set())

    for wanted in Status:
        if wanted in allowed:
            continue
        response = move(client, rid, wanted, reason=REASON)
        problem = assert_problem(response, 409, "status")
        assert problem["errors"][0]["code"] == "invalid_transition"
        assert current.value in problem["detail"] and wanted.value in problem["detail"]
        if allowed:
            assert all(state.value in problem["detail"] for state in allowed)
        else:
            assert "final" in problem["detail"]
        assert before["allowed_next"] == sorted(allowed)

    assert read(client, rid) == before


def test_an_unknown_status_is_400(client: TestClient[Litestar], world: World) -> None:
    rid = new_referral(client, world)["id"]

    assert_problem(move(client, rid, "draft"), 400)
    assert_problem(client.patch(f"{REFERRALS}/{rid}", json={"status": "accepted", "x": 1}), 400)
    assert read(client, rid)["version"] == 1


# -- an outcome added after completion -----------------------------------------------------


def completed_without_outcome(client: TestClient[Litestar], world: World) -> dict[str, Any]:
    rid = new_referral(client, world)["id"]
    for status in ("accepted", "in-progress", "completed"):
        assert move(client, rid, status).status_code == 200
    done = read(client, rid)
    assert (done["status"], done["outcome"], done["version"]) == ("completed", None, 4)
    return done


def outcome_only(
    client: TestClient[Litestar], referral_id: str, body: dict[str, Any], **headers: str
) -> Any:
    return client.patch(f"{REFERRALS}/{referral_id}", json=body, headers=headers)


def test_an_outcome_can_be_added_to_a_completed_referral_later(
    client: TestClient[Litestar], world: World, storage: Storage
) -> None:
    done = completed_without_outcome(client, world)
    rid = done["id"]

    added = outcome_only(client, rid, {"outcome": "Attended 6 of 8 sessions"})
    changed = outcome_only(
        client, rid, {"status": "completed", "outcome": "Attended all 8 sessions"}
    )

    assert added.status_code == 200, added.text
    assert (added.json()["status"], added.json()["outcome"]) == (
        "completed",
        "Attended 6 of 8 sessions",
    )
    assert added.headers["etag"] == '"5"'
    assert changed.status_code == 200, changed.text
    assert changed.headers["etag"] == '"6"'
    final = read(client, rid)
    assert final == changed.json()
    assert (final["status"], final["outcome"], final["allowed_next"]) == (
        "completed",
        "Attended all 8 sessions",
        [],
    )
    assert final["status_reason"] == done["status_reason"]
    (client_id,) = storage.client_ids(world.clinic.clinic_id)
    assert [
        (e["from_status"], e["to_status"], e["reason"], e["outcome"], e["client_id"])
        for e in final["history"][4:]
    ] == [
        ("completed", "completed", None, "Attended 6 of 8 sessions", str(client_id)),
        ("completed", "completed", None, "Attended all 8 sessions", str(client_id)),
    ]
    assert final["history"][:4] == done["history"]
    assert datetime.fromisoformat(final["updated_at"]) == datetime.fromisoformat(
        final["history"][-1]["recorded_at"]
    )
    trail = client.get(
        "/v1/audit-events", params={"patient_id": world.patient_id, "limit": 200}
    ).json()["items"]
    updates = [
        (e["outcome"], e["status_code"])
        for e in trail
        if (e["action"], e["resource_type"], e["resource_id"]) == ("update", "Referral", rid)
    ]
    assert updates == [("success", 200)] * 5  # three steps and two outcomes


def test_the_same_outcome_again_changes_nothing(client: TestClient[Litestar], world: World) -> None:
    rid = completed_without_outcome(client, world)["id"]
    first = outcome_only(client, rid, {"outcome": "Joined the group"}).json()

    again = outcome_only(client, rid, {"outcome": "Joined the group"})

    assert again.status_code == 200, again.text
    assert again.headers["etag"] == '"5"'
    assert again.json() == first == read(client, rid)


def test_an_outcome_change_honours_if_match(client: TestClient[Litestar], world: World) -> None:
    rid = completed_without_outcome(client, world)["id"]

    stale = outcome_only(client, rid, {"outcome": "Joined"}, **{"If-Match": '"3"'})
    fresh = outcome_only(client, rid, {"outcome": "Joined"}, **{"If-Match": '"4"'})

    assert_problem(stale, 412, "If-Match")
    assert fresh.status_code == 200, fresh.text
    assert read(client, rid)["outcome"] == "Joined"


@pytest.mark.parametrize(
    "body",
    [
        {"status": "in-progress", "outcome": "Came back"},
        {"status": "failed", "reason": REASON, "outcome": "Stopped coming"},
        {"status": "cancelled", "reason": REASON},
        {"status": "completed"},
    ],
    ids=["in-progress", "failed", "cancelled", "completed-without-outcome"],
)
def test_any_status_change_from_completed_stays_409(
    client: TestClient[Litestar], world: World, body: dict[str, Any]
) -> None:
    done = completed_without_outcome(client, world)

    problem = assert_problem(outcome_only(client, done["id"], body), 409, "status")

    assert problem["errors"][0]["code"] == "invalid_transition"
    assert "final" in problem["detail"]
    assert read(client, done["id"]) == done


@pytest.mark.parametrize("current", [s for s in Status if s is not Status.COMPLETED], ids=str)
def test_only_a_completed_referral_takes_an_outcome_without_a_status(
    client: TestClient[Litestar], world: World, current: Status
) -> None:
    rid = new_referral(client, world)["id"]
    before = drive(client, rid, current)

    problem = assert_problem(outcome_only(client, rid, {"outcome": "Went once"}), 422, "status")

    assert problem["errors"][0]["code"] == "required"
    assert read(client, rid) == before


def test_a_completion_sent_again_with_a_reason_is_a_refused_step(
    client: TestClient[Litestar], world: World
) -> None:
    done = completed_without_outcome(client, world)
    again = client.patch(
        f"{REFERRALS}/{done['id']}",
        json={"status": "completed", "reason": "busy", "outcome": "Joined"},
    )
    assert assert_problem(again, 409, "status")["errors"][0]["code"] == "invalid_transition"
    assert read(client, done["id"]) == done


def test_an_outcome_change_names_what_is_wrong_with_it(
    client: TestClient[Litestar], world: World
) -> None:
    done = completed_without_outcome(client, world)
    rid = done["id"]

    with_reason = outcome_only(client, rid, {"outcome": "Joined", "reason": "Asked again"})
    empty = outcome_only(client, rid, {})
    blank = outcome_only(client, rid, {"outcome": ""})

    assert assert_problem(with_reason, 422, "reason")["errors"][0]["code"] == "not_allowed"
    assert assert_problem(empty, 422, "status")["errors"][0]["code"] == "required"
    assert_problem(blank, 400)
    assert read(client, rid) == done


# -- If-Match and concurrency ------------------------------------------------------------


def test_if_match_guards_against_stale_writes(client: TestClient[Litestar], world: World) -> None:
    rid = new_referral(client, world)["id"]
    etag = client.get(f"{REFERRALS}/{rid}").headers["etag"]
    assert etag == '"1"'

    fresh = move(client, rid, "accepted", **{"If-Match": etag})
    stale = move(client, rid, "in-progress", **{"If-Match": etag})
    weak = move(client, rid, "in-progress", **{"If-Match": 'W/"2"'})

    assert fresh.status_code == 200 and fresh.headers["etag"] == '"2"'
    problem = assert_problem(stale, 412, "If-Match")
    assert problem["errors"][0]["code"] == "stale"
    assert weak.status_code == 200, weak.text
    assert [e["to_status"] for e in read(client, rid)["history"]] == [
        "requested",
        "accepted",
        "in-progress",
    ]
    assert_problem(move(client, rid, "completed", **{"If-Match": "3"}), 400)  # not an ETag


def concurrently(
    session_client: TestClient[Litestar], clinic: Clinic, url: str, bodies: list[dict[str, Any]]
) -> list[httpx.Response]:
    """PATCH every body at once, inside the app's own event loop."""

    async def fire() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=session_client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=clinic.headers
        ) as http:
            return list(await asyncio.gather(*(http.patch(url, json=b) for b in bodies)))

    return session_client.blocking_portal.call(fire)


def test_twenty_concurrent_decisions_make_exactly_one_transition(
    session_client: TestClient[Litestar], client: TestClient[Litestar], world: World
) -> None:
    rid = new_referral(client, world)["id"]
    bodies = [
        {"status": "accepted"} if i % 2 else {"status": "rejected", "reason": f"no {i}"}
        for i in range(20)
    ]

    responses = concurrently(session_client, world.clinic, f"{REFERRALS}/{rid}", bodies)

    codes = sorted(r.status_code for r in responses)
    assert codes == [200] + [409] * 19, [r.text for r in responses if r.status_code != 409]
    (winner,) = [r.json() for r in responses if r.status_code == 200]
    final = read(client, rid)
    assert final["status"] == winner["status"]
    assert final["version"] == 2
    assert [(e["from_status"], e["to_status"]) for e in final["history"]] == [
        (None, "requested"),
        ("requested", winner["status"]),
    ]
    for loser in (r for r in responses if r.status_code == 409):
        assert loser.headers["content-type"].startswith(PROBLEM_JSON)


def chain(events: list[tuple[str, str]], start: str = "requested") -> list[str] | None:
    """The statuses visited if the (from, to) steps, each used once, link up from ``start``
    (in whatever order they were recorded); None when they cannot."""
    if not events:
        return [start]
    for i, (frm, to) in enumerate(events):
        if frm == start and (rest := chain(events[:i] + events[i + 1 :], to)) is not None:
            return [start, *rest]
    return None


def test_concurrent_mixed_steps_never_skip_a_state(
    session_client: TestClient[Litestar], client: TestClient[Litestar], world: World
) -> None:
    rid = new_referral(client, world)["id"]
    statuses = ["accepted", "in-progress", "on-hold", "completed", "cancelled"] * 4
    bodies = [{"status": s, "reason": "busy", "outcome": "done"} for s in statuses]

    responses = concurrently(session_client, world.clinic, f"{REFERRALS}/{rid}", bodies)

    assert {r.status_code for r in responses} <= {200, 409}
    final = read(client, rid)
    moved = [(e["from_status"], e["to_status"]) for e in final["history"][1:]]
    assert len(moved) == sum(r.status_code == 200 for r in responses)
    for frm, to in moved:
        check(Status(frm), Status(to))
    visited = chain(moved)
    assert visited is not None, moved  # one unbroken path: no state skipped
    assert visited[-1] == final["status"]
    assert final["version"] == 1 + len(moved)
    winners = sorted(r.json()["version"] for r in responses if r.status_code == 200)
    assert winners == list(range(2, 2 + len(moved)))


def test_a_step_that_waited_for_a_concurrent_writer_is_recorded_after_it(
    session_client: TestClient[Litestar],
    client: TestClient[Litestar],
    world: World,
    storage: Storage,
) -> None:
    rid = new_referral(client, world)["id"]
    (client_id,) = storage.client_ids(world.clinic.clinic_id)

    async def race() -> tuple[httpx.Response, str]:
        db = session_client.app.state.db
        transport = httpx.ASGITransport(app=session_client.app)
        async with httpx.AsyncClient(
            transport=transport, base_url="http://test", headers=world.clinic.headers
        ) as http:
            async with db.begin() as conn:  # another writer is moving the referral
                await conn.execute(sa.text("LOCK TABLE referrals IN ACCESS EXCLUSIVE MODE"))
                late = asyncio.create_task(
                    http.patch(f"{REFERRALS}/{rid}", json={"status": "in-progress"})
                )
                await asyncio.sleep(0.5)
                assert not late.done()  # it waits for the other writer
                now = datetime.now(UTC)
                store = ReferralStore(conn, world.clinic.clinic_id)
                assert await store.move_referral(
                    rid,
                    from_status="requested",
                    version=1,
                    to_status="accepted",
                    reason=None,
                    outcome=None,
                    now=now,
                )
                await store.insert_referral_event(
                    referral_id=rid,
                    from_status="requested",
                    to_status="accepted",
                    reason=None,
                    outcome=None,
                    client_id=client_id,
                    recorded_at=now,
                )
            return await late, now.isoformat().replace("+00:00", "Z")

    response, accepted_at = session_client.blocking_portal.call(race)

    assert response.status_code == 200, response.text  # accepted -> in-progress is allowed
    final = read(client, rid)
    assert [e["to_status"] for e in final["history"]] == ["requested", "accepted", "in-progress"]
    assert final["updated_at"] > accepted_at
    assert [i["id"] for i in worklist(client, updated_since=accepted_at)["items"]] == [rid]


# -- the worklist ----------------------------------------------------------------------------


def test_the_worklist_filters_and_pages(client: TestClient[Litestar], world: World) -> None:
    other = new_patient_id()
    assert client.put(f"/v1/patients/{other}", json={}).status_code == 201
    first = new_referral(client, world)
    second = new_referral(client, world, service="Pain Counselling")
    third = new_referral(client, world, patient_id=other)
    drive(client, second["id"], Status.ACCEPTED)
    moved_at = read(client, second["id"])["updated_at"]
    cancelled = move(client, third["id"], "cancelled", reason="Moved away").json()
    crps_id = world.services["CRPS Online Circle"]

    def ids(**params: Any) -> list[str]:
        return [item["id"] for item in worklist(client, **params)["items"]]

    assert ids() == [third["id"], second["id"], first["id"]]  # most recently changed first
    assert ids(status="accepted") == [second["id"]]
    assert ids(status="cancelled") == [third["id"]]
    assert ids(status="completed") == []
    assert ids(patient_id=world.patient_id) == [second["id"], first["id"]]
    assert ids(patient_id=other) == [third["id"]]
    assert ids(service_id=crps_id) == [third["id"], first["id"]]
    assert ids(updated_since=moved_at) == [third["id"], second["id"]]
    assert ids(updated_since=cancelled["updated_at"]) == [third["id"]]
    assert ids(updated_since="2999-01-01T00:00:00Z") == []
    assert ids(status="requested", service_id=crps_id) == [first["id"]]

    pages = [worklist(client, limit=2, offset=offset) for offset in (0, 2, 4)]
    assert [[i["id"] for i in p["items"]] for p in pages] == [
        [third["id"], second["id"]],
        [first["id"]],
        [],
    ]
    assert {p["total"] for p in pages} == {3}
    assert worklist(client, status="requested")["total"] == 1
    worked = worklist(client, status="cancelled")["items"][0]
    assert worked["status_reason"] == "Moved away" and len(worked["history"]) == 2


@pytest.mark.parametrize(
    "params",
    [
        {"status": "done"},
        {"patient_id": "a b"},
        {"updated_since": "yesterday"},
        {"limit": 0},
        {"limit": 201},
        {"offset": -1},
    ],
)
def test_bad_worklist_parameters_are_400(
    client: TestClient[Litestar], params: dict[str, Any]
) -> None:
    assert_problem(client.get(REFERRALS, params=params), 400)


# -- other clinics and the audit trail -------------------------------------------------------


def test_another_clinics_referrals_are_404_on_every_route(
    session_client: TestClient[Litestar], world: World, make_clinic: MakeClinic
) -> None:
    a = world.clinic
    referral = session_client.post(
        REFERRALS,
        json={
            "patient_id": world.patient_id,
            "service_id": world.services["CRPS Online Circle"],
            "consent": CONSENT,
        },
        headers=a.headers,
    ).json()
    b = make_clinic()
    missing = str(uuid.uuid4())

    def shape(response: Any, ident: str) -> tuple[int, str, Any]:
        return (
            response.status_code,
            response.headers["content-type"],
            json.loads(response.text.replace(ident, "<id>")),
        )

    for method, payload in [("GET", None), ("PATCH", {"status": "accepted"})]:
        foreign = session_client.request(
            method, f"{REFERRALS}/{referral['id']}", json=payload, headers=b.headers
        )
        absent = session_client.request(
            method, f"{REFERRALS}/{missing}", json=payload, headers=b.headers
        )
        assert foreign.status_code == 404
        assert shape(foreign, referral["id"]) == shape(absent, missing)

    b_list = session_client.get(REFERRALS, headers=b.headers).json()
    assert b_list["total"] == 0
    by_patient = session_client.get(
        REFERRALS, params={"patient_id": world.patient_id}, headers=b.headers
    )
    assert by_patient.json()["total"] == 0
    foreign_patient = session_client.get(
        f"/v1/patients/{world.patient_id}/referrals", headers=b.headers
    )
    assert foreign_patient.status_code == 404
    # B can neither refer A's patient nor use A's service.
    b_patient = new_patient_id()
    session_client.put(f"/v1/patients/{b_patient}", json={}, headers=b.headers)
    cross = session_client.post(
        REFERRALS,
        json={
            "patient_id": b_patient,
            "service_id": world.services["CRPS Online Circle"],
            "consent": CONSENT,
        },
        headers=b.headers,
    )
    assert_problem(cross, 422, "service_id")
    b_service = session_client.post(
        "/v1/directory/services",
        json={"name": "B", "organization": "B", "category": "counselling", "modalities": ["phone"]},
        headers=b.headers,
    ).json()["id"]
    a_patient = session_client.post(
        REFERRALS,
        json={"patient_id": world.patient_id, "service_id": b_service, "consent": CONSENT},
        headers=b.headers,
    )
    assert_problem(a_patient, 422, "patient_id")
    # A's referral is untouched.
    mine = session_client.get(f"{REFERRALS}/{referral['id']}", headers=a.headers).json()
    assert (mine["status"], mine["version"]) == ("requested", 1)


def test_referral_reads_and_writes_are_audited(
    client: TestClient[Litestar], world: World, storage: Storage
) -> None:
    rid = new_referral(client, world)["id"]
    read(client, rid)
    move(client, rid, "accepted")
    move(client, rid, "completed")  # 409
    worklist(client, patient_id=world.patient_id)
    client.get(f"/v1/patients/{world.patient_id}/referrals")

    events = client.get(
        "/v1/audit-events", params={"patient_id": world.patient_id, "limit": 200}
    ).json()["items"]
    (client_id,) = storage.client_ids(world.clinic.clinic_id)

    trail = sorted(
        (e["action"], e["resource_type"], e["resource_id"], e["outcome"], e["status_code"])
        for e in events
        if e["resource_type"] == "Referral"
    )
    assert trail == sorted(
        [
            ("create", "Referral", rid, "success", 201),
            ("read", "Referral", rid, "success", 200),
            ("update", "Referral", rid, "success", 200),
            ("update", "Referral", rid, "failure", 409),
            ("search", "Referral", None, "success", 200),
            ("search", "Referral", None, "success", 200),
        ]
    )
    assert {e["client_id"] for e in events} == {str(client_id)}
    assert all(e["patient_id"] == world.patient_id for e in events)


# -- recommendations -------------------------------------------------------------------------


def test_a_screening_answer_carries_recommendations_with_reasons(
    client: TestClient[Litestar], world: World
) -> None:
    response = client.post(
        "/v1/screenings", json=ucla3(world.patient_id, completed_at="2024-04-01T10:00:00Z")
    )

    assert response.status_code == 201, response.text
    recommendations = response.json()["recommendations"]
    [need] = recommendations["needs"]
    assert (need["signal"], need["severity"], need["instrument"]) == (
        "loneliness",
        "moderate",
        "ucla-3",
    )
    assert need["screening_id"] == response.json()["id"]
    assert recommendations["high_pain_interference"] is False
    assert recommendations["considered"] == 6
    items = recommendations["items"]
    assert [i["service"]["name"] for i in items] == [
        "CRPS Online Circle",  # for crps, online as preferred
        "General Group",
        "Pain Counselling",
    ]
    top = items[0]
    assert {r["code"] for r in top["reasons"]} == {
        "answers_loneliness",
        "condition_specific",
        "preferred_modality",
    }
    assert all(r["text"] for i in items for r in i["reasons"])
    assert top["answers"] == ["loneliness"]
    assert recommendations.get("excluded") is None


def test_a_high_peg_favours_services_usable_from_home(
    client: TestClient[Litestar], world: World
) -> None:
    url = f"/v1/patients/{world.patient_id}/referrals"

    def scores() -> dict[str, float]:
        return {i["service"]["name"]: i["score"] for i in items()}

    def items() -> list[dict[str, Any]]:
        return client.get(url).json()["recommendations"]["items"]

    calm = scores()
    peg = client.post(
        "/v1/screenings",
        json={
            "patient_id": world.patient_id,
            "instrument": "peg",
            "completed_at": "2024-03-02T09:00:00Z",
            "answers": HIGH_PEG,
        },
    )
    assert peg.status_code == 201, peg.text
    assert peg.json()["recommendations"]["high_pain_interference"] is True

    current = client.get(url).json()["recommendations"]
    painful = scores()

    assert current["high_pain_interference"] is True
    assert [n["signal"] for n in current["needs"]] == ["loneliness"]  # pain is not a need
    by_name = {i["service"]["name"]: i for i in current["items"]}
    assert "usable_from_home" in {r["code"] for r in by_name["Pain Counselling"]["reasons"]}
    assert "usable_from_home" not in {r["code"] for r in by_name["General Group"]["reasons"]}
    assert painful["Pain Counselling"] > calm["Pain Counselling"]  # by phone
    assert painful["CRPS Online Circle"] > calm["CRPS Online Circle"]  # online
    assert painful["General Group"] == calm["General Group"]  # in person only


def test_a_later_negative_screen_clears_the_recommendations(
    client: TestClient[Litestar], world: World
) -> None:
    later = ucla3(world.patient_id, completed_at="2024-05-01T09:00:00Z", answers=NEGATIVE_UCLA3)

    answer = client.post("/v1/screenings", json=later).json()["recommendations"]
    current = client.get(f"/v1/patients/{world.patient_id}/referrals").json()["recommendations"]

    assert answer["needs"] == [] and answer["items"] == []
    assert current["needs"] == [] and current["items"] == []


def test_an_earlier_negative_screen_does_not_clear_a_later_positive(
    client: TestClient[Litestar], world: World
) -> None:
    earlier = ucla3(world.patient_id, completed_at="2023-01-01T09:00:00Z", answers=NEGATIVE_UCLA3)

    answer = client.post("/v1/screenings", json=earlier).json()["recommendations"]

    assert [n["screening_id"] for n in answer["needs"]] == [world.screening_id]


def test_patient_referrals_show_recommendations_and_referrals_made(
    client: TestClient[Litestar], world: World
) -> None:
    made = new_referral(client, world, service="Pain Counselling")
    drive(client, made["id"], Status.ACCEPTED)

    plain = client.get(f"/v1/patients/{world.patient_id}/referrals")
    explained = client.get(
        f"/v1/patients/{world.patient_id}/referrals", params={"explain": "true", "limit": 2}
    )

    assert plain.status_code == 200, plain.text
    body = plain.json()
    assert body["patient_id"] == world.patient_id
    assert [r["id"] for r in body["referrals"]] == [made["id"]]
    assert body["referrals"][0]["status"] == "accepted"
    assert body["recommendations"]["items"][0]["service"]["name"] == "CRPS Online Circle"
    assert body["recommendations"]["excluded"] is None

    detail = explained.json()["recommendations"]
    assert len(detail["items"]) == 2
    excluded = {e["service"]["name"]: [r["code"] for r in e["reasons"]] for e in detail["excluded"]}
    assert excluded == {
        "Closed Group": ["not_accepting"],
        "Full Group": ["no_capacity"],
        "French Group": ["no_shared_language"],
    }
    for e in detail["excluded"]:
        assert all(r["text"] for r in e["reasons"])


def test_patient_referrals_list_exactly_what_the_referral_list_does(
    client: TestClient[Litestar], world: World
) -> None:
    """GET /v1/patients/{id}/referrals reads in one statement; its referrals,
    services and histories must be those the referral list builds."""
    first = new_referral(client, world, service="Pain Counselling")
    drive(client, first["id"], Status.ACCEPTED)
    second = new_referral(client, world, service="CRPS Online Circle", note="Evenings only")

    shown = client.get(f"/v1/patients/{world.patient_id}/referrals").json()["referrals"]
    listed = client.get(REFERRALS, params={"patient_id": world.patient_id}).json()["items"]

    assert shown == listed
    assert [r["id"] for r in shown] == [second["id"], first["id"]]
    assert [e["to_status"] for e in shown[1]["history"]] == ["requested", *PATH_TO[Status.ACCEPTED]]
    assert shown[1]["history"][-1]["recorded_at"].endswith("Z")


def test_directory_changes_show_in_the_next_recommendations(
    client: TestClient[Litestar], world: World
) -> None:
    url = f"/v1/patients/{world.patient_id}/referrals"

    def recommended() -> list[str]:
        return [i["service"]["name"] for i in client.get(url).json()["recommendations"]["items"]]

    assert recommended()[0] == "CRPS Online Circle"
    crps = world.services["CRPS Online Circle"]
    closed = client.put(
        f"/v1/directory/services/{crps}",
        json={
            "name": "CRPS Online Circle",
            "organization": "Org",
            "category": "support-group",
            "modalities": ["online"],
            "conditions": ["crps"],
            "capacity": 0,
        },
    )
    assert closed.status_code == 200, closed.text
    assert "CRPS Online Circle" not in recommended()
    add_service(client, "New CRPS Group", conditions=["crps"])
    assert recommended()[0] == "New CRPS Group"
    client.delete(f"/v1/directory/services/{world.services['General Group']}")
    assert "General Group" not in recommended()


def test_an_unknown_patient_has_no_referrals(client: TestClient[Litestar]) -> None:
    assert_problem(client.get(f"/v1/patients/{new_patient_id()}/referrals"), 404, "patient_id")


# -- the worked example ------------------------------------------------------------------------


def test_worked_example_crps_patient_online_lonely_referred_to_completion(
    client: TestClient[Litestar],
) -> None:
    """A CRPS patient who prefers online support screens lonely on UCLA-3; the top match is
    a CRPS group they can join online; the referral is followed to its outcome."""
    imported = client.post("/v1/directory/import", json=json.loads(SEED.read_text()))
    assert imported.status_code == 200, imported.text
    patient_id = new_patient_id()
    profile = {"pain_conditions": ["crps"], "preferred_modalities": ["online"], "languages": ["en"]}
    assert client.put(f"/v1/patients/{patient_id}", json=profile).status_code == 201

    screening = client.post("/v1/screenings", json=ucla3(patient_id))

    assert screening.status_code == 201, screening.text
    result = screening.json()
    assert result["score"]["total"] == 8 and result["score"]["band"]["positive"] is True
    recommendations = result["recommendations"]
    assert [n["signal"] for n in recommendations["needs"]] == ["loneliness"]
    assert recommendations["considered"] == 55
    top = recommendations["items"][0]
    assert "crps" in top["service"]["conditions"]
    assert "online" in top["service"]["modalities"]
    assert {"answers_loneliness", "condition_specific", "preferred_modality"} <= {
        r["code"] for r in top["reasons"]
    }
    for item in recommendations["items"]:
        assert item["reasons"], item
        assert item["service"]["name"] not in {
            "Fibro Friendly Art Club",  # full
            "Dim Screen Migraine & Headache Online Group",  # not accepting
        }

    referral = client.post(
        REFERRALS,
        json={
            "patient_id": patient_id,
            "service_id": top["service"]["id"],
            "screening_id": result["id"],
            "need": "loneliness",
            "consent": {"given": True, "method": "verbal", "recorded_by": "Dr Example"},
        },
    )
    assert referral.status_code == 201, referral.text
    rid = referral.json()["id"]
    for status in ("accepted", "in-progress"):
        assert move(client, rid, status).status_code == 200
    done = move(client, rid, "completed", outcome="Joined the group; attends monthly")
    assert done.status_code == 200, done.text

    followed = client.get(f"/v1/patients/{patient_id}/referrals").json()
    [made] = followed["referrals"]
    assert (made["id"], made["status"], made["outcome"]) == (
        rid,
        "completed",
        "Joined the group; attends monthly",
    )
    assert [e["to_status"] for e in made["history"]] == [
        "requested",
        "accepted",
        "in-progress",
        "completed",
    ]
    assert made["service"]["id"] == top["service"]["id"]
