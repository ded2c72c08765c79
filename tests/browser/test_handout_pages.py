"""The patient's handout in Chromium: opened by its short link on a 375 px phone, at 200 %
zoom, and printed from the clinician app (its toolbar gone in print); each accessible
(axe) and fitting its width."""

from __future__ import annotations

import re
import uuid

import httpx
from playwright.sync_api import Page, expect

from service.referrals.model import referral_code
from tests.browser.conftest import assert_accessible, assert_fits, sign_in
from tests.live import LiveServer

SHORT_LINK = re.compile(r"https?://[^/\s<\"]+/h/[A-Za-z0-9_-]{43}")


def referred(live: LiveServer, languages: list[str]) -> str:
    """Over the API: a service with a long entry, and a patient referred to it."""
    patient = f"pat-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=live.origin, headers=live.headers) as api:
        service = api.post(
            "/v1/directory/services",
            json={
                "name": "Harbourside Chronic Pain Peer Support Circle",
                "organization": "Elmsbury Pain Peer Network",
                "category": "support-group",
                "modalities": ["in-person", "online"],
                "address": "Harbourside Community Hall, 12 Quayside Walk, Elmsbury EL14 2QH",
                "schedule": "Tuesdays 6pm to 7.30pm",
                "cost": "Free",
                "contact": {
                    "phone": "555-0100",
                    "email": "harbourside-peer-circle@elmsbury-pain-peer-network.example.org",
                    "url": "https://elmsbury-pain-peer-network.example.org/services/harbourside",
                },
                "description": "A peer-led group for adults living with long-term pain. " * 6,
            },
        )
        assert service.status_code == 201, service.text
        put = api.put(f"/v1/patients/{patient}", json={"languages": languages})
        assert put.status_code == 201, put.text
        made = api.post(
            "/v1/referrals",
            json={
                "patient_id": patient,
                "service_id": service.json()["id"],
                "consent": {"given": True, "method": "verbal"},
            },
        )
        assert made.status_code == 201, made.text
    return str(made.json()["id"])


def short_link(live: LiveServer, referral_id: str) -> str:
    handout = httpx.get(f"{live.origin}/v1/referrals/{referral_id}/handout", headers=live.headers)
    assert handout.status_code == 200, handout.text
    found = SHORT_LINK.search(handout.text)
    assert found is not None
    return found.group(0)


def test_the_short_link_opens_the_handout_on_a_375_px_phone(page: Page, live: LiveServer) -> None:
    referral_id = referred(live, ["es"])
    link = short_link(live, referral_id)
    page.set_viewport_size({"width": 375, "height": 812})
    page.goto(link)
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Su derivación a Harbourside Chronic Pain Peer Support Circle"
    )
    expect(page.locator(".code-value")).to_have_text(referral_code(referral_id))
    expect(page.get_by_role("img", name="Código QR del enlace que aparece abajo")).to_be_visible()
    assert page.evaluate("document.documentElement.lang") == "es"
    expect(page.get_by_role("link", name="555-0100")).to_have_attribute("href", "tel:555-0100")
    assert_fits(page)
    assert_accessible(page)


def test_the_handout_reflows_at_200_percent_zoom(page: Page, live: LiveServer) -> None:
    """A 1280 px window at 200 % zoom lays the page out in 640 CSS px: the width layout
    sees. (A device scale factor alone would keep 1280 CSS px and only sharpen the
    pixels; zoom is what narrows the layout.) Nothing then scrolls sideways and the text
    is twice its size, as a zoomed reader gets it."""
    link = short_link(live, referred(live, ["en"]))
    page.set_viewport_size({"width": 640, "height": 450})
    page.goto(link)
    assert_fits(page)
    assert_accessible(page)
    url_box = page.locator(".url").bounding_box()
    assert url_box is not None and url_box["x"] + url_box["width"] <= 640


def test_a_revoked_link_says_so_plainly_and_accessibly(page: Page, live: LiveServer) -> None:
    referral_id = referred(live, ["en"])
    link = short_link(live, referral_id)
    revoked = httpx.delete(
        f"{live.origin}/v1/referrals/{referral_id}/handout-links", headers=live.headers
    )
    assert revoked.status_code == 200, revoked.text
    page.set_viewport_size({"width": 375, "height": 812})
    response = page.goto(link)
    assert response is not None and response.status == 410
    expect(page.get_by_role("heading", level=1)).to_have_text("This link no longer works")
    assert_fits(page)
    assert_accessible(page)


def test_the_app_prints_the_handout_without_its_toolbar(page: Page, live: LiveServer) -> None:
    referral_id = referred(live, ["en"])
    sign_in(page, live)
    page.goto(f"{live.origin}/app/referrals/{referral_id}")
    page.get_by_role("link", name="Print the handout").click()
    expect(page.get_by_role("heading", level=1)).to_have_text(
        "Your referral to Harbourside Chronic Pain Peer Support Circle"
    )
    toolbar = page.get_by_role("navigation", name="Handout")
    expect(toolbar).to_be_visible()
    expect(toolbar.get_by_role("link", name="Download PDF")).to_be_visible()
    assert_accessible(page)
    page.emulate_media(media="print")
    expect(toolbar).to_be_hidden()
    expect(page.locator(".code-value")).to_be_visible()
    expect(page.locator("img.qr")).to_be_visible()
    page.emulate_media(media="screen")
    page.set_viewport_size({"width": 375, "height": 812})
    assert_fits(page)
