"""Browser tests: Playwright driving Debian's Chromium (``make install`` installs it) against
a real ``belong serve`` on loopback, signed in through a real single-use sign-in link.

axe-core (axe-playwright-python) checks each page: no serious or critical violation."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import pytest
from axe_playwright_python.sync_playwright import Axe
from playwright.sync_api import Frame, Page

from tests.conftest import scratch_database
from tests.live import LiveServer, belong, live_server

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-dev-shm-usage",
]
WIDTHS = {"phone": 390, "desktop": 1280}
CLINIC = "browser-clinic"
SERIOUS = {"serious", "critical"}


@pytest.fixture(scope="session")
def browser_type_launch_args() -> dict[str, Any]:
    return {"executable_path": CHROMIUM, "args": CHROMIUM_ARGS, "headless": True}


@pytest.fixture(scope="session")
def browser_context_args() -> dict[str, Any]:
    return {"viewport": {"width": WIDTHS["desktop"], "height": 900}, "locale": "en-GB"}


@pytest.fixture(scope="module")
def live(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LiveServer]:
    folder = tmp_path_factory.mktemp("browser")
    # In a thread: Playwright's sync API holds this thread's event loop.
    with ThreadPoolExecutor(1) as pool:
        url = pool.submit(scratch_database, f"browser_{uuid.uuid4().hex[:6]}").result()
    scopes = (
        "screenings:write",
        "screenings:read",
        "referrals:read",
        "referrals:write",
        "directory:write",
    )
    with live_server(url, folder, scopes, clinic=CLINIC) as server:
        yield server


@dataclass(frozen=True)
class AppUser:
    name: str
    role: str
    clinic: str


def sign_in_link(live: LiveServer, name: str, role: str = "clinician", clinic: str = CLINIC) -> str:
    """A real link from ``belong users link`` (the user added first if need be)."""
    belong(
        "users",
        "add",
        "--clinic",
        clinic,
        "--name",
        name,
        "--role",
        role,
        "--if-missing",
        env=live.env,
    )
    printed = belong(
        "users", "link", "--clinic", clinic, "--user", name, "--origin", live.origin, env=live.env
    )
    return printed.strip().splitlines()[-1]


def sign_in(page: Page, live: LiveServer, role: str = "clinician", clinic: str = CLINIC) -> AppUser:
    name = f"Dr {uuid.uuid4().hex[:6]}"
    page.goto(sign_in_link(live, name, role, clinic))
    assert page.url == f"{live.origin}/app", page.url
    return AppUser(name, role, clinic)


def assert_accessible(page: Page | Frame) -> None:
    """axe-core on the page (or a frame of it) as it is now: no serious or critical
    violation."""
    results = Axe().run(page)
    bad = [v for v in results.response["violations"] if v.get("impact") in SERIOUS]
    assert not bad, "\n".join(
        f"{v['id']} ({v['impact']}): {v['help']} at "
        + ", ".join(str(node["target"]) for node in v["nodes"][:5])
        for v in bad
    )


def assert_fits(page: Page) -> None:
    """Nothing wider than the viewport: no sideways scrolling of the page itself."""
    overflow = page.evaluate(
        "document.documentElement.scrollWidth - document.documentElement.clientWidth"
    )
    assert overflow <= 1, f"the page is {overflow}px wider than the {page.viewport_size} viewport"
