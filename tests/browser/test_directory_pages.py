"""The directory's pages in Chromium: search, a service, its form and the import form
accessible and fitting at 390 and 1280 px; filtering and opening a service with the
keyboard alone; the seed file uploaded through the file input and its report."""

from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import WIDTHS, assert_accessible, assert_fits, sign_in
from tests.live import LiveServer, belong

SEED = Path(__file__).resolve().parents[2] / "deploy" / "seed" / "directory.hsds.json"


@pytest.fixture(scope="module")
def seeded(live: LiveServer) -> LiveServer:
    response = httpx.post(
        f"{live.origin}/v1/directory/import",
        content=SEED.read_bytes(),
        headers={**live.headers, "Content-Type": "application/json"},
        timeout=60,
    )
    assert response.status_code == 200, response.text
    return live


def first_service(live: LiveServer, **params: str) -> dict[str, str]:
    response = httpx.get(
        f"{live.origin}/v1/directory/services",
        params={"limit": 1, **params},
        headers=live.headers,
    )
    return response.json()["items"][0]


def check(page: Page) -> None:
    assert_accessible(page)
    assert_fits(page)


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_directory_pages_are_accessible_and_fit(
    page: Page, seeded: LiveServer, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 900})
    sign_in(page, seeded, "coordinator")
    page.goto(f"{seeded.origin}/app/directory?latitude=51.5&longitude=-0.1&limit=20")
    expect(page.get_by_role("heading", level=1, name="Directory")).to_be_visible()
    check(page)
    page.goto(f"{seeded.origin}/app/directory?category=choir")  # a 400 with its summary
    expect(page.get_by_role("alert")).to_contain_text("Category")
    check(page)

    service = first_service(seeded)
    page.goto(f"{seeded.origin}/app/directory/{service['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(service["name"])
    check(page)

    page.goto(f"{seeded.origin}/app/directory/{service['id']}/edit")
    check(page)
    page.get_by_label("Name", exact=True).fill("")
    page.get_by_label("Youngest age").fill("200")
    page.get_by_role("button", name="Save changes").click()
    expect(page.get_by_role("alert")).to_contain_text("Youngest age")
    check(page)

    page.goto(f"{seeded.origin}/app/directory/import")
    check(page)


def tab_to(page: Page, test: str, presses: int = 60) -> None:
    """Press Tab until the focused element passes ``test`` (a JS expression on ``el``)."""
    for _ in range(presses):
        page.keyboard.press("Tab")
        if page.evaluate(f"(el => {test})(document.activeElement)"):
            return
    raise AssertionError(f"Tab never reached {test}")


def test_filter_and_open_a_service_with_the_keyboard_alone(page: Page, seeded: LiveServer) -> None:
    sign_in(page, seeded)
    page.goto(f"{seeded.origin}/app/directory")
    tab_to(page, "el.id === 'name'")
    page.keyboard.type("circle")
    tab_to(page, "el.id === 'category'")
    page.keyboard.press("ArrowDown")  # Support group, the first category
    assert page.evaluate("document.activeElement.value") == "support-group"
    tab_to(page, "el.tagName === 'BUTTON' && el.textContent === 'Search'")
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r"name=circle"))
    assert "category=support-group" in page.url

    expected = first_service(seeded, name="circle", category="support-group")
    expect(page.get_by_role("heading", level=2, name=re.compile("found"))).to_be_visible()
    tab_to(page, "el.closest('ol.results') !== null")
    assert page.evaluate("document.activeElement.textContent") == expected["name"]
    page.keyboard.press("Enter")
    page.wait_for_url(f"{seeded.origin}/app/directory/{expected['id']}")
    expect(page.get_by_role("heading", level=1)).to_have_text(expected["name"])
    expect(page.get_by_text("Support group", exact=True)).to_be_visible()


def test_the_seed_file_uploaded_through_the_form_shows_its_report(
    page: Page, live: LiveServer
) -> None:
    clinic = f"upload-{uuid.uuid4().hex[:6]}"
    belong("clinics", "create", "--name", clinic, env=live.env)
    sign_in(page, live, "coordinator", clinic=clinic)
    page.goto(f"{live.origin}/app/directory")
    page.get_by_role("link", name="Import a file").click()
    page.set_input_files("input[type=file]", str(SEED))
    page.get_by_role("button", name="Import").click()
    expect(page.get_by_role("heading", level=1)).to_have_text("Import finished")
    count = len(json.loads(SEED.read_text(encoding="utf-8")))
    expect(page.get_by_role("status")).to_have_text(f"{count} services added and 0 updated.")
    expect(page.get_by_text("Open Referral HSDS 3.0")).to_be_visible()
    rows = page.get_by_role("table").get_by_role("row")
    expect(rows).to_have_count(count + 1)  # a row for each record, below the header
    expect(rows.nth(1)).to_contain_text("Added")
    for width in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": 900})
        check(page)
    page.get_by_role("link", name="Go to the directory").click()
    expect(page.get_by_role("heading", level=2)).to_have_text(f"{count} services found")
