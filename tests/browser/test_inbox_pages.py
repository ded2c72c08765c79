"""The service's inbox in Chromium: opened by the link `belong services link` prints, a
referral accepted, started, completed and another declined with the keyboard alone, the
capacity set; every page accessible (axe) and fitting at 375 px and at 200% zoom (a
1280 px window at 200% lays the page out in 640 CSS px, device pixels doubled); the link
refused once rotated (410) or unknown (404)."""

from __future__ import annotations

import uuid
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from service.referrals.model import referral_code
from tests.browser.conftest import CLINIC, assert_accessible, assert_fits
from tests.live import LiveServer, belong

LAYOUTS = {
    "phone": ({"width": 375, "height": 800}, 1),
    "zoom-200": ({"width": 640, "height": 450}, 2),
}
"""Viewport (CSS px) and device scale: 375 px, and a 1280x900 window at 200% zoom."""


def seed(live: LiveServer) -> dict[str, str]:
    """Over the API: a service, a patient (Spanish first, by phone) and two referrals; the
    service's inbox link from the CLI."""
    patient = f"pat-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=live.origin, headers=live.headers) as api:
        service = api.post(
            "/v1/directory/services",
            json={
                "name": f"Evening Circle {patient}",
                "organization": "Community Pain Trust",
                "category": "support-group",
                "modalities": ["online", "phone"],
            },
        ).json()["id"]
        profile = {"languages": ["es", "en"], "preferred_modalities": ["phone"]}
        assert api.put(f"/v1/patients/{patient}", json=profile).status_code == 201
        referrals = [
            api.post(
                "/v1/referrals",
                json={
                    "patient_id": patient,
                    "service_id": service,
                    "need": "loneliness",
                    "note": note,
                    "consent": {"given": True, "method": "verbal"},
                },
            ).json()["id"]
            for note in ("Prefers evening calls", "Lives alone")
        ]
    return {
        "service": service,
        "first": referrals[0],
        "second": referrals[1],
        "link": link(live, service),
    }


def link(live: LiveServer, service: str) -> str:
    env = {**live.env, "BELONG_PUBLIC_BASE_URL": live.origin}
    printed = belong("services", "link", "--clinic", CLINIC, "--service", service, env=env)
    return printed.strip().splitlines()[-1]


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


def button(text: str) -> str:
    return f"el.tagName === 'BUTTON' && el.textContent.trim() === {text!r}"


def test_a_service_answers_its_referrals_with_the_keyboard_alone(
    live: LiveServer, page: Page
) -> None:
    seeded = seed(live)
    page.goto(seeded["link"])
    expect(page.get_by_role("heading", level=1)).to_contain_text("Referrals to Evening Circle")
    code = referral_code(seeded["first"])
    tab_to(page, f"el.tagName === 'A' && el.textContent.trim() === {code!r}")
    page.keyboard.press("Enter")
    expect(page.get_by_role("heading", level=1)).to_have_text(f"Referral {code}")
    expect(page.locator(".facts")).to_contain_text("Spanish, English")
    expect(page.locator(".facts")).to_contain_text("Prefers evening calls")

    for label in ("Accept", "Mark in progress"):
        tab_to(page, button(label))
        page.keyboard.press("Enter")
        expect(page.locator(".status")).not_to_contain_text("Requested")
    tab_to(page, "el.id === 'outcome-completed'")
    page.keyboard.type("Joined the Tuesday phone group")
    tab_to(page, button("Mark completed"))
    page.keyboard.press("Enter")
    expect(page.locator(".status")).to_contain_text("Completed")
    done = referral(live, seeded["first"])
    assert done["status"] == "completed"
    assert done["outcome"] == "Joined the Tuesday phone group"
    assert [e["link_kind"] for e in done["history"]] == [None, "inbox", "inbox", "inbox"]

    page.goto(f"{seeded['link']}/referrals/{seeded['second']}")
    tab_to(page, "el.id === 'reason-rejected'")
    page.keyboard.press("ArrowDown")  # the first reason: at capacity
    tab_to(page, "el.id === 'detail-rejected'")
    page.keyboard.type("Next intake in March")
    tab_to(page, button("Decline"))
    page.keyboard.press("Enter")
    expect(page.locator(".status")).to_contain_text("Rejected")
    declined = referral(live, seeded["second"])
    assert declined["status_reason"] == "At capacity: Next intake in March"

    page.goto(seeded["link"])
    tab_to(page, "el.name === 'capacity'")  # the group: its first answer, none chosen yet
    page.keyboard.press("ArrowDown")  # the second: a waiting list
    tab_to(page, button("Save"))
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_contain_text("Saved")
    expect(page.locator("#capacity-waitlist")).to_be_checked()
    service = httpx.get(
        f"{live.origin}/v1/directory/services/{seeded['service']}", headers=live.headers
    ).json()
    assert service["capacity_status"] == "waitlist"


@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_inbox_pages_are_accessible_and_fit_at_375_px_and_200_percent(
    live: LiveServer, browser: Browser, layout: str
) -> None:
    seeded = seed(live)
    viewport, scale = LAYOUTS[layout]
    context = browser.new_context(viewport=viewport, device_scale_factor=scale, locale="en-GB")
    page = context.new_page()
    try:
        for path in ("", f"/referrals/{seeded['first']}"):
            page.goto(seeded["link"] + path)
            assert page.evaluate("window.innerWidth") == viewport["width"]
            assert_accessible(page)
            assert_fits(page)
        unknown = page.goto(f"{live.origin}/inbox/{'A' * 43}")
        assert unknown is not None and unknown.status == 404
        expect(page.get_by_role("heading", level=1)).to_have_text("This link opens nothing")
        assert_accessible(page)
        assert_fits(page)

        link(live, seeded["service"])  # rotated: the link seeded is revoked
        gone = page.goto(seeded["link"])
        assert gone is not None and gone.status == 410
        expect(page.get_by_role("heading", level=1)).to_have_text("This link no longer works")
        assert_accessible(page)
        assert_fits(page)
    finally:
        context.close()
