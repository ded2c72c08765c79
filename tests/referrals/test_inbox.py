"""The service's inbox end to end, over HTTP on PostgreSQL: the link `belong services link`
gives (rotated, revoked), what the service sees through it and nothing more, every step it
takes (the clinic's own state machine, Task and history, with the service as actor and the
link in the audit), its capacity in matching, and the per-service figures."""

from __future__ import annotations

import re
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import timedelta
from typing import Any

import pytest
import sqlalchemy as sa
from fhir.resources.R4B.task import Task
from litestar import Litestar
from litestar.testing import TestClient

from service.platform.sessions import hash_secret
from service.platform.tables import referral_events, referrals
from service.referrals.fhir import STATUS_REASON_SYSTEM
from service.referrals.model import StatusReason, reason_code, reason_text, referral_code
from tests.conftest import Clinic, MakeClinic
from tests.helpers import BelongCli, Storage, new_patient_id, ucla3

CONSENT = {"given": True, "method": "verbal"}
PROFILE = {
    "languages": ["es", "en"],
    "preferred_modalities": ["phone", "online"],
    "contact_method": "text",
}
LINK = re.compile(r"^http://127\.0\.0\.1:8000(/inbox/[A-Za-z0-9_-]{43})$")


@dataclass(frozen=True)
class Setting:
    clinic: Clinic
    patient_id: str
    service_id: str
    other_service_id: str
    inbox: str
    """The path the link opens: /inbox/{token}."""


@contextmanager
def without_account(client: TestClient[Litestar]) -> Iterator[TestClient[Litestar]]:
    """The test client with no bearer token: what a service holds is only its link."""
    token = client.headers.pop("Authorization", None)
    try:
        yield client
    finally:
        if token is not None:
            client.headers["Authorization"] = token


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
    return str(response.json()["id"])


def inbox_link(belong_cli: BelongCli, clinic: Clinic, service_id: str) -> str:
    run = belong_cli("services", "link", "--clinic", clinic.name, "--service", service_id)
    assert run.code == 0, run.err
    match = LINK.match(run.out[-1])
    assert match, run.out
    return match.group(1)


def refer(client: TestClient[Litestar], patient_id: str, service_id: str, **fields: Any) -> str:
    body = {"patient_id": patient_id, "service_id": service_id, "consent": CONSENT, **fields}
    response = client.post("/v1/referrals", json=body)
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


@pytest.fixture
def setting(client: TestClient[Litestar], clinic: Clinic, belong_cli: BelongCli) -> Setting:
    service_id = add_service(client, "Evening Circle")
    other_service_id = add_service(client, "Morning Walks")
    patient_id = new_patient_id()
    assert client.put(f"/v1/patients/{patient_id}", json=PROFILE).status_code == 201
    assert client.post("/v1/screenings", json=ucla3(patient_id)).status_code == 201
    return Setting(
        clinic,
        patient_id,
        service_id,
        other_service_id,
        inbox_link(belong_cli, clinic, service_id),
    )


def version_of(client: TestClient[Litestar], referral_id: str) -> int:
    return int(client.get(f"/v1/referrals/{referral_id}").json()["version"])


def step(client: TestClient[Litestar], setting: Setting, referral_id: str, **form: Any) -> Any:
    form.setdefault("version", version_of(client, referral_id))
    with without_account(client) as anonymous:
        return anonymous.post(
            f"{setting.inbox}/referrals/{referral_id}/status",
            data={k: str(v) for k, v in form.items()},
            follow_redirects=False,
        )


