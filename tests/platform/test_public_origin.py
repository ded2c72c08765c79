"""One public origin for every absolute URL Belong writes, never the request's Host.

The origin is ``BELONG_PUBLIC_BASE_URL``; else, from a peer listed in
``BELONG_TRUSTED_PROXIES``, its forwarding headers; else the server's own listening
address. A client that sends ``Host: evil.example`` sees none of it in what comes back.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from litestar import Litestar
from litestar.testing import TestClient

from service.app import create_app
from service.platform.credentials import SCOPES
from service.settings import Settings
from service.systems.repository import create_client
from tests.conftest import scratch_database
from tests.live import BELONG, belong, free_port

PUBLIC = "https://belong.example.org"
OWN = "http://testserver.local"
"""The listening address the test client's requests arrive at (its scope's ``server``)."""
EVIL = {"Host": "evil.example"}
FHIR_JSON = "application/fhir+json"


def urls_in(bundle: dict[str, Any]) -> list[str]:
    return [link["url"] for link in bundle["link"]] + [e["fullUrl"] for e in bundle["entry"]]


def answers_posted(client: TestClient[Litestar], headers: dict[str, str]) -> httpx.Response:
    """A FHIR QuestionnaireResponse to Belong's UCLA-3, from a new patient."""
    patient = f"pat-{uuid.uuid4()}"
    questionnaire = client.get("/fhir/Questionnaire/ucla-3").json()
    body = {
        "resourceType": "QuestionnaireResponse",
        "questionnaire": questionnaire["url"],
        "status": "completed",
        "subject": {"reference": f"Patient/{patient}"},
        "authored": "2026-01-05T09:00:00Z",
        "item": [
            {
                "linkId": item["linkId"],
                "answer": [{"valueCoding": item["answerOption"][0]["valueCoding"]}],
            }
            for item in questionnaire["item"]
        ],
    }
    return client.post(
        "/fhir/QuestionnaireResponse",
        content=json.dumps(body),
        headers={**headers, "Content-Type": FHIR_JSON},
    )


@pytest.fixture
def app_with(database_url: str) -> Iterator[Any]:
    """Make an app with settings of its own; each runs inside its own test client."""
    opened: list[TestClient[Litestar]] = []

    def make(**settings: Any) -> TestClient[Litestar]:
        client = TestClient(create_app(Settings(database_url=database_url, **settings)))
        client.__enter__()
        opened.append(client)

        async def token() -> str:
            async with client.app.state.db.begin() as conn:
                _, made = await create_client(
                    conn, f"clinic-{uuid.uuid4()}", list(SCOPES), create_clinic=True
                )
            return made

        client.headers["Authorization"] = f"Bearer {client.blocking_portal.call(token)}"
        return client

    yield make
    for client in opened:
        client.__exit__(None, None, None)


def test_with_a_public_base_url_the_host_header_names_nothing(app_with: Any) -> None:
    client = app_with(public_base_url=PUBLIC)
    created = answers_posted(client, EVIL)
    assert created.status_code == 201, created.text
    assert created.headers["location"].startswith(f"{PUBLIC}/fhir/QuestionnaireResponse/")
    patient = created.json()["subject"]["reference"]
    found = client.get(f"/fhir/Observation?patient={patient}&_count=1", headers=EVIL).json()
    assert found["total"] > 1
    assert {link["relation"] for link in found["link"]} == {"self", "next"}
    assert all(url.startswith(f"{PUBLIC}/fhir/Observation") for url in urls_in(found))
    questionnaires = client.get("/fhir/Questionnaire", headers=EVIL).json()
    assert all(url.startswith(f"{PUBLIC}/fhir/Questionnaire") for url in urls_in(questionnaires))
    smart = client.get("/.well-known/smart-configuration", headers=EVIL).json()
    assert smart["token_endpoint"] == f"{PUBLIC}/auth/token"


def test_without_one_urls_name_the_listening_address_not_the_host(app_with: Any) -> None:
    client = app_with()
    created = answers_posted(client, EVIL)
    assert created.status_code == 201, created.text
    assert created.headers["location"].startswith(f"{OWN}/fhir/QuestionnaireResponse/")
    found = client.get("/fhir/Observation", headers=EVIL).json()
    assert all(url.startswith(f"{OWN}/fhir/Observation") for url in urls_in(found))
    for path in ("/.well-known/smart-configuration", "/fhir/.well-known/smart-configuration"):
        smart = client.get(path, headers=EVIL).json()
        assert smart["token_endpoint"] == f"{OWN}/auth/token"


