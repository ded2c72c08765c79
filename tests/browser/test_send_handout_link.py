"""The referral page's "Send the handout link" in Chromium, against a real ``belong serve``
sending to an SMTP server and an SMS webhook on the loopback: keyboard alone, the result
said on the page, a wrong number named, each page accessible (axe) and fitting."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor

import httpx
import pytest
from playwright.sync_api import Page, expect

from tests.browser.conftest import CLINIC, WIDTHS, assert_accessible, assert_fits, sign_in
from tests.browser.test_referral_pages import seed, tab_to, tab_to_button
from tests.conftest import scratch_database
from tests.live import LiveServer, live_server
from tests.messages.conftest import (
    MAIL_FROM,
    PHONE,
    SECRET_ENV,
    WEBHOOK_SECRET,
    Peers,
    running_peers,
)


@pytest.fixture(scope="module")
def peers_and_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Peers, LiveServer]]:
    folder = tmp_path_factory.mktemp("messages")
    with ThreadPoolExecutor(1) as pool:
        url = pool.submit(scratch_database, f"browser_msg_{uuid.uuid4().hex[:6]}").result()
    scopes = (
        "screenings:write",
        "screenings:read",
        "referrals:read",
        "referrals:write",
        "directory:write",
    )
    with running_peers() as peers:
        senders = {
            "BELONG_SMTP_URL": f"smtp://127.0.0.1:{peers.smtp_port}",
            "BELONG_SMTP_STARTTLS": "false",
            "BELONG_MAIL_FROM": MAIL_FROM,
            "BELONG_SMS_WEBHOOK_URL": peers.webhook_url,
            "BELONG_SMS_WEBHOOK_SECRET_REF": f"env:{SECRET_ENV}",
            SECRET_ENV: WEBHOOK_SECRET,
        }
        with live_server(url, folder, scopes, clinic=CLINIC, extra_env=senders) as live:
            yield peers, live


def new_referral(live: LiveServer) -> str:
    seeded = seed(live)
    response = httpx.post(
        f"{live.origin}/v1/referrals",
        json={
            "patient_id": seeded["patient"],
            "service_id": seeded["service"],
            "consent": {"given": True, "method": "verbal"},
        },
        headers=live.headers,
    )
    assert response.status_code == 201, response.text
    return str(response.json()["id"])


def test_send_the_handout_link_by_sms_with_the_keyboard_alone(
    page: Page, peers_and_live: tuple[Peers, LiveServer]
) -> None:
    peers, live = peers_and_live
    peers.clear()
    referral_id = new_referral(live)
    sign_in(page, live, role="coordinator")
    page.goto(f"{live.origin}/app/referrals/{referral_id}")
    expect(page.get_by_role("heading", name="Send the handout link")).to_be_visible()
    for width in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": 900})
        assert_accessible(page)
        assert_fits(page)

    tab_to(page, "el.id === 'to'")
    page.keyboard.type(PHONE)
    tab_to_button(page, "Send the handout link")
    page.keyboard.press("Enter")
    page.wait_for_url(f"**/app/referrals/{referral_id}?message=*")
    expect(page.get_by_role("status")).to_have_text("The handout link was sent by SMS.")
    [(_, body)] = peers.gateway.received
    assert json.loads(body)["to"] == PHONE
    assert PHONE not in page.content()
    assert_accessible(page)


def test_a_wrong_address_is_named_on_an_accessible_page(
    page: Page, peers_and_live: tuple[Peers, LiveServer]
) -> None:
    peers, live = peers_and_live
    peers.clear()
    referral_id = new_referral(live)
    sign_in(page, live, role="coordinator")
    page.goto(f"{live.origin}/app/referrals/{referral_id}")
    page.get_by_role("radio", name="Email").check()
    page.get_by_label("Mobile number or email address").fill("not an address")
    page.get_by_role("button", name="Send the handout link").click()
    expect(page.get_by_role("alert")).to_contain_text("Enter an email address")
    expect(page.get_by_label("Mobile number or email address")).to_have_value("not an address")
    for width in WIDTHS.values():
        page.set_viewport_size({"width": width, "height": 900})
        assert_accessible(page)
        assert_fits(page)
    assert peers.mailbox.received == []
