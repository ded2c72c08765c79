"""The worklist and the patient page in Chromium: accessible (axe) and fitting at 390 and
1280 px, the profile form by keyboard alone, and the patient's trends printed one
instrument per page on A4 and on Letter."""

from __future__ import annotations

import re
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
from playwright.sync_api import Page, expect

from service.instruments.loader import load_catalog
from tests.browser.conftest import WIDTHS, assert_accessible, assert_fits, sign_in
from tests.conftest import INSTRUMENTS_DIR
from tests.live import LiveServer

INSTRUMENTS = {"ucla-3": 20, "lsns-6": 4, "djg-11": 20}
"""Screenings per instrument: the longest table a page shows (20) and a chart whose legend
has many bands."""
PDF_PAGE = re.compile(rb"/Type\s*/Page(?![s\w])")


def answers_at(instrument: Any, fraction: float) -> dict[str, int]:
    """Every item answered with the option ``fraction`` of the way along its values."""
    answers = {}
    for link_id in instrument.link_ids:
        values = sorted(instrument.scores[link_id])
        answers[link_id] = values[round(fraction * (len(values) - 1))]
    return answers


@pytest.fixture(scope="module")
def patient(live: LiveServer) -> str:
    """A patient with a profile, screenings on three instruments, a referral."""
    catalog = load_catalog(INSTRUMENTS_DIR)
    patient_id = f"pat-{uuid.uuid4().hex[:8]}"
    with httpx.Client(base_url=live.origin, headers=live.headers, timeout=30) as api:
        put = api.put(f"/v1/patients/{patient_id}", json={"languages": ["en"]})
        assert put.status_code == 201, put.text
        start = datetime.now(UTC) - timedelta(days=400)
        for instrument_id, count in INSTRUMENTS.items():
            instrument = catalog[instrument_id]
            for i in range(count):
                fraction = (0.0, 1.0, 0.4, 0.8, 0.2, 0.6)[i % 6]
                body = {
                    "patient_id": patient_id,
                    "instrument": instrument_id,
                    "completed_at": (start + timedelta(days=19 * i + 1)).isoformat(),
                    "answers": answers_at(instrument, fraction),
                }
                posted = api.post("/v1/screenings", json=body)
                assert posted.status_code == 201, posted.text
        service = api.post(
            "/v1/directory/services",
            json={
                "name": "Browser Circle",
                "organization": "Test Trust",
                "category": "support-group",
                "modalities": ["online"],
            },
        ).json()
        referral = api.post(
            "/v1/referrals",
            json={
                "patient_id": patient_id,
                "service_id": service["id"],
                "consent": {"given": True, "method": "verbal"},
            },
        )
        assert referral.status_code == 201, referral.text
        other = f"pat-{uuid.uuid4().hex[:8]}"
        lonely = {"patient_id": other, "instrument": "ucla-3", "answers": {"1": 3, "2": 3, "3": 3}}
        posted = api.post("/v1/screenings", json={**lonely, "completed_at": start.isoformat()})
        assert posted.status_code == 201, posted.text
    return patient_id


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_worklist_and_patient_page_are_accessible_and_fit(
    page: Page, live: LiveServer, patient: str, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, live)
    expect(page.get_by_role("heading", name="Worklist", level=1)).to_be_visible()
    expect(page.get_by_role("table", name=re.compile("Referrals to follow up"))).to_be_visible()
    assert_accessible(page)
    assert_fits(page)

    page.goto(f"{live.origin}/app/patients/{patient}?explain=1")
    expect(page.get_by_role("heading", name=f"Patient {patient}", level=1)).to_be_visible()
    assert page.locator("figure svg.trend-chart").count() == len(INSTRUMENTS)
    page.locator("details.why-not summary").click()
    assert_accessible(page)
    assert_fits(page)


def test_the_keyboard_reaches_the_profile_form_and_submits_it(
    page: Page, live: LiveServer, patient: str
) -> None:
    sign_in(page, live)
    page.goto(f"{live.origin}/app/patients/{patient}")
    for _ in range(300):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "field-languages":
            break
    else:
        raise AssertionError("the languages field is not reachable by Tab")
    page.keyboard.press("Control+A")
    page.keyboard.type("en, cy")
    page.keyboard.press("Tab")  # the postcode
    page.keyboard.type("CF10 1AA")
    for _ in range(30):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Save the profile":
            break
    else:
        raise AssertionError("the save button is not reachable by Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_role("status")).to_have_text("The matching profile is saved.")
    stored = httpx.get(f"{live.origin}/v1/patients/{patient}", headers=live.headers).json()
    assert stored["profile"]["languages"] == ["en", "cy"]
    assert stored["profile"]["postcode"] == "CF10 1AA"
    expect(page.get_by_text("English, Welsh")).to_be_visible()


@pytest.mark.parametrize("paper", ["A4", "Letter"])
def test_the_patient_page_prints_one_instrument_per_page(
    page: Page, live: LiveServer, patient: str, paper: str
) -> None:
    sign_in(page, live)
    page.goto(f"{live.origin}/app/patients/{patient}")
    pdf = page.pdf(format=paper, print_background=True)
    assert len(PDF_PAGE.findall(pdf)) == len(INSTRUMENTS), paper
    page.emulate_media(media="print")
    assert page.locator("header.top").is_hidden()
    assert page.locator("#profile").is_hidden()
    assert page.locator("form").first.is_hidden()