def test_the_link_is_random_stored_hashed_and_opens_only_its_service_s_referrals(
    client: TestClient[Litestar], setting: Setting, storage: Storage, make_clinic: MakeClinic
) -> None:
    mine = refer(client, setting.patient_id, setting.service_id, need="loneliness", note="Evenings")
    theirs = refer(client, setting.patient_id, setting.other_service_id, note="Mornings")
    token = setting.inbox.rsplit("/", 1)[1]

    async def stored(conn: Any) -> list[Any]:
        rows = await conn.execute(sa.text("SELECT token_hash, kind, subject_id FROM secret_links"))
        return [tuple(row) for row in rows if row.subject_id == setting.service_id]

    assert storage.run(stored) == [(hash_secret(token), "inbox", setting.service_id)]

    with without_account(client) as anonymous:
        page = anonymous.get(setting.inbox)
        assert page.status_code == 200, page.text
        assert page.headers["cache-control"] == "no-store"
        assert page.headers["referrer-policy"] == "no-referrer"
        assert "noindex" in page.headers["x-robots-tag"]
        assert referral_code(mine) in page.text
        assert referral_code(theirs) not in page.text
        assert setting.patient_id not in page.text

        detail = anonymous.get(f"{setting.inbox}/referrals/{mine}")
        assert detail.status_code == 200
        for shown in (
            referral_code(mine),
            "Loneliness",
            "Spanish, English",
            "By phone, Online",
            "<dt>Patient prefers to be contacted by</dt><dd>Text message</dd>",
            "Evenings",
        ):
            assert shown in detail.text, shown
        assert setting.patient_id not in detail.text
        # Another service's referral, and a made-up one, are not there.
        assert anonymous.get(f"{setting.inbox}/referrals/{theirs}").status_code == 404
        missing = "00000000-0000-7000-8000-000000000000"
        assert anonymous.get(f"{setting.inbox}/referrals/{missing}").status_code == 404
    refused = step(client, setting, theirs, status="accepted", version=1)
    assert refused.status_code == 404
    assert client.get(f"/v1/referrals/{theirs}").json()["status"] == "requested"

    # Another clinic's referral to a service of its own, through this clinic's link: 404.
    other = make_clinic()
    headers = other.headers
    other_service = client.post(
        "/v1/directory/services",
        headers=headers,
        json={
            "name": "Elsewhere",
            "organization": "O",
            "category": "support-group",
            "modalities": ["online"],
        },
    ).json()["id"]
    other_patient = new_patient_id()
    client.put(f"/v1/patients/{other_patient}", json=PROFILE, headers=headers)
    foreign = client.post(
        "/v1/referrals",
        headers=headers,
        json={"patient_id": other_patient, "service_id": other_service, "consent": CONSENT},
    ).json()["id"]
    with without_account(client) as anonymous:
        assert anonymous.get(f"{setting.inbox}/referrals/{foreign}").status_code == 404
        assert referral_code(foreign) not in anonymous.get(setting.inbox).text


def test_unknown_links_are_404_and_revoked_or_rotated_ones_410(
    client: TestClient[Litestar], setting: Setting, belong_cli: BelongCli
) -> None:
    with without_account(client) as anonymous:
        unknown = anonymous.get("/inbox/" + "A" * 43)
        assert unknown.status_code == 404
        assert "This link opens nothing" in unknown.text
        assert unknown.headers["referrer-policy"] == "no-referrer"
        assert anonymous.get("/inbox/too-short").status_code == 404
        assert anonymous.get("/inbox/%00" + "A" * 42).status_code in (400, 404)

    rotated = inbox_link(belong_cli, setting.clinic, setting.service_id)
    assert rotated != setting.inbox
    with without_account(client) as anonymous:
        gone = anonymous.get(setting.inbox)
        assert gone.status_code == 410
        assert "This link no longer works" in gone.text
        assert anonymous.get(rotated).status_code == 200

    run = belong_cli(
        "services",
        "link",
        "--clinic",
        setting.clinic.name,
        "--service",
        setting.service_id,
        "--revoke",
    )
    assert run.code == 0 and "1 inbox link(s)" in run.out[-1]
    referral = refer(client, setting.patient_id, setting.service_id)
    with without_account(client) as anonymous:
        assert anonymous.get(rotated).status_code == 410
        refused = anonymous.post(
            f"{rotated}/referrals/{referral}/status", data={"status": "accepted", "version": "1"}
        )
        assert refused.status_code == 410
    assert client.get(f"/v1/referrals/{referral}").json()["status"] == "requested"

    # A service withdrawn from the directory: its inbox is closed.
    newest = inbox_link(belong_cli, setting.clinic, setting.service_id)
    assert client.delete(f"/v1/directory/services/{setting.service_id}").status_code == 204
    with without_account(client) as anonymous:
        closed = anonymous.get(newest)
        assert closed.status_code == 410
        assert "Its inbox is closed" in closed.text
        assert anonymous.get(f"{newest}/referrals/{referral}").status_code == 410
        late = anonymous.post(
            f"{newest}/referrals/{referral}/status", data={"status": "accepted", "version": "1"}
        )
        assert late.status_code == 410
        said = anonymous.post(f"{newest}/capacity", data={"capacity": "waitlist"})
        assert said.status_code == 410


