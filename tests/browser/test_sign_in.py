"""Signing in and out in Chromium: the single-use link, the session cookie, sign-out,
and the pages' accessibility and layout at 390 and 1280 px."""

from __future__ import annotations

import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import WIDTHS, assert_accessible, assert_fits, sign_in, sign_in_link
from tests.live import LiveServer


def test_the_link_signs_in_once_and_sign_out_ends_the_session(page: Page, live: LiveServer) -> None:
    link = sign_in_link(live, "Dr Link")
    page.goto(link)
    assert page.url == f"{live.origin}/app"
    cookies = {c["name"]: c for c in page.context.cookies()}
    session = cookies["__Host-belong-session"]
    assert session["httpOnly"] and session["secure"] and session["sameSite"] == "Lax"

    page.goto(f"{live.origin}/app/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("Dr Link").first).to_be_visible()
    page.get_by_role("button", name="Sign out").click()
    expect(page.get_by_text("You are signed out")).to_be_visible()

    page.goto(f"{live.origin}/app/account")
    assert page.url.startswith(f"{live.origin}/app/sign-in?next=")
    page.goto(link)  # spent
    expect(page.get_by_role("alert")).to_contain_text("cannot be used")


@pytest.mark.parametrize("width", WIDTHS.values(), ids=WIDTHS.keys())
def test_the_sign_in_and_account_pages_are_accessible(
    page: Page, live: LiveServer, width: int
) -> None:
    page.set_viewport_size({"width": width, "height": 800})
    page.goto(f"{live.origin}/app/sign-in")
    assert_accessible(page)
    assert_fits(page)
    sign_in(page, live)
    page.goto(f"{live.origin}/app/account")
    assert_accessible(page)
    assert_fits(page)


def test_the_keyboard_reaches_main_content_and_sign_out(page: Page, live: LiveServer) -> None:
    sign_in(page, live)
    page.goto(f"{live.origin}/app/account")
    page.keyboard.press("Tab")
    focused = page.evaluate("document.activeElement.textContent")
    assert focused == "Skip to main content"
    page.keyboard.press("Enter")
    assert page.evaluate("document.activeElement.id") == "main"
    for _ in range(20):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.textContent") == "Sign out":
            break
    else:
        raise AssertionError("Sign out is not reachable by Tab")
    page.keyboard.press("Enter")
    expect(page.get_by_text("You are signed out")).to_be_visible()