def forwarded_get(client: TestClient[Litestar], peer: str, path: str, **headers: str) -> Any:
    """A GET that arrives from ``peer`` (the direct client address in the ASGI scope)."""

    async def get() -> Any:
        transport = httpx.ASGITransport(app=client.app, client=(peer, 40000))
        async with httpx.AsyncClient(transport=transport, base_url=OWN) as http:
            response = await http.get(path, headers={**client.headers, **EVIL, **headers})
        assert response.status_code == 200, response.text
        return response.json()

    return client.blocking_portal.call(get)


def test_forwarding_headers_count_only_from_a_trusted_proxy(app_with: Any) -> None:
    client = app_with(trusted_proxies=frozenset({"10.0.0.0/8", "192.0.2.7"}))
    x_forwarded = {"X-Forwarded-Proto": "https", "X-Forwarded-Host": "belong.example.org"}
    for peer in ("10.1.2.3", "192.0.2.7"):
        bundle = forwarded_get(client, peer, "/fhir/Questionnaire", **x_forwarded)
        assert all(url.startswith(f"{PUBLIC}/fhir/") for url in urls_in(bundle)), peer
    # RFC 7239: the element the trusted proxy itself added is the last one.
    forwarded = {
        "Forwarded": (
            'host=evil.example;proto=http, for=192.0.2.60;host="belong.example.org";proto=https'
        )
    }
    bundle = forwarded_get(client, "10.1.2.3", "/fhir/Questionnaire", **forwarded)
    assert all(url.startswith(f"{PUBLIC}/fhir/") for url in urls_in(bundle))
    # From anyone else the same headers are ignored: the listening address is used.
    for peer in ("192.0.2.8", "203.0.113.9"):
        bundle = forwarded_get(client, peer, "/fhir/Questionnaire", **x_forwarded)
        assert all(url.startswith(f"{OWN}/fhir/") for url in urls_in(bundle)), peer
    # A forwarded host that is not a host is not used either.
    bundle = forwarded_get(
        client, "10.1.2.3", "/fhir/Questionnaire", **{"X-Forwarded-Host": "a/b@evil.example"}
    )
    assert all(url.startswith(f"{OWN}/fhir/") for url in urls_in(bundle))


def test_trusted_proxies_are_read_as_a_comma_list_of_addresses() -> None:
    settings = Settings.from_env({"BELONG_TRUSTED_PROXIES": "10.0.0.0/8, 192.0.2.7,::1"})
    assert settings.trusted_proxies == frozenset({"10.0.0.0/8", "192.0.2.7", "::1"})
    with pytest.raises(SystemExit, match="trusted_proxies"):
        Settings.from_env({"BELONG_TRUSTED_PROXIES": "10.0.0.0/8,proxy.example"})


def serve_output(folder: Path, host: str, **env: str) -> str:
    """What ``belong serve --host HOST`` prints until it answers /health/live."""
    environment = {
        **os.environ,
        "BELONG_DATABASE_URL": scratch_database("serve"),
        "BELONG_LOG_LEVEL": "WARNING",
        **env,
    }
    belong("db", "upgrade", env=environment)
    port = free_port()
    log = folder / f"serve-{port}.log"
    with log.open("wb") as out:
        process = subprocess.Popen(
            [str(BELONG), "serve", "--host", host, "--port", str(port), "--workers", "1"],
            env=environment,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
        try:
            deadline = time.monotonic() + 60
            while True:
                assert process.poll() is None, log.read_text()
                try:
                    if httpx.get(f"http://127.0.0.1:{port}/health/live").status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert time.monotonic() < deadline, log.read_text()
                time.sleep(0.2)
        finally:
            process.terminate()
            process.wait(timeout=30)
    return log.read_text()


def test_serving_beyond_loopback_without_a_public_base_url_warns(tmp_path: Path) -> None:
    warned = serve_output(tmp_path, "0.0.0.0")
    assert "BELONG_PUBLIC_BASE_URL" in warned
    assert "warning" in warned.lower()
    quiet = serve_output(tmp_path, "0.0.0.0", BELONG_PUBLIC_BASE_URL=PUBLIC)
    assert "BELONG_PUBLIC_BASE_URL" not in quiet
    assert "BELONG_PUBLIC_BASE_URL" not in serve_output(tmp_path, "127.0.0.1")