def test_the_cli_refuses_another_clinic_s_service_and_unknown_ids(
    client: TestClient[Litestar], setting: Setting, belong_cli: BelongCli, make_clinic: MakeClinic
) -> None:
    other = make_clinic()
    for clinic, service in ((other.name, setting.service_id), (setting.clinic.name, "nope")):
        run = belong_cli("services", "link", "--clinic", clinic, "--service", service)
        assert run.code == 2
        assert f"has no service {service!r}" in run.err
    run = belong_cli("services", "link", "--clinic", "no-such-clinic", "--service", "x")
    assert run.code == 2 and "no-such-clinic" in run.err


def test_every_step_is_the_clinic_s_state_machine_with_the_service_as_actor(
    client: TestClient[Litestar], setting: Setting
) -> None:
    completed = refer(client, setting.patient_id, setting.service_id)
    for form in (
        {"status": "accepted"},
        {"status": "in-progress"},
        {"status": "completed", "outcome": "Attended 6 of 8 sessions"},
    ):
        response = step(client, setting, completed, **form)
        assert response.status_code == 303, response.text
        assert response.headers["location"] == f"{setting.inbox}/referrals/{completed}"

    # The clinic sees it at once: status, history with the service as actor, ETag, Task.
    read = client.get(f"/v1/referrals/{completed}")
    body = read.json()
    assert body["status"] == "completed" and body["outcome"] == "Attended 6 of 8 sessions"
    assert read.headers["etag"] == '"4"'
    steps = [(e["to_status"], e["link_kind"], e["link_subject_id"]) for e in body["history"]]
    assert steps == [
        ("requested", None, None),
        ("accepted", "inbox", setting.service_id),
        ("in-progress", "inbox", setting.service_id),
        ("completed", "inbox", setting.service_id),
    ]
    assert all(e["client_id"] is None for e in body["history"][1:])
    task = client.get(f"/fhir/Task/{completed}").json()
    Task.model_validate(task)
    assert task["status"] == "completed"
    assert task["output"][0]["valueCodeableConcept"]["text"] == "Attended 6 of 8 sessions"
    # Each of the service's steps is a note the service authored, by name.
    assert [(n["authorReference"], n["text"]) for n in task["note"]] == [
        (
            {"reference": f"HealthcareService/{setting.service_id}", "display": "Evening Circle"},
            f"{a} -> {b}, by the service through its inbox",
        )
        for a, b in (
            ("requested", "accepted"),
            ("accepted", "in-progress"),
            ("in-progress", "completed"),
        )
    ]

    declined = refer(client, setting.patient_id, setting.service_id)
    response = step(
        client,
        setting,
        declined,
        status="rejected",
        reason="at-capacity",
        detail="Next intake in March",
    )
    assert response.status_code == 303, response.text
    body = client.get(f"/v1/referrals/{declined}").json()
    assert body["status"] == "rejected"
    assert body["status_reason"] == "At capacity: Next intake in March"
    declined_task = client.get(f"/fhir/Task/{declined}").json()
    Task.model_validate(declined_task)
    assert declined_task["note"][0]["text"].endswith("inbox: At capacity: Next intake in March")
    reason = declined_task["statusReason"]
    assert reason == {
        "coding": [
            {
                "system": STATUS_REASON_SYSTEM,
                "code": "at-capacity",
                "display": "At capacity",
            }
        ],
        "text": "At capacity: Next intake in March",
    }

    failed = refer(client, setting.patient_id, setting.service_id)
    for form in (
        {"status": "accepted"},
        {"status": "in-progress"},
        {"status": "failed", "reason": "stopped-attending"},
    ):
        assert step(client, setting, failed, **form).status_code == 303
    body = client.get(f"/v1/referrals/{failed}").json()
    assert (body["status"], body["status_reason"]) == ("failed", "The patient stopped attending")


def test_the_app_timeline_names_the_service(client: TestClient[Litestar], setting: Setting) -> None:
    from tests.signed_in import sign_in

    referral = refer(client, setting.patient_id, setting.service_id)
    assert step(client, setting, referral, status="accepted").status_code == 303
    user = sign_in(client, setting.clinic.name, "clinician")
    page = user.get(f"/app/referrals/{referral}")
    assert page.status_code == 200
    assert "Evening Circle (the service, through its inbox)" in page.text


