"""The patient's own pages (/p) in Chromium, as a patient meets them: on a 375 px phone,
and at 200% zoom; answered by keyboard alone; axe finding no serious or critical violation
on the form, its errors, the thank-you page and the refusals.

200% zoom is emulated as the page sees it: browser zoom divides the CSS viewport by the
zoom factor and multiplies the device pixels by it, so a 1280 px window at 200% is a 640
CSS px viewport at device scale 2 (headless Chromium has no zoom control to press).
"""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, Page, expect

from tests.browser.conftest import assert_accessible, assert_fits, sign_in
from tests.live import LiveServer

SCREENS = {
    "phone-375": {"viewport": {"width": 375, "height": 740}, "device_scale_factor": 2},
    "zoom-200": {"viewport": {"width": 640, "height": 450}, "device_scale_factor": 2},
}
SERVICE = {
    "name": "Grupo de Apoyo para el Dolor Crónico de Espalda",
    "organization": "Test Trust",
    "category": "support-group",
    "modalities": ["online"],
}


@pytest.fixture(params=sorted(SCREENS))
def phone(request: pytest.FixtureRequest, browser: Browser) -> Iterator[Page]:
    context = browser.new_context(**SCREENS[request.param], locale="es-MX")
    yield context.new_page()
    context.close()


def new_patient(api: httpx.Client) -> str:
    patient_id = f"pat-{uuid.uuid4().hex[:8]}"
    put = api.put(f"/v1/patients/{patient_id}", json={"languages": ["es"]})
    assert put.status_code == 201, put.text
    return patient_id


def link(api: httpx.Client, patient_id: str, purpose: str, **body: Any) -> str:
    made = api.post(f"/v1/patients/{patient_id}/links/{purpose}", json=body)
    assert made.status_code == 201, made.text
    return str(made.json()["url"])


def tab_to(page: Page, selector: str, limit: int = 40) -> None:
    """Press Tab until the element ``selector`` names has the focus."""
    for _ in range(limit):
        page.keyboard.press("Tab")
        if page.evaluate("s => document.activeElement.matches(s)", selector):
            return
    raise AssertionError(f"Tab never reached {selector}")


def test_a_patient_answers_a_screening_by_keyboard_on_a_phone(
    live: LiveServer, phone: Page
) -> None:
    with httpx.Client(base_url=live.origin, headers=live.headers, timeout=30) as api:
        patient_id = new_patient(api)
        url = link(api, patient_id, "screening", instrument="ucla-3")

    phone.goto(url)
    expect(phone.locator("h1")).to_have_text("Preguntas para su consulta")
    expect(phone.locator("html")).to_have_attribute("lang", "es")
    expect(phone.locator("#published-language")).to_be_visible()
    assert_fits(phone)
    assert_accessible(phone)

    # Item 1 answered, the rest left: the page comes back naming each item left out
    tab_to(phone, "input[name='answer-1']")
    phone.keyboard.press("ArrowDown")  # the second option, checked as the focus moves
    tab_to(phone, "button[type='submit']")
    phone.keyboard.press("Enter")
    phone.wait_for_load_state()
    summary = phone.locator("#problems")
    expect(summary).to_contain_text("Pregunta 2: Elija una respuesta")
    expect(summary).to_contain_text("Pregunta 3: Elija una respuesta")
    expect(phone.locator("#item-1-2")).to_be_checked()
    assert_fits(phone)
    assert_accessible(phone)

    for link_id in ("2", "3"):
        tab_to(phone, f"input[name='answer-{link_id}']")
        phone.keyboard.press("ArrowDown")
        phone.keyboard.press("ArrowDown")  # the third option
    tab_to(phone, "button[type='submit']")
    phone.keyboard.press("Enter")
    phone.wait_for_url("**/p/thanks?lang=es&purpose=screening")
    expect(phone.locator("h1")).to_have_text("Gracias")
    assert_fits(phone)
    assert_accessible(phone)

    with httpx.Client(base_url=live.origin, headers=live.headers, timeout=30) as api:
        history = api.get(f"/v1/patients/{patient_id}/screenings").json()
    [screening] = history["instruments"][0]["screenings"]
    assert screening["total"] == 2 + 3 + 3

    ended = phone.goto(url)
    assert ended is not None and ended.status == 410
    expect(phone.locator("h1")).to_have_text("Este enlace ya no funciona")
    assert_fits(phone)
    assert_accessible(phone)


def test_a_patient_says_they_could_not_get_help_by_keyboard_on_a_phone(
    live: LiveServer, phone: Page
) -> None:
    with httpx.Client(base_url=live.origin, headers=live.headers, timeout=30) as api:
        patient_id = new_patient(api)
        service = api.post("/v1/directory/services", json=SERVICE).json()
        referral = api.post(
            "/v1/referrals",
            json={
                "patient_id": patient_id,
                "service_id": service["id"],
                "consent": {"given": True, "method": "verbal"},
            },
        ).json()
        url = link(api, patient_id, "follow-up", referral_id=referral["id"])

    phone.goto(url)
    expect(phone.locator("h1")).to_have_text(f"¿Recibió ayuda de {SERVICE['name']}?")
    assert_fits(phone)
    assert_accessible(phone)

    # "Could not" without a reason: asked again, by name
    tab_to(phone, "input[name='answer']")
    phone.keyboard.press("ArrowDown")  # No, I could not get help
    tab_to(phone, "button[type='submit']")
    phone.keyboard.press("Enter")
    phone.wait_for_load_state()
    expect(phone.locator("#problems")).to_contain_text("Indique por qué no pudo recibir ayuda")
    expect(phone.locator("#answer-could-not")).to_be_checked()
    assert_fits(phone)
    assert_accessible(phone)

    tab_to(phone, "input[name='reason']")
    phone.keyboard.press("Space")  # the first reason: the service never got in touch
    tab_to(phone, "#comment")
    phone.keyboard.type("Llamé dos veces")
    tab_to(phone, "button[type='submit']")
    phone.keyboard.press("Enter")
    phone.wait_for_url("**/p/thanks?lang=es&purpose=follow-up")
    expect(phone.locator("p").first).to_have_text("Su respuesta se envió a su clínica.")
    assert_accessible(phone)

    with httpx.Client(base_url=live.origin, headers=live.headers, timeout=30) as api:
        moved = api.get(f"/v1/referrals/{referral['id']}").json()
    assert moved["status"] == "cancelled"
    assert moved["status_reason"].startswith("The patient said they could not get help")
    assert moved["status_reason"].endswith("In their words: Llamé dos veces")

    unknown = phone.goto(url[:-1] + ("B" if url.endswith("A") else "A"))  # no such link
    assert unknown is not None and unknown.status == 404
    assert_accessible(phone)


def test_the_clinician_makes_the_link_from_the_patient_page_and_sees_it_once(
    live: LiveServer, page: Page
) -> None:
    with httpx.Client(base_url=live.origin, headers=live.headers, timeout=30) as api:
        patient_id = new_patient(api)
    sign_in(page, live)

    page.goto(f"{live.origin}/app/patients/{patient_id}")
    page.get_by_role("link", name="Give the patient a link to answer before the visit").click()
    assert_accessible(page)
    page.get_by_label("Three-Item Loneliness Scale", exact=True).check()
    page.get_by_role("button", name="Make the link").click()
    shown = page.get_by_label("The patient's link").input_value()
    assert shown.startswith(f"{live.origin}/p/")
    assert_accessible(page)

    page.goto(shown)
    expect(page.locator("h1")).to_have_text("Preguntas para su consulta")
