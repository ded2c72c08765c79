"""Patient links end to end on PostgreSQL: the clinic makes a link, the patient opens it
without an account and answers once (a screening before the visit, or "did you get
help?" about a referral), and the answer lands exactly as the API's would, with the
patient (and the link) recorded as who answered.

Every link answers 410 once revoked, expired or used, 404 when unknown; a link never
shows another clinic's patient or referral.
"""

from __future__ import annotations

import asyncio
import re
from datetime import timedelta
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from fhir.resources.R4B.questionnaireresponse import QuestionnaireResponse
from litestar import Litestar
from litestar.testing import TestClient

from service.patient_links.model import Answer, FollowUp, Reason, steps
from service.platform.database import utcnow
from service.platform.sessions import hash_secret
from service.platform.tables import secret_links
from service.referrals.model import Status, check, is_final
from tests.conftest import Clinic, MakeClinic
from tests.helpers import UCLA3_ANSWERS, Storage, assert_problem, new_patient_id, ucla3
from tests.signed_in import sign_in

PROFILE = {"pain_conditions": ["crps"], "languages": ["es-MX"], "preferred_modalities": ["online"]}
SERVICE = {
    "name": "Grupo Dolor Crónico",
    "organization": "Org",
    "category": "support-group",
    "modalities": ["online"],
    "conditions": ["crps"],
}
CONSENT = {"given": True, "method": "verbal"}


def token_of(url: str) -> str:
    match = re.fullmatch(r"http://[^/]+/p/([A-Za-z0-9_-]{43})", url)
    assert match, url
    return match.group(1)


def new_patient(client: TestClient[Litestar], profile: dict[str, Any] = PROFILE) -> str:
    patient_id = new_patient_id()
    response = client.put(f"/v1/patients/{patient_id}", json=profile)
    assert response.status_code == 201, response.text
    return patient_id


def screening_link(
    client: TestClient[Litestar], patient_id: str, instrument: str = "ucla-3"
) -> Any:
    return client.post(
        f"/v1/patients/{patient_id}/links/screening", json={"instrument": instrument}
    )


def new_referral(client: TestClient[Litestar], patient_id: str) -> str:
    service = client.post("/v1/directory/services", json=SERVICE)
    assert service.status_code == 201, service.text
    referral = client.post(
        "/v1/referrals",
        json={"patient_id": patient_id, "service_id": service.json()["id"], "consent": CONSENT},
    )
    assert referral.status_code == 201, referral.text
    return referral.json()["id"]


def follow_up_link(client: TestClient[Litestar], patient_id: str, referral_id: str) -> Any:
    return client.post(
        f"/v1/patients/{patient_id}/links/follow-up", json={"referral_id": referral_id}
    )


def answers_form(answers: dict[str, int]) -> dict[str, str]:
    return {f"answer-{link}": str(value) for link, value in answers.items()}


def anonymous(client: TestClient[Litestar]) -> TestClient[Litestar]:
    """The same app with no bearer token: what a patient's phone sends."""
    client.headers.pop("Authorization", None)
    return client


