"""The clinician's whole flow in Chromium, end to end on a real ``belong serve``: sign in by
link, the worklist names the patient, the patient page shows the trend, refer with consent,
accept, start, complete with an outcome, the worklist follows, sign out. Then the failure
paths: an expired session, a form without its CSRF token, another clinic's patient and a
step the state machine forbids."""

from __future__ import annotations

import asyncio
import uuid
from concurrent.futures import ThreadPoolExecutor

import httpx
import sqlalchemy as sa
from playwright.sync_api import Page, expect
from sqlalchemy.ext.asyncio import create_async_engine

from tests.browser.conftest import assert_accessible, sign_in
from tests.live import LiveServer, belong

SERVICE = "Riverside CRPS Circle"


def seed(live: LiveServer) -> str:
    """Over the API: a CRPS group, and a patient with three UCLA-3 screenings, the latest
    positive."""
    patient = f"flow-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=live.origin, headers=live.headers) as api:
        created = api.post(
            "/v1/directory/services",
            json={
                "name": f"{SERVICE} {patient}",
                "organization": "Riverside Pain Trust",
                "category": "support-group",
                "conditions": ["crps"],
                "modalities": ["online"],
                "languages": ["en"],
            },
        )
        assert created.status_code == 201, created.text
        profile = {"pain_conditions": ["crps"], "languages": ["en"]}
        assert api.put(f"/v1/patients/{patient}", json=profile).status_code == 201
        for day, answers in (
            ("2026-03-02", {"1": 1, "2": 1, "3": 2}),
            ("2026-06-10", {"1": 2, "2": 2, "3": 2}),
            ("2026-09-01", {"1": 3, "2": 3, "3": 3}),
        ):
            screening = api.post(
                "/v1/screenings",
                json={
                    "patient_id": patient,
                    "instrument": "ucla-3",
                    "completed_at": f"{day}T09:00:00Z",
                    "answers": answers,
                },
            )
            assert screening.status_code == 201, screening.text
    return patient


def execute(url: str, statement: sa.Executable) -> None:
    """A statement on the server's database (in a thread: Playwright holds this one's loop)."""

    async def run() -> None:
        engine = create_async_engine(url)
        async with engine.begin() as conn:
            await conn.execute(statement)
        await engine.dispose()

    with ThreadPoolExecutor(1) as pool:
        pool.submit(asyncio.run, run()).result()


def test_from_the_worklist_to_a_completed_referral(page: Page, live: LiveServer) -> None:
    patient = seed(live)
    user = sign_in(page, live)

    needs = page.get_by_role("table", name="Patients needing action")
    expect(needs.get_by_role("link", name=patient)).to_be_visible()
    needs.get_by_role("link", name=patient).click()

    expect(page.get_by_role("heading", level=1)).to_have_text(f"Patient {patient}")
    chart = page.locator("figure svg[role=img]").first
    expect(chart).to_be_visible()
    table = page.get_by_role("table", name="UCLA-3 screenings, newest first")
    expect(table.locator("tbody tr")).to_have_count(3)
    expect(table.locator("tbody tr").first).to_contain_text("Lonely")
    assert_accessible(page)

    page.get_by_role("link", name=f"Refer to {SERVICE} {patient}").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Refer patient {patient}")
    page.get_by_label("The patient agreed").check()
    page.get_by_label("Verbally").check()
    page.get_by_label("Note for the service (optional)").fill("Evenings suit best")
    page.get_by_role("button", name="Send the referral").click()

    page.wait_for_url(f"{live.origin}/app/referrals/*")
    referral_id = page.url.rsplit("/", 1)[1]
    expect(page.locator(".status")).to_contain_text("Requested")
    page.get_by_role("button", name="Accept").click()
    expect(page.locator(".status")).to_contain_text("Accepted")
    page.get_by_role("button", name="Mark in progress").click()
    expect(page.locator(".status")).to_contain_text("In progress")
    page.locator("#outcome-completed").fill("Joined the group; attends weekly")
    page.get_by_role("button", name="Mark completed").click()
    expect(page.locator(".status")).to_contain_text("Completed")
    expect(page.locator("ol.timeline li")).to_have_count(4)
    expect(page.locator("ol.timeline li").last).to_contain_text(f"by {user.name}")

    api = httpx.get(f"{live.origin}/v1/referrals/{referral_id}", headers=live.headers).json()
    assert api["status"] == "completed"
    assert api["outcome"] == "Joined the group; attends weekly"
    assert api["consent"]["given"] is True and api["consent"]["method"] == "verbal"
    task = httpx.get(f"{live.origin}/fhir/Task/{referral_id}", headers=live.headers).json()
    assert task["status"] == "completed"

    page.get_by_role("link", name="Worklist").click()
    expect(page.get_by_role("link", name=SERVICE + " " + patient)).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out")).to_be_visible()
    page.goto(f"{live.origin}/app/patients/{patient}")
    assert page.url.startswith(f"{live.origin}/app/sign-in?next=")


