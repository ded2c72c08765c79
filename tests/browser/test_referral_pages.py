"""The referral and screening-entry pages in Chromium: a referral made and followed to its
outcome with the keyboard alone, and each page accessible (axe) and fitting at 390 and
1280 px."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import WIDTHS, assert_accessible, assert_fits, sign_in
from tests.live import LiveServer


def seed(live: LiveServer) -> dict[str, str]:
    """Over the API: a service, and a patient whose UCLA-3 shows loneliness."""
    patient = f"pat-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=live.origin, headers=live.headers) as api:
        service = api.post(
            "/v1/directory/services",
            json={
                "name": f"Evening Circle {patient}",
                "organization": "Community Pain Trust",
                "category": "support-group",
                "modalities": ["online"],
                "contact": {"phone": "555-0100", "url": "https://circle.example.org/join"},
            },
        )
        assert service.status_code == 201, service.text
        assert api.put(f"/v1/patients/{patient}", json={"languages": ["en"]}).status_code == 201
        screening = api.post(
            "/v1/screenings",
            json={
                "patient_id": patient,
                "instrument": "ucla-3",
                "completed_at": "2026-03-02T09:30:00Z",
                "answers": {"1": 3, "2": 3, "3": 3},
            },
        )
        assert screening.status_code == 201, screening.text
    return {"patient": patient, "service": service.json()["id"]}


def referral(live: LiveServer, referral_id: str) -> dict[str, Any]:
    response = httpx.get(f"{live.origin}/v1/referrals/{referral_id}", headers=live.headers)
    assert response.status_code == 200, response.text
    return response.json()


def tab_to(page: Page, test: str, limit: int = 60) -> None:
    """Press Tab until the focused element passes ``test`` (a JS expression on ``el``)."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate(f"(el => Boolean({test}))(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached an element where {test}")


def tab_to_button(page: Page, label: str) -> None:
    tab_to(page, f"el.tagName === 'BUTTON' && el.textContent.trim() === {label!r}")


def test_refer_accept_start_and_complete_with_the_keyboard_alone(
    page: Page, live: LiveServer
) -> None:
    seeded = seed(live)
    user = sign_in(page, live)
    page.goto(f"{live.origin}/app/patients/{seeded['patient']}/refer")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Refer patient {seeded['patient']}")

    tab_to(page, "el.name === 'service_id'")
    page.keyboard.press("Space")
    tab_to(page, "el.id === 'consent-given'")
    page.keyboard.press("Space")
    tab_to(page, "el.name === 'consent_method'")
    page.keyboard.press("Space")
    tab_to(page, "el.id === 'note'")
    page.keyboard.type("Prefers evening online groups")
    tab_to_button(page, "Send the referral")
    page.keyboard.press("Enter")

    page.wait_for_url(f"{live.origin}/app/referrals/*")
    referral_id = page.url.rsplit("/", 1)[1]
    expect(page.get_by_role("heading", level=1)).to_contain_text("Evening Circle")
    made = referral(live, referral_id)
    assert made["status"] == "requested"
    assert made["consent"] | {"recorded_at": None} == {
        "given": True,
        "method": "verbal",
        "recorded_by": user.name,
        "recorded_at": None,
    }
    assert made["note"] == "Prefers evening online groups"

    for label, status in (("Accept", "accepted"), ("Mark in progress", "in-progress")):
        tab_to_button(page, label)
        page.keyboard.press("Enter")
        page.wait_for_load_state()
        expect(page.locator(".status")).to_contain_text(
            {"accepted": "Accepted", "in-progress": "In progress"}[status]
        )
        assert referral(live, referral_id)["status"] == status

    tab_to(page, "el.id === 'outcome-completed'")
    page.keyboard.type("Attended 6 of 8 sessions")
    tab_to_button(page, "Mark completed")
    page.keyboard.press("Enter")
    expect(page.locator(".status")).to_contain_text("Completed")
    done = referral(live, referral_id)
    assert done["status"] == "completed" and done["outcome"] == "Attended 6 of 8 sessions"
    timeline = page.locator("ol.timeline li")
    expect(timeline).to_have_count(4)
    expect(timeline.last).to_contain_text(f"by {user.name}")
    expect(timeline.last).to_contain_text("Attended 6 of 8 sessions")


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_refer_referral_and_entry_pages_are_accessible_and_fit(
    page: Page, live: LiveServer, width: int
) -> None:
    seeded = seed(live)
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live)
    pages = [
        f"/app/patients/{seeded['patient']}/refer",
        f"/app/screenings/new?patient={seeded['patient']}",
        f"/app/screenings/new/ucla-3?patient={seeded['patient']}",
        "/app/screenings/new/mos-sss",
    ]
    for path in pages:
        page.goto(f"{live.origin}{path}")
        assert_accessible(page)
        assert_fits(page)

    # The refer form refused (no consent), then the referral page with its steps.
    page.goto(f"{live.origin}/app/patients/{seeded['patient']}/refer")
    page.get_by_role("radio").first.check()
    page.get_by_role("button", name="Send the referral").click()
    expect(page.get_by_role("alert")).to_contain_text("Consent")
    assert_accessible(page)
    assert_fits(page)
    page.get_by_label("The patient agreed").check()
    page.get_by_label("Verbally").check()
    page.get_by_role("button", name="Send the referral").click()
    page.wait_for_url(f"{live.origin}/app/referrals/*")
    assert_accessible(page)
    assert_fits(page)

    # The entry form refused (an item left out of a questionnaire that needs every one).
    page.goto(f"{live.origin}/app/screenings/new/ucla-3?patient={seeded['patient']}")
    page.get_by_role("button", name="Score and save").click()
    expect(page.get_by_role("alert")).to_contain_text("Question 1")
    assert_accessible(page)
    assert_fits(page)