def test_a_screening_link_stores_the_answers_as_the_api_would_with_the_patient_as_author(
    client: TestClient[Litestar], clinic: Clinic, storage: Storage
) -> None:
    patient_id = new_patient(client)
    made = screening_link(client, patient_id)
    assert made.status_code == 201, made.text
    link = made.json()
    assert link["purpose"] == "screening" and link["instrument"] == "ucla-3"
    token = token_of(link["url"])
    expires = link["expires_at"]
    assert expires > (utcnow() + timedelta(days=13)).isoformat()
    by_api = client.post("/v1/screenings", json=ucla3(patient_id)).json()
    headers = dict(client.headers)

    opened = anonymous(client).get(f"/p/{token}")
    assert opened.status_code == 200
    assert 'lang="es"' in opened.text and "Preguntas para su consulta" in opened.text
    assert "solo están publicadas en inglés" in opened.text
    for item in ("How often do you feel that you lack companionship?", "Hardly ever"):
        assert item in opened.text  # the items and options as published
    again = client.get(f"/p/{token}")
    assert again.status_code == 200  # opening spends nothing
    assert opened.headers["referrer-policy"] == "no-referrer"  # the token stays in this page
    assert opened.headers["cache-control"] == "no-store"
    assert "frame-ancestors 'none'" in opened.headers["content-security-policy"]
    assert "noindex" in opened.headers["x-robots-tag"]
    assert "camera=()" in opened.headers["permissions-policy"]

    sent = client.post(
        f"/p/{token}/screening", data=answers_form(UCLA3_ANSWERS), follow_redirects=False
    )
    assert sent.status_code == 303 and sent.headers["location"].startswith("/p/thanks?lang=es")
    thanks = client.get(sent.headers["location"])
    assert "Gracias" in thanks.text
    assert "frame-ancestors 'none'" in thanks.headers["content-security-policy"]
    assert thanks.headers["cache-control"] == "no-store"

    client.headers.update(headers)
    history = client.get(f"/v1/patients/{patient_id}/screenings").json()
    [ucla] = history["instruments"]
    by_link, api_entry = ucla["screenings"][0], ucla["screenings"][1]
    assert api_entry["id"] == by_api["id"]
    stored = client.get(f"/v1/screenings/{by_link['id']}").json()
    assert stored["score"] == by_api["score"]
    assert by_link["total"] == api_entry["total"] == 8
    qr = client.get(f"/fhir/QuestionnaireResponse/{by_link['id']}").json()
    assert qr["author"] == {"reference": f"Patient/{patient_id}"}
    assert qr["source"] == {"reference": f"Patient/{patient_id}"}
    assert QuestionnaireResponse.model_validate(qr).author.reference == f"Patient/{patient_id}"
    assert "author" not in client.get(f"/fhir/QuestionnaireResponse/{by_api['id']}").json()
    observations = client.get(f"/fhir/Observation?patient={patient_id}&_count=50").json()
    assert len(observations["entry"]) == 2 * len(stored["observations"])
    assert storage.patient(clinic.clinic_id, patient_id).screenings == 2

    events = client.get(f"/v1/audit-events?patient_id={patient_id}").json()["items"]
    created = [e for e in events if e["action"] == "create" and e["resource_type"] == "Screening"]
    by_link_event = [e for e in created if e["resource_id"] == by_link["id"]]
    assert len(by_link_event) == 1
    assert by_link_event[0]["link_kind"] == "patient"
    assert by_link_event[0]["link_subject_id"] == patient_id
    assert by_link_event[0]["client_id"] is None and by_link_event[0]["user_id"] is None
    read = [e for e in events if e["resource_type"] == "PatientLink" and e["action"] == "read"]
    assert read and all(e["link_kind"] == "patient" for e in read)

    reused = anonymous(client).post(f"/p/{token}/screening", data=answers_form(UCLA3_ANSWERS))
    assert reused.status_code == 410 and "Este enlace ya no funciona" in reused.text
    assert client.get(f"/p/{token}").status_code == 410
    client.headers.update(headers)
    assert storage.patient(clinic.clinic_id, patient_id).screenings == 2


def test_missing_answers_show_the_page_again_naming_each_item_and_store_nothing(
    client: TestClient[Litestar], clinic: Clinic, storage: Storage
) -> None:
    patient_id = new_patient(client, {"languages": ["en"]})
    token = token_of(screening_link(client, patient_id).json()["url"])
    headers = dict(client.headers)

    page = anonymous(client).post(f"/p/{token}/screening", data={"answer-2": "3", "answer-3": "9"})

    assert page.status_code == 422
    assert 'href="#item-1">Question 1: Choose an answer' in page.text
    assert 'href="#item-3">Question 3: Choose one of the answers shown' in page.text
    assert 'id="item-2-3" name="answer-2" value="3" checked' in page.text
    assert "published in English only" not in page.text  # English reader, English items
    assert client.get(f"/p/{token}").status_code == 200  # not spent
    client.headers.update(headers)
    assert storage.patient(clinic.clinic_id, patient_id).screenings == 0


