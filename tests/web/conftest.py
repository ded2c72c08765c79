"""A real OpenID provider for the sign-in tests: tests/js/oidc_provider.mjs (the npm package
oidc-provider) under Node, started on a free loopback port and stopped after; and a
user-agent that signs in there by submitting the provider's own login and consent forms."""

from __future__ import annotations

import contextlib
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from html.parser import HTMLParser
from typing import Any
from urllib.parse import parse_qs, urljoin, urlsplit

import httpx
import pytest

from service.settings import PROJECT_ROOT
from tests.node_peer import running_node_peer

SCRIPT = PROJECT_ROOT / "tests" / "js" / "oidc_provider.mjs"
REDIRECT_URI = "https://belong.test/app/sign-in/oidc/callback"
CLIENT_ID = "belong"
CLIENT_SECRET = "a-client-secret-of-belong-at-the-test-provider"
SECRET_ENV = "BELONG_IDP_SECRET_TEST"
ACCOUNTS = [
    {
        "sub": "alice",
        "claims": {
            "name": "Alice Clinician",
            "email": "alice@clinic.test",
            "belong_role": "clinician",
        },
    },
    {"sub": "carol", "claims": {"name": "Carol Coordinator", "belong_role": "coordinator"}},
    {"sub": "bob", "claims": {"name": "Bob Without Role"}},
    {"sub": "erin", "claims": {"name": "Erin Entra", "roles": ["Belong.Reader", "Belong.Admin"]}},
]


@dataclass(frozen=True)
class OpenIdProvider:
    issuer: str
    port: int
    process: subprocess.Popen[str]


def client_config(**metadata: Any) -> dict[str, Any]:
    return {
        "client_id": CLIENT_ID,
        "client_secret": CLIENT_SECRET,
        "redirect_uris": [REDIRECT_URI],
        **metadata,
    }


@contextlib.contextmanager
def running_provider(**config: Any) -> Iterator[OpenIdProvider]:
    """oidc_provider.mjs with ``config`` (its fields: see the script), until the block ends."""
    config = {"clients": [client_config()], "accounts": ACCOUNTS, **config}
    with running_node_peer(SCRIPT, config, "the test OpenID provider") as (ready, process):
        yield OpenIdProvider(ready["issuer"], ready["port"], process)


@pytest.fixture(scope="session")
def openid_provider() -> Iterator[OpenIdProvider]:
    """The clinic's provider, shared by the tests that do not need one of their own."""
    with running_provider() as provider:
        yield provider


@pytest.fixture
def client_secret_env(monkeypatch: pytest.MonkeyPatch) -> str:
    """The client secret in the environment, as ``env:`` references name it."""
    monkeypatch.setenv(SECRET_ENV, CLIENT_SECRET)
    return f"env:{SECRET_ENV}"


class _Forms(HTMLParser):
    """The forms of a page: each one's action, method and fields."""

    def __init__(self) -> None:
        super().__init__()
        self.forms: list[dict[str, Any]] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "form":
            self.forms.append(
                {
                    "action": attributes.get("action") or "",
                    "method": (attributes.get("method") or "get").upper(),
                    "fields": {},
                }
            )
        elif tag == "input" and self.forms and attributes.get("name"):
            self.forms[-1]["fields"][attributes["name"]] = attributes.get("value") or ""


def sign_in_at_provider(
    authorization_url: str,
    login: str,
    redirect_uri: str = REDIRECT_URI,
    max_steps: int = 12,
) -> dict[str, str]:
    """Follow the authorization URL as a browser of its own would (no session at the
    provider yet), signing in as ``login`` on the provider's login form and continuing on its
    consent form; the query the provider redirects to ``redirect_uri`` with (code, state,
    iss; or error). Synchronous, so that it runs beside any event loop (await it from one
    through ``asyncio.to_thread``)."""
    with httpx.Client() as browser:
        response = browser.get(authorization_url)
        for _ in range(max_steps):
            if response.is_redirect:
                location = urljoin(str(response.url), response.headers["location"])
                if location.startswith(redirect_uri):
                    query = parse_qs(urlsplit(location).query)
                    return {name: values[0] for name, values in query.items()}
                response = browser.get(location)
                continue
            assert response.status_code == 200, response.text
            parser = _Forms()
            parser.feed(response.text)
            assert parser.forms, f"the provider's page has no form:\n{response.text}"
            form = parser.forms[0]
            fields = dict(form["fields"])
            if "login" in fields:
                fields.update(login=login, password="any password")
            assert form["method"] == "POST"
            response = browser.post(urljoin(str(response.url), form["action"]), data=fields)
    raise AssertionError("the provider did not redirect back within the expected steps")