def test_an_expired_session_sends_the_clinician_to_sign_in_and_back(
    page: Page, live: LiveServer
) -> None:
    patient = seed(live)
    sign_in(page, live)
    execute(
        live.env["BELONG_DATABASE_URL"],
        sa.text("UPDATE sessions SET last_seen_at = now() - interval '16 minutes'"),
    )
    page.goto(f"{live.origin}/app/patients/{patient}")
    assert page.url == f"{live.origin}/app/sign-in?next=%2Fapp%2Fpatients%2F{patient}"
    expect(page.get_by_role("heading", name="Sign in to Belong")).to_be_visible()


def test_a_form_without_its_csrf_token_changes_nothing(page: Page, live: LiveServer) -> None:
    patient = seed(live)
    sign_in(page, live)
    page.goto(f"{live.origin}/app/patients/{patient}/refer")
    page.get_by_label("The patient agreed").check()
    page.get_by_label("Verbally").check()
    page.evaluate("document.querySelectorAll('input[name=_csrf]').forEach(e => e.remove())")
    page.get_by_role("button", name="Send the referral").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Not allowed")
    expect(page.get_by_text("security token")).to_be_visible()
    made = httpx.get(
        f"{live.origin}/v1/referrals", params={"patient_id": patient}, headers=live.headers
    ).json()
    assert made["total"] == 0


def test_another_clinics_patient_is_not_found(page: Page, live: LiveServer) -> None:
    patient = seed(live)
    other = f"other-{uuid.uuid4().hex[:6]}"
    belong("clinics", "create", "--name", other, env=live.env)
    sign_in(page, live, clinic=other)
    response = page.goto(f"{live.origin}/app/patients/{patient}")
    assert response is not None and response.status == 404
    expect(page.get_by_role("heading", level=1)).to_have_text("Not found")
    assert patient not in page.locator("main").inner_text().split("Not found", 1)[0]
    missing = page.goto(f"{live.origin}/app/patients/no-such-patient")
    assert missing is not None and missing.status == 404
    assert_accessible(page)


def test_a_step_the_state_machine_forbids_is_refused(page: Page, live: LiveServer) -> None:
    patient = seed(live)
    sign_in(page, live)
    page.goto(f"{live.origin}/app/patients/{patient}/refer")
    page.get_by_label(f"{SERVICE} {patient}", exact=False).check()
    page.get_by_label("The patient agreed").check()
    page.get_by_label("Verbally").check()
    page.get_by_role("button", name="Send the referral").click()
    page.wait_for_url(f"{live.origin}/app/referrals/*")
    referral_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("button", name="Mark completed")).to_have_count(0)
    # A hand-made form for requested -> completed, sent from the page with its own token.
    page.evaluate(
        """() => {
          const form = document.querySelector('form.step[action$="/status"]');
          form.querySelector('input[name=status]').value = 'completed';
          form.submit();
        }"""
    )
    page.wait_for_load_state()
    expect(page.get_by_role("heading", level=1)).to_have_text("That step is not possible now")
    api = httpx.get(f"{live.origin}/v1/referrals/{referral_id}", headers=live.headers).json()
    assert api["status"] == "requested" and len(api["history"]) == 1