def at_once(
    session_client: TestClient[Litestar], path: str, form: dict[str, str], times: int = 5
) -> list[httpx.Response]:
    """POST the form ``times`` at once, inside the app's own event loop, with no token."""

    async def fire() -> list[httpx.Response]:
        transport = httpx.ASGITransport(app=session_client.app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as http:
            return list(await asyncio.gather(*(http.post(path, data=form) for _ in range(times))))

    return session_client.blocking_portal.call(fire)


def test_five_answers_sent_at_once_by_one_link_store_exactly_one(
    session_client: TestClient[Litestar],
    client: TestClient[Litestar],
    clinic: Clinic,
    storage: Storage,
) -> None:
    patient_id = new_patient(client)
    token = token_of(screening_link(client, patient_id).json()["url"])
    referral_id = new_referral(client, patient_id)
    follow_up = token_of(follow_up_link(client, patient_id, referral_id).json()["url"])

    screenings = at_once(session_client, f"/p/{token}/screening", answers_form(UCLA3_ANSWERS))
    answers = at_once(session_client, f"/p/{follow_up}/follow-up", {"answer": "got-help"})

    assert sorted(r.status_code for r in screenings) == [303, 410, 410, 410, 410]
    assert storage.patient(clinic.clinic_id, patient_id).screenings == 1
    assert sorted(r.status_code for r in answers) == [303, 410, 410, 410, 410]
    history = client.get(f"/v1/referrals/{referral_id}").json()["history"]
    assert [e["to_status"] for e in history] == [
        "requested",
        "accepted",
        "in-progress",
        "completed",
    ]


def test_a_follow_up_link_completes_the_referral_as_the_service_would_and_the_clinic_sees_it(
    client: TestClient[Litestar],
) -> None:
    patient_id = new_patient(client)
    referral_id = new_referral(client, patient_id)
    made = follow_up_link(client, patient_id, referral_id)
    assert made.status_code == 201, made.text
    assert made.json()["referral_id"] == referral_id
    token = token_of(made.json()["url"])
    headers = dict(client.headers)

    opened = anonymous(client).get(f"/p/{token}")
    assert opened.status_code == 200
    assert "¿Recibió ayuda de Grupo Dolor Crónico?" in opened.text
    sent = client.post(
        f"/p/{token}/follow-up",
        data={"answer": "got-help", "comment": "Voy cada semana"},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text

    client.headers.update(headers)
    referral = client.get(f"/v1/referrals/{referral_id}").json()
    assert referral["status"] == "completed"
    assert referral["outcome"] == "The patient said they got help. In their words: Voy cada semana"
    steps = [(e["from_status"], e["to_status"], e["link_kind"]) for e in referral["history"]]
    assert steps == [
        (None, "requested", None),
        ("requested", "accepted", "patient"),
        ("accepted", "in-progress", "patient"),
        ("in-progress", "completed", "patient"),
    ]
    assert all(e["client_id"] is None for e in referral["history"][1:])
    events = client.get(f"/v1/audit-events?patient_id={patient_id}").json()["items"]
    updated = [e for e in events if e["action"] == "update" and e["resource_id"] == referral_id]
    assert [(e["link_kind"], e["link_subject_id"]) for e in updated] == [("patient", referral_id)]
    reused = anonymous(client).post(f"/p/{token}/follow-up", data={"answer": "got-help"})
    assert reused.status_code == 410
    client.headers.update(headers)


@pytest.mark.parametrize(
    ("start", "to", "path"),
    [
        ("requested", "cancelled", ["requested", "cancelled"]),
        ("in-progress", "failed", ["requested", "accepted", "in-progress", "failed"]),
    ],
)
def test_could_not_get_help_fails_or_cancels_the_referral_with_the_patients_reason(
    client: TestClient[Litestar], clinic: Clinic, start: str, to: str, path: list[str]
) -> None:
    patient_id = new_patient(client)
    referral_id = new_referral(client, patient_id)
    if start == "in-progress":
        for step in ("accepted", "in-progress"):
            moved = client.patch(f"/v1/referrals/{referral_id}", json={"status": step})
            assert moved.status_code == 200, moved.text
    token = token_of(follow_up_link(client, patient_id, referral_id).json()["url"])
    headers = dict(client.headers)

    missing = anonymous(client).post(f"/p/{token}/follow-up", data={"answer": "could-not"})
    assert missing.status_code == 422 and 'href="#reason"' in missing.text
    nul = client.post(
        f"/p/{token}/follow-up", data={"answer": "could-not", "reason": "cost", "comment": "a\x00"}
    )
    assert nul.status_code == 422 and 'href="#comment"' in nul.text
    long = client.post(
        f"/p/{token}/follow-up",
        data={"answer": "could-not", "reason": "cost", "comment": "x" * 501},
    )
    assert long.status_code == 422
    sent = client.post(
        f"/p/{token}/follow-up",
        data={"answer": "could-not", "reason": "no-contact"},
        follow_redirects=False,
    )
    assert sent.status_code == 303, sent.text

    client.headers.update(headers)
    referral = client.get(f"/v1/referrals/{referral_id}").json()
    assert referral["status"] == to
    assert referral["status_reason"] == (
        "The patient said they could not get help: the service never got in touch (no-contact)"
    )
    assert [e["to_status"] for e in referral["history"]] == path
    assert referral["history"][-1]["link_kind"] == "patient"
    timeline = sign_in(client, clinic.name).get(f"/app/referrals/{referral_id}")
    assert timeline.status_code == 200
    assert "by The patient (by their own link)" in timeline.text
    assert "Reason: The patient said they could not get help" in timeline.text


def test_a_closed_referral_is_answered_kindly_and_nothing_is_stored(
    client: TestClient[Litestar],
) -> None:
    patient_id = new_patient(client)
    referral_id = new_referral(client, patient_id)
    token = token_of(follow_up_link(client, patient_id, referral_id).json()["url"])
    cancel = {"status": "cancelled", "reason": "the patient moved away"}
    assert client.patch(f"/v1/referrals/{referral_id}", json=cancel).status_code == 200
    headers = dict(client.headers)

    opened = anonymous(client).get(f"/p/{token}")
    sent = client.post(f"/p/{token}/follow-up", data={"answer": "got-help"})

    assert opened.status_code == 200 and "Esta derivación ya está cerrada" in opened.text
    assert sent.status_code == 200 and "Esta derivación ya está cerrada" in sent.text
    assert client.get(f"/p/{token}").status_code == 200  # nothing answered: the link unspent
    client.headers.update(headers)
    referral = client.get(f"/v1/referrals/{referral_id}").json()
    assert [e["to_status"] for e in referral["history"]] == ["requested", "cancelled"]
    assert referral["status_reason"] == "the patient moved away"
    closed = follow_up_link(client, patient_id, referral_id)
    assert assert_problem(closed, 422, "referral_id")["errors"][0]["code"] == "closed"


def test_revoked_expired_and_unknown_links_are_refused(
    client: TestClient[Litestar], storage: Storage
) -> None:
    patient_id = new_patient(client)
    referral_id = new_referral(client, patient_id)
    screening = token_of(screening_link(client, patient_id).json()["url"])
    follow_up = token_of(follow_up_link(client, patient_id, referral_id).json()["url"])
    expired = token_of(screening_link(client, patient_id).json()["url"])

    async def expire(conn: Any) -> None:
        await conn.execute(
            sa.update(secret_links)
            .where(secret_links.c.token_hash == hash_secret(expired))
            .values(expires_at=utcnow() - timedelta(seconds=1))
        )

    storage.run(expire)
    revoked = client.delete(f"/v1/patients/{patient_id}/links/screening")
    assert revoked.status_code == 200 and revoked.json() == {"revoked": 2}
    headers = dict(client.headers)

    assert anonymous(client).get(f"/p/{screening}").status_code == 410
    answered = client.post(f"/p/{screening}/screening", data=answers_form(UCLA3_ANSWERS))
    assert answered.status_code == 410
    assert client.get(f"/p/{expired}").status_code == 410
    assert client.get(f"/p/{follow_up}").status_code == 200  # another purpose: still live
    unknown = client.get(f"/p/{'A' * 43}")
    assert unknown.status_code == 404 and "This link does not work" in unknown.text
    assert unknown.headers["referrer-policy"] == "no-referrer"  # a refusal is a link page too
    assert client.get("/p/not-a-token").status_code == 404
    # a link of one purpose cannot answer the other
    assert client.post(f"/p/{follow_up}/screening", data={}).status_code == 404
    client.headers.update(headers)
    assert client.delete(f"/v1/patients/{patient_id}/links/follow-up").json() == {"revoked": 1}
    assert anonymous(client).post(f"/p/{follow_up}/follow-up", data={}).status_code == 410
    client.headers.update(headers)
    assert client.get(f"/v1/referrals/{referral_id}").json()["status"] == "requested"


def test_links_are_made_only_for_the_clinics_own_patients_referrals_and_instruments(
    session_client: TestClient[Litestar],
    client: TestClient[Litestar],
    make_clinic: MakeClinic,
) -> None:
    patient_id = new_patient(client)
    referral_id = new_referral(client, patient_id)
    other_patient = new_patient(client)
    other = make_clinic()
    theirs = {"Authorization": f"Bearer {other.token}"}
    their_patient = new_patient_id()
    assert (
        session_client.put(
            f"/v1/patients/{their_patient}", json=PROFILE, headers=theirs
        ).status_code
        == 201
    )

    assert_problem(screening_link(client, new_patient_id()), 404)
    assert_problem(screening_link(client, patient_id, "no-such-one"), 404, "instrument")
    assert_problem(screening_link(client, patient_id, "promis-si-4a"), 403, "instrument")
    assert_problem(follow_up_link(client, other_patient, referral_id), 422, "referral_id")
    links = f"/v1/patients/{patient_id}/links"
    # bodies that do not fit the schema: 400 naming the field, as every /v1 body
    assert_problem(client.post(f"{links}/screening", json={}), 400, "instrument")
    assert_problem(client.post(f"{links}/follow-up", json={}), 400, "referral_id")
    assert_problem(client.post(f"{links}/follow-up", json={"referral_id": "x\x00"}), 400)
    assert_problem(client.post(f"{links}/screening", json={"instrument": "a\x00"}), 400)
    assert_problem(client.post(f"{links}/screening", json={"instrument": "ucla-3", "why": 1}), 400)
    assert client.post(f"{links}/other", json={}).status_code in (404, 405)
    # another clinic's client sees neither this clinic's patient nor its referral
    foreign = session_client.post(
        f"/v1/patients/{patient_id}/links/screening", json={"instrument": "ucla-3"}, headers=theirs
    )
    assert_problem(foreign, 404)
    foreign_referral = session_client.post(
        f"/v1/patients/{their_patient}/links/follow-up",
        json={"referral_id": referral_id},
        headers=theirs,
    )
    assert_problem(foreign_referral, 422, "referral_id")
    # a link of theirs opens only their patient's page, in their clinic
    their_link = session_client.post(
        f"/v1/patients/{their_patient}/links/screening",
        json={"instrument": "ucla-3"},
        headers=theirs,
    )
    token = token_of(their_link.json()["url"])
    sent = session_client.post(
        f"/p/{token}/screening", data=answers_form(UCLA3_ANSWERS), follow_redirects=False
    )
    assert sent.status_code == 303
    assert client.get(f"/v1/patients/{their_patient}/screenings").status_code == 404
    mine = client.get(f"/v1/patients/{patient_id}/screenings").json()
    assert mine["instruments"] == []
    theirs_now = session_client.get(f"/v1/patients/{their_patient}/screenings", headers=theirs)
    assert len(theirs_now.json()["instruments"][0]["screenings"]) == 1


def test_each_purpose_needs_its_scope(
    session_client: TestClient[Litestar], client: TestClient[Litestar], make_clinic: MakeClinic
) -> None:
    screener = make_clinic(scopes=("screenings:write",))
    headers = {"Authorization": f"Bearer {screener.token}"}
    patient_id = new_patient_id()
    put = session_client.put(f"/v1/patients/{patient_id}", json=PROFILE, headers=headers)
    assert put.status_code == 201
    made = session_client.post(
        f"/v1/patients/{patient_id}/links/screening", json={"instrument": "ucla-3"}, headers=headers
    )
    assert made.status_code == 201
    follow = session_client.post(
        f"/v1/patients/{patient_id}/links/follow-up",
        json={"referral_id": "0" * 8 + "-0000-0000-0000-" + "0" * 12},
        headers=headers,
    )
    assert_problem(follow, 403)
    revoke = session_client.delete(f"/v1/patients/{patient_id}/links/follow-up", headers=headers)
    assert_problem(revoke, 403)


def test_the_app_gives_the_link_once_from_the_patient_and_the_referral_pages(
    client: TestClient[Litestar], clinic: Clinic
) -> None:
    patient_id = new_patient(client)
    referral_id = new_referral(client, patient_id)
    user = sign_in(client, clinic.name)

    patient_page = user.get(f"/app/patients/{patient_id}")
    assert "Give the patient a link to answer before the visit" in patient_page.text
    choose = user.get(f"/app/patients/{patient_id}/links/new")
    assert choose.status_code == 200 and 'value="ucla-3"' in choose.text
    assert 'value="promis-si-4a"' not in choose.text  # licensed, not enabled here
    made = user.post(f"/app/patients/{patient_id}/links", {"instrument": "ucla-3"})
    assert made.status_code == 201, made.text
    [url] = re.findall(r'value="(http://[^"]+/p/[^"]+)"', made.text)
    referral_page = user.get(f"/app/referrals/{referral_id}")
    assert "Ask the patient if they got help" in referral_page.text
    asked = user.post(f"/app/referrals/{referral_id}/patient-link")
    assert asked.status_code == 201, asked.text
    [follow_up] = re.findall(r'value="(http://[^"]+/p/[^"]+)"', asked.text)
    no_csrf = client.post(
        f"/app/referrals/{referral_id}/patient-link", headers=user.headers, data={}
    )
    assert no_csrf.status_code == 403

    headers = dict(client.headers)
    assert anonymous(client).get(f"/p/{token_of(url)}").status_code == 200
    assert "Grupo Dolor" in client.get(f"/p/{token_of(follow_up)}").text
    client.headers.update(headers)


@pytest.mark.parametrize("status", [s for s in Status if not is_final(s)])
@pytest.mark.parametrize("answer", list(Answer))
def test_every_open_status_has_a_legal_path_to_the_patients_answer(
    status: Status, answer: Answer
) -> None:
    said = FollowUp(answer, Reason.COST if answer is Answer.COULD_NOT else None)
    path = steps(said, status)
    current = status
    for step in path:
        check(current, step.status)  # raises on a step the state machine forbids
        current = step.status
    if answer is Answer.GOT_HELP:
        assert current is Status.COMPLETED and path[-1].outcome == said.said()
    else:
        assert current is (Status.FAILED if status is Status.IN_PROGRESS else Status.CANCELLED)
        assert path == [path[-1]] and path[-1].reason == said.said()