def test_steps_the_service_may_not_take_or_without_what_they_need_are_refused(
    client: TestClient[Litestar], setting: Setting
) -> None:
    referral = refer(client, setting.patient_id, setting.service_id)
    refusals = [
        ({"status": "cancelled"}, 422),  # the clinic's step, not the service's
        ({"status": "completed", "outcome": "x"}, 409),  # not from requested
        ({"status": "rejected"}, 422),  # no reason
        ({"status": "rejected", "reason": "made-up"}, 422),
        ({"status": "rejected", "reason": "stopped-attending"}, 422),  # not a decline reason
        ({"status": "accepted", "reason": "at-capacity"}, 422),
        ({"status": "rejected", "reason": "other", "detail": "x\x00y"}, 422),
        ({"status": "rejected", "reason": "other", "detail": "x" * 1501}, 422),
        ({"status": "accepted", "version": "x"}, 422),
        ({"status": "accepted", "version": 7}, 409),  # stale
    ]
    for form, expected in refusals:
        response = step(client, setting, referral, **form)
        assert response.status_code == expected, (form, response.status_code)
    body = client.get(f"/v1/referrals/{referral}").json()
    assert (body["status"], body["version"], len(body["history"])) == ("requested", 1, 1)

    assert step(client, setting, referral, status="accepted").status_code == 303
    assert step(client, setting, referral, status="completed", outcome="").status_code == 422
    assert step(client, setting, referral, status="in-progress").status_code == 303
    assert step(client, setting, referral, status="completed").status_code == 422  # no outcome


def test_a_form_from_another_origin_is_refused(
    client: TestClient[Litestar], setting: Setting
) -> None:
    referral = refer(client, setting.patient_id, setting.service_id)
    with without_account(client) as anonymous:
        for headers in (
            {"Origin": "https://evil.example"},
            {"Sec-Fetch-Site": "cross-site", "Origin": "null"},
            {"Sec-Fetch-Site": "same-site"},
        ):
            refused = anonymous.post(
                f"{setting.inbox}/referrals/{referral}/status",
                data={"status": "accepted", "version": "1"},
                headers=headers,
            )
            assert refused.status_code == 403
            capacity = anonymous.post(
                f"{setting.inbox}/capacity", data={"capacity": "waitlist"}, headers=headers
            )
            assert capacity.status_code == 403
    assert client.get(f"/v1/referrals/{referral}").json()["status"] == "requested"


def test_the_audit_records_the_link_as_actor(
    client: TestClient[Litestar], setting: Setting
) -> None:
    referral = refer(client, setting.patient_id, setting.service_id)
    with without_account(client) as anonymous:
        assert anonymous.get(f"{setting.inbox}/referrals/{referral}").status_code == 200
    assert step(client, setting, referral, status="accepted").status_code == 303
    events = client.get(
        "/v1/audit-events", params={"patient_id": setting.patient_id, "limit": 200}
    ).json()["items"]
    by_link = [
        (e["action"], e["resource_type"], e["resource_id"], e["status_code"])
        for e in events
        if e.get("link_kind") == "inbox"
    ]
    assert ("update", "Referral", referral, 303) in by_link
    assert all(e["link_subject_id"] == setting.service_id for e in events if e.get("link_kind"))
    assert all(e["client_id"] is None for e in events if e.get("link_kind"))


def recommended(client: TestClient[Litestar], patient_id: str) -> dict[str, Any]:
    body = client.get(f"/v1/patients/{patient_id}/referrals", params={"explain": "true"}).json()[
        "recommendations"
    ]
    return body


def test_the_service_s_capacity_changes_matching_at_once(
    client: TestClient[Litestar], setting: Setting
) -> None:
    def capacity(value: str) -> None:
        with without_account(client) as anonymous:
            response = anonymous.post(
                f"{setting.inbox}/capacity", data={"capacity": value}, follow_redirects=False
            )
        assert response.status_code == 303, response.text

    ids = [r["service"]["id"] for r in recommended(client, setting.patient_id)["items"]]
    assert ids.index(setting.service_id) < ids.index(setting.other_service_id)  # by name

    capacity("waitlist")
    items = recommended(client, setting.patient_id)["items"]
    ids = [r["service"]["id"] for r in items]
    assert ids.index(setting.service_id) > ids.index(setting.other_service_id)
    mine = next(r for r in items if r["service"]["id"] == setting.service_id)
    assert mine["service"]["capacity_status"] == "waitlist"
    assert any(x["code"] == "waitlist" for x in mine["reasons"])

    capacity("not-accepting")
    body = recommended(client, setting.patient_id)
    assert setting.service_id not in [r["service"]["id"] for r in body["items"]]
    (excluded,) = [e for e in body["excluded"] if e["service"]["id"] == setting.service_id]
    assert [r["code"] for r in excluded["reasons"]] == ["service_not_accepting"]
    assert (
        client.get(f"/v1/directory/services/{setting.service_id}").json()["capacity_status"]
        == "not-accepting"
    )

    capacity("accepting")
    ids = [r["service"]["id"] for r in recommended(client, setting.patient_id)["items"]]
    assert ids.index(setting.service_id) < ids.index(setting.other_service_id)

    with without_account(client) as anonymous:
        assert (
            anonymous.post(f"{setting.inbox}/capacity", data={"capacity": "x"}).status_code == 422
        )


