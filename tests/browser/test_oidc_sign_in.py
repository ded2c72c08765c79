"""Signing in through the clinic's OpenID provider in Chromium: the sign-in page's button,
the provider's own login and consent pages (oidc-provider under Node), back to the app
signed in; and the refusal page, accessible, for a user the provider gives no role."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Page, expect

from service.web.oidc_sign_in import CALLBACK_PATH
from tests.browser.conftest import assert_accessible, assert_fits
from tests.live import LiveServer, belong
from tests.web.conftest import CLIENT_ID, CLIENT_SECRET, client_config, running_provider

CLINIC = "browser-oidc-clinic"


@pytest.fixture(scope="module")
def clinic_provider(live: LiveServer, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """The clinic, signing in through a provider of its own; its issuer."""
    secret = tmp_path_factory.mktemp("oidc") / "client-secret"
    secret.write_text(CLIENT_SECRET + "\n")
    redirect = client_config(redirect_uris=[live.origin + CALLBACK_PATH])
    with running_provider(clients=[redirect]) as op:
        belong("clinics", "create", "--name", CLINIC, "--if-missing", env=live.env)
        belong(
            "clinics", "idp", "--clinic", CLINIC, "--issuer", op.issuer, "--client-id",
            CLIENT_ID, "--secret-ref", f"file:{Path(secret)}", "--scope", "profile",
            env=live.env,
        )  # fmt: skip
        yield op.issuer


def at_provider(page: Page, live: LiveServer, issuer: str, login: str) -> None:
    page.goto(f"{live.origin}/app/sign-in?next=/app/account")
    assert_accessible(page)
    page.get_by_role("link", name=f"Sign in to {CLINIC}").click()
    assert page.url.startswith(issuer + "/interaction/"), page.url
    page.locator("input[name=login]").fill(login)
    page.locator("input[name=password]").fill("any password")
    page.get_by_role("button", name="Sign-in").click()
    page.get_by_role("button", name="Continue").click()


def test_a_clinician_signs_in_through_the_clinics_provider(
    page: Page, live: LiveServer, clinic_provider: str
) -> None:
    at_provider(page, live, clinic_provider, "alice")
    page.wait_for_url(f"{live.origin}/app/account")
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    expect(page.get_by_text("Alice Clinician").first).to_be_visible()
    cookies = {c["name"]: c for c in page.context.cookies(live.origin)}
    assert cookies["__Host-belong-session"]["httpOnly"]


def test_a_user_without_a_role_sees_why_and_is_not_signed_in(
    page: Page, live: LiveServer, clinic_provider: str
) -> None:
    at_provider(page, live, clinic_provider, "bob")
    page.wait_for_url(f"{live.origin}{CALLBACK_PATH}?*")
    expect(page.get_by_role("alert")).to_contain_text("no Belong role")
    assert_accessible(page)
    assert_fits(page)
    assert "__Host-belong-session" not in {c["name"] for c in page.context.cookies(live.origin)}
    page.goto(f"{live.origin}/app/account")
    assert page.url.startswith(f"{live.origin}/app/sign-in?next=")
