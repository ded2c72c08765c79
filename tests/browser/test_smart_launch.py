"""SMART App Launch in Chromium: the test EHR (oidc-provider under Node, on 127.0.0.1) shows
its page with the app in a frame; Belong (a live server, public at localhost: another site
to the browser) is launched in that frame, the clinician signs in on the EHR's own forms
inside it, and the patient's page opens there on a partitioned third-party session cookie.
The standalone launch opens it at the top; every refusal shows its page in the frame and
opens no session."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import pytest
from playwright.sync_api import Frame, Page, Route, expect

from service.web.launch import CALLBACK_PATH, LAUNCH_PATH
from tests.browser.conftest import assert_accessible, assert_fits
from tests.conftest import scratch_database
from tests.live import LiveServer, belong, live_server
from tests.smart_ehr import CLINICIAN, PUBLIC_CLIENT_ID, TestEhr, running_ehr, smart_clients

CLINIC = "browser-launch-clinic"
SCOPES = ("screenings:write", "screenings:read", "referrals:read", "referrals:write")


@pytest.fixture(scope="module")
def launch_live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    """Belong, public at http://localhost:PORT (the EHR is at 127.0.0.1: another site)."""
    folder = tmp_path_factory.mktemp("launch")
    with ThreadPoolExecutor(1) as pool:
        url = pool.submit(scratch_database, f"launch_{uuid.uuid4().hex[:6]}").result()
    with live_server(url, folder, SCOPES, clinic=CLINIC, public_host="localhost") as server:
        yield server


@pytest.fixture(scope="module")
def ehr(launch_live: LiveServer) -> Iterator[TestEhr]:
    with running_ehr(clients=smart_clients(launch_live.origin + CALLBACK_PATH)) as running:
        for iss in (running.fhir_base, running.plain_fhir_base):
            belong(
                "ehrs", "add", "--clinic", CLINIC, "--iss", iss, "--client-id", PUBLIC_CLIENT_ID,
                env=launch_live.env,
            )  # fmt: skip
        for patient in ("p-1", "p-2"):
            known = httpx.put(
                f"{launch_live.origin.replace('localhost', '127.0.0.1')}/v1/patients/{patient}",
                json={"languages": ["en"]},
                headers=launch_live.headers,
            )
            assert known.status_code in (200, 201), known.text
        yield running


@pytest.fixture(autouse=True)
def fresh_ehr(ehr: TestEhr) -> Iterator[None]:
    yield
    ehr.reset()


def open_in_ehr(
    page: Page, live: LiveServer, ehr: TestEhr, iss: str | None = None, **context: Any
) -> Frame:
    """The EHR's page for a new launch of ``context`` (by the EHR of ``iss``, its own by
    default), framing Belong's launch URL: the frame."""
    query = httpx.QueryParams(
        launch_url=live.origin + LAUNCH_PATH,
        iss=iss or ehr.fhir_base,
        launch=ehr.new_launch(**context),
    )
    page.goto(f"{ehr.origin}/ehr?{query}")
    element = page.locator("iframe[title=Belong]").element_handle()
    assert element is not None
    frame = element.content_frame()
    assert frame is not None
    return frame


def sign_in_at_ehr(frame: Frame) -> None:
    """The clinician signs in on the EHR's own login and consent forms, inside the frame."""
    frame.locator("input[name=login]").fill(CLINICIAN["sub"])
    frame.locator("input[name=password]").fill("any password")
    frame.get_by_role("button", name="Sign-in").click()
    frame.get_by_role("button", name="Continue").click()


def session_cookies(page: Page, live: LiveServer) -> list[dict[str, Any]]:
    return [c for c in page.context.cookies(live.origin) if c["name"] == "__Host-belong-session"]


def test_an_ehr_launch_opens_the_patient_in_the_ehrs_frame(
    page: Page, launch_live: LiveServer, ehr: TestEhr
) -> None:
    frame = open_in_ehr(
        page, launch_live, ehr, patient="p-1", appContext="recommendations",
        need_patient_banner=False,
    )  # fmt: skip
    sign_in_at_ehr(frame)
    frame.wait_for_url(f"{launch_live.origin}/app/patients/p-1#recommendations")
    expect(frame.get_by_role("heading", name="Recommended services")).to_be_visible()
    # The EHR shows the patient's banner: Belong's heading is there for screen readers only.
    heading = frame.get_by_role("heading", level=1)
    expect(heading).to_have_text("Patient p-1")
    expect(heading).to_have_class("visually-hidden")
    cookies = session_cookies(page, launch_live)
    assert len(cookies) == 1, cookies
    cookie = cookies[0]
    assert cookie["sameSite"] == "None" and cookie["secure"] and cookie["httpOnly"]
    assert cookie.get("partitionKey", "").startswith("http://127.0.0.1"), cookie
    assert_accessible(frame)
    # Keyboard alone: from the EHR's page, Tab goes on into the app in the frame.
    page.locator("iframe[title=Belong]").focus()
    page.keyboard.press("Tab")
    expect(frame.locator(":focus")).to_have_count(1)