def test_acceptance_figures_are_computed_exactly(
    client: TestClient[Litestar], setting: Setting, storage: Storage, session_client: Any
) -> None:
    """Six answered referrals (accepted after 1, 2, 3 and 10 days; two declined), one
    cancelled by the clinic, one still requested: 4 of 6 accepted, median 2.5 days. The
    other service answered four: too few for a rate."""
    waits = [1, 2, 3, 10]
    accepted = [refer(client, setting.patient_id, setting.service_id) for _ in waits]
    declined = [refer(client, setting.patient_id, setting.service_id) for _ in range(2)]
    cancelled = refer(client, setting.patient_id, setting.service_id)
    refer(client, setting.patient_id, setting.service_id)
    for referral in accepted:
        assert step(client, setting, referral, status="accepted").status_code == 303
    for referral in declined:
        assert (
            step(client, setting, referral, status="rejected", reason="not-eligible").status_code
            == 303
        )
    assert (
        client.patch(
            f"/v1/referrals/{cancelled}", json={"status": "cancelled", "reason": "moved away"}
        ).status_code
        == 200
    )
    for _ in range(4):
        other = refer(client, setting.patient_id, setting.other_service_id)
        assert (
            client.patch(f"/v1/referrals/{other}", json={"status": "accepted"}).status_code == 200
        )

    async def backdate(conn: Any) -> None:
        for referral, days in zip(accepted, waits, strict=True):
            at = (
                await conn.execute(
                    sa.select(referral_events.c.recorded_at).where(
                        referral_events.c.referral_id == referral,
                        referral_events.c.to_status == "accepted",
                    )
                )
            ).scalar_one()
            await conn.execute(
                sa.update(referrals)
                .where(referrals.c.id == referral)
                .values(created_at=at - timedelta(days=days))
            )

    storage.run(backdate)
    session_client.app.state.directory_cache.forget(setting.clinic.clinic_id)
    items = {r["service"]["id"]: r for r in recommended(client, setting.patient_id)["items"]}
    mine, theirs = items[setting.service_id], items[setting.other_service_id]
    assert (mine["answered"], mine["acceptance_rate"], mine["median_days_to_accept"]) == (
        6,
        0.667,
        2.5,
    )
    assert (theirs["answered"], theirs["acceptance_rate"], theirs["median_days_to_accept"]) == (
        4,
        None,
        None,
    )

    # The app shows them: on the service's directory page and beside the recommendation.
    from tests.signed_in import sign_in

    user = sign_in(client, setting.clinic.name, "clinician")
    service_page = user.get(f"/app/directory/{setting.service_id}").text
    assert "67% of 6 referrals answered" in service_page
    assert "2.5 days" in service_page
    assert (
        "Not enough answers yet (4 of the 5 needed)"
        in user.get(f"/app/directory/{setting.other_service_id}").text
    )
    patient_page = user.get(f"/app/patients/{setting.patient_id}").text
    assert "Accepts 67% of the 6 referrals it answered, in a median of 2.5 days" in patient_page


def test_the_referral_code_and_the_coded_reasons_are_pure_and_exact() -> None:
    ids = [f"01a23bf5-c64b-7327-8253-d8888908{n:04d}" for n in range(2000)]
    codes = [referral_code(i) for i in ids]
    assert all(re.fullmatch(r"BL-[0-9A-HJKMNP-TV-Z]{4}-[0-9A-HJKMNP-TV-Z]{4}", c) for c in codes)
    assert len(set(codes)) == len(ids)
    assert referral_code(ids[0]) == referral_code(ids[0])
    for code in StatusReason:
        assert reason_code(reason_text(code, None)) is code
        assert reason_code(reason_text(code, "next intake in March")) is code
    assert reason_code("At capacityish") is None
    assert reason_code("the patient asked") is None
