"""The messages' tests talk to real peers on the loopback: an SMTP server (aiosmtpd) that
takes mail, refusing recipients whose address starts with ``refuse``, and an HTTP server
standing for an SMS gateway's webhook, answering as a test tells it. The app under test
sends to both; its clinic has a patient, a service and a referral (``world``)."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from litestar import Litestar
from litestar.testing import TestClient

from service.app import create_app
from service.settings import Settings
from tests.conftest import Clinic, MakeClinic
from tests.helpers import new_patient_id

PUBLIC_BASE = "https://belong.example.org"
SECRET_ENV = "BELONG_TEST_SMS_WEBHOOK_SECRET"
WEBHOOK_SECRET = "a-webhook-secret-shared-with-the-sms-gateway"
MAIL_FROM = "Belong <no-reply@clinic.example.org>"
CLINIC_NAME = "Riverside Clinic"
SERVICE_NAME = "Tuesday Walking Group"
PHONE = "+447700900123"
EMAIL = "patient.person@example.net"


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class MailBox:
    """What the SMTP server took: (envelope recipients, raw message bytes)."""

    received: list[tuple[list[str], bytes]] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: Any
    ) -> str:
        if address.startswith("refuse"):
            return "550 5.1.1 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.original_content or b""
        self.received.append((list(envelope.rcpt_tos), content))
        return "250 Message accepted for delivery"


@dataclass
class Gateway:
    """What the webhook received (headers, raw body), and how it answers next."""

    received: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    status: int = 202
    delay_s: float = 0.0


@dataclass(frozen=True)
class Peers:
    mailbox: MailBox
    gateway: Gateway
    smtp_port: int
    webhook_url: str

    def clear(self) -> None:
        self.mailbox.received.clear()
        self.gateway.received.clear()
        self.gateway.status, self.gateway.delay_s = 202, 0.0


@contextlib.contextmanager
def running_peers() -> Iterator[Peers]:
    """An SMTP server and a webhook receiver on the loopback, until the block ends."""
    mailbox = MailBox()
    smtp = Controller(mailbox, hostname="127.0.0.1", port=free_port())
    smtp.start()
    gateway = Gateway()

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
            gateway.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
            time.sleep(gateway.delay_s)
            answer = json.dumps({"id": str(uuid.uuid4())}).encode()
            try:
                self.send_response(gateway.status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)
            except OSError:
                pass  # the sender gave up waiting

        def log_message(self, format: str, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield Peers(mailbox, gateway, smtp.port, f"http://127.0.0.1:{server.server_port}/sms")
    finally:
        server.shutdown()
        smtp.stop()


@pytest.fixture(scope="session")
def peers() -> Iterator[Peers]:
    with running_peers() as running:
        yield running


def messaging_settings(database_url: str, peers: Peers, **changes: Any) -> Settings:
    values: dict[str, Any] = {
        "database_url": database_url,
        "public_base_url": PUBLIC_BASE,
        "smtp_url": f"smtp://127.0.0.1:{peers.smtp_port}",
        "smtp_starttls": False,
        "mail_from": MAIL_FROM,
        "sms_webhook_url": peers.webhook_url,
        "sms_webhook_secret_ref": f"env:{SECRET_ENV}",
        "message_timeout_s": 1.0,
        **changes,
    }
    return Settings(**values)


@pytest.fixture(scope="session")
def messaging_app(database_url: str, peers: Peers) -> Litestar:
    os.environ[SECRET_ENV] = WEBHOOK_SECRET
    return create_app(messaging_settings(database_url, peers))


@pytest.fixture
def sender(messaging_app: Litestar, peers: Peers) -> Iterator[TestClient[Litestar]]:
    """A test client of the app that sends, with the peers' inboxes emptied."""
    peers.clear()
    with TestClient(messaging_app) as test_client:
        yield test_client


@dataclass(frozen=True)
class World:
    clinic: Clinic
    patient_id: str
    service_id: str
    referral_id: str

    @property
    def messages(self) -> str:
        return f"/v1/referrals/{self.referral_id}/messages"


def make_world(
    client: TestClient[Litestar],
    clinic: Clinic,
    service_name: str = SERVICE_NAME,
    **profile: Any,
) -> World:
    headers = clinic.headers
    service = client.post(
        "/v1/directory/services",
        json={
            "name": service_name,
            "organization": "Org",
            "category": "social-activity",
            "modalities": ["in-person"],
        },
        headers=headers,
    )
    assert service.status_code == 201, service.text
    patient_id = new_patient_id()
    put = client.put(
        f"/v1/patients/{patient_id}", json={"languages": ["en"], **profile}, headers=headers
    )
    assert put.status_code == 201, put.text
    referral = client.post(
        "/v1/referrals",
        json={
            "patient_id": patient_id,
            "service_id": service.json()["id"],
            "consent": {"given": True, "method": "verbal"},
        },
        headers=headers,
    )
    assert referral.status_code == 201, referral.text
    return World(clinic, patient_id, service.json()["id"], referral.json()["id"])


@pytest.fixture
def world(sender: TestClient[Litestar], make_clinic: MakeClinic) -> World:
    clinic = make_clinic(name=f"{CLINIC_NAME} {uuid.uuid4().hex[:6]}")
    return make_world(sender, clinic)