def test_a_standalone_launch_opens_the_ehrs_chosen_patient(
    page: Page, launch_live: LiveServer, ehr: TestEhr
) -> None:
    page.goto(f"{launch_live.origin}{LAUNCH_PATH}?iss={ehr.fhir_base}")
    sign_in_at_ehr(page.main_frame)
    page.wait_for_url(f"{launch_live.origin}/app/patients/p-2")
    expect(page.get_by_role("heading", level=1)).to_have_text("Patient p-2")
    expect(page.get_by_role("heading", level=1)).not_to_have_class("visually-hidden")
    assert_accessible(page)
    for width in (390, 1280):
        page.set_viewport_size({"width": width, "height": 900})
        assert_fits(page)


def refused_in(frame: Frame, reason: str) -> None:
    expect(frame.get_by_role("heading", name="Belong did not open")).to_be_visible()
    expect(frame.get_by_role("alert")).to_contain_text(reason)


def test_an_unregistered_iss_is_refused_in_the_frame(
    page: Page, launch_live: LiveServer, ehr: TestEhr
) -> None:
    frame = open_in_ehr(page, launch_live, ehr, iss="https://unknown.test/fhir", patient="p-1")
    refused_in(frame, "not registered with Belong")
    assert not session_cookies(page, launch_live)
    assert_accessible(frame)


def test_a_server_offering_plain_pkce_is_refused(
    page: Page, launch_live: LiveServer, ehr: TestEhr
) -> None:
    frame = open_in_ehr(page, launch_live, ehr, iss=ehr.plain_fhir_base, patient="p-1")
    refused_in(frame, "offers plain PKCE")
    assert not session_cookies(page, launch_live)


def test_a_tampered_state_is_refused(page: Page, launch_live: LiveServer, ehr: TestEhr) -> None:
    callback = launch_live.origin + CALLBACK_PATH

    def tamper(route: Route) -> None:
        """The EHR's redirects back to Belong followed here, its state changed at the end
        (a navigation's redirects reach no route handler: only its first request does)."""
        location = route.fetch(max_redirects=0).headers.get("location", "")
        while location.startswith(ehr.origin + "/auth/"):
            location = page.request.get(location, max_redirects=0).headers.get("location", "")
        if location.startswith(callback):
            state = httpx.URL(location).params["state"]
            location = location.replace(f"state={state}", f"state={state[:-4]}AAAA")
        route.fulfill(status=303, headers={"location": location})

    page.route(
        lambda url: url.startswith(ehr.origin + "/interaction/"),
        lambda route: tamper(route) if route.request.method == "POST" else route.continue_(),
    )
    frame = open_in_ehr(page, launch_live, ehr, patient="p-1")
    sign_in_at_ehr(frame)
    refused_in(frame, "not started in this browser")
    assert not session_cookies(page, launch_live)


def test_a_replayed_state_is_refused(page: Page, launch_live: LiveServer, ehr: TestEhr) -> None:
    callbacks: list[str] = []
    page.on(
        "request",
        lambda request: (
            callbacks.append(request.url)
            if request.url.startswith(launch_live.origin + CALLBACK_PATH)
            else None
        ),
    )
    frame = open_in_ehr(page, launch_live, ehr, patient="p-1")
    sign_in_at_ehr(frame)
    frame.wait_for_url(f"{launch_live.origin}/app/patients/p-1")
    page.context.clear_cookies()
    frame.goto(callbacks[-1])
    refused_in(frame, "not started in this browser")
    assert not session_cookies(page, launch_live)


@pytest.mark.parametrize(
    ("tampering", "reason"),
    [
        ({"aud": "another-app"}, "not meant for Belong (aud)"),
        ({"iss": "http://127.0.0.1:9/elsewhere"}, "issued by another provider"),
        ({"exp_offset": -3600}, "has expired"),
    ],
)
def test_an_id_token_that_does_not_hold_is_refused(
    page: Page,
    launch_live: LiveServer,
    ehr: TestEhr,
    tampering: dict[str, Any],
    reason: str,
) -> None:
    frame = open_in_ehr(page, launch_live, ehr, patient="p-1")
    ehr.tamper_next_id_token(**tampering)
    sign_in_at_ehr(frame)
    refused_in(frame, reason)
    assert not session_cookies(page, launch_live)


def test_a_patient_of_another_clinic_is_refused(
    page: Page, launch_live: LiveServer, ehr: TestEhr
) -> None:
    other = belong(
        "clients", "create", "--create-clinic", "--clinic", f"other-{uuid.uuid4().hex[:6]}",
        "--scope", "screenings:write", env=launch_live.env,
    ).splitlines()[-1]  # fmt: skip
    stored = httpx.put(
        f"{launch_live.origin.replace('localhost', '127.0.0.1')}/v1/patients/p-9",
        json={"languages": ["en"]},
        headers={"Authorization": f"Bearer {other}"},
    )
    assert stored.status_code in (200, 201), stored.text
    frame = open_in_ehr(page, launch_live, ehr, patient="p-9")
    sign_in_at_ehr(frame)
    refused_in(frame, "known to another clinic")
    assert not session_cookies(page, launch_live)
